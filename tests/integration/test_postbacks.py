"""Postbacks end to end: advertiser → edge (stored first) → postbacks agent (match)
→ conversions agent (dedup, status) → verdict back to the edge, and both the
conversions and every postback's outcome in DuckDB."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import aiohttp
import pytest

from app.attribution.security import secure_hash
from app.ids import IdGenerator
from tests.integration.admin import Admin
from tests.integration.conftest import RunningStack
from tests.integration.links import linked

pytestmark = pytest.mark.integration

ADVERTISER, PID = 61, 6101
MAIN, SHORT, WALLED, PAUSED, DELETED, MONEY, OPEN_WALL, REPLAY = (
    6110,
    6111,
    6112,
    6113,
    6114,
    6115,
    6117,
    6118,
)
PERSONAL = 6119  # personal payouts, created by its test
TOKEN = "s3cret-token"
TRACKING = "https://adv.example/c?clickid={clickid}&aimp_id={aimp_id}"


def _offer(offer_id: int, **fields: Any) -> dict[str, Any]:
    return {
        "id": offer_id,
        "title": f"Postbacks {offer_id}",
        "advertiser_id": ADVERTISER,
        "allow_impressions": True,
        "tracking_url": TRACKING,
        **fields,
    }


def _cpa(revenue: str, payout: str, goal: str = "1", currency: str = "USD") -> dict[str, str]:
    return {"type": "CPA", "revenue": revenue, "payout": payout, "goal": goal, "currency": currency}


@pytest.fixture(scope="module")
async def session(running_stack: RunningStack) -> AsyncIterator[aiohttp.ClientSession]:
    # With the API key: the pixel then shows its aimp_id, as the advertiser would get
    # it in the impression forwarded to it.
    async with aiohttp.ClientSession(headers=running_stack.api_headers) as session:
        admin = Admin(running_stack, session)
        await admin.ok("POST", "/advertisers", {"id": ADVERTISER, "name": "Postbacks"})
        await admin.ok("POST", "/affiliates", {"id": PID, "name": "Converter"})
        two_goals = [_cpa("10.00", "7.00"), _cpa("4.00", "3.00", goal="2")]
        offers = [
            _offer(MAIN, payments=two_goals, postback_token=TOKEN),
            _offer(SHORT, payments=two_goals, view_through_window=3, click_session=3),
            _offer(WALLED, payments=two_goals, postback_ip_whitelist=["10.0.0.0/8"]),
            _offer(OPEN_WALL, payments=two_goals, postback_ip_whitelist=["127.0.0.1"]),
            _offer(PAUSED, payments=two_goals),
            _offer(DELETED, payments=two_goals),
            _offer(
                MONEY,
                payments=[
                    {"type": "CPM", "revenue": "2.50", "payout": "1.75", "currency": "EUR"},
                    _cpa("12.00", "9.00", currency="EUR"),
                    _cpa("3.50", "2.25", goal="2", currency="EUR"),
                ],
            ),
            _offer(REPLAY, payments=[_cpa("20.00", "15.00")]),
        ]
        for offer in offers:
            await admin.ok("POST", "/offers", offer)
        yield session


async def _impression(session: aiohttp.ClientSession, stack: RunningStack, offer: int) -> str:
    url = f"{stack.edge_url}/imp?offer_id={offer}&pid={PID}&sub1=s1-{offer}&sub2=two"
    async with session.get(url) as response:
        assert response.status == 200 and "X-Imptrack-Rejected" not in response.headers
        return response.headers["X-Aimp-Id"]


async def _click(
    session: aiohttp.ClientSession, stack: RunningStack, offer: int, aimp_id: str | None = None
) -> str:
    url = f"{stack.edge_url}/click?offer_id={offer}&pid={PID}&sub1=c1-{offer}"
    if aimp_id:
        url += f"&aimp_id={aimp_id}"
        # A click links to an impression once the worker has recorded it.
        await linked(stack, offer, PID, aimp_id=aimp_id)
    async with session.get(url, allow_redirects=False) as response:
        assert response.status == 302, await response.text()
        return response.headers["X-Clickid"]


async def _postback(
    session: aiohttp.ClientSession,
    stack: RunningStack,
    params: dict[str, str] | None = None,
    **request: Any,
) -> tuple[int, dict[str, Any]]:
    method = "POST" if ("json" in request or "data" in request) else "GET"
    async with session.request(
        method, f"{stack.edge_url}/postback", params=params, **request
    ) as response:
        return response.status, await response.json()


def _signed(identifier: str, action_id: str, key: str = "clickid", **params: str) -> dict[str, str]:
    """Parameters with the ``secure`` hash of offer MAIN's token."""
    return {
        key: identifier,
        "action_id": action_id,
        "secure": secure_hash(TOKEN, identifier, action_id),
        **params,
    }


def _old_id(stack: RunningStack, seconds_ago: float) -> str:
    """An ID issued with the stack's key that names no click or impression."""
    return IdGenerator(stack.id_seal).new_id(now_ms=int((time.time() - seconds_ago) * 1000))


def _forged(issued: str) -> str:
    """``issued`` with its last hex digit changed: a guess at a neighbour."""
    return issued[:-1] + ("0" if issued[-1] != "0" else "1")


def _slice(stack: RunningStack, name: str, *args: str) -> list[dict[str, Any]]:
    done = stack.imptrack("report", name, "--format", "json", *args)
    assert done.returncode == 0, done.stderr
    rows: list[dict[str, Any]] = json.loads(done.stdout)
    return rows


async def test_every_refusal_says_why_and_is_in_the_server_postbacks_slice(
    running_stack: RunningStack, session: aiohttp.ClientSession
) -> None:
    """Each way a postback can be wrong is answered status 2 (HTTP 400) with its own
    message, and listed with that message by `imptrack report postbacks --errors`."""
    stack = running_stack
    aimp_id = await _impression(session, stack, MAIN)
    clickid = await _click(session, stack, MAIN, aimp_id)
    paused_click = await _click(session, stack, PAUSED)
    deleted_click = await _click(session, stack, DELETED)
    walled_click = await _click(session, stack, WALLED)
    accepted = await _postback(session, stack, _signed(clickid, "dup-1", status="1"))
    assert accepted[0] == 200 and accepted[1]["status"] == 1, accepted
    admin = Admin(stack, session)
    await admin.ok("PATCH", f"/offers/{PAUSED}", {"status": "paused"})
    await admin.ok("DELETE", f"/offers/{DELETED}")

    cases: list[tuple[dict[str, Any], str]] = [
        ({"params": {"action_id": "x"}}, "neither clickid nor aimp_id is given"),
        ({"params": {"clickid": _old_id(stack, 60)}}, "unknown clickid"),
        ({"params": {"aimp_id": _old_id(stack, 60)}}, "unknown aimp_id"),
        (
            {"params": {"aimp_id": _forged(aimp_id)}},
            f"aimp_id '{_forged(aimp_id)}' was not issued by this network",
        ),
        (
            {"params": {"clickid": _forged(clickid)}},
            f"clickid '{_forged(clickid)}' was not issued by this network",
        ),
        ({"params": {"clickid": "not-an-id"}}, "clickid 'not-an-id' is not a 24-character"),
        ({"params": {"clickid": paused_click}}, f"offer {PAUSED} is not active (it is paused)"),
        ({"params": {"clickid": deleted_click}}, f"offer {DELETED} is deleted"),
        ({"params": {"clickid": clickid, "action_id": "n"}}, f"secure is required by offer {MAIN}"),
        (
            {"params": {"clickid": clickid, "action_id": "n", "secure": "00ff"}},
            "secure does not match",
        ),
        (
            # The hash of another action does not sign this one.
            {"params": {**_signed(clickid, "other"), "action_id": "mine"}},
            "secure does not match",
        ),
        (
            {"params": {"clickid": walled_click}},
            f"source IP 127.0.0.1 is not in offer {WALLED}'s postback IP whitelist",
        ),
        (
            # Without trusted proxies X-Forwarded-For is the client's word, not its IP.
            {"params": {"clickid": walled_click}, "headers": {"X-Forwarded-For": "10.0.0.5"}},
            f"source IP 127.0.0.1 is not in offer {WALLED}'s postback IP whitelist",
        ),
        ({"params": _signed(clickid, "s1", sum="12,50")}, "sum '12,50' is not a decimal number"),
        ({"params": _signed(clickid, "s2", sum="-1")}, "sum '-1' must be a number from 0"),
        ({"params": _signed(clickid, "s3", status="4")}, "status '4' is not one of 1 (approved)"),
        ({"params": _signed(clickid, "s4", status="one")}, "status 'one' is not one of"),
        ({"params": _signed(clickid, "s5", goal="lead")}, "goal 'lead' is not paid by offer"),
        ({"params": _signed(clickid, "dup-1", status="1")}, "duplicate action_id 'dup-1'"),
        (
            {"data": b"{not json", "headers": {"Content-Type": "application/json"}},
            "the body is not valid JSON",
        ),
        ({"json": [clickid]}, "the JSON body must be an object"),
        ({"json": {"clickid": clickid, "sum": [1]}}, "sum in the JSON body must be a string"),
        (
            {"data": b"clickid=x", "headers": {"Content-Type": "text/plain"}},
            "Content-Type text/plain is not supported",
        ),
        (
            {"params": [("clickid", clickid), ("clickid", clickid)]},
            "clickid is given more than once",
        ),
    ]
    refused: dict[str, str] = {}
    for request, message in cases:
        status, body = await _postback(session, stack, **request)
        assert (status, body["status"]) == (400, 2), (request, body)
        assert message in body["error"], (request, body)
        refused[body["postback_id"]] = message

    await asyncio.to_thread(stack.settle)
    listed = {row["postback_id"]: row for row in _slice(stack, "postbacks", "--errors")}
    for postback_id, message in refused.items():
        assert postback_id in listed, f"refusal {message!r} is missing from the slice"
        assert message in listed[postback_id]["error"]
        assert listed[postback_id]["status"] == "refused"
        assert listed[postback_id]["ip"] == "127.0.0.1"
    assert accepted[1]["postback_id"] not in listed, "--errors lists refusals only"
    # By advertiser: the refusals that got as far as one of its clicks (here the
    # duplicate action_id, a wrong secure, a bad sum...), none of another's.
    mine = _slice(stack, "postbacks", "--errors", "--advertiser", str(ADVERTISER))
    assert {r["postback_id"] for r in mine} <= set(listed)
    assert any("duplicate action_id 'dup-1'" in r["error"] for r in mine)
    assert not any("unknown clickid" in r["error"] for r in mine)
    assert _slice(stack, "postbacks", "--errors", "--advertiser", "999999") == []
    everything = {row["postback_id"]: row for row in _slice(stack, "postbacks")}
    raw = json.loads(everything[accepted[1]["postback_id"]]["params"])
    assert raw == _signed(clickid, "dup-1", status="1")


async def test_view_through_window_and_click_session_boundaries(
    running_stack: RunningStack, session: aiohttp.ClientSession
) -> None:
    """With a 3 s window and session: a postback 1 s after the impression or click is
    attributed; one 4 s after is refused as expired. (The exact millisecond edge is
    the unit test of app.attribution.matching.)"""
    stack = running_stack
    aimp_id = await _impression(session, stack, SHORT)
    clickid = await _click(session, stack, SHORT)
    started = time.monotonic()
    await asyncio.sleep(0.8)
    inside_view = await _postback(session, stack, {"aimp_id": aimp_id, "action_id": "v-in"})
    inside_click = await _postback(session, stack, {"clickid": clickid, "action_id": "c-in"})
    assert time.monotonic() - started < 2.5, "too slow to test inside the window"
    assert inside_view[1]["status"] == 1 and inside_view[1]["attribution"] == "view_through"
    assert inside_click[1]["status"] == 1 and inside_click[1]["attribution"] == "click"
    await asyncio.sleep(4 - (time.monotonic() - started))
    outside_view = await _postback(session, stack, {"aimp_id": aimp_id, "action_id": "v-out"})
    outside_click = await _postback(session, stack, {"clickid": clickid, "action_id": "c-out"})
    assert outside_view[1]["status"] == 2
    assert outside_view[1]["error"].startswith("impression lifespan expired: impression ")
    assert "view_through_window" in outside_view[1]["error"]
    assert outside_click[1]["status"] == 2
    assert outside_click[1]["error"].startswith("click session expired: click ")


async def test_a_click_beats_an_impression_and_keeps_its_own_aimp_id(
    running_stack: RunningStack, session: aiohttp.ClientSession
) -> None:
    """Given both IDs, the conversion is the click's, with the aimp_id the click was
    linked to (not the one the postback names), and the subs of the click."""
    stack = running_stack
    linked = await _impression(session, stack, MAIN)
    other = await _impression(session, stack, MAIN)
    clickid = await _click(session, stack, MAIN, linked)
    status, body = await _postback(
        session, stack, {**_signed(clickid, "prio-1"), "aimp_id": other, "sum": "99.5"}
    )
    assert (status, body["status"], body["attribution"]) == (200, 1, "click"), body
    view_through = await _postback(session, stack, _signed(other, "prio-2", key="aimp_id"))
    assert view_through[1]["attribution"] == "view_through", view_through
    await asyncio.to_thread(stack.settle)
    rows = await asyncio.to_thread(
        stack.query,
        "SELECT action_id, attribution, clickid, aimp_id, sub1, sum, revenue, payout"
        " FROM conversions WHERE offer_id = ? AND action_id IN ('prio-1', 'prio-2')"
        " ORDER BY action_id",
        [MAIN],
    )
    assert rows == [
        (
            "prio-1",
            "click",
            clickid,
            linked,
            f"c1-{MAIN}",
            Decimal("99.5"),
            Decimal("10"),
            Decimal("7"),
        ),
        ("prio-2", "view_through", None, other, f"s1-{MAIN}", None, Decimal("10"), Decimal("7")),
    ]


async def test_a_repeated_action_id_updates_the_status_and_true_repeats_are_refused(
    running_stack: RunningStack, session: aiohttp.ClientSession
) -> None:
    """pending → approved updates the one conversion (a new revision, logged as
    'updated'); approved again is a duplicate; the conversion stays one row."""
    stack = running_stack
    clickid = await _click(session, stack, MAIN, await _impression(session, stack, MAIN))
    created = await _postback(session, stack, _signed(clickid, "upd-1", status="2"))
    assert created[1]["conversion_status"] == "pending", created
    updated = await _postback(session, stack, _signed(clickid, "upd-1", status="1"))
    assert updated[1]["status"] == 1, updated
    assert updated[1]["conversion_id"] == created[1]["conversion_id"]
    assert (updated[1]["conversion_status"], updated[1]["updated_from"]) == ("approved", "pending")
    repeated = await _postback(session, stack, _signed(clickid, "upd-1", status="1"))
    assert repeated[1]["status"] == 2 and "duplicate action_id 'upd-1'" in repeated[1]["error"]
    # The same action_id on another offer is another action.
    await asyncio.to_thread(stack.settle)
    rows = await asyncio.to_thread(
        stack.query,
        "SELECT conversion_id, status, revision FROM conversions WHERE action_id = 'upd-1'",
    )
    assert rows == [(created[1]["conversion_id"], 1, 2)]
    outcomes = await asyncio.to_thread(
        stack.query,
        "SELECT outcome, count(*) FROM server_postbacks WHERE action_id = 'upd-1'"
        " GROUP BY ALL ORDER BY ALL",
    )
    assert outcomes == [("created", 1), ("refused", 1), ("updated", 1)]


async def test_the_ip_whitelist_lets_listed_senders_in(
    running_stack: RunningStack, session: aiohttp.ClientSession
) -> None:
    """An offer that lists 127.0.0.1 accepts its postbacks."""
    clickid = await _click(session, running_stack, OPEN_WALL)
    status, body = await _postback(session, running_stack, {"clickid": clickid})
    assert (status, body["status"]) == (200, 1), body


async def test_cpa_and_cpm_money_matches_hand_computed_sums(
    running_stack: RunningStack, session: aiohttp.ClientSession
) -> None:
    """40 impressions at CPM 2.50/1.75 EUR earn 0.10/0.07; approved conversions pay
    12.00/9.00 (goal 1, three of them) and 3.50/2.25 (goal 2, two); a pending and a
    declined one count as conversions but earn nothing yet. The Daily slice's EUR
    row shows exactly that."""
    stack = running_stack
    aimp_ids = [await _impression(session, stack, MONEY) for _ in range(40)]
    clickids = [await _click(session, stack, MONEY, a) for a in aimp_ids[:4]]
    plan = [
        ({"clickid": clickids[0]}, "1", "1"),
        ({"clickid": clickids[1]}, "1", "1"),
        ({"aimp_id": aimp_ids[10]}, "1", "1"),
        ({"clickid": clickids[2]}, "2", "1"),
        ({"aimp_id": aimp_ids[11]}, "2", "1"),
        ({"clickid": clickids[3]}, "1", "2"),
        ({"aimp_id": aimp_ids[12]}, "2", "3"),
    ]
    for n, (ids, goal, status) in enumerate(plan):
        params = {**ids, "action_id": f"money-{n}", "goal": goal, "status": status}
        answer = await _postback(session, stack, params)
        assert answer[1]["status"] == 1, answer
    await asyncio.to_thread(stack.settle)
    eur = [row for row in _slice(stack, "daily") if row["currency"] == "EUR"]
    assert len(eur) == 1, eur
    row = eur[0]
    assert (row["impressions"], row["clicks"], row["conversions"], row["approved"]) == (40, 4, 7, 5)
    # 3 x 12.00 + 2 x 3.50 + 40 x 2.50 / 1000 ; 3 x 9.00 + 2 x 2.25 + 40 x 1.75 / 1000
    assert (row["revenue"], row["payout"], row["profit"]) == ("43.1000", "31.5700", "11.5300")
    # docs/REPORTING.md, "Metrics": CR counts the 4 conversions after a click against
    # the 4 clicks (all 7 gave 175 %); the 3 view-through ones are per 1,000 impressions.
    rates = (
        "ctr_pct", "click_conversions", "cr_pct", "view_through_conversions",
        "view_through_per_1000", "ecpm",
    )  # fmt: skip
    assert tuple(row[k] for k in rates) == (10.0, 4, 100.0, 3, 75.0, "1077.5000")
    async with session.get(
        f"{stack.settings.exporter_url}/api/v1/stats/daily", headers=stack.api_headers
    ) as response:
        assert response.status == 200
        api = [r for r in (await response.json())["rows"] if r["currency"] == "EUR"]
    # The API's JSON gives money as numbers, the CLI's as decimal text.
    assert [{k: float(r[k]) for k in rates} for r in api] == [{k: float(row[k]) for k in rates}]
    conversions = [r for r in _slice(stack, "conversions") if r["offer_id"] == MONEY]
    assert sorted((r["goal"], r["status"], r["revenue"]) for r in conversions) == [
        ("1", "approved", "12.0000"),
        ("1", "approved", "12.0000"),
        ("1", "approved", "12.0000"),
        ("1", "pending", "12.0000"),
        ("2", "approved", "3.5000"),
        ("2", "approved", "3.5000"),
        ("2", "declined", "3.5000"),
    ]


async def test_postbacks_replayed_across_a_worker_kill_make_one_conversion_each(
    running_stack: RunningStack, session: aiohttp.ClientSession
) -> None:
    """30 postbacks in flight when the worker is SIGKILLed: after its restart (which
    reads its uncommitted postbacks again) each action is one conversion paying
    15.00, each postback has one outcome; sending the first five again afterwards
    is refused as duplicates."""
    stack = running_stack
    aimp_ids = [await _impression(session, stack, REPLAY) for _ in range(30)]
    params = [{"aimp_id": a, "action_id": f"replay-{n}"} for n, a in enumerate(aimp_ids)]
    answers: list[tuple[int, dict[str, Any]]] = []

    async def send_all() -> None:
        for p in params:
            answers.append(await _postback(session, stack, p))

    sending = asyncio.create_task(send_all())
    while len(answers) < 10:  # noqa: ASYNC110 - polling a list the sender fills
        await asyncio.sleep(0.02)
    await asyncio.to_thread(stack.stack.kill, "worker")
    await asyncio.sleep(0.5)
    await asyncio.to_thread(stack.stack.start, "worker")
    await sending
    assert all(status in (200, 202) for status, _ in answers), answers
    assert any(body.get("pending") for _, body in answers), "some answers should wait out"

    deadline = time.monotonic() + 90
    rows: list[tuple[object, ...]] = []
    while time.monotonic() < deadline:
        await asyncio.to_thread(stack.settle)
        rows = await asyncio.to_thread(
            stack.query,
            "SELECT count(*), count(DISTINCT action_id), sum(payout), sum(revenue)"
            " FROM conversions WHERE offer_id = ?",
            [REPLAY],
        )
        if rows[0][0] == 30:
            break
    assert rows == [(30, 30, Decimal("450"), Decimal("600"))]
    outcomes = await asyncio.to_thread(
        stack.query,
        "SELECT count(*), count(DISTINCT postback_id), count(*) FILTER (status = 1)"
        " FROM server_postbacks WHERE offer_id = ?",
        [REPLAY],
    )
    assert outcomes == [(30, 30, 30)]
    for p in params[:5]:
        status, body = await _postback(session, stack, p)
        assert (status, body["status"]) == (400, 2) and "duplicate action_id" in body["error"]
    await asyncio.to_thread(stack.settle)
    again = await asyncio.to_thread(
        stack.query, "SELECT count(*) FROM conversions WHERE offer_id = ?", [REPLAY]
    )
    assert again == [(30,)]


async def test_the_conversions_slice_shows_the_affiliates_imp_id(
    running_stack: RunningStack, session: aiohttp.ClientSession
) -> None:
    """A view-through conversion shows the imp_id of its impression; a conversion of
    a click linked by aimp_id alone, that of the click's impression (issue 21)."""
    stack = running_stack
    seen = {}
    for imp_id in ("vt-imp-1", "clk-imp-1"):
        url = f"{stack.edge_url}/imp?offer_id={OPEN_WALL}&pid={PID}&imp_id={imp_id}"
        async with session.get(url) as response:
            assert response.status == 200
            seen[imp_id] = response.headers["X-Aimp-Id"]
    clickid = await _click(session, stack, OPEN_WALL, seen["clk-imp-1"])
    for n, ids in enumerate(({"aimp_id": seen["vt-imp-1"]}, {"clickid": clickid})):
        answer = await _postback(session, stack, {**ids, "action_id": f"imp-id-{n}"})
        assert answer[1]["status"] == 1, answer
    await asyncio.to_thread(stack.settle)
    rows = [r for r in _slice(stack, "conversions") if r["offer_id"] == OPEN_WALL]
    by_action = {r["action_id"]: (r["attribution"], r["imp_id"]) for r in rows}
    assert by_action["imp-id-0"] == ("view_through", "vt-imp-1")
    assert by_action["imp-id-1"] == ("click", "clk-imp-1")


async def test_personal_payouts_pay_their_affiliate_what_was_set_for_it(
    running_stack: RunningStack, session: aiohttp.ClientSession
) -> None:
    """Offer PERSONAL pays CPM 1.00 and CPA 5.00 to everyone, but affiliate PID gets
    CPM 3.00 and CPA 8.00 (Affise's personal payouts): 10 impressions and one
    approved conversion each, the Affiliates slice shows each affiliate's payout;
    an unknown affiliate in a personal payment is refused."""
    stack = running_stack
    admin = Admin(stack, session)
    other = PID + 1
    await admin.ok("POST", "/affiliates", {"id": other, "name": "Everyone else"})
    payments = [
        {"type": "CPM", "revenue": "4.00", "payout": "1.00", "currency": "GBP"},
        {"type": "CPA", "revenue": "10.00", "payout": "5.00", "currency": "GBP"},
        {
            "type": "CPM",
            "revenue": "4.00",
            "payout": "3.00",
            "currency": "GBP",
            "affiliates": [PID],
        },
        {
            "type": "CPA",
            "revenue": "10.00",
            "payout": "8.00",
            "currency": "GBP",
            "affiliates": [PID],
        },
    ]
    refused = await admin.call(
        "POST", "/offers", _offer(PERSONAL, payments=[{**payments[3], "affiliates": [999999]}])
    )
    assert refused[0] == 400 and "there is no affiliate 999999" in refused[1]["error"], refused
    await admin.ok("POST", "/offers", _offer(PERSONAL, payments=payments))
    for n, pid in enumerate((PID, other)):
        url = f"{stack.edge_url}/imp?offer_id={PERSONAL}&pid={pid}"
        aimp_ids = []
        for _ in range(10):
            async with session.get(url) as response:
                assert "X-Imptrack-Rejected" not in response.headers
                aimp_ids.append(response.headers["X-Aimp-Id"])
        answer = await _postback(session, stack, {"aimp_id": aimp_ids[0], "action_id": f"pp-{n}"})
        assert answer[1]["status"] == 1, answer
    # 10 x 3.00 / 1000 + 8.00 ; 10 x 1.00 / 1000 + 5.00
    expected = {PID: (10, "8.0300"), other: (10, "5.0100")}
    deadline = time.monotonic() + 60
    while True:
        rows = _slice(stack, "affiliates", "--offer", str(PERSONAL))
        payouts = {r["pid"]: (r["impressions"], r["payout"]) for r in rows}
        if payouts == expected or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)
    assert payouts == expected
