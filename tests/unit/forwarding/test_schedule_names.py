"""How the schedule names a delivery and its host: what caps, breakers and replays
are counted by."""

from __future__ import annotations

import pytest

from app.events.records import AffiliatePostbackTask, ForwardTask
from app.forwarding.schedule import UNREADABLE_ORIGIN, origin, task_id


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://Adv.Example/imp?a=1", "https://adv.example:443"),
        ("http://adv.example:8080/imp", "http://adv.example:8080"),
        ("http://adv.example:99999/imp", UNREADABLE_ORIGIN),
        ("http://adv.example:port/imp", UNREADABLE_ORIGIN),
        ("http://[::1/imp", UNREADABLE_ORIGIN),
    ],
)
def test_the_origin_of_a_url(url: str, expected: str) -> None:
    """A URL whose host or port cannot be read still has an origin: scheduling it
    must not raise (the courier refuses it later)."""
    assert origin(url) == expected


def test_a_task_is_named_alike_as_a_record_and_as_an_envelopes_fields() -> None:
    """A replay is recognised whichever way its task came in."""
    task = ForwardTask(
        aimp_id="01a0c45077b85314fec65d26",
        offer_id=9500,
        pid=3,
        advertiser_id=9,
        destination="https://adv.example/imp?a={aimp_id}",
        url="https://adv.example/imp?a=01a0c45077b85314fec65d26",
    )
    assert task_id(task) == task_id(task.asdict())
    assert task_id(task).startswith("https://adv.example:443|01a0c45077b85314fec65d26|")


def test_each_revision_of_a_conversion_is_a_delivery_of_its_own() -> None:
    first = AffiliatePostbackTask(
        conversion_id="01a0c45077b85314fec65d27",
        revision=1,
        postback_id="01a0c45077b85314fec65d28",
        offer_id=9500,
        pid=3,
        advertiser_id=9,
        conversion_status=2,
        payout="7.00",
        currency="USD",
        goal="1",
        destination="https://aff.example/pb?c={clickid}",
        url="https://aff.example/pb?c=x",
    )
    second = first.derive(revision=2)
    assert task_id(first) != task_id(second)
    assert "|01a0c45077b85314fec65d27:2|" in task_id(second.asdict())
