"""``make demo``: a whole run on a local stack (Apache Kafka, Redis, the processes),
from pixels, clicks and postbacks to the slices."""

from __future__ import annotations

import asyncio
import logging
import os
import random
import shutil
import sys
import time
from collections import Counter
from dataclasses import replace
from importlib import resources
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp

from app.catalog.changes import apply_change
from app.catalog.eligibility import rejection_reason
from app.catalog.files import parse_text, plan_document
from app.catalog.local import apply_file, offer_links_of
from app.catalog.model import Catalog
from app.catalog.offer_links import links_text
from app.edge.api_keys import HEADER
from app.exceptions import StackError
from app.installation_secrets import load_api_key
from app.ops import probes
from app.ops.stack import Stack
from app.settings import ForwardingSettings, Settings
from demo.advertiser import LocalAdvertiser, Received
from demo.postbacks import check_postbacks, send_postbacks
from reports import db
from reports.formatting import render
from reports.reading import read_slice
from reports.slices import SliceOptions, SliceResult

CONCURRENCY = 64
EXPORT_WAIT_SECONDS = 120
ADVERTISER_PORT = 18090  # where demo_catalog.yaml's destination URLs point
# The demo's advertiser is on this machine, which the forwarder refuses unless told;
# short backoffs keep the demo's retries quick. Set in the environment to override.
DEMO_ENVIRONMENT = {
    "FORWARD_ALLOWED_NETWORKS": "127.0.0.1/32",
    "FORWARD_BACKOFF_SECONDS": "0.2",
}


def demo_advertiser_answer(path: str, params: dict[str, list[str]], asked: int) -> int:
    """How the demo's advertisers answer (see the note in demo_catalog.yaml)."""
    if path == "/measure/i" and asked == 1:
        return 503
    if path == "/globex/summer" and params.get("a", [""])[0].endswith("f"):
        return 404
    return 200


def start_demo_advertiser() -> LocalAdvertiser:
    if probes.port_in_use("127.0.0.1", ADVERTISER_PORT):
        raise StackError(
            f"the demo's advertiser endpoint needs port {ADVERTISER_PORT}, which is in use"
        )
    return LocalAdvertiser(demo_advertiser_answer, port=ADVERTISER_PORT).start()


def _progress(done: int, total: int, started: float) -> None:
    width = 40
    filled = width * done // total
    rate = done / max(time.monotonic() - started, 1e-6)
    sys.stderr.write(
        f"\r  [{'#' * filled}{'.' * (width - filled)}] {done}/{total}  {rate:,.0f} req/s"
    )
    sys.stderr.flush()


# (offer_id, pid) pairs the demo sends to: offers that track, and one pair per rule
# (see demo_catalog.yaml); unknown ids are 99.
TRACKED_PAIRS = [(o, p) for o in (1, 2, 4) for p in (1, 2, 3, 4, 5)] + [(3, 1), (3, 2), (3, 3)]
RULE_PAIRS = [
    (5, 1),  # offer_not_active
    (7, 2),  # offer_deleted
    (99, 3),  # offer_unknown
    (8, 1),  # advertiser_not_active
    (1, 99),  # affiliate_unknown
    (2, 8),  # affiliate_deleted
    (4, 7),  # affiliate_not_active
    (3, 4),  # affiliate_not_approved
    (1, 6),  # affiliate_disabled_for_offer
    (4, 9),  # advertiser_disabled_for_affiliate
    (6, 5),  # impressions_not_allowed
]
REJECTED_SHARE = 0.25


def demo_catalog_path() -> Path:
    return Path(str(resources.files("demo").joinpath("demo_catalog.yaml")))


def expected_verdicts(pairs: list[tuple[int, int]], impression: bool = True) -> Counter[str]:
    """What the rules say of each pixel (or click) sent: "tracked" or a reason code."""
    catalog = Catalog()
    document = parse_text(demo_catalog_path().read_text("utf-8"), "demo_catalog.yaml")
    changes, errors = plan_document(catalog, document)
    if errors:
        raise errors[0]
    for change in changes:
        apply_change(catalog, change)
    return Counter(
        str(rejection_reason(catalog, o, p, impression=impression) or "tracked") for o, p in pairs
    )


Seen = tuple[int, int, str, str]  # (offer_id, pid, imp_id, aimp_id) of a tracked pixel


async def send_pixels(
    s: Settings, total: int, seen: list[Seen] | None = None
) -> list[tuple[int, int]]:
    """Fire ``total`` pixel requests over real HTTP; return the (offer_id, pid) of
    each one answered with the GIF."""
    answered: list[tuple[int, int]] = []
    done = 0
    started = time.monotonic()
    queue: asyncio.Queue[int] = asyncio.Queue()
    for n in range(total):
        queue.put_nowait(n)

    async def client(session: aiohttp.ClientSession) -> None:
        nonlocal done
        while not queue.empty():
            n = queue.get_nowait()
            pairs = RULE_PAIRS if random.random() < REJECTED_SHARE else TRACKED_PAIRS
            offer_id, pid = random.choice(pairs)
            params = {
                "offer_id": str(offer_id),
                "pid": str(pid),
                "imp_id": f"demo-{n}",
                "sub1": random.choice(["banner", "sidebar", "footer"]),
                "sub2": f"campaign {n % 7}",
            }
            async with session.get(f"{s.edge_url}/imp", params=params) as response:
                body = await response.read()
                if response.status == 200 and response.content_type == "image/gif" and body:
                    answered.append((offer_id, pid))
                    if seen is not None and "X-Imptrack-Rejected" not in response.headers:
                        seen.append(
                            (offer_id, pid, params["imp_id"], response.headers["X-Aimp-Id"])
                        )
            done += 1
            if done % 100 == 0 or done == total:
                _progress(done, total, started)

    # With the API key, as the network's own people test links: the pixel then shows
    # its aimp_id, which the demo's advertisers name in their postbacks below.
    headers = {"User-Agent": "imptrack-demo/1.0", HEADER: load_api_key(s)}
    async with aiohttp.ClientSession(headers=headers) as session:
        await asyncio.gather(*(client(session) for _ in range(CONCURRENCY)))
    sys.stderr.write("\n")
    return answered


CLICK_SHARE = 0.2  # clicks sent per pixel sent


async def send_clicks(
    s: Settings, total: int, seen: list[Seen], tracked: list[tuple[int, str]]
) -> list[tuple[int, int]]:
    """Fire ``total`` clicks: most follow a tracked pixel (carrying its ``imp_id``, or
    every third its ``aimp_id``), the rest go to the rule pairs; return the
    (offer_id, pid) of each one answered (302, or a 4xx verdict), and add the
    (offer_id, clickid) of each tracked one to ``tracked``."""
    answered: list[tuple[int, int]] = []
    queue: asyncio.Queue[int] = asyncio.Queue()
    for n in range(total):
        queue.put_nowait(n)

    async def client(session: aiohttp.ClientSession) -> None:
        while not queue.empty():
            n = queue.get_nowait()
            params = {"sub1": random.choice(["banner", "sidebar", "footer"])}
            if random.random() < REJECTED_SHARE or not seen:
                offer_id, pid = random.choice(RULE_PAIRS)
            else:
                offer_id, pid, imp_id, aimp_id = random.choice(seen)
                params["aimp_id" if n % 3 == 0 else "imp_id"] = aimp_id if n % 3 == 0 else imp_id
            params |= {"offer_id": str(offer_id), "pid": str(pid)}
            async with session.get(
                f"{s.edge_url}/click", params=params, allow_redirects=False
            ) as response:
                await response.read()
                if response.status == 302 or "X-Imptrack-Rejected" in response.headers:
                    answered.append((offer_id, pid))
                if "X-Clickid" in response.headers:
                    tracked.append((offer_id, response.headers["X-Clickid"]))

    async with aiohttp.ClientSession(headers={"User-Agent": "imptrack-demo/1.0"}) as session:
        await asyncio.gather(*(client(session) for _ in range(CONCURRENCY)))
    return answered


AFFILIATES_PATH = "/affiliates/"  # where demo_catalog.yaml's affiliate postback URLs point


def impression_requests(advertiser: LocalAdvertiser) -> list[Received]:
    """What the endpoint got as the advertisers' impressions destination."""
    return [r for r in advertiser.requests() if not r.path.startswith(AFFILIATES_PATH)]


def affiliate_requests(advertiser: LocalAdvertiser) -> list[Received]:
    """What the endpoint got as the affiliates' postback URLs."""
    return [r for r in advertiser.requests() if r.path.startswith(AFFILIATES_PATH)]


def wait_for_affiliate_postbacks(s: Settings, advertiser: LocalAdvertiser) -> None:
    """Until the affiliates' endpoint has been quiet for a while (their postbacks
    follow the conversions by a hop) and every request it got is in DuckDB."""
    deadline = time.monotonic() + EXPORT_WAIT_SECONDS
    seen, quiet_since = -1, time.monotonic()
    while time.monotonic() < deadline:
        received = len(affiliate_requests(advertiser))
        if received != seen:
            seen, quiet_since = received, time.monotonic()
        status = probes.http_json(f"{s.exporter_url}/healthz")
        exported = status["exported"].get("affiliate_postbacks", 0) if status else 0
        if received and exported >= received and time.monotonic() - quiet_since > 2:
            return
        time.sleep(0.2)


def wait_for_deliveries(s: Settings, advertiser: LocalAdvertiser, impressions: int) -> None:
    """Until every forwarded impression has its final answer and every attempt the
    advertiser saw is in DuckDB."""
    deadline = time.monotonic() + EXPORT_WAIT_SECONDS
    while time.monotonic() < deadline:
        received = impression_requests(advertiser)
        final = {r.aimp_id for r in received if r.status != 503}
        status = probes.http_json(f"{s.exporter_url}/healthz")
        exported = status["exported"].get("deliveries", 0) if status else 0
        if len(final) >= impressions and exported >= len(received):
            return
        time.sleep(0.2)


def wait_for_export(s: Settings, pixels: int, clicks: int, postbacks: int = 0) -> None:
    """Until every pixel is exported as an impression or rejection, every click as a
    click or click rejection, and every postback's outcome."""
    deadline = time.monotonic() + EXPORT_WAIT_SECONDS
    while time.monotonic() < deadline:
        status = probes.http_json(f"{s.exporter_url}/healthz")
        done = status["exported"] if status else {}
        if (
            done.get("impressions", 0) + done.get("rejections", 0) >= pixels
            and done.get("clicks", 0) + done.get("click_rejections", 0) >= clicks
            and done.get("server_postbacks", 0) >= postbacks
        ):
            return
        time.sleep(0.2)


def run_demo(settings: Settings, requests: int) -> int:
    # The demo's own settings allow what its processes allow: the catalog it applies
    # sends affiliate postbacks to 127.0.0.1, which is refused when saved otherwise.
    s = replace(
        settings, forwarding=ForwardingSettings.from_env({**DEMO_ENVIRONMENT, **os.environ})
    )
    logging.getLogger("imptrack.catalog").setLevel(logging.WARNING)
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    # The demo owns its home: a fresh DuckDB file holds exactly this run's impressions.
    shutil.rmtree(s.home, ignore_errors=True)
    stack = Stack(s, {**DEMO_ENVIRONMENT, **os.environ})
    advertiser = start_demo_advertiser()
    print(f"Advertiser endpoint (impressions destination URLs) on {advertiser.url('/')}")
    print(f"Starting the stack (local Apache Kafka and Redis) under {s.home} ...")
    try:
        stack.up(on_ready=lambda name, took: print(f"  {name:<9} ready in {took:.1f} s"))
        applied = apply_file(s, demo_catalog_path())
        if applied.errors:
            raise StackError(f"the demo catalog was refused: {applied.errors[0]}")
        print(
            f"\nApplied the demo catalog ({applied.written} changes): "
            "imptrack catalog export shows it"
        )
        for warning in applied.warnings:
            print(f"  warning: {warning}")
        links = offer_links_of(s, 1, 1)
        print("\nGenerated links (imptrack links 1 --affiliate 1):\n")
        print(links_text(links))
        print(f"\nSending {requests} impression pixels to {s.edge_url}/imp ...")
        seen: list[Seen] = []
        answered = asyncio.run(send_pixels(s, requests, seen))
        print(f"  {len(answered)} of {requests} answered with the GIF")
        # Clicks come after their impressions are recorded (and indexed), as a
        # person's click comes seconds after the ad was shown.
        wait_for_export(s, len(answered), 0)
        total_clicks = int(requests * CLICK_SHARE)
        print(f"Sending {total_clicks} clicks to {s.edge_url}/click ...")
        tracked_clicks: list[tuple[int, str]] = []
        clicked = asyncio.run(send_clicks(s, total_clicks, seen, tracked_clicks))
        print(f"  {len(clicked)} of {total_clicks} answered (302, or a 4xx with the reason)")
        print("Waiting for the exporter to write them to DuckDB ...")
        wait_for_export(s, len(answered), len(clicked))
        viewed = [(offer_id, aimp_id) for offer_id, _, _, aimp_id in seen]
        sent = asyncio.run(send_postbacks(s, tracked_clicks, viewed))
        print(
            f"Sent {len(sent.answers)} postbacks to {s.edge_url}/postback: "
            f"{sent.conversions} conversions, {sent.updates} status updates, "
            f"{sent.refused} refused (deliberate mistakes and a duplicate)"
        )
        wait_for_export(s, len(answered), len(clicked), len(sent.answers))
        tracked = expected_verdicts(answered)["tracked"]
        print(f"Waiting for {tracked} impressions to reach the advertiser endpoint ...")
        wait_for_deliveries(s, advertiser, tracked)
        daily = read_slice(s, "daily", None, None, "UTC")
        print("\nDaily slice (imptrack report daily):\n")
        print(render(daily, "table"))
        rejections = read_slice(s, "rejections", None, None, "UTC")
        print("\nRejections slice (imptrack report rejections):\n")
        print(render(rejections, "table"))
        deliveries = read_slice(s, "deliveries", None, None, "UTC")
        print("\nDeliveries slice (imptrack report deliveries):\n")
        print(render(deliveries, "table"))
        wait_for_affiliate_postbacks(s, advertiser)
        told = read_slice(s, "affiliate-postbacks", None, None, "UTC")
        conversions = read_slice(s, "conversions", None, None, "UTC")
        print(f"\nConversions slice (imptrack report conversions), {SHOWN} newest:\n")
        print(render(_head(conversions), "table"))
        postbacks = read_slice(s, "postbacks", None, None, "UTC")
        refused = read_slice(s, "postbacks", None, None, "UTC", SliceOptions(errors_only=True))
        print("\nServer postbacks slice, refused only (imptrack report postbacks --errors):\n")
        print(render(_without(refused, "params", "method"), "table"))
        print(
            f"\nAffiliate postbacks slice (imptrack report affiliate-postbacks), {SHOWN} newest"
            " (and the url column of the first):\n"
        )
        print(render(_head(_without(told, *WIDE_AFFILIATE_COLUMNS)), "table"))
        if told.rows:
            print(f"\n  {told.as_dicts()[0]['url']}")
        print(
            f"\nDuckDB snapshot for analysts ({s.duckdb_path}): "
            f"IMPTRACK_HOME={s.home} .venv/bin/imptrack sql 'select * from daily'"
        )
        print(f"  read it again: IMPTRACK_HOME={s.home} .venv/bin/imptrack report rejections")
    finally:
        print("\nStopping ...")
        stack.down()
        advertiser.stop()
    print_click_links(s)
    expected = expected_verdicts(answered)
    day_rows, reason_rows = daily.as_dicts(), rejections.as_dicts()
    reported = Counter({"tracked": sum(r["impressions"] for r in day_rows)})
    reported.update({r["reason"]: r["impressions"] for r in reason_rows if r["impressions"]})
    if reported != expected:
        print(f"MISMATCH: the rules say {dict(expected)}, the slices say {dict(reported)}")
        return 1
    expected_clicks = expected_verdicts(clicked, impression=False)
    reported_clicks = Counter({"tracked": sum(r["clicks"] for r in day_rows)})
    reported_clicks.update({r["reason"]: r["clicks"] for r in reason_rows if r["clicks"]})
    if reported_clicks != expected_clicks:
        print(
            f"MISMATCH in clicks: the rules say {dict(expected_clicks)}, "
            f"the slices say {dict(reported_clicks)}"
        )
        return 1
    mismatch = check_deliveries(deliveries, advertiser, expected["tracked"])
    if mismatch:
        print(f"MISMATCH in deliveries: {mismatch}")
        return 1
    mismatch = check_postbacks(sent, conversions.as_dicts(), postbacks.as_dicts())
    if mismatch:
        print(f"MISMATCH in postbacks: {mismatch}")
        return 1
    mismatch = check_affiliate_postbacks(told, advertiser)
    if mismatch:
        print(f"MISMATCH in affiliate postbacks: {mismatch}")
        return 1
    if sum(r["conversions"] for r in day_rows) != sent.conversions:
        print(f"MISMATCH: {sent.conversions} conversions accepted, the Daily slice disagrees")
        return 1
    print(
        f"OK: {len(answered)} GIFs answered = {expected['tracked']} impressions tracked + "
        f"{len(answered) - expected['tracked']} rejected, each for the reason the rules give;\n"
        f"    {len(clicked)} clicks = {expected_clicks['tracked']} tracked + "
        f"{len(clicked) - expected_clicks['tracked']} rejected, likewise;\n"
        f"    every tracked impression reached the advertiser once "
        f"({len(impression_requests(advertiser))} requests, retries included), "
        "as the Deliveries slice says;\n"
        f"    {len(sent.answers)} postbacks = {sent.conversions} conversions + {sent.updates} "
        f"status updates + {sent.refused} refused, each answer as the slices record it;\n"
        f"    {len(told.rows)} conversion statuses told to the affiliates' postback URLs, "
        "each received once, as the Affiliate postbacks slice says"
    )
    return 0


SHOWN = 12


def _head(result: SliceResult) -> SliceResult:
    return SliceResult(result.columns, result.rows[:SHOWN])


WIDE_AFFILIATE_COLUMNS = ("url", "conversion_id", "goal", "error", "last_attempt_at")


def _without(result: SliceResult, *wide: str) -> SliceResult:
    """The slice without its widest columns, to fit a terminal."""
    keep = [n for n, name in enumerate(result.columns) if name not in wide]
    return SliceResult(
        [result.columns[n] for n in keep], [tuple(row[n] for n in keep) for row in result.rows]
    )


def check_affiliate_postbacks(told: SliceResult, advertiser: LocalAdvertiser) -> str:
    """What the Affiliate postbacks slice says against what the affiliates' endpoint
    got; "" if they agree."""
    rows = told.as_dicts()
    received = Counter(f"{r.path}?{r.query}" for r in affiliate_requests(advertiser))
    if not rows:
        return "no conversion was told to an affiliate"
    undelivered = [r for r in rows if r["outcome"] != "delivered" or r["attempts"] != 1]
    if undelivered:
        return f"{len(undelivered)} not delivered at the first attempt, e.g. {undelivered[0]}"
    # The same URL may be told twice (two view-through conversions on a URL naming
    # only the clickid): compared as many times as each was listed and received.
    listed = Counter(_path_and_query(r["url"]) for r in rows)
    if listed != received:
        missing, extra = listed - received, received - listed
        return (
            f"the slice lists {len(rows)}, the endpoint got {sum(received.values())}; "
            f"listed, not received: {list(missing)[:2]}; received, not listed: {list(extra)[:2]}"
        )
    return ""


def _path_and_query(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def check_deliveries(deliveries: SliceResult, advertiser: LocalAdvertiser, tracked: int) -> str:
    """What the Deliveries slice says against what the advertiser endpoint saw; "" if
    they agree."""
    rows = deliveries.as_dicts()
    received = impression_requests(advertiser)
    delivered = Counter(r.aimp_id for r in received if 200 <= r.status < 300)
    seen = {
        "impressions": len({r.aimp_id for r in received}),
        "delivered": len(delivered),
        "failed": len({r.aimp_id for r in received if r.status == 404}),
        "attempts": len(received),
        "retrying": 0,
    }
    reported = {name: sum(row[name] for row in rows) for name in seen}
    if seen["impressions"] != tracked or max(delivered.values(), default=1) != 1:
        return f"{tracked} impressions tracked, the advertiser saw {seen}"
    if reported != seen:
        return f"the advertiser saw {seen}, the Deliveries slice says {reported}"
    return ""


def print_click_links(s: Settings) -> None:
    """How the demo's clicks were linked to impressions (read from the file, now that
    the exporter has let go of it)."""
    con = db.open_reader(s.exporter_db_path)
    try:
        links = dict(con.execute("SELECT link, count(*) FROM clicks GROUP BY link").fetchall())
    finally:
        con.close()
    print(
        f"Clicks linked to their impression: {links.get('imp_id', 0)} by imp_id, "
        f"{links.get('aimp_id', 0)} by aimp_id, {links.get('none', 0)} not found"
        " (most of the demo's clicks follow an impression it sent)"
    )
