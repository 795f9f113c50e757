"""Each rule for when an impression is not tracked, end to end: admin API → edge →
impressions agent → DuckDB and the Rejections slice."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import pytest

from tests.integration.admin import Admin
from tests.integration.conftest import RunningStack
from tests.integration.pixels import send_pixels

pytestmark = pytest.mark.integration

PIXELS_PER_PAIR = 4


@dataclass(frozen=True)
class Case:
    reason: str
    rejected: tuple[int, int]  # (offer_id, pid) that breaks the rule
    counted: tuple[int, int]  # the same affiliate or offer where nothing is broken


# Advertiser 30 and offer 300 are active and track impressions; every case varies
# one thing from that.
CASES = [
    Case("offer_not_active", (301, 321), (300, 321)),
    Case("offer_deleted", (302, 322), (300, 322)),
    Case("offer_unknown", (399, 323), (300, 323)),
    Case("advertiser_not_active", (303, 324), (300, 324)),
    Case("affiliate_unknown", (300, 399), (300, 325)),
    Case("affiliate_deleted", (300, 326), (300, 325)),
    Case("affiliate_not_active", (300, 328), (300, 325)),
    Case("affiliate_not_approved", (304, 329), (304, 330)),
    Case("affiliate_disabled_for_offer", (300, 331), (305, 331)),
    Case("advertiser_disabled_for_affiliate", (306, 332), (300, 332)),
    Case("impressions_not_allowed", (307, 333), (300, 333)),
]


async def _set_up_catalog(admin: Admin) -> None:
    await admin.ok("POST", "/advertisers", {"id": 30, "name": "Rules advertiser"})
    await admin.ok("POST", "/advertisers", {"id": 31, "name": "Inactive", "status": "inactive"})
    await admin.ok("POST", "/advertisers", {"id": 32, "name": "Blocked for 332"})
    for pid in range(321, 334):
        await admin.ok("POST", "/affiliates", {"id": pid, "name": f"Affiliate {pid}"})
    await admin.ok("DELETE", "/affiliates/326")
    await admin.ok("PATCH", "/affiliates/328", {"status": "pending"})

    def offer(offer_id: int, advertiser_id: int = 30, **fields: object) -> dict[str, object]:
        return {
            "id": offer_id,
            "title": f"Offer {offer_id}",
            "advertiser_id": advertiser_id,
            "allow_impressions": True,
            **fields,
        }

    await admin.ok("POST", "/offers", offer(300))
    await admin.ok("POST", "/offers", offer(301, status="paused"))
    await admin.ok("POST", "/offers", offer(302))
    await admin.ok("DELETE", "/offers/302")
    await admin.ok("POST", "/offers", offer(303, advertiser_id=31))
    await admin.ok("POST", "/offers", offer(304, access="approval"))
    await admin.ok("PUT", "/offers/304/affiliates/330", {"rule": "enabled"})
    await admin.ok("POST", "/offers", offer(305))
    await admin.ok("PUT", "/offers/300/affiliates/331", {"rule": "disabled"})
    await admin.ok("POST", "/offers", offer(306, advertiser_id=32))
    await admin.ok("PUT", "/affiliates/332/blocked-advertisers/32")
    await admin.ok("POST", "/offers", offer(307, allow_impressions=False))


@dataclass
class Outcome:
    edge_verdicts: dict[tuple[int, int], set[str]]
    tracked: dict[tuple[int, int], int]
    rejected: dict[tuple[int, int, str], int]
    slice_rows: dict[str, int]
    stored_by_reason: dict[str, int]


@pytest.fixture(scope="module")
async def outcome(running_stack: RunningStack) -> AsyncIterator[Outcome]:
    """Set the rules up once, send pixels for every case, and read what was stored."""
    running_stack.settle()
    async with aiohttp.ClientSession() as session:
        await _set_up_catalog(Admin(running_stack, session))
    pairs = sorted({pair for case in CASES for pair in (case.rejected, case.counted)})
    params = [
        {"offer_id": str(o), "pid": str(p), "imp_id": f"rule-{o}-{p}-{n}"}
        for o, p in pairs
        for n in range(PIXELS_PER_PAIR)
    ]
    run = await send_pixels(running_stack, params)
    assert run.refused == 0 and len(run.accepted) == len(params)
    verdicts: dict[tuple[int, int], set[str]] = {pair: set() for pair in pairs}
    for aimp_id, sent in run.accepted.items():
        verdicts[(int(sent["offer_id"]), int(sent["pid"]))].add(run.edge_verdicts[aimp_id])
    running_stack.settle()
    tracked = running_stack.query(
        "SELECT offer_id, pid, count(*) FROM impressions WHERE offer_id BETWEEN 300 AND 399 "
        "GROUP BY ALL"
    )
    rejected = running_stack.query(
        "SELECT offer_id, pid, reason, count(*) FROM rejections "
        "WHERE offer_id BETWEEN 300 AND 399 GROUP BY ALL"
    )
    by_reason = running_stack.query("SELECT reason, count(*) FROM rejections GROUP BY ALL")
    report = running_stack.imptrack("report", "rejections", "--format", "json")
    assert report.returncode == 0, report.stderr
    yield Outcome(
        edge_verdicts=verdicts,
        tracked={(o, p): n for o, p, n in tracked},  # type: ignore[misc]
        rejected={(o, p, r): n for o, p, r, n in rejected},  # type: ignore[misc]
        slice_rows={
            row["reason"]: row["impressions"]
            for row in json.loads(report.stdout)
            if row["impressions"]
        },
        stored_by_reason={r: n for r, n in by_reason},  # type: ignore[misc]
    )


@pytest.mark.parametrize("case", CASES, ids=[c.reason for c in CASES])
def test_rule(outcome: Outcome, case: Case) -> None:
    """The impression is absent from statistics and counted under its reason; the
    same affiliate (or offer) where the rule does not apply is counted."""
    assert case.rejected not in outcome.tracked
    assert outcome.rejected.get((*case.rejected, case.reason)) == PIXELS_PER_PAIR
    assert outcome.edge_verdicts[case.rejected] == {case.reason}
    assert outcome.tracked.get(case.counted) == PIXELS_PER_PAIR
    assert not any(key[:2] == case.counted for key in outcome.rejected)
    assert outcome.edge_verdicts[case.counted] == {""}
    assert outcome.slice_rows[case.reason] >= PIXELS_PER_PAIR


def test_rejections_slice_counts_every_stored_rejection(outcome: Outcome) -> None:
    """``imptrack report rejections`` agrees with the rows, reason by reason."""
    assert outcome.slice_rows == outcome.stored_by_reason
