"""The agents' decisions as pure functions: an impression judged
(app.attribution.impressions) and a postback read and judged
(app.attribution.postback_judgement)."""

from __future__ import annotations

from app.attribution.impressions import Recorded, judge_impression
from app.attribution.params import PostbackRequest
from app.attribution.postback_judgement import judge_postback, read_postback
from app.catalog.model import Advertiser, Affiliate, Catalog, Offer, Payment
from app.events.records import Click, Impression, MatchedPostback, Postback, PostbackOutcome
from app.ids import IdGenerator
from tests.ids import TEST_SEAL

IDS = IdGenerator(TEST_SEAL)
OFFER = Offer(
    id=5,
    title="O",
    advertiser_id=9,
    allow_impressions=True,
    view_through_window=3600,
    payments=(Payment("CPM", "3.00", "2.00", "EUR"), Payment("CPA", "10", "7", "EUR")),
)
CATALOG = Catalog(
    advertisers={9: Advertiser(9, "Adv")}, offers={5: OFFER}, affiliates={3: Affiliate(3, "Aff")}
)


def test_an_eligible_impression_is_recorded_with_its_cpm_earning_and_no_forward() -> None:
    impression = Impression(aimp_id=IDS.new_id(), offer_id=5, pid=3)
    judged = judge_impression(CATALOG, impression)
    assert isinstance(judged, Recorded)
    assert judged.impression is impression
    assert (judged.earning.revenue, judged.earning.payout, judged.earning.currency) == (
        "0.003",
        "0.002",
        "EUR",
    )
    assert judged.forward is None  # the offer has no impressions destination URL
    assert judged.view_through_window == 3600


def test_an_impression_of_a_paused_offer_is_rejected_with_its_reason_and_advertiser() -> None:
    paused = Catalog(
        advertisers=CATALOG.advertisers,
        offers={
            5: Offer(id=5, title="O", advertiser_id=9, status="paused", allow_impressions=True)
        },
        affiliates=CATALOG.affiliates,
    )
    impression = Impression(aimp_id=IDS.new_id(), offer_id=5, pid=3, imp_id="i-1")
    judged = judge_impression(paused, impression)
    assert not isinstance(judged, Recorded)
    assert (judged.aimp_id, judged.reason, judged.imp_id, judged.advertiser_id) == (
        impression.aimp_id,
        "offer_not_active",
        "i-1",
        9,
    )


def test_a_postback_the_edge_could_not_read_is_refused_before_its_parameters() -> None:
    postback = Postback(
        postback_id=IDS.new_id(), method="POST", params={}, problem="body is not JSON"
    )
    refused = read_postback(postback, TEST_SEAL)
    assert isinstance(refused, PostbackOutcome)
    assert (refused.status, refused.error) == (2, "body is not JSON")


def test_a_postback_naming_an_id_not_issued_is_refused() -> None:
    postback = Postback(postback_id=IDS.new_id(), method="GET", params={"aimp_id": "0" * 24})
    refused = read_postback(postback, TEST_SEAL)
    assert isinstance(refused, PostbackOutcome)
    assert "was not issued by this network" in (refused.error or "")


def test_a_postback_is_matched_to_its_click_under_its_action_key_or_refused_when_not_found() -> (
    None
):
    click = Click(clickid=IDS.new_id(), offer_id=5, pid=3, advertiser_id=9, link="none")
    postback = Postback(
        postback_id=IDS.new_id(), method="GET", params={"clickid": click.clickid, "action_id": "a"}
    )
    request = read_postback(postback, TEST_SEAL)
    assert isinstance(request, PostbackRequest)
    key, matched = judge_postback(postback, request, click, CATALOG)  # type: ignore[misc]
    assert key == "5:a"
    assert isinstance(matched, MatchedPostback)
    assert (matched.conversion.pid, matched.conversion.payout, matched.conversion.currency) == (
        3,
        "7",
        "EUR",
    )
    unknown = judge_postback(postback, request, None, CATALOG)
    assert isinstance(unknown, PostbackOutcome)
    assert (unknown.status, unknown.offer_id) == (2, None)


def test_a_replay_is_its_originals_action_judged_by_its_originals_time() -> None:
    """Sent again without an action_id, two replays of one postback are one action
    (so one conversion); each is judged by the windows from the original's time."""
    sent_ms = 1_790_000_000_000
    ids = IdGenerator(TEST_SEAL)  # its own: IDs only go forward in time
    click = Click(
        clickid=ids.new_id(now_ms=sent_ms - 1000), offer_id=5, pid=3, advertiser_id=9, link="none"
    )
    original = ids.new_id(now_ms=sent_ms)
    replays = [
        Postback(
            postback_id=ids.new_id(now_ms=sent_ms + days * 86_400_000),
            method="GET",
            params={"clickid": click.clickid},
            replay_of=original,
        )
        for days in (10, 11)
    ]
    keys = []
    for replay in replays:
        request = read_postback(replay, TEST_SEAL)
        assert isinstance(request, PostbackRequest)
        key, matched = judge_postback(replay, request, click, CATALOG)  # type: ignore[misc]
        keys.append(key)
        # The conversion is dated when the advertiser sent it, not when it was replayed.
        assert (matched.conversion.created_ms, matched.conversion.postback_id) == (
            sent_ms,
            replay.postback_id,
        )
    assert keys == [f"5:postback:{original}"] * 2
    # A replay_of that is no ID does not count.
    odd = Postback(postback_id=original, method="GET", params={}, replay_of="nope")
    assert odd.original_id == original
