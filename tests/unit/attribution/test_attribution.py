"""Attributing a postback to its click or impression: every refusal and the
conversion it makes (app.attribution.matching)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from app.attribution.matching import attribute
from app.attribution.params import PostbackRefused, RefusalKind, parse_postback
from app.attribution.security import secure_hash
from app.catalog.model import Catalog, Offer, Payment
from app.events.records import Click, Impression, Postback
from app.ids import IdGenerator, id_ms
from tests.ids import TEST_SEAL

T0 = 1_790_000_000_000
GOALS = (Payment("CPA", "10.00", "7.00"), Payment("CPA", "4.00", "3.00", "EUR", goal="2"))


def _id(ms: int) -> str:
    return IdGenerator(TEST_SEAL).new_id(now_ms=ms)


def _catalog(**offer: object) -> Catalog:
    fields: dict[str, object] = {"id": 5, "title": "O", "advertiser_id": 9, "payments": GOALS}
    fields.update(offer)
    return Catalog(offers={5: Offer(**fields)})  # type: ignore[arg-type]


def _impression(ms: int = T0) -> Impression:
    return Impression(aimp_id=_id(ms), offer_id=5, pid=3, sub1="imp-s1")


def _click(ms: int = T0, aimp_id: str | None = None) -> Click:
    return Click(
        clickid=_id(ms),
        offer_id=5,
        pid=3,
        advertiser_id=9,
        link="aimp_id",
        aimp_id=aimp_id,
        sub1="click-s1",
    )


def _decide(
    params: dict[str, str], source: object, at_ms: int, catalog: Catalog, ip: str = "1.2.3.4"
):  # type: ignore[no-untyped-def]
    postback = Postback(postback_id=_id(at_ms), method="GET", params=params, ip=ip)
    return attribute(parse_postback(params, TEST_SEAL), postback, source, catalog)  # type: ignore[arg-type]


def _refusal(
    params: dict[str, str], source: object, at_ms: int, catalog: Catalog, ip: str = "1.2.3.4"
) -> str:
    with pytest.raises(PostbackRefused) as refused:
        _decide(params, source, at_ms, catalog, ip)
    return str(refused.value)


def test_the_view_through_window_ends_exactly_at_its_last_millisecond() -> None:
    """An impression exactly window seconds old still converts; a millisecond more
    is 'impression lifespan expired'."""
    impression = _impression()
    catalog = _catalog(view_through_window=60)
    params = {"aimp_id": impression.aimp_id}
    assert _decide(params, impression, T0 + 60_000, catalog).attribution == "view_through"
    message = _refusal(params, impression, T0 + 60_001, catalog)
    assert message.startswith(f"impression lifespan expired: impression {impression.aimp_id}")
    assert "view_through_window" in message


def test_the_click_session_ends_exactly_at_its_last_millisecond() -> None:
    """A click exactly click_session seconds old converts; a millisecond more does not."""
    click = _click()
    catalog = _catalog(click_session=30)
    params = {"clickid": click.clickid}
    assert _decide(params, click, T0 + 30_000, catalog).attribution == "click"
    assert _refusal(params, click, T0 + 30_001, catalog).startswith(
        f"click session expired: click {click.clickid}"
    )


def test_unknown_ids_name_what_was_not_found() -> None:
    """No such click or impression: the message names the ID and its kind."""
    clickid, aimp_id = _id(T0), _id(T0)
    assert _refusal({"clickid": clickid}, None, T0, _catalog()) == (
        f"unknown clickid {clickid}: no click with this ID was tracked"
    )
    assert _refusal({"aimp_id": aimp_id}, None, T0, _catalog()) == (
        f"unknown aimp_id {aimp_id}: no impression with this ID was tracked"
    )


@pytest.mark.parametrize(
    ("status", "message"),
    [
        ("paused", "offer 5 is not active (it is paused)"),
        ("stopped", "offer 5 is not active (it is stopped)"),
        ("deleted", "offer 5 is deleted"),
    ],
)
def test_an_offer_that_is_not_active_takes_no_postbacks(status: str, message: str) -> None:
    """Paused, stopped and deleted offers refuse postbacks, saying which."""
    click = _click()
    assert _refusal({"clickid": click.clickid}, click, T0, _catalog(status=status)).startswith(
        message
    )
    assert _refusal({"clickid": click.clickid}, click, T0, Catalog()).startswith(
        "offer 5 is deleted"
    )


def test_the_ip_whitelist_and_the_secure_hash() -> None:
    """Outside the whitelist: refused with the IP; the hash signs the clickid (the ID
    matched by) and action_id, so another action's hash or a missing one is refused."""
    click = _click()
    walled = _catalog(postback_ip_whitelist=("10.0.0.0/8",))
    params = {"clickid": click.clickid}
    assert _refusal(params, click, T0, walled) == (
        "source IP 1.2.3.4 is not in offer 5's postback IP whitelist"
    )
    assert _decide(params, click, T0, walled, ip="10.9.8.7").offer_id == 5
    signed = _catalog(postback_token="tok")
    good = {"clickid": click.clickid, "action_id": "A", "aimp_id": _id(T0)}
    assert _refusal(good, click, T0, signed).startswith("secure is required by offer 5")
    wrong = {**good, "secure": secure_hash("tok", click.clickid, "B")}
    assert _refusal(wrong, click, T0, signed).startswith("secure does not match")
    by_aimp = {**good, "secure": secure_hash("tok", good["aimp_id"], "A")}
    assert _refusal(by_aimp, click, T0, signed).startswith("secure does not match")
    right = {**good, "secure": secure_hash("tok", click.clickid, "A").upper()}
    assert _decide(right, click, T0, signed).action_id == "A"


def test_goals_the_offer_does_not_pay_are_refused_unless_it_pays_no_cpa() -> None:
    """A goal without a CPA payment is refused with the goals there are; an offer
    without CPA payments records conversions at zero in its currency."""
    impression = _impression()
    params = {"aimp_id": impression.aimp_id, "goal": "lead"}
    assert _refusal(params, impression, T0, _catalog()) == (
        "goal 'lead' is not paid by offer 5 (its goals: 1, 2)"
    )
    cpm_only = _catalog(payments=(Payment("CPM", "2.00", "1.00", "GBP"),))
    conversion = _decide(params, impression, T0, cpm_only)
    assert (conversion.revenue, conversion.payout, conversion.currency) == ("0", "0", "GBP")


def test_a_click_conversion_keeps_the_clicks_aimp_id_subs_and_times() -> None:
    """Attributed to the click: its clickid, the impression it was linked to, its
    subs; the goal's payment; the conversion's ID and times from the postback."""
    linked = _id(T0 - 5000)
    click = _click(T0 - 1000, aimp_id=linked)
    params = {"clickid": click.clickid, "aimp_id": _id(T0 - 3000), "goal": "2", "status": "2"}
    params |= {"sum": "19.90", "action_id": "order-7", "custom_field3": "blue"}
    conversion = _decide(params, click, T0, _catalog())
    assert (conversion.attribution, conversion.clickid, conversion.aimp_id) == (
        "click",
        click.clickid,
        linked,
    )
    assert (conversion.revenue, conversion.payout, conversion.currency) == ("4.00", "3.00", "EUR")
    assert (conversion.goal, conversion.status, conversion.sum) == ("2", 2, "19.90")
    assert (conversion.sub1, conversion.custom_fields) == ("click-s1", {"custom_field3": "blue"})
    assert conversion.conversion_id == conversion.postback_id
    assert conversion.created_ms == conversion.updated_ms == T0
    assert conversion.event_ms == id_ms(click.clickid) and conversion.revision == 1
    assert (conversion.offer_id, conversion.pid, conversion.advertiser_id) == (5, 3, 9)


def test_a_view_through_conversion_has_no_clickid() -> None:
    """Attributed to the impression: its aimp_id and subs, no clickid."""
    impression = _impression(T0 - 2000)
    conversion = _decide({"aimp_id": impression.aimp_id}, impression, T0, _catalog())
    assert (conversion.attribution, conversion.clickid, conversion.aimp_id) == (
        "view_through",
        None,
        impression.aimp_id,
    )
    assert conversion.sub1 == "imp-s1"
    assert Decimal(conversion.revenue) == Decimal("10")


def _kind(params: dict[str, str], source: object, at_ms: int, catalog: Catalog) -> RefusalKind:
    with pytest.raises(PostbackRefused) as refused:
        _decide(params, source, at_ms, catalog)
    return refused.value.kind


def test_each_refusal_names_its_kind_of_error() -> None:
    """The kind is what the metrics count refusals by; the message stays precise."""
    click, impression = _click(), _impression()
    by_click = {"clickid": click.clickid}
    signed = _catalog(postback_token="tok")
    cases = [
        ({}, click, T0, _catalog(), RefusalKind.MISSING_ID),
        ({"clickid": "nope"}, click, T0, _catalog(), RefusalKind.BAD_PARAMETER),
        ({**by_click, "sum": "x"}, click, T0, _catalog(), RefusalKind.BAD_PARAMETER),
        ({**by_click, "status": "9"}, click, T0, _catalog(), RefusalKind.BAD_PARAMETER),
        ({"clickid": "0" * 24}, click, T0, _catalog(), RefusalKind.NOT_ISSUED),
        (by_click, None, T0, _catalog(), RefusalKind.UNKNOWN_ID),
        ({"aimp_id": impression.aimp_id}, impression, T0 + 10**9, _catalog(), RefusalKind.EXPIRED),
        (by_click, click, T0, _catalog(status="paused"), RefusalKind.OFFER_NOT_ACTIVE),
        (by_click, click, T0, Catalog(), RefusalKind.OFFER_NOT_ACTIVE),
        (
            by_click,
            click,
            T0,
            _catalog(postback_ip_whitelist=("10.0.0.0/8",)),
            RefusalKind.IP_NOT_ALLOWED,
        ),
        (by_click, click, T0, signed, RefusalKind.BAD_SECURE),
        ({**by_click, "secure": "ab"}, click, T0, signed, RefusalKind.BAD_SECURE),
        ({**by_click, "goal": "lead"}, click, T0, _catalog(), RefusalKind.GOAL_NOT_PAID),
    ]
    assert [_kind(*case[:4]) for case in cases] == [case[4] for case in cases]
