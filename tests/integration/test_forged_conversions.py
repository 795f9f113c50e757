"""An attacker tries to post conversions for impressions and clicks it never bought.

It loads pixels as a stranger (there is nothing to harvest), then as someone who got
IDs anyway (a network running PIXEL_DEBUG, an API key shown on screen): it guesses
the neighbours of every ID it saw and posts conversions for all of them, and for the
IDs themselves on offers that guard their postbacks. None is accepted; every guess is
refused by the ID key alone, before any table is read.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from app.edge.pixel import TRANSPARENT_GIF
from tests.integration.admin import Admin
from tests.integration.conftest import RunningStack

pytestmark = pytest.mark.integration

ADVERTISER, PID = 91, 9101
OPEN, SIGNED, WALLED = 9110, 9111, 9112
CPA = [{"type": "CPA", "revenue": "50.00", "payout": "40.00", "goal": "1", "currency": "USD"}]
TRACKING = "https://adv.example/c?clickid={clickid}"
ID_LIKE = re.compile(r"[0-9a-f]{24}")


@pytest.fixture(scope="module")
async def offers(running_stack: RunningStack) -> AsyncIterator[None]:
    async with aiohttp.ClientSession() as session:
        admin = Admin(running_stack, session)
        await admin.ok("POST", "/advertisers", {"id": ADVERTISER, "name": "Target"})
        await admin.ok("POST", "/affiliates", {"id": PID, "name": "Honest affiliate"})
        common = {"advertiser_id": ADVERTISER, "allow_impressions": True, "payments": CPA}
        for offer_id, guard in (
            (OPEN, {}),
            (SIGNED, {"postback_token": "advertiser-secret"}),
            (WALLED, {"postback_ip_whitelist": ["10.0.0.0/8"]}),
        ):
            body = {"id": offer_id, "title": f"Target {offer_id}", "tracking_url": TRACKING}
            await admin.ok("POST", "/offers", {**body, **common, **guard})
    yield


async def _pixels(
    session: aiohttp.ClientSession, stack: RunningStack, headers: dict[str, str]
) -> list[tuple[int, str, bytes]]:
    """Ten pixels per offer; what each answer showed: headers and body."""
    shown = []
    for offer_id in (OPEN, SIGNED, WALLED):
        for n in range(10):
            url = f"{stack.edge_url}/imp?offer_id={offer_id}&pid={PID}&imp_id=seen-{n}"
            async with session.get(url, headers=headers) as answer:
                assert answer.status == 200
                text = " ".join(f"{k}: {v}" for k, v in answer.headers.items())
                shown.append((offer_id, text, await answer.read()))
    return shown


def _neighbours(seen: str) -> set[str]:
    """What an attacker tries around one ID seen: the next and previous values of its
    last bits, the same bits a millisecond either side, each hex digit of its tail
    changed in turn."""
    head, tail = seen[:11], int(seen[11:], 16)
    guesses = {f"{head}{(tail + d) % (1 << 52):013x}" for d in (1, 2, 3, -1, -2, -3)}
    for ms in (int(head, 16) - 1, int(head, 16) + 1):
        guesses.add(f"{ms:011x}{seen[11:]}")
    for position in range(18, 24):
        digit = int(seen[position], 16)
        guesses.add(seen[:position] + f"{(digit + 7) % 16:x}" + seen[position + 1 :])
    guesses.discard(seen)
    return guesses


async def _post(
    session: aiohttp.ClientSession, stack: RunningStack, params: list[dict[str, str]]
) -> list[dict[str, Any]]:
    """Post every conversion, 16 at a time; the edge's JSON answers."""
    gate = asyncio.Semaphore(16)

    async def one(p: dict[str, str]) -> dict[str, Any]:
        async with gate, session.get(f"{stack.edge_url}/postback", params=p) as answer:
            body: dict[str, Any] = await answer.json()
            return body

    return list(await asyncio.gather(*(one(p) for p in params)))


async def test_pixels_give_a_stranger_nothing_to_post(
    running_stack: RunningStack, offers: None
) -> None:
    async with aiohttp.ClientSession() as session:
        shown = await _pixels(session, running_stack, headers={})
    # The same 43 bytes every time, and no header holding anything like an ID.
    assert {body for _, _, body in shown} == {TRANSPARENT_GIF}
    harvested = {m for _, text, _ in shown for m in ID_LIKE.findall(text)}
    assert harvested == set(), "a pixel showed a stranger something like an ID"


async def test_conversions_for_guessed_and_leaked_ids_are_all_refused(
    running_stack: RunningStack, offers: None
) -> None:
    stack = running_stack
    async with aiohttp.ClientSession() as session:
        # IDs seen anyway: 30 impressions, and 10 clicks whose clickids the person who
        # clicked sees in the redirect.
        leaked = await _pixels(session, stack, headers=stack.api_headers)
        aimp_ids = {offer: [] for offer in (OPEN, SIGNED, WALLED)}  # type: dict[int, list[str]]
        for offer_id, text, _ in leaked:
            aimp_ids[offer_id].append(ID_LIKE.findall(text)[0])
        clickids = []
        for n in range(10):
            url = f"{stack.edge_url}/click?offer_id={OPEN}&pid={PID}&imp_id=seen-{n}"
            async with session.get(url, allow_redirects=False) as answer:
                assert answer.status == 302
                clickids.append(answer.headers["X-Clickid"])

        guesses = [
            {"aimp_id": guess, "action_id": f"forged-{n}"}
            for n, guess in enumerate(
                g
                for seen in (i for ids in aimp_ids.values() for i in ids)
                for g in _neighbours(seen)
            )
        ] + [
            {"clickid": guess, "action_id": f"forged-click-{n}"}
            for n, guess in enumerate(g for seen in clickids for g in _neighbours(seen))
        ]
        # The leaked IDs themselves, on the offers that guard their postbacks.
        guarded = [
            {"aimp_id": aimp_id, "action_id": f"leaked-{n}", "secure": "0" * 64}
            for n, aimp_id in enumerate(aimp_ids[SIGNED])
        ] + [
            {"aimp_id": aimp_id, "action_id": f"leaked-wall-{n}"}
            for n, aimp_id in enumerate(aimp_ids[WALLED])
        ]
        answers = await _post(session, stack, guesses + guarded)

    assert len(guesses) > 400
    accepted = [a for a in answers if a.get("status") != 2]
    assert accepted == [], f"{len(accepted)} forged conversions accepted: {accepted[:3]}"
    guess_errors = [a["error"] for a in answers[: len(guesses)]]
    by_key = Counter("was not issued by this network" in e for e in guess_errors)
    # The keyed check passes one guess in 8,192 (then unknown to the tables): about
    # 0.06 of these 500.
    assert by_key[False] <= 2, [e for e in guess_errors if "not issued" not in e][:3]
    assert all("not issued" in e or "unknown" in e for e in guess_errors)
    guarded_errors = [a["error"] for a in answers[len(guesses) :]]
    assert all("secure does not match" in e for e in guarded_errors[:10]), guarded_errors
    assert all("postback IP whitelist" in e for e in guarded_errors[10:]), guarded_errors

    # Nothing forged reached the statistics; every attempt is in Server postbacks.
    await asyncio.to_thread(stack.settle)
    for offer_id in (OPEN, SIGNED, WALLED):
        done = stack.imptrack("report", "conversions", "--offer", str(offer_id), "--format", "json")
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout) == []
    done = stack.imptrack("report", "postbacks", "--errors", "--format", "json")
    assert done.returncode == 0, done.stderr
    refused = {row["postback_id"] for row in json.loads(done.stdout)}
    assert {a["postback_id"] for a in answers} <= refused
