"""The dashboard in a real browser (issue 24): headless Chromium, driven through
chromium-driver, logs in with the API key on a stack of its own with known traffic,
and every number the page shows equals the stats API's answer to the same question,
and the known traffic. The screenshot is kept in the test artifacts
(``TEST_ARTIFACTS``, default ``var/test-artifacts``)."""

from __future__ import annotations

import json
import math
import os
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.integration.advertiser import AdvertiserSink
from tests.integration.conftest import RunningStack, started_stack
from tests.integration.pixels import send_clicks, send_pixels

pytestmark = pytest.mark.integration

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
ARTIFACTS = Path(os.environ.get("TEST_ARTIFACTS", Path(__file__).parents[2] / "var/test-artifacts"))
TZ = "Asia/Kolkata"  # +05:30: the slices read the rows, not the hourly rollups

NO_VALUE = "\u2013"  # an en dash, as the page shows a value that is not there
TRACKED, PAUSED, FAILING = 20, 5, 4
CLICKS = 3


def _catalog(home: Path, sink: AdvertiserSink) -> Path:
    catalog = home / "catalog.json"
    offer = {"advertiser_id": 1, "allow_impressions": True}
    catalog.write_text(
        json.dumps(
            {
                "advertisers": [{"id": 1, "name": "Dashboard advertiser"}],
                "affiliates": [{"id": 1, "name": "Dashboard affiliate"}],
                "offers": [
                    offer
                    | {
                        "id": 1,
                        "title": "Tracked",
                        "impressions_url": sink.url("/ok/dashboard?a={aimp_id}"),
                        "tracking_url": "https://adv.example/c?clickid={clickid}",
                        "payments": [
                            {"type": "CPM", "revenue": "2.00", "payout": "1.50"},
                            {"type": "CPA", "revenue": "5.00", "payout": "3.00"},
                        ],
                    },
                    offer
                    | {
                        "id": 2,
                        "title": "Paused",
                        "status": "paused",
                        "impressions_url": sink.url("/ok/dashboard?a={aimp_id}"),
                    },
                    offer
                    | {
                        "id": 3,
                        "title": "Gone",
                        "impressions_url": sink.url("/gone?a={aimp_id}"),
                    },
                ],
            }
        )
    )
    return catalog


@pytest.fixture(scope="module")
def dashboard_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    home = tmp_path_factory.mktemp("dashboard")
    # An advertiser of its own: other tests count every request the shared one got
    # on a path (test_forwarding's /gone).
    advertiser = AdvertiserSink().start()
    try:
        with started_stack(
            home,
            _catalog(home, advertiser),
            EXPORT_BATCH_SECONDS="0.2",
            FORWARD_ALLOWED_NETWORKS="127.0.0.1/32",
            FORWARD_BACKOFF_SECONDS="0.2",
            FORWARD_BACKOFF_MAX_SECONDS="1",
        ) as running:
            yield running
    finally:
        advertiser.stop()


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:
        pytest.fail(
            f"the dashboard's browser test needs {' and '.join(missing)}: `make test` "
            "installs Debian's chromium and chromium-driver (`make browser`, as root), "
            "or install them with apt-get install chromium chromium-driver"
        )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    profile = tmp_path_factory.mktemp("chromium-profile")
    # No network but localhost here: without the background-networking flags
    # Chromium keeps trying Google's hosts.
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1400,2600",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


async def _traffic(stack: RunningStack) -> None:
    sent = (
        [{"offer_id": "1", "pid": "1"}] * TRACKED
        + [{"offer_id": "2", "pid": "1"}] * PAUSED
        + [{"offer_id": "3", "pid": "1"}] * FAILING
    )
    run = await send_pixels(stack, sent)
    assert run.refused == 0 and len(run.accepted) == len(sent)
    async with aiohttp.ClientSession() as session:
        clickids = await send_clicks(session, stack, 1, 1, CLICKS)
        answers = []
        for params in (
            {"clickid": clickids[0], "action_id": "d-1", "status": "1"},
            {"clickid": clickids[1], "action_id": "d-2", "status": "1"},
            {"action_id": "d-3"},
        ):
            async with session.get(f"{stack.edge_url}/postback", params=params) as response:
                answers.append(response.status)
        assert answers == [200, 200, 400]


def _api(stack: RunningStack, name: str, **params: str) -> list[dict[str, Any]]:
    query = urllib.parse.urlencode(params)
    request = urllib.request.Request(
        f"{stack.settings.exporter_url}/api/v1/stats/{name}?{query}", headers=stack.api_headers
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        rows: list[dict[str, Any]] = json.loads(response.read())["rows"]
        return rows


def _until(what: str, check: Any, within: float = 90.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.3)


# -- What the page shows for an API value (dashboard.js's FORMATS) -------------------


def _cents(units: int) -> str:
    # Whole ten-thousandths to the cent, halves rounded up (JavaScript's Math.round).
    return f"{Decimal(math.floor(units / 100 + 0.5)) / 100:,.2f}"


def _units(value: Any) -> int:
    return round(float(value or 0) * 10000)


def _shown(value: Any, form: str) -> str:
    if form == "int":
        return f"{int(value or 0):,}"
    if form == "money":
        return _cents(_units(value))
    if value is None or value == "":
        return NO_VALUE
    if form == "pct":
        return f"{float(value):.2f} %"
    if form == "ms":
        return f"{float(value):.1f} ms"
    return str(value)


MONEY = {
    "currency": "text",
    "impressions": "int",
    "clicks": "int",
    "conversions": "int",
    "revenue": "money",
    "payout": "money",
    "profit": "money",
}
TABLES: dict[str, tuple[str, dict[str, str]]] = {
    "top-offers": ("offers", {"offer_id": "text", "advertiser_id": "text", **MONEY}),
    "top-affiliates": ("affiliates", {"pid": "text", **MONEY}),
    "rejections": (
        "rejections",
        {
            "reason": "text",
            "rejections": "int",
            "impressions": "int",
            "clicks": "int",
            "share_pct": "pct",
        },
    ),
    "deliveries": (
        "deliveries",
        {
            "offer_id": "text",
            "destination": "text",
            "impressions": "int",
            "delivered": "int",
            "retrying": "int",
            "failed": "int",
            "dead_letter": "int",
            "blocked": "int",
            "delivered_pct": "pct",
            "p95_ms": "ms",
        },
    ),
    "postback-errors": (
        "postback-errors",
        {
            "error_kind": "text",
            "refusals": "int",
            "share_pct": "pct",
            "offers": "int",
            "last_received": "text",
            "last_error": "text",
        },
    ),
}
EXTRA = {
    "top-offers": {"sort": "impressions:desc", "limit": "10"},
    "top-affiliates": {"sort": "impressions:desc", "limit": "10"},
    "deliveries": {"sort": "impressions:desc", "limit": "20"},
}

# One script, so the page cannot refresh between the figures it reads.
READ_PAGE = """
const tables = {};
for (const id of arguments[0]) {
  tables[id] = [...document.querySelectorAll(`#${id} tbody tr:not(.empty)`)].map((row) =>
    Object.fromEntries([...row.querySelectorAll("td")].map(
      (c) => [c.dataset.column, c.textContent])));
}
const tiles = {};
for (const tile of document.querySelectorAll(".tile")) {
  const spans = [...tile.querySelectorAll(".value span")];
  tiles[tile.dataset.metric] = spans.length
    ? Object.fromEntries(spans.map((s) => [s.dataset.currency, s.textContent]))
    : tile.querySelector(".value").textContent;
}
const hours = document.getElementById("hours").dataset;
const days = document.querySelector(".days-period").dataset;
return {tables, tiles, first: hours.firstHour, last: hours.lastHour, from: days.from,
  to: days.to, loads: Number(document.body.dataset.loads), state: document.body.dataset.state,
  problem: document.getElementById("problem").textContent};
"""


def _expected_tiles(rows: list[dict[str, Any]], first: str, last: str) -> dict[str, Any]:
    hours = [r for r in rows if first <= r["hour"] <= last]
    tiles: dict[str, Any] = {
        key: f"{sum(int(r[key]) for r in hours):,}"
        for key in ("impressions", "clicks", "conversions")
    }
    currencies = sorted({r["currency"] for r in hours})
    for key in ("revenue", "payout", "profit"):
        tiles[key] = {
            c: f"{_cents(sum(_units(r[key]) for r in hours if r['currency'] == c))} {c}"
            for c in currencies
        } or {"": "0.00"}
    return tiles


def _wait_for_load(driver: Any, after: int, within: float = 60.0) -> dict[str, Any]:
    deadline = time.monotonic() + within
    while True:
        page: dict[str, Any] = driver.execute_script(READ_PAGE, list(TABLES))
        if page["state"] == "ready" and page["loads"] > after:
            return page
        assert page["state"] != "error", page["problem"]
        assert time.monotonic() < deadline, f"the page did not load: {page}"
        time.sleep(0.2)


def _keep_screenshot(driver: Any) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    screenshot = ARTIFACTS / "dashboard.png"
    assert driver.get_screenshot_as_file(str(screenshot))
    print(f"\nthe dashboard's screenshot: {screenshot}")


def _submit(driver: Any, field: str | None, text: str, button: str) -> None:
    """Type ``text`` into ``field``, press ``button`` and wait for the next page (an
    element of the page before would be stale)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    if field is not None:
        driver.find_element(By.ID, field).send_keys(text)
    pressed = driver.find_element(By.ID, button)
    pressed.click()
    WebDriverWait(driver, 30).until(expected_conditions.staleness_of(pressed))


async def test_the_dashboard_shows_what_the_stats_api_answers(
    dashboard_stack: RunningStack, browser: Any
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    stack = dashboard_stack
    await _traffic(stack)
    # Everything exported, the failing offer's deliveries given up on (404: no retry).
    _until(
        "the traffic is exported",
        lambda: (
            (e := stack.exported()).get("impressions") == TRACKED + FAILING
            and e.get("rejections") == PAUSED
            and e.get("server_postbacks") == 3
            and e.get("conversions") == 2
        ),
    )
    today = time.strftime("%Y-%m-%d")
    _until(
        "every delivery has its outcome",
        lambda: (
            sorted(
                (r["offer_id"], r["delivered"], r["failed"])
                for r in _api(stack, "deliveries", tz="UTC", **{"from": today, "to": today})
            )
            == [(1, TRACKED, 0), (3, 0, FAILING)]
        ),
    )

    # The door: the page sends a stranger to the form, which refuses a wrong key.
    exporter = stack.settings.exporter_url
    browser.get(f"{exporter}/dashboard")
    assert browser.current_url == f"{exporter}/dashboard/login"
    _submit(browser, "api_key", "not the key", "log-in")
    assert "not this installation's API key" in browser.find_element(By.ID, "message").text
    key = stack.api_headers["API-Key"]
    _submit(browser, "api_key", key, "log-in")
    assert browser.current_url == f"{exporter}/dashboard"
    assert key not in browser.current_url and key not in browser.page_source
    _wait_for_load(browser, 0)

    # The time-zone picker: the page reads again in the zone chosen.
    Select(browser.find_element(By.ID, "tz")).select_by_value(TZ)
    before = browser.execute_script("return Number(document.body.dataset.loads)")
    page = _wait_for_load(browser, before)
    assert page["last"][:10] == page["to"], page
    hourly = _api(
        stack,
        "custom",
        group_by="hour",
        tz=TZ,
        **{"from": page["first"][:10]},
        to=page["last"][:10],
    )
    tiles = _expected_tiles(hourly, page["first"], page["last"])
    assert page["tiles"] == tiles
    # ... and those are the traffic sent.
    assert (tiles["impressions"], tiles["clicks"], tiles["conversions"]) == (
        f"{TRACKED + FAILING}",
        f"{CLICKS}",
        "2",
    )
    assert tiles["revenue"] == {"USD": "10.04 USD"}  # 20 impressions at 2.00 CPM, 2 sales at 5.00

    period = {"from": page["from"], "to": page["to"], "tz": TZ}
    for table, (name, columns) in TABLES.items():
        rows = _api(stack, name, **period, **EXTRA.get(table, {}))
        expected = [{c: _shown(r[c], form) for c, form in columns.items()} for r in rows]
        assert page["tables"][table] == expected, table
    shown = page["tables"]
    assert [(r["offer_id"], r["impressions"]) for r in shown["top-offers"]] == [
        ("1", f"{TRACKED}"),
        ("3", f"{FAILING}"),
    ]
    assert [(r["reason"], r["impressions"]) for r in shown["rejections"]] == [
        ("offer_not_active", f"{PAUSED}")
    ]
    assert [(r["error_kind"], r["refusals"]) for r in shown["postback-errors"]] == [
        ("missing_id", "1")
    ]

    # The pipeline: every process up and healthy, each group's lag.
    processes = browser.execute_script(
        "return [...document.querySelectorAll('#processes tbody tr')].map("
        "(r) => [...r.querySelectorAll('td')].map((c) => c.textContent))"
    )
    by_name = {row[0]: row for row in processes}
    for name in ("worker", "forwarder", "exporter"):
        assert by_name[name][1] == "up" and by_name[name][4] == "ok", processes
    assert any(n.startswith("edge") and row[4] == "ok" for n, row in by_name.items()), processes
    groups = browser.execute_script(
        "return [...document.querySelectorAll('#lag tbody td[data-column=group]')]"
        ".map((c) => c.textContent)"
    )
    assert {"imptrack", "exporter"} <= set(groups), groups

    # It refreshes itself.
    Select(browser.find_element(By.ID, "refresh")).select_by_value("10")
    page = _wait_for_load(browser, page["loads"], within=30)

    _keep_screenshot(browser)
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    # The wrong key's 401 is the one error the page is expected to have logged.
    assert all("/dashboard/login" in e["message"] for e in errors), errors

    # Logging out ends the session: the page and the API ask for the key again.
    _submit(browser, None, "", "log-out")
    assert browser.current_url == f"{exporter}/dashboard/login"
    browser.get(f"{exporter}/dashboard")
    assert browser.current_url == f"{exporter}/dashboard/login"
    status = browser.execute_script("return fetch('/api/v1/stats/daily').then((r) => r.status)")
    assert status == 401
