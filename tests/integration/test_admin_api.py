"""The admin API over real HTTP: key, CRUD, access rules, and refusals that write nothing."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.integration.admin import Admin, catalog_records
from tests.integration.conftest import RunningStack

pytestmark = pytest.mark.integration


@pytest.fixture
async def admin(running_stack: RunningStack) -> AsyncIterator[Admin]:
    async with aiohttp.ClientSession() as session:
        yield Admin(running_stack, session)


async def test_requests_without_a_valid_api_key_get_401(running_stack: RunningStack) -> None:
    """No key, a wrong key and a key with one character off all get 401, on every route."""
    key = running_stack.api_headers["API-Key"]
    async with aiohttp.ClientSession() as session:
        for headers in ({}, {"API-Key": "wrong"}, {"API-Key": key[:-1] + "x"}):
            for method, path in (("GET", "/offers"), ("POST", "/advertisers"), ("GET", "/nope")):
                url = f"{running_stack.edge_url}/api/v1{path}"
                async with session.request(method, url, headers=headers, json={}) as r:
                    assert r.status == 401
                    assert "API-Key" in (await r.json())["error"]


async def test_advertiser_affiliate_and_offer_lifecycle(admin: Admin) -> None:
    """Create, get, list, update and delete; delete keeps the entity with status deleted."""
    adv = await admin.ok("POST", "/advertisers", {"id": 501, "name": "Lifecycle Adv"})
    assert adv == {"id": 501, "name": "Lifecycle Adv", "status": "active"}
    aff = await admin.ok("POST", "/affiliates", {"name": "Auto id"})
    assert aff["id"] > 0 and aff["status"] == "active"
    offer = await admin.ok(
        "POST",
        "/offers",
        {
            "id": 501,
            "title": "Lifecycle",
            "advertiser_id": 501,
            "impressions_url": "https://adv.example/imp?a={aimp_id}&o={offer_id}",
            "additional_impressions_urls": [{"url": "https://b.example/i", "weight": 30}],
            "payments": [{"type": "CPM", "revenue": "2.00", "payout": "1.50"}],
            "postback_token": "s3cret",
            "postback_ip_whitelist": ["203.0.113.0/24"],
        },
    )
    assert offer["allow_impressions"] is False, "allow_impressions is off by default"
    assert offer["view_through_window"] == 86400 and offer["click_session"] == 30 * 86400
    assert offer.pop("warnings") == [], "a create answers the offer and its warnings"
    assert await admin.ok("GET", "/offers/501") == offer

    changed = await admin.ok("PATCH", "/offers/501", {"allow_impressions": True, "title": "New"})
    assert changed["title"] == "New" and changed["allow_impressions"] is True
    assert changed["warnings"] == [], "its token and whitelist guard its view-through postbacks"
    assert changed["impressions_url"] == offer["impressions_url"], "other fields stay"
    assert (await admin.ok("PATCH", "/affiliates/" + str(aff["id"]), {"status": "blocked"}))[
        "status"
    ] == "blocked"

    listed = await admin.ok("GET", "/offers")
    assert 501 in [o["id"] for o in listed["offers"]]
    deleted = await admin.ok("DELETE", "/offers/501")
    assert deleted["status"] == "deleted"
    assert (await admin.ok("GET", "/offers/501"))["status"] == "deleted"
    active = await admin.ok("GET", "/offers?status=active")
    assert 501 not in [o["id"] for o in active["offers"]]
    # A status no offer can have, or a parameter lists do not take: said, not an
    # empty list that reads as "none".
    assert await admin.call("GET", "/offers?status=pending") == (
        400,
        {
            "error": "status: must be one of active, paused, stopped, deleted, not 'pending'",
            "field": "status",
        },
    )
    assert await admin.call("GET", "/affiliates?state=active") == (
        400,
        {"error": "state: is not a parameter of this page; it takes status", "field": "state"},
    )
    assert (await admin.ok("DELETE", "/advertisers/501"))["status"] == "deleted"


async def test_access_rules(admin: Admin) -> None:
    """Approval offers, enabling, disabling and lifting rules, and advertiser blocks."""
    await admin.ok("POST", "/advertisers", {"id": 502, "name": "Rules Adv"})
    await admin.ok("POST", "/affiliates", {"id": 502, "name": "Rules Aff"})
    await admin.ok("POST", "/offers", {"id": 502, "title": "Private", "advertiser_id": 502})
    assert (await admin.ok("PATCH", "/offers/502", {"access": "approval"}))["access"] == "approval"

    await admin.ok("PUT", "/offers/502/affiliates/502", {"rule": "enabled"})
    rules = await admin.ok("GET", "/offers/502/affiliates")
    assert rules == {"offer_id": 502, "access": "approval", "enabled": [502], "disabled": []}
    await admin.ok("PUT", "/offers/502/affiliates/502", {"rule": "disabled"})
    rules = await admin.ok("GET", "/offers/502/affiliates")
    assert (rules["enabled"], rules["disabled"]) == ([], [502]), "disable replaces enable"
    await admin.ok("DELETE", "/offers/502/affiliates/502")
    rules = await admin.ok("GET", "/offers/502/affiliates")
    assert (rules["enabled"], rules["disabled"]) == ([], [])

    await admin.ok("PUT", "/affiliates/502/blocked-advertisers/502")
    blocked = await admin.ok("GET", "/affiliates/502/blocked-advertisers")
    assert blocked == {"pid": 502, "blocked_advertisers": [502]}
    await admin.ok("DELETE", "/affiliates/502/blocked-advertisers/502")
    assert (await admin.ok("GET", "/affiliates/502/blocked-advertisers"))[
        "blocked_advertisers"
    ] == []


GOOD_OFFER: dict[str, Any] = {"id": 503, "title": "Refused", "advertiser_id": 1}
REFUSALS = [
    # (method, path, body, status, field, words in the message)
    (
        "POST",
        "/offers",
        {**GOOD_OFFER, "impressions_url": "ftp://adv.example/i"},
        400,
        "impressions_url",
        "must be an http or https URL",
    ),
    (
        "POST",
        "/offers",
        {**GOOD_OFFER, "tracking_url": "javascript:alert(1)"},
        400,
        "tracking_url",
        "must be an http or https URL",
    ),
    (
        "POST",
        "/offers",
        {**GOOD_OFFER, "trafficback_url": "//no-scheme.example/x"},
        400,
        "trafficback_url",
        "must be an http or https URL",
    ),
    (
        "POST",
        "/offers",
        {**GOOD_OFFER, "impressions_url": "https://adv.example/i?c={clickid}"},
        400,
        "impressions_url",
        "{clickid} cannot be used in an impressions destination URL",
    ),
    (
        "POST",
        "/offers",
        {
            **GOOD_OFFER,
            "impressions_url": "https://adv.example/i",
            "additional_impressions_urls": [{"url": "https://b.example/?c={clickid}", "weight": 5}],
        },
        400,
        "additional_impressions_urls[0].url",
        "{clickid} cannot be used",
    ),
    (
        "POST",
        "/offers",
        {**GOOD_OFFER, "impressions_url": "https://adv.example/i?x={nope}"},
        400,
        "impressions_url",
        "unknown macro {nope}",
    ),
    (
        "POST",
        "/offers",
        {**GOOD_OFFER, "tracking_url": "https://adv.example/c?x={aimpid}"},
        400,
        "tracking_url",
        "unknown macro {aimpid}",
    ),
    *(
        (
            "POST",
            "/offers",
            {
                **GOOD_OFFER,
                "impressions_url": "https://adv.example/i",
                "additional_impressions_urls": [{"url": "https://b.example/", "weight": weight}],
            },
            400,
            "additional_impressions_urls[0].weight",
            "must be a whole number from 1 to 100",
        )
        for weight in (0, 12.5)
    ),
    (
        "POST",
        "/offers",
        {
            **GOOD_OFFER,
            "impressions_url": "https://adv.example/i",
            "additional_impressions_urls": [
                {"url": "https://b.example/", "weight": 60},
                {"url": "https://c.example/", "weight": 41},
            ],
        },
        400,
        "additional_impressions_urls",
        "weights add up to 101",
    ),
    (
        "POST",
        "/offers",
        {
            **GOOD_OFFER,
            "impressions_url": "https://adv.example/i",
            "additional_impressions_urls": [
                {"url": f"https://d{n}.example/", "weight": 1} for n in range(11)
            ],
        },
        400,
        "additional_impressions_urls",
        "at most 10",
    ),
    ("POST", "/offers", {**GOOD_OFFER, "colour": "red"}, 400, "colour", "is not a field"),
    (
        "POST",
        "/offers",
        {**GOOD_OFFER, "advertiser_id": 9999},
        400,
        "advertiser_id",
        "no advertiser",
    ),
    ("POST", "/offers", {"id": 503, "advertiser_id": 1}, 400, "title", "is required"),
    ("POST", "/offers", {**GOOD_OFFER, "id": 1}, 409, "id", "already exists"),
    ("PATCH", "/offers/1", {"status": "sleeping"}, 400, "status", "must be one of"),
    ("PATCH", "/offers/1", {"id": 2}, 400, "id", "cannot change"),
    ("PATCH", "/offers/9999", {"status": "paused"}, 404, "id", "there is no offer 9999"),
    ("DELETE", "/affiliates/9999", None, 404, "id", "there is no affiliate 9999"),
    ("PUT", "/offers/1/affiliates/9999", {"rule": "enabled"}, 404, "pid", "no affiliate 9999"),
    ("PUT", "/offers/1/affiliates/1", {"rule": "maybe"}, 400, "rule", "must be one of"),
    ("PUT", "/affiliates/1/blocked-advertisers/9999", None, 404, "advertiser_id", "no advertiser"),
    ("POST", "/advertisers", {"status": "active"}, 400, "name", "is required"),
    ("POST", "/advertisers", {"id": 0, "name": "Zero"}, 400, "id", "from 1 to 2147483647"),
    ("POST", "/advertisers", ["not", "an", "object"], 400, "advertiser", "JSON object"),
]


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "field", "words"),
    REFUSALS,
    ids=[f"{r[0]} {r[1]} {r[4]}" for r in REFUSALS],
)
async def test_refused_requests_name_the_field_and_write_nothing(
    running_stack: RunningStack,
    admin: Admin,
    method: str,
    path: str,
    body: Any,
    status: int,
    field: str,
    words: str,
) -> None:
    """Each refusal answers its 4xx, names the field, explains, and adds no record."""
    before = await catalog_records(running_stack.settings.broker)
    got, answer = await admin.call(method, path, body)
    assert (got, answer["field"]) == (status, field), answer
    assert words in answer["error"] and answer["error"].startswith(field)
    assert await catalog_records(running_stack.settings.broker) == before


async def test_malformed_json_is_refused(running_stack: RunningStack, admin: Admin) -> None:
    """A body that is not JSON gets 400 naming the body, and nothing is written."""
    before = await catalog_records(running_stack.settings.broker)
    status, answer = await admin.call("POST", "/offers", raw=b'{"id": 1,')
    assert (status, answer["field"]) == (400, "body")
    assert "not valid JSON" in answer["error"]
    assert await catalog_records(running_stack.settings.broker) == before


async def test_a_malformed_catalog_record_is_skipped_not_fatal(
    running_stack: RunningStack, admin: Admin
) -> None:
    """Garbage written to the catalog topic by someone else is counted and skipped;
    later changes still take effect."""
    from aiokafka import AIOKafkaProducer

    from app.events import kinds

    producer = AIOKafkaProducer(bootstrap_servers=running_stack.settings.broker)
    await producer.start()
    try:
        await producer.send_and_wait(kinds.CATALOG_TOPIC, b"not json", key=b"offer:998")
        await producer.send_and_wait(kinds.CATALOG_TOPIC, b'{"x": 1}', key=b"campaign:1")
        await producer.send_and_wait(kinds.CATALOG_TOPIC, b'{"id": 997}', key=b"offer:997")
    finally:
        await producer.stop()
    created = await admin.ok("POST", "/advertisers", {"id": 503, "name": "After garbage"})
    assert (await admin.ok("GET", "/advertisers/503")) == created
    async with admin.session.get(f"{running_stack.edge_url}/healthz") as r:
        assert (await r.json())["catalog"]["skipped_malformed"] >= 3
    for _ in range(10):  # the worker follows on its own; give it the promised second
        async with admin.session.get(f"{running_stack.settings.worker_url}/healthz") as r:
            worker = await r.json()
        if worker["catalog"]["skipped_malformed"] == 3:
            break
        await asyncio.sleep(0.1)
    assert r.status == 200 and worker["catalog"]["skipped_malformed"] == 3


VIEW_THROUGH_OFFER = {"title": "View-through", "advertiser_id": 1, "allow_impressions": True}


def open_offer_warning(offer_id: int) -> str:
    return (
        f"offer {offer_id} takes view-through conversions with neither a postback token nor "
        "an IP whitelist: anyone who learns an aimp_id can post a conversion for it; set "
        "postback_token (postbacks must then carry secure) or postback_ip_whitelist"
    )


async def test_an_offer_anyone_can_post_view_through_conversions_to_is_warned_of(
    admin: Admin,
) -> None:
    """Created or changed so (view-through on, neither token nor whitelist): the normal
    201 or 200 with the warning; a token or a whitelist answers no warning."""
    status, created = await admin.call("POST", "/offers", {"id": 520, **VIEW_THROUGH_OFFER})
    assert (status, created["warnings"]) == (201, [open_offer_warning(520)])
    assert (await admin.ok("GET", "/offers/520"))["allow_impressions"] is True, "it was saved"

    status, signed = await admin.call("PATCH", "/offers/520", {"postback_token": "t0ken"})
    assert (status, signed["warnings"]) == (200, [])
    unsigned = await admin.ok("PATCH", "/offers/520", {"postback_token": None})
    assert unsigned["warnings"] == [open_offer_warning(520)]
    listed = await admin.ok("PATCH", "/offers/520", {"postback_ip_whitelist": ["203.0.113.0/24"]})
    assert listed["warnings"] == []

    secure = {"id": 521, **VIEW_THROUGH_OFFER, "postback_token": "t0ken"}
    status, created = await admin.call("POST", "/offers", secure)
    assert (status, created["warnings"]) == (201, [])

    status, applied = await admin.call(
        "POST", "/catalog", {"offers": [{"id": 521, "postback_token": None}]}
    )
    assert status == 200 and open_offer_warning(521) in applied["warnings"]
    assert open_offer_warning(520) not in applied["warnings"]


@pytest.fixture
def strict_admin_url(running_stack: RunningStack, tmp_path: Path) -> Iterator[str]:
    """One more edge process on the shared broker, with POSTBACK_SECURITY_REQUIRED=1:
    the setting is read at start, so the shared edges cannot be switched."""
    with running_stack.extra_edge(tmp_path, POSTBACK_SECURITY_REQUIRED="1") as base:
        yield base


async def _until(admin: Admin, path: str, wanted: dict[str, Any]) -> None:
    """Wait until this edge process has followed the catalog to ``wanted`` (another
    process's change reaches it within a fetch)."""
    deadline = time.monotonic() + 10
    while True:
        status, found = await admin.call("GET", path)
        if status == 200 and all(found.get(k) == v for k, v in wanted.items()):
            return
        assert time.monotonic() < deadline, (status, found)
        await asyncio.sleep(0.1)


async def test_postback_security_required_refuses_such_an_offer_and_keeps_older_ones(
    running_stack: RunningStack, admin: Admin, strict_admin_url: str
) -> None:
    """With the setting, creating or changing an offer into taking view-through
    conversions from anyone is a 400 naming postback_token, and writes nothing; an
    offer saved before stays, may be paused, but not changed and left open."""
    strict = Admin(running_stack, admin.session)
    strict.base = f"{strict_admin_url}/api/v1"

    before = await catalog_records(running_stack.settings.broker)
    status, answer = await strict.call("POST", "/offers", {"id": 530, **VIEW_THROUGH_OFFER})
    assert (status, answer["field"]) == (400, "postback_token"), answer
    assert answer["error"] == (
        "postback_token: offer 530 takes view-through conversions, and this network "
        "requires a postback_token or a postback_ip_whitelist for them "
        "(POSTBACK_SECURITY_REQUIRED): without either, anyone who learns an aimp_id can "
        "post a conversion for it; set one, or turn allow_impressions off if the offer "
        "should take no view-through conversions"
    )
    assert await catalog_records(running_stack.settings.broker) == before
    assert (await strict.call("GET", "/offers/530"))[0] == 404

    guarded = {"id": 530, **VIEW_THROUGH_OFFER, "postback_ip_whitelist": ["198.51.100.7"]}
    status, created = await strict.call("POST", "/offers", guarded)
    assert (status, created["warnings"]) == (201, [])
    status, answer = await strict.call("PATCH", "/offers/530", {"postback_ip_whitelist": []})
    assert (status, answer["field"]) == (400, "postback_token")
    assert (await strict.ok("GET", "/offers/530"))["postback_ip_whitelist"] == ["198.51.100.7/32"]

    await admin.ok("POST", "/offers", {"id": 531, **VIEW_THROUGH_OFFER})  # no setting there
    await _until(strict, "/offers/531", {"status": "active"})
    status, answer = await strict.call("PATCH", "/offers/531", {"title": "Renamed"})
    assert (status, answer["field"]) == (400, "postback_token")
    paused = await strict.ok("PATCH", "/offers/531", {"status": "paused"})
    assert (paused["status"], paused["warnings"]) == ("paused", [])
