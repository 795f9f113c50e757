"""An envelope judged column by column (judge_envelope) gives each impression what
judge_impression gives it alone: the same verdict, fields, earning, forward task
and click-index entry."""

from __future__ import annotations

import random
from typing import Any

from app.attribution.impressions import Recorded, judge_envelope, judge_impression
from app.catalog.model import (
    Advertiser,
    Affiliate,
    Catalog,
    Destination,
    Offer,
    Payment,
)
from app.events import kinds
from app.events.records import SUB_FIELDS, Impression, RejectedImpression, impression_payload
from app.ids import IdGenerator
from tests.ids import TEST_SEAL

EVERY_MACRO = "&".join(
    f"{name}={{{name}}}"
    for name in (
        "offer_id",
        "pid",
        "advertiser_id",
        "impression_id",
        "aimp_id",
        *SUB_FIELDS,
        "ua",
        "ip",
        "time",
        "imp_id",  # not a macro: filled empty, by both
    )
)
CATALOG = Catalog(
    advertisers={9: Advertiser(9, "Adv"), 8: Advertiser(8, "Blocked", status="blocked")},
    offers={
        # Forwards to three URLs by weight, with every macro; a personal CPM payout.
        5: Offer(
            id=5,
            title="Weighted",
            advertiser_id=9,
            allow_impressions=True,
            view_through_window=3600,
            impressions_url=f"https://main.example/i?{EVERY_MACRO}",
            additional_impressions_urls=(
                Destination(f"https://a.example/i?{EVERY_MACRO}", 30),
                Destination(f"https://b.example/p/{{sub1}}/{{aimp_id}}?{EVERY_MACRO}", 20),
            ),
            payments=(
                Payment("CPM", "2.00", "1.50", affiliates=(4,)),
                Payment("CPM", "3.00", "2.00", "EUR"),
            ),
        ),
        # One URL; no CPM payment: recorded with nothing earned.
        6: Offer(
            id=6,
            title="Single",
            advertiser_id=9,
            allow_impressions=True,
            impressions_url="https://one.example/i?a={aimp_id}&s={sub2}",
            payments=(Payment("CPA", "10", "7"),),
        ),
        # Recorded, never forwarded.
        7: Offer(id=7, title="Silent", advertiser_id=9, allow_impressions=True),
        8: Offer(id=8, title="No impressions", advertiser_id=9),
        10: Offer(id=10, title="Blocked advertiser", advertiser_id=8, allow_impressions=True),
    },
    affiliates={
        3: Affiliate(3, "Aff"),
        4: Affiliate(4, "Personal"),
        5: Affiliate(5, "Off", "paused"),
    },
)
OFFERS_PIDS = [(5, 3), (5, 4), (6, 3), (7, 4), (8, 3), (10, 3), (99, 3), (5, 5), (5, 77)]


def _rows(count: int) -> tuple[str, list[dict[str, Any]]]:
    ids = IdGenerator(TEST_SEAL).open_envelope(1)
    pick = random.Random(23)
    rows = []
    for slot in range(count):
        offer_id, pid = pick.choice(OFFERS_PIDS)
        subs = {name: pick.choice(["a&b=c", "é ü/?#", "", "x" * 40]) for name in SUB_FIELDS[:5]}
        row = impression_payload(
            offer_id,
            pid,
            pick.choice([None, f"i:{slot}", "imp id&1"]),
            subs,
            pick.choice([None, "Mozilla/5.0 (X11; Linux) ☃"]),
            pick.choice([None, "203.0.113.7", "2001:db8::1"]),
        )
        rows.append({**row, "aimp_id": ids.id(slot)})
    return ids.key, rows


def test_an_envelope_judged_whole_matches_each_impression_judged_alone() -> None:
    """Every recorded impression has the fields and earning of judge_impression's copy,
    every rejected one its reason and advertiser, every forward task its destination
    and URL (every macro, URL-encoded), in slot order."""
    _, rows = _rows(300)
    envelope = kinds.IMPRESSIONS.enveloped.decode(
        kinds.IMPRESSIONS.enveloped.current.encode_rows(rows)
    )
    verdicts = judge_envelope(CATALOG, envelope)

    recorded, rejected, forward = [], [], []
    for row in rows:
        judged = judge_impression(CATALOG, Impression(**row))
        if isinstance(judged, Recorded):
            recorded.append(judged.earning.asdict())
            if judged.forward is not None:
                forward.append(judged.forward.asdict())
        else:
            assert isinstance(judged, RejectedImpression)
            rejected.append(judged.asdict())
    # Every kind of verdict is in this envelope.
    assert recorded and rejected and forward and len(forward) < len(recorded)
    assert {r["reason"] for r in rejected} >= {
        "impressions_not_allowed",
        "advertiser_not_active",
        "offer_unknown",
        "affiliate_not_active",
        "affiliate_unknown",
    }

    def decoded(kind: kinds.EventKind, value: bytes | None) -> list[dict[str, Any]]:
        assert value is not None
        return list(kind.enveloped.decode(value).rows())

    def as_rows(kind: kinds.EventKind, expected: list[dict[str, Any]]) -> list[dict[str, Any]]:
        fields = kind.enveloped.current.fields
        return [{name: row.get(name) for name in fields} for row in expected]

    assert decoded(kinds.RECORDED_IMPRESSIONS, verdicts.recorded) == as_rows(
        kinds.RECORDED_IMPRESSIONS, recorded
    )
    assert decoded(kinds.REJECTED_IMPRESSIONS, verdicts.rejected) == as_rows(
        kinds.REJECTED_IMPRESSIONS, rejected
    )
    assert decoded(kinds.FORWARD_TASKS, verdicts.forward) == as_rows(kinds.FORWARD_TASKS, forward)


def test_an_envelope_with_nothing_recorded_or_nothing_rejected_writes_no_such_envelope() -> None:
    """An empty outcome is None, not an empty envelope: the agent sends nothing for it."""
    ids = IdGenerator(TEST_SEAL).open_envelope(0)
    fmt = kinds.IMPRESSIONS.enveloped
    silent = [impression_payload(7, 3, None, {}, None, None) | {"aimp_id": ids.id(0)}]
    verdicts = judge_envelope(CATALOG, fmt.decode(fmt.current.encode_rows(silent)))
    assert verdicts.recorded is not None
    assert (verdicts.rejected, verdicts.forward) == (None, None)
    unknown = [impression_payload(99, 3, None, {}, None, None) | {"aimp_id": ids.id(1)}]
    verdicts = judge_envelope(CATALOG, fmt.decode(fmt.current.encode_rows(unknown)))
    assert (verdicts.recorded, verdicts.forward) == (None, None)
    assert verdicts.rejected is not None


def test_a_rand_macro_is_a_fresh_number_for_each_impression() -> None:
    """{rand} is filled with a random whole number below 2^31, as a task made alone."""
    offer = Offer(
        id=11,
        title="Rand",
        advertiser_id=9,
        allow_impressions=True,
        impressions_url="https://r.example/i?r={rand}&t={time}",
    )
    catalog = Catalog(
        advertisers=CATALOG.advertisers, offers={11: offer}, affiliates=CATALOG.affiliates
    )
    ids = IdGenerator(TEST_SEAL).open_envelope(0)
    rows = [
        impression_payload(11, 3, None, {}, None, None) | {"aimp_id": ids.id(n)} for n in range(50)
    ]
    fmt = kinds.IMPRESSIONS.enveloped
    verdicts = judge_envelope(catalog, fmt.decode(fmt.current.encode_rows(rows)))
    assert verdicts.forward is not None
    urls = kinds.FORWARD_TASKS.enveloped.decode(verdicts.forward)["url"]
    rands = [int(url.split("r=")[1].split("&")[0]) for url in urls]
    assert all(0 <= r < 2**31 for r in rands) and len(set(rands)) > 1
    assert {url.split("t=")[1] for url in urls} == {str(ids.tick // 1000 + 1_577_836_800)}
