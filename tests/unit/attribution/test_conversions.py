"""What the conversions' decisions refuse to guess (app.attribution.conversions)."""

from __future__ import annotations

import pytest

from app.attribution.conversions import CREATED, verdict
from app.events.records import PostbackOutcome
from app.events.statuses import PostbackStatus
from app.ids import IdGenerator
from tests.ids import TEST_SEAL


def test_an_accepted_outcome_without_its_conversion_status_is_an_error_naming_it() -> None:
    """A record no decision made (accepted, no status) is not answered as if approved."""
    postback_id = IdGenerator(TEST_SEAL).new_id()
    outcome = PostbackOutcome(
        postback_id=postback_id,
        method="GET",
        params={},
        status=PostbackStatus.ACCEPTED,
        outcome=CREATED,
    )
    with pytest.raises(ValueError, match=f"postback {postback_id} .* no conversion_status"):
        verdict(outcome)
