"""Prometheus metrics (issue 24): every process's ``/metrics`` after known traffic
counts exactly what was sent — requests by endpoint and status, the agents' events,
rejections by reason, postback outcomes by error kind, deliveries by outcome, rows
exported — and shows the gauges an operator reads (lag, tables, DuckDB, memory)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from demo.advertiser import LocalAdvertiser
from tests.integration.admin import Admin
from tests.integration.conftest import RunningStack
from tests.integration.pixels import send_clicks, send_pixels

pytestmark = pytest.mark.integration

ADVERTISER, PID = 96, 9601
COUNTED, PAUSED = 9610, 9611
PIXELS, REJECTED, CLICKS = 20, 5, 3

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def _scrape(session: aiohttp.ClientSession, url: str) -> Samples:
    async with session.get(f"{url}/metrics") as response:
        assert response.status == 200, await response.text()
        assert response.headers["Content-Type"].startswith("text/plain")
        text = await response.text()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def _grown(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return _value(after, name, **labels) - _value(before, name, **labels)


def _labelled(samples: Samples, name: str) -> list[dict[str, str]]:
    return [dict(labels) for (found, labels) in samples if found == name]


async def _until(what: str, check: Callable[[], bool], within: float = 60.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        await asyncio.sleep(0.2)


@pytest.fixture(scope="module")
async def session(
    running_stack: RunningStack, advertiser: LocalAdvertiser
) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(headers=running_stack.api_headers) as session:
        admin = Admin(running_stack, session)
        await admin.ok("POST", "/advertisers", {"id": ADVERTISER, "name": "Metrics"})
        await admin.ok("POST", "/affiliates", {"id": PID, "name": "Metrics affiliate"})
        for offer_id, status in ((COUNTED, "active"), (PAUSED, "paused")):
            await admin.ok(
                "POST",
                "/offers",
                {
                    "id": offer_id,
                    "title": f"Metrics {offer_id}",
                    "advertiser_id": ADVERTISER,
                    "status": status,
                    "allow_impressions": True,
                    "impressions_url": advertiser.url("/ok/metrics?a={aimp_id}"),
                    "tracking_url": "https://adv.example/c?clickid={clickid}",
                    "payments": [{"type": "CPA", "revenue": "5.00", "payout": "3.00"}],
                },
            )
        yield session


async def _traffic(session: aiohttp.ClientSession, stack: RunningStack) -> None:
    """PIXELS tracked and REJECTED not (a paused offer), CLICKS clicks, a postback for
    each of two of them, and one naming nothing."""
    run = await send_pixels(stack, [{"offer_id": str(COUNTED), "pid": str(PID)}] * PIXELS)
    paused = [{"offer_id": str(PAUSED), "pid": str(PID)}] * REJECTED
    run = await send_pixels(stack, paused, run=run)
    assert run.refused == 0 and len(run.accepted) == PIXELS + REJECTED
    clickids = await send_clicks(session, stack, COUNTED, PID, CLICKS)
    verdicts = []
    for params in (
        {"clickid": clickids[0], "action_id": "m-1"},
        {"clickid": clickids[1], "action_id": "m-2"},
        {"action_id": "m-3"},
    ):
        async with session.get(f"{stack.edge_url}/postback", params=params) as response:
            verdicts.append((response.status, (await response.json())["status"]))
    # A refusal is answered 400, with its reason.
    assert verdicts == [(200, 1), (200, 1), (400, 2)]


async def test_each_process_counts_the_traffic_it_handled(
    running_stack: RunningStack, session: aiohttp.ClientSession, advertiser: LocalAdvertiser
) -> None:
    stack = running_stack
    urls = {
        "edge": stack.edge_url,
        "worker": stack.settings.worker_url,
        "forwarder": stack.settings.forwarder_url,
        "exporter": stack.settings.exporter_url,
    }
    stack.settle()
    before = {name: await _scrape(session, url) for name, url in urls.items()}
    exported_before = stack.exported()
    delivered_before = len(advertiser.requests("/ok/metrics"))

    await _traffic(session, stack)

    def exported(kind: str) -> int:
        return stack.exported().get(kind, 0) - exported_before.get(kind, 0)

    await _until(
        "the traffic is exported",
        lambda: (
            (exported("impressions"), exported("rejections"), exported("server_postbacks"))
            == (PIXELS, REJECTED, 3)
        ),
    )
    await _until(
        "every impression is delivered",
        lambda: len(advertiser.requests("/ok/metrics")) - delivered_before == PIXELS,
    )
    stack.settle()
    after = {name: await _scrape(session, url) for name, url in urls.items()}

    # The edge: both of its processes' requests, merged (EDGE_PROCESSES=2).
    edge_before, edge = before["edge"], after["edge"]
    requests = "imptrack_http_requests_total"
    assert _grown(edge_before, edge, requests, endpoint="/imp", status="200") == PIXELS + REJECTED
    assert _grown(edge_before, edge, requests, endpoint="/click", status="302") == CLICKS
    assert _grown(edge_before, edge, requests, endpoint="/postback", status="200") == 2
    assert _grown(edge_before, edge, requests, endpoint="/postback", status="400") == 1
    latency = "imptrack_http_request_duration_seconds_count"
    assert _grown(edge_before, edge, latency, endpoint="/imp") == PIXELS + REJECTED
    assert _grown(edge_before, edge, latency, endpoint="/postback") == 3
    edge_memory = _labelled(edge, "imptrack_process_resident_memory_bytes")
    assert len({labels["pid"] for labels in edge_memory}) == 2, edge_memory

    # The worker: what its agents took and decided.
    worker_before, worker = before["worker"], after["worker"]
    events = "imptrack_agent_events_total"
    assert _grown(worker_before, worker, events, agent="impressions", direction="in") == (
        PIXELS + REJECTED
    )
    assert _grown(worker_before, worker, events, agent="clicks", direction="in") == CLICKS
    assert _grown(worker_before, worker, events, agent="postbacks", direction="in") == 3
    rejections = "imptrack_rejections_total"
    assert (
        _grown(worker_before, worker, rejections, event="impression", reason="offer_not_active")
        == REJECTED
    )
    outcomes = "imptrack_postback_outcomes_total"
    assert _grown(worker_before, worker, outcomes, outcome="created", error_kind="none") == 2
    assert _grown(worker_before, worker, outcomes, outcome="refused", error_kind="missing_id") == 1
    assert _value(worker, "imptrack_table_keys", table="impressions") > 0
    assert _value(worker, "imptrack_table_disk_bytes", table="impressions") > 0
    lag = _labelled(worker, "imptrack_consumer_lag_records")
    assert {"group": "imptrack", "topic": "impressions", "partition": "0"} in lag, lag
    assert _value(worker, "imptrack_process_resident_memory_bytes", process="worker") > 0

    # The forwarder: every impression delivered once, each attempt timed.
    forwarder_before, forwarder = before["forwarder"], after["forwarder"]
    deliveries = "imptrack_deliveries_total"
    assert (
        _grown(forwarder_before, forwarder, deliveries, kind="impression", outcome="delivered")
        == PIXELS
    )
    attempts = "imptrack_delivery_attempt_duration_seconds_count"
    assert _grown(forwarder_before, forwarder, attempts, kind="impression") == PIXELS
    assert ("imptrack_open_circuit_breakers", frozenset()) in forwarder
    assert _labelled(forwarder, "imptrack_consumer_lag_records")

    # The exporter: the rows it stored, and where it stands.
    exporter_before, exporter = before["exporter"], after["exporter"]
    rows = "imptrack_exported_rows_total"
    assert _grown(exporter_before, exporter, rows, table="impressions") == PIXELS
    assert _grown(exporter_before, exporter, rows, table="rejections") == REJECTED
    assert _grown(exporter_before, exporter, rows, table="server_postbacks") == 3
    assert _grown(exporter_before, exporter, rows, table="conversions") == 2
    assert _value(exporter, "imptrack_duckdb_file_bytes", file="database") > 0
    assert _value(exporter, "imptrack_exporter_lag_seconds") >= 0
    assert _grown(exporter_before, exporter, requests, endpoint="/metrics", status="200") == 1
    assert _labelled(exporter, "imptrack_consumer_lag_records")


async def test_metric_names_follow_prometheus_conventions(
    running_stack: RunningStack, session: aiohttp.ClientSession
) -> None:
    """imptrack's own metrics: the imptrack_ prefix, counters named ..._total,
    latencies as histograms in seconds, sizes in bytes, and no label that holds an
    ID or a URL (labels are bounded sets)."""
    stack = running_stack
    for url in (
        stack.edge_url,
        stack.settings.worker_url,
        stack.settings.forwarder_url,
        stack.settings.exporter_url,
    ):
        async with session.get(f"{url}/metrics") as response:
            text = await response.text()
        ours = [f for f in text_string_to_metric_families(text) if f.name.startswith("imptrack_")]
        assert len(ours) >= 3, url
        for family in ours:
            if family.type == "counter":
                assert all(s.name.endswith(("_total", "_created")) for s in family.samples)
            if family.type == "histogram":
                assert family.name.endswith("_seconds"), family.name
            if "memory" in family.name or "disk" in family.name or "file" in family.name:
                assert family.name.endswith("_bytes"), family.name
            for sample in family.samples:
                labels = set(sample.labels)
                if family.name.startswith("imptrack_process_"):
                    # The edge's processes, apart (prometheus-client's multiprocess
                    # mode): a process ID, not an affiliate's.
                    labels -= {"pid"}
                assert not labels & {"offer_id", "pid", "aimp_id", "clickid", "url", "path"}, (
                    family.name,
                    labels,
                )


def test_imptrack_status_shows_processes_lag_rates_and_breakers(
    running_stack: RunningStack,
) -> None:
    """One screen from the same pages: the imptrack processes up and healthy, each
    group's lag, rates over the time since the last reading; --json the same."""
    stack = running_stack
    done = stack.imptrack("status", "--json")
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)
    states = {p["name"]: p for p in shown["processes"]}
    for name in ("worker", "forwarder", "exporter", "edge"):
        assert states[name]["up"] and states[name]["health"] == "ok", states[name]
        assert states[name]["rss_bytes"] > 10 * 2**20
    assert {"imptrack", "exporter"} <= set(shown["lag"])
    assert shown["rates_over_seconds"] > 0
    assert set(shown["rates_per_second"]) >= {"pixels", "clicks", "postbacks", "deliveries"}
    assert shown["open_breakers"] is not None

    watched = stack.imptrack("status", "--watch", "0.2", "--times", "2")
    assert watched.returncode == 0, watched.stderr
    assert watched.stdout.count("imptrack status of") == 2
    assert "consumer lag (records behind)" in watched.stdout
    assert "open circuit breakers:" in watched.stdout
