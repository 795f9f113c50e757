"""When a conversion is posted back to its affiliate, where, and with what
(app.attribution.affiliate_postbacks): the rules of docs/REPORTING.md, "Affiliate
postbacks", one by one."""

from __future__ import annotations

from dataclasses import replace
from urllib.parse import parse_qs, urlsplit

from app.attribution.affiliate_postbacks import affiliate_postback_tasks, postback_urls_for
from app.attribution.conversions import ActionState, decide
from app.catalog.model import Affiliate, AffiliatePostback, Catalog, Offer
from app.events.records import AffiliatePostbackTask, Conversion, MatchedPostback, Postback
from app.forwarding.schedule import task_id
from app.ids import IdGenerator, id_ms
from tests.ids import TEST_SEAL

_ids = IdGenerator(TEST_SEAL)
T0 = 1_790_000_000_000
OFFER, PID, OTHER_PID = 5, 3, 4
EVERY_MACRO = (
    "https://aff.example/pb?click={clickid}&aimp={aimp_id}&imp={impression_id}"
    "&s1={sub1}&s2={sub2}&s8={sub8}&status={status}&payout={payout}&cur={currency}"
    "&goal={goal}&action={action_id}&offer={offer_id}&pid={pid}"
)
GLOBAL = "https://aff.example/global?c={clickid}&st={status}"


def _catalog(
    affiliate_urls: tuple[AffiliatePostback, ...] = (AffiliatePostback(EVERY_MACRO),),
    overrides: tuple[AffiliatePostback, ...] = (),
) -> Catalog:
    catalog = Catalog()
    catalog.offers[OFFER] = Offer(OFFER, "O", 9, affiliate_postbacks=overrides)
    catalog.affiliates[PID] = Affiliate(PID, "Aff", postback_urls=affiliate_urls)
    catalog.affiliates[OTHER_PID] = Affiliate(OTHER_PID, "Other", postback_urls=affiliate_urls)
    return catalog


def _matched(status: int, at_ms: int, pid: int = PID) -> MatchedPostback:
    postback_id = _ids.new_id(now_ms=at_ms)
    # The generator never steps back: an earlier test's later times move at_ms on.
    at_ms = id_ms(postback_id)
    postback = Postback(postback_id=postback_id, method="GET", params={"status": str(status)})
    conversion = Conversion(
        conversion_id=postback_id,
        revision=1,
        postback_id=postback_id,
        offer_id=OFFER,
        pid=pid,
        advertiser_id=9,
        attribution="click",
        goal="sale",
        status=status,
        revenue="12.00",
        payout="9.00",
        currency="EUR",
        event_ms=T0 - 1000,
        created_ms=at_ms,
        updated_ms=at_ms,
        aimp_id="0123456789abcdef01234567",
        clickid="89abcdef0123456789abcdef",
        action_id="order 17&x=1",
        imp_id="aff-imp-42",
        sub1="banner",
        sub2="a&b=c",
    )
    return MatchedPostback(postback=postback, conversion=conversion)


def _query(task: AffiliatePostbackTask) -> dict[str, list[str]]:
    return parse_qs(urlsplit(task.url).query, keep_blank_values=True)


def _sent(conversion: Conversion | None, catalog: Catalog) -> list[tuple[str, int, str]]:
    """(destination, status, payout) of each postback the revision sends."""
    if conversion is None:
        return []
    return [
        (t.destination, t.conversion_status, t.payout)
        for t in affiliate_postback_tasks(conversion, catalog)
    ]


def test_a_new_conversion_fills_every_macro_url_encoded() -> None:
    """Each of Affise's macros gets the conversion's value, percent-encoded, so an
    action_id or sub with & and = arrives as one value; an unset sub is empty."""
    conversion = _matched(1, T0).conversion
    (task,) = affiliate_postback_tasks(conversion, _catalog())
    assert _query(task) == {
        "click": ["89abcdef0123456789abcdef"],
        "aimp": ["0123456789abcdef01234567"],
        "imp": ["aff-imp-42"],
        "s1": ["banner"],
        "s2": ["a&b=c"],
        "s8": [""],
        "status": ["1"],
        "payout": ["9.00"],
        "cur": ["EUR"],
        "goal": ["sale"],
        "action": ["order 17&x=1"],
        "offer": ["5"],
        "pid": ["3"],
    }
    assert "s2=a%26b%3Dc" in task.url and "action=order%2017%26x%3D1" in task.url
    assert (task.conversion_id, task.revision, task.postback_id) == (
        conversion.conversion_id,
        1,
        conversion.postback_id,
    )
    assert (task.offer_id, task.pid, task.advertiser_id, task.action_id) == (
        5,
        3,
        9,
        "order 17&x=1",
    )


def test_pending_then_approved_then_declined_notify_each_status() -> None:
    """Created pending: notified pending; each status change notifies the new status
    with the payout, 0 once declined; a duplicate of the same status notifies nothing."""
    catalog = _catalog((AffiliatePostback(GLOBAL),))
    state, _, created = decide(None, _matched(2, T0))
    assert _sent(created, catalog) == [(GLOBAL, 2, "9.00")]
    state, _, approved = decide(state, _matched(1, T0 + 1000))
    assert _sent(approved, catalog) == [(GLOBAL, 1, "9.00")]
    state, _, duplicate = decide(state, _matched(1, T0 + 2000))
    assert duplicate is None and _sent(duplicate, catalog) == []
    state, _, declined = decide(state, _matched(3, T0 + 3000))
    assert _sent(declined, catalog) == [(GLOBAL, 3, "0")]
    assert declined is not None and declined.revision == 3
    (task,) = affiliate_postback_tasks(declined, catalog)
    assert _query(task)["st"] == ["3"]


def test_a_conversion_created_declined_or_on_hold_is_notified_with_that_status() -> None:
    catalog = _catalog((AffiliatePostback(GLOBAL),))
    assert _sent(decide(None, _matched(3, T0))[2], catalog) == [(GLOBAL, 3, "0")]
    assert _sent(decide(None, _matched(5, T0))[2], catalog) == [(GLOBAL, 5, "9.00")]


def test_a_url_with_statuses_is_notified_of_those_only() -> None:
    approved_only = AffiliatePostback("https://aff.example/sale?c={clickid}", ("approved",))
    declines = AffiliatePostback("https://aff.example/no?c={clickid}", ("declined", "hold"))
    catalog = _catalog((approved_only, declines, AffiliatePostback(GLOBAL)))
    state, _, pending = decide(None, _matched(2, T0))
    assert _sent(pending, catalog) == [(GLOBAL, 2, "9.00")]
    state, _, approved = decide(state, _matched(1, T0 + 1000))
    assert _sent(approved, catalog) == [(approved_only.url, 1, "9.00"), (GLOBAL, 1, "9.00")]
    _, _, declined = decide(state, _matched(3, T0 + 2000))
    assert _sent(declined, catalog) == [(declines.url, 3, "0"), (GLOBAL, 3, "0")]


def test_an_offer_override_replaces_the_affiliates_own_urls() -> None:
    """For the affiliates it names, else for all; the affiliate's own URLs only when
    the offer overrides nothing for it."""
    personal = AffiliatePostback("https://aff.example/personal?c={clickid}", affiliates=(PID,))
    for_all = AffiliatePostback("https://net.example/all?c={clickid}")
    own = (AffiliatePostback(GLOBAL),)
    both = _catalog(own, (personal, for_all))
    assert postback_urls_for(both, OFFER, PID) == (personal,)
    assert postback_urls_for(both, OFFER, OTHER_PID) == (for_all,)
    only_personal = _catalog(own, (personal,))
    assert postback_urls_for(only_personal, OFFER, PID) == (personal,)
    assert postback_urls_for(only_personal, OFFER, OTHER_PID) == own
    conversion = _matched(1, T0, pid=OTHER_PID).conversion
    assert _sent(conversion, only_personal) == [(GLOBAL, 1, "9.00")]


def test_nothing_is_sent_without_a_postback_url() -> None:
    conversion = _matched(1, T0).conversion
    assert affiliate_postback_tasks(conversion, _catalog(())) == []
    unknown = replace(_catalog(), affiliates={})
    assert affiliate_postback_tasks(conversion, unknown) == []
    assert affiliate_postback_tasks(conversion, Catalog()) == []


def test_a_replay_sends_the_same_deliveries_each_revision_its_own() -> None:
    """A postback read again after a crash gives its own revision's tasks, with the
    same delivery ids (so the schedule drops them as replays), even after a later
    status change; each revision's delivery is a different one."""
    catalog = _catalog((AffiliatePostback(GLOBAL),))
    first, second = _matched(2, T0), _matched(1, T0 + 1000)
    state, _, created = decide(None, first)
    state, _, approved = decide(state, second)
    stored = ActionState.loads(state.dumps())
    _, _, replayed_first = decide(stored, first)
    _, _, replayed_second = decide(stored, second)
    assert replayed_first == created and replayed_second == approved
    assert created is not None and approved is not None and replayed_first is not None
    ids = [task_id(t) for c in (created, approved) for t in affiliate_postback_tasks(c, catalog)]
    assert len(set(ids)) == 2
    assert [task_id(t) for t in affiliate_postback_tasks(replayed_first, catalog)] == ids[:1]
    assert affiliate_postback_tasks(replayed_first, catalog) == affiliate_postback_tasks(
        created, catalog
    )
