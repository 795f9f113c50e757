"""The demo's advertisers sending postbacks: conversions for clicks and impressions
the demo made, some changing status later, and one of each common mistake."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from app.attribution.security import secure_hash
from app.events.statuses import ConversionStatus, PostbackStatus
from app.ids import IdGenerator, IdSeal
from app.installation_secrets import load_id_key
from app.settings import Settings

# From demo_catalog.yaml: offer 4 pays goal "sale" and wants the `secure` hash.
SIGNED_OFFER, SIGNED_TOKEN, SIGNED_GOAL = 4, "demo-globex-token", "sale"
CLICK_POSTBACKS = 40
VIEW_THROUGH_POSTBACKS = 20
STATUS_UPDATES = 10


@dataclass
class PostbackRun:
    answers: list[tuple[dict[str, str], dict[str, Any]]] = field(default_factory=list)
    # A fragment of the message each deliberate mistake must be refused with.
    mistakes: dict[str, str] = field(default_factory=dict)

    @property
    def conversions(self) -> int:
        return sum(
            1
            for _, a in self.answers
            if a.get("status") == PostbackStatus.ACCEPTED and "updated_from" not in a
        )

    @property
    def updates(self) -> int:
        return sum(1 for _, a in self.answers if "updated_from" in a)

    @property
    def refused(self) -> int:
        return sum(1 for _, a in self.answers if a.get("status") == PostbackStatus.REFUSED)

    @property
    def pending(self) -> int:
        return sum(1 for _, a in self.answers if a.get("pending"))


def _params(offer_id: int, key: str, identifier: str, action_id: str) -> dict[str, str]:
    params = {key: identifier, "action_id": action_id, "sum": f"{random.randint(5, 120)}.00"}
    if offer_id == SIGNED_OFFER:
        params["goal"] = SIGNED_GOAL
        params["secure"] = secure_hash(SIGNED_TOKEN, identifier, action_id)
    return params


def plan_postbacks(
    clicks: list[tuple[int, str]], impressions: list[tuple[int, str]], seal: IdSeal
) -> tuple[list[dict[str, str]], dict[int, str]]:
    """Good postbacks for some of the demo's ``(offer_id, clickid)`` clicks and
    ``(offer_id, aimp_id)`` impressions (a tenth of them pending first, approved
    later), then the mistakes, by position, with the message each must get."""
    plan: list[dict[str, str]] = []
    chosen_clicks = random.sample(clicks, min(CLICK_POSTBACKS, len(clicks)))
    chosen_views = random.sample(impressions, min(VIEW_THROUGH_POSTBACKS, len(impressions)))
    for n, (offer_id, clickid) in enumerate(chosen_clicks):
        plan.append(_params(offer_id, "clickid", clickid, f"order-c{n}"))
    for n, (offer_id, aimp_id) in enumerate(chosen_views):
        plan.append(_params(offer_id, "aimp_id", aimp_id, f"order-v{n}"))
    for params in plan[:STATUS_UPDATES]:
        params["status"] = str(ConversionStatus.PENDING.value)
    updates = [
        {**params, "status": str(ConversionStatus.APPROVED.value)}
        for params in plan[:STATUS_UPDATES]
    ]
    plan += updates
    approved = updates[0] if updates else None
    mistakes: dict[int, str] = {}

    def mistake(params: dict[str, str], message: str) -> None:
        mistakes[len(plan)] = message
        plan.append(params)

    mistake({"action_id": "lost-ids"}, "neither clickid nor aimp_id is given")
    # Issued by this network (its key), but long before any click or impression.
    never = IdGenerator(seal).new_id(now_ms=1_700_000_000_000)
    mistake({"clickid": never, "action_id": "x1"}, "unknown clickid")
    mistake({"aimp_id": never, "action_id": "x2"}, "unknown aimp_id")
    # A guess: one hex digit of a real ID changed.
    if impressions:
        real = impressions[0][1]
        guessed = real[:-1] + ("0" if real[-1] != "0" else "1")
        mistake({"aimp_id": guessed, "action_id": "x7"}, "was not issued by this network")
    if chosen_clicks:
        offer_id, clickid = chosen_clicks[-1]
        if approved is not None:
            mistake({**approved}, "duplicate action_id")
        mistake({**_params(offer_id, "clickid", clickid, "x3"), "sum": "12,50"}, "sum '12,50'")
        mistake({**_params(offer_id, "clickid", clickid, "x4"), "status": "7"}, "status '7'")
    signed = [c for c in clicks if c[0] == SIGNED_OFFER]
    if signed:
        _, clickid = signed[0]
        params = {**_params(SIGNED_OFFER, "clickid", clickid, "x5"), "secure": "forged"}
        mistake(params, "secure does not match")
        params = {**_params(SIGNED_OFFER, "clickid", clickid, "x6"), "goal": "lead"}
        params["secure"] = secure_hash(SIGNED_TOKEN, clickid, "x6")
        mistake(params, "goal 'lead' is not paid")
    return plan, mistakes


async def send_postbacks(
    s: Settings, clicks: list[tuple[int, str]], impressions: list[tuple[int, str]]
) -> PostbackRun:
    """Send the plan in order (an update must follow what it updates): half as GET,
    half as POSTed forms, as advertisers' systems do."""
    plan, mistakes = plan_postbacks(clicks, impressions, IdSeal(load_id_key(s)))
    run = PostbackRun()
    async with aiohttp.ClientSession(headers={"User-Agent": "advertiser-demo/1.0"}) as session:
        for n, params in enumerate(plan):
            url = f"{s.edge_url}/postback"
            request = session.post(url, data=params) if n % 2 else session.get(url, params=params)
            async with request as response:
                answer = await response.json()
            run.answers.append((params, answer))
            if n in mistakes:
                run.mistakes[answer["postback_id"]] = mistakes[n]
    return run


def check_postbacks(
    run: PostbackRun, conversions: list[dict[str, Any]], postbacks: list[dict[str, Any]]
) -> str:
    """What the Conversions and Server postbacks slices say against what was sent and
    answered; "" if they agree."""
    if run.pending:
        return f"{run.pending} postbacks were answered 'pending' instead of with a verdict"
    if len(postbacks) != len(run.answers):
        return (
            f"{len(run.answers)} postbacks sent, the Server postbacks slice lists {len(postbacks)}"
        )
    outcomes = Counter(row["outcome"] for row in postbacks)
    expected = Counter(created=run.conversions, updated=run.updates, refused=run.refused)
    if outcomes != expected:
        return f"the answers say {dict(expected)}, the slice says {dict(outcomes)}"
    if len(conversions) != run.conversions:
        return (
            f"{run.conversions} conversions accepted, the Conversions slice has {len(conversions)}"
        )
    errors = {row["postback_id"]: row["error"] for row in postbacks}
    for postback_id, fragment in run.mistakes.items():
        if fragment not in errors.get(postback_id, ""):
            found = errors.get(postback_id)
            return f"postback {postback_id} should be refused with {fragment!r}, not {found!r}"
    return ""
