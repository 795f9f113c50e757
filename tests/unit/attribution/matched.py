"""A matched postback as the postbacks agent makes one, for the tests of what
follows it (the conversions' decisions, the matches' envelopes)."""

from __future__ import annotations

from typing import Any

from app.events.records import Conversion, MatchedPostback, Postback
from app.ids import IdGenerator
from tests.ids import TEST_SEAL

_ids = IdGenerator(TEST_SEAL)


def matched_postback(
    status: int,
    at_ms: int,
    action_id: str | None = "A-1",
    params: dict[str, str] | None = None,
    **conversion: Any,
) -> MatchedPostback:
    """The postback received at ``at_ms`` (its ID tells) and the conversion of
    offer 5, affiliate 3 it makes; ``conversion`` overrides its fields."""
    postback_id = _ids.new_id(now_ms=at_ms)
    postback = Postback(
        postback_id=postback_id,
        method="GET",
        params={"status": str(status)} if params is None else params,
    )
    fields: dict[str, Any] = {
        "conversion_id": postback_id,
        "revision": 1,
        "postback_id": postback_id,
        "offer_id": 5,
        "pid": 3,
        "advertiser_id": 9,
        "attribution": "click",
        "goal": "1",
        "status": status,
        "revenue": "10.00",
        "payout": "7.00",
        "currency": "USD",
        "event_ms": at_ms - 1000,
        "created_ms": at_ms,
        "updated_ms": at_ms,
        "action_id": action_id,
        **conversion,
    }
    return MatchedPostback(postback=postback, conversion=Conversion(**fields))
