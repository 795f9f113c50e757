"""The soak's verdicts, its printed report and its plot (bench.soak).

Memory of a process is judged over the soak's second half: the first is where its
caches fill (the soak's ceilings are small enough for that, bench.soak), and a
cache filling grows like a leak. It is bounded when it neither trends up over the
second half (the regression slope) nor ends higher than the second half began (the
median of the last window minus that of the window at the half).
The broker (memory storage) and Redis (keys with a 24 h expiry) keep what they are
given, so their growth is reported per record or key they keep, not judged.

A backlog is bounded when it does not trend up over the second half (slope against
the rate flowing into it) and drains to 0 once the load stops.

Beside the backlogs, not judged: how long the broker took to answer one fetch of
one impressions batch (bench.soak_probe.FetchTimer) over the first minute and the
last, and the worker's impressions backlog in seconds of its inflow over the same
minutes. Every consumer waits on the broker's answers; when they slow while the
consumers' CPU does not rise, the broker is what holds them back.
"""

from __future__ import annotations

import itertools
import statistics
from pathlib import Path
from typing import Any

from bench.soak_probe import FETCH_TIMEOUT_S

MEMORY_SLOPE_MAX = 1.0  # MB/min, over the soak's second half
MEMORY_GROWTH_MAX = 5.0  # MB, last window's median minus that of the one at the half
WARM_UP_MAX_SECONDS = 60.0  # also the length of the windows compared
LAG_SLOPE_SHARE = 0.01  # of the records flowing in per second
LAG_SLOPE_FLOOR = 1.0  # records/s, for the small streams (clicks, postbacks)
# Processes that keep what they are given: what they keep, and why.
STORES: dict[str, tuple[Any, str]] = {
    "broker": (lambda s: s["broker_records"], "memory-only broker: keeps every record"),
    "redis": (lambda s: s["redis"]["keys"], "keeps dedup and click-index keys for 24 h"),
}
# Data files reported beside a process's memory, as the likely reason it grows.
DATA_FILES = {
    "worker": ("worker_rocksdb_wal_mb", "RocksDB write-ahead logs (= unflushed memtables)"),
    "exporter": ("exporter_duckdb_mb", "DuckDB file"),
}
# Which of the mix's requests flow into each backlog.
INFLOW = {
    "worker impressions": "pixels",
    "worker clicks": "clicks",
    "worker postbacks": "postbacks",
    "worker postback-matches": "postbacks",
    "forwarder forward-tasks": "pixels",
    "forwarder due in Redis": "pixels",
    "exporter impressions-recorded": "pixels",
    "end to end (edge to DuckDB)": "pixels",
}


def _window(seconds: float) -> float:
    return min(WARM_UP_MAX_SECONDS, seconds / 6)


def _first_and_last(seconds: float) -> dict[str, tuple[float, float]]:
    """The window right after the warm-up and the soak's last one, as (start, end)
    seconds since the soak began: what the reported, not judged, figures compare."""
    window = _window(seconds)
    return {"first": (window, 2 * window), "last": (seconds - window, seconds)}


def _slope_per_s(points: list[tuple[float, float]]) -> float:
    if len(points) < 3:
        return 0.0
    xs, ys = zip(*points, strict=True)
    return float(statistics.linear_regression(xs, ys).slope)


def _soak_points(raw: dict[str, Any], value: Any) -> list[tuple[float, Any]]:
    """(seconds since the soak began, value(sample)) for the soak's samples."""
    start = raw["soak_started_t"]
    return [(s["t"] - start, value(s)) for s in raw["samples"] if s["phase"] == "soak"]


def _trend(points: list[tuple[float, float]], seconds: float) -> dict[str, float]:
    """A series' regression slope per minute over the soak's second half, and its
    growth: the median of the last window minus that of the window at the half."""
    window = _window(seconds)
    first = [v for t, v in points if seconds / 2 <= t < seconds / 2 + window]
    last = [v for t, v in points if t >= seconds - window]
    half = [(t, v) for t, v in points if t >= seconds / 2]
    return {
        "slope_per_min": round(60 * _slope_per_s(half), 3),
        "growth": round(statistics.median(last) - statistics.median(first), 2),
    }


def memory_figures(raw: dict[str, Any], name: str, seconds: float) -> dict[str, Any]:
    points = _soak_points(raw, lambda s: s["rss_mb"].get(name))
    if not points or any(mb is None for _, mb in points):
        return {"gone": True, "bounded": False}
    trend = _trend(points, seconds)
    figures: dict[str, Any] = {
        "start_mb": points[0][1],
        "end_mb": points[-1][1],
        "max_mb": max(mb for _, mb in points),
        "slope_mb_per_min": trend["slope_per_min"],
        "growth_mb": trend["growth"],
    }
    if name in STORES:
        # Grows with what it keeps: reported per record or key kept, not judged.
        kept = _trend(_soak_points(raw, STORES[name][0]), seconds)["growth"]
        per = round(trend["growth"] * 2**20 / kept) if kept > 0 else None
        figures |= {"kept_growth": kept, "bytes_per_kept": per, "why": STORES[name][1]}
        figures["bounded"] = None
        return figures
    if name in DATA_FILES:
        key, what = DATA_FILES[name]
        beside = _trend(_soak_points(raw, lambda s: s[key]), seconds)
        figures["beside"] = {
            "what": what,
            "slope_mb_per_min": beside["slope_per_min"],
            "growth_mb": beside["growth"],
        }
    figures["bounded"] = (
        trend["slope_per_min"] <= MEMORY_SLOPE_MAX and trend["growth"] <= MEMORY_GROWTH_MAX
    )
    return figures


def cpu_figures(raw: dict[str, Any], name: str, seconds: float) -> dict[str, Any] | None:
    """A process's CPU, % of one core, over the first window after the warm-up and over
    the last: where the time goes as the run goes on. Reported, not judged."""
    points = _soak_points(raw, lambda s: s.get("cpu_s", {}).get(name))
    if not points or any(s is None for _, s in points):
        return None

    def share(start: float, end: float) -> float | None:
        inside = [(t, s) for t, s in points if start <= t <= end]
        if len(inside) < 2 or inside[-1][0] <= inside[0][0]:
            return None
        (t0, s0), (t1, s1) = inside[0], inside[-1]
        return round(100 * float(s1 - s0) / (t1 - t0), 1)

    return {f"{which}_pct": share(*span) for which, span in _first_and_last(seconds).items()}


def _median_in(points: list[tuple[float, Any]], start: float, end: float) -> float | None:
    inside = [v for t, v in points if start <= t <= end and v is not None]
    return round(statistics.median(inside), 2) if inside else None


def broker_fetch_figures(
    raw: dict[str, Any], seconds: float, pixels_per_s: float
) -> dict[str, Any]:
    """Over the first window after the warm-up and over the last one: the median
    time the broker took to answer one fetch of one impressions batch (a fetch not
    answered within the timer's limit counted at the limit, so a median at the
    limit means "at least"), how many were timed and not answered, the most records
    one answer held; and the worker's median impressions backlog in seconds of the
    pixels flowing into it."""
    start = raw["soak_started_t"]
    timed = [(f["t"] - start, f) for f in raw.get("fetches", []) if f["phase"] == "soak"]
    behind = _soak_points(raw, lambda s: s["lag"]["worker impressions"] / pixels_per_s)
    figures: dict[str, Any] = {"timeout_ms": 1000 * FETCH_TIMEOUT_S}
    for name, (a, b) in _first_and_last(seconds).items():
        inside = [f for t, f in timed if a <= t <= b]
        ms = [1000 * FETCH_TIMEOUT_S if f["ms"] is None else f["ms"] for f in inside]
        figures[name] = {
            "fetch_ms": round(statistics.median(ms), 2) if ms else None,
            "timed": len(inside),
            "unanswered": sum(f["ms"] is None for f in inside),
            "most_records": max((f.get("records", 0) for f in inside), default=None),
            "worker_behind_s": _median_in(behind, a, b),
        }
    return figures


def lag_figures(
    raw: dict[str, Any], series: str, seconds: float, inflow_per_s: float
) -> dict[str, Any]:
    points = _soak_points(raw, lambda s: s["lag"][series])
    half = [(t, n) for t, n in points if t >= seconds / 2]
    limit = max(LAG_SLOPE_FLOOR, LAG_SLOPE_SHARE * inflow_per_s)
    slope = _slope_per_s(half)
    drained = [s["lag"][series] for s in raw["samples"] if s["phase"] == "drain"]
    end = drained[-1] if drained else points[-1][1]
    return {
        "mean": round(statistics.fmean(n for _, n in points)),
        "p95": sorted(n for _, n in points)[int(0.95 * (len(points) - 1))],
        "max": max(n for _, n in points),
        "slope_per_s": round(slope, 2),
        "slope_limit_per_s": round(limit, 2),
        "after_drain": end,
        "bounded": slope <= limit and end == 0,
    }


def judge(raw: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    seconds = config["soak_seconds"]
    rate = raw["rate"]
    chunks = raw["chunks"]
    memory = {name: memory_figures(raw, name, seconds) for name in raw["processes"]}
    cpu = {name: cpu_figures(raw, name, seconds) for name in raw["processes"]}
    lag = {
        series: lag_figures(raw, series, seconds, rate * config["mix"][INFLOW[series]])
        for series in INFLOW
    }
    broker_fetch = broker_fetch_figures(raw, seconds, rate * config["mix"]["pixels"])
    accepted, exported, sink = raw["accepted"], raw["exported"], raw["sink"]
    checks = {
        "every request answered": all(c["errors"] == 0 for c in chunks)
        and raw["capacity"]["edge_errors"] == 0,
        "no process exited": not any(m.get("gone") for m in memory.values()),
        "impressions exported once each": exported.get("impressions", 0) == accepted["impressions"]
        and exported.get("rejections", 0) == 0,
        "clicks exported once each": exported.get("clicks", 0) == accepted["clicks"],
        "conversions exported once each": exported.get("conversions", 0) == accepted["conversions"],
        "impressions delivered to the sink once each": sink["distinct"] == accepted["impressions"]
        and sink["repeated"] == 0,
    }
    verdicts = {
        "memory bounded": all(m["bounded"] is not False for m in memory.values()),
        "lag bounded": all(f["bounded"] for f in lag.values()) and raw["drain_s"] is not None,
        "correct": all(checks.values()),
    }
    return {
        "benchmark": "soak",
        "config": config,
        "thresholds": {
            "memory_slope_mb_per_min": MEMORY_SLOPE_MAX,
            "memory_growth_mb": MEMORY_GROWTH_MAX,
            "warm_up_and_window_s": _window(seconds),
            "lag_slope": f"<= max({LAG_SLOPE_FLOOR:g} record/s, "
            f"{LAG_SLOPE_SHARE:.0%} of its inflow)",
            "drain_s": "every backlog 0 within the drain limit",
        },
        "capacity": raw["capacity"],
        "rate": rate,
        "achieved_per_s": round(sum(c["ok"] for c in chunks) / seconds, 1),
        "chunks": [
            {k: c[k] for k in ("sent", "ok", "errors", "rps", "p50_ms", "p99_ms", "max_ms")}
            for c in chunks
        ],
        "memory": memory,
        "cpu": cpu,
        "lag": lag,
        "broker_fetch": broker_fetch,
        "drain_s": raw["drain_s"],
        "accepted": accepted,
        "exported": exported,
        "sink": sink,
        "checks": checks,
        "verdicts": verdicts,
        "ok": all(verdicts.values()),
        "processes": raw["processes"],
        "soak_started_t": raw["soak_started_t"],
        "samples": raw["samples"],
        "fetches": raw.get("fetches", []),
    }


def _mark(ok: bool | None) -> str:
    return {True: "pass", False: "FAIL", None: "-"}[ok]


def print_report(result: dict[str, Any]) -> None:
    c, cfg = result["capacity"], result["config"]
    print(
        f"\ncapacity: {c['capacity_per_s']:,.0f} impressions/s exported over {c['window_s']} s "
        f"(backlog {c['backlog_min_in_window']:,}-{c['backlog_max_in_window']:,}, "
        f"saturated: {c['saturated']})"
    )
    mix = ", ".join(f"{share:.0%} {kind}" for kind, share in cfg["mix"].items())
    print(
        f"soak: {result['rate']:,} requests/s asked ({mix}), {result['achieved_per_s']:,} "
        f"answered/s, {cfg['soak_seconds']:g} s, {cfg['edge_processes']} edge processes"
    )
    print(
        "edge p50 / p99 ms per chunk: "
        + ", ".join(f"{ch['p50_ms']:g}/{ch['p99_ms']:g}" for ch in result["chunks"])
    )
    t = result["thresholds"]
    window = t["warm_up_and_window_s"]
    print(
        f"\nmemory, RSS MB. Bounded: slope over the second half <= "
        f"{t['memory_slope_mb_per_min']:g} MB/min and growth <= {t['memory_growth_mb']:g} MB "
        f"(median of the last {window:g} s minus the median of the {window:g} s from the "
        f"half; the first half is for the caches to fill)"
    )
    print(f"{'process':14} {'start':>7} {'end':>7} {'max':>7} {'MB/min':>7} {'growth':>7}  verdict")
    for name, m in result["memory"].items():
        if m.get("gone"):
            print(f"{name:14} exited during the soak  FAIL")
            continue
        print(
            f"{name:14} {m['start_mb']:>7.1f} {m['end_mb']:>7.1f} {m['max_mb']:>7.1f} "
            f"{m['slope_mb_per_min']:>7.2f} {m['growth_mb']:>7.1f}  {_mark(m['bounded'])}"
        )
        if "why" in m:
            per = m["bytes_per_kept"]
            cost = f"{per:,} B of growth per one kept" if per is not None else "nothing kept"
            print(f"{'':16}{m['why']}: {m['kept_growth']:,.0f} more kept, {cost}; not judged")
        if "beside" in m:
            b = m["beside"]
            print(
                f"{'':16}beside it, {b['what']}: {b['slope_mb_per_min']:.2f} MB/min, "
                f"growth {b['growth_mb']:.1f} MB"
            )
    window_s = f"{window:g} s"
    print(
        f"\nCPU, % of one core, over the first {window_s} after the warm-up "
        f"and the last {window_s} (not judged)"
    )
    for name, c in result.get("cpu", {}).items():
        if c is not None and c["first_pct"] is not None and c["last_pct"] is not None:
            print(f"{name:14} {c['first_pct']:>7.1f} {c['last_pct']:>7.1f}")
    print(f"\nlag, records (bounded: slope {t['lag_slope']}, 0 after the drain)")
    print(
        f"{'backlog':30} {'mean':>7} {'p95':>7} {'max':>7} {'rec/s':>7} {'limit':>7} "
        f"{'drained':>7}  verdict"
    )
    for series, f in result["lag"].items():
        print(
            f"{series:30} {f['mean']:>7,} {f['p95']:>7,} {f['max']:>7,} {f['slope_per_s']:>7.2f} "
            f"{f['slope_limit_per_s']:>7.2f} {f['after_drain']:>7,}  {_mark(f['bounded'])}"
        )
    if "broker_fetch" in result:
        b = result["broker_fetch"]
        first, last = b["first"], b["last"]
        print(
            f"beside it (not judged), over the first and the last {window_s}: one fetch of one "
            f"impressions batch answered in {first['fetch_ms']} -> {last['fetch_ms']} ms "
            f"(median; unanswered within {b['timeout_ms']:g} ms, counted so: "
            f"{first['unanswered']} of {first['timed']} -> {last['unanswered']} of "
            f"{last['timed']}; at most {first['most_records']} -> {last['most_records']} "
            f"records an answer); the worker {first['worker_behind_s']} -> "
            f"{last['worker_behind_s']} s of pixels behind"
        )
    drain = result["drain_s"]
    print(
        f"drained to 0 in {drain} s after the load stopped" if drain is not None else "NOT drained"
    )
    print(
        f"\naccepted by the edge {result['accepted']}; exported {result['exported']}; "
        f"sink {result['sink']['distinct']:,} distinct, {result['sink']['repeated']} repeated"
    )
    for name, ok in result["checks"].items():
        print(f"  {name}: {_mark(ok)}")
    print("; ".join(f"{name}: {_mark(ok)}" for name, ok in result["verdicts"].items()))


def plot(result: dict[str, Any], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    samples = sorted(result["samples"], key=lambda s: s["t"])
    start = result["soak_started_t"]
    minutes = [(s["t"] - start) / 60 for s in samples]
    fig, (mem, stores, lag, fetch, flow) = plt.subplots(
        5, 1, figsize=(12, 15), sharex=True, height_ratios=(3, 2, 3, 2, 2)
    )
    for name in result["processes"]:
        ax = stores if name in STORES else mem
        ax.plot(minutes, [s["rss_mb"].get(name) for s in samples], label=name)
    for name, (key, what) in DATA_FILES.items():
        label = f"{name}: {what}, MB on disk"
        mem.plot(minutes, [s.get(key) for s in samples], linestyle="--", label=label)
    mem.set_ylabel("RSS (MB)")
    stores.set_ylabel("RSS (MB)")
    for series in result["lag"]:
        lag.plot(minutes, [s["lag"][series] for s in samples], label=series)
    lag.set_ylabel("backlog (records)")
    lag.set_yscale("symlog", linthresh=10)
    fetches = sorted(result.get("fetches", []), key=lambda f: f["t"])
    answered = [f for f in fetches if f["ms"] is not None]
    fetch.plot(
        [(f["t"] - start) / 60 for f in answered],
        [f["ms"] for f in answered],
        label="broker: one fetch of one impressions batch",
    )
    unanswered = [(f["t"] - start) / 60 for f in fetches if f["ms"] is None]
    fetch.plot(
        unanswered,
        [1000 * FETCH_TIMEOUT_S] * len(unanswered),
        "rx",
        label=f"no answer within {FETCH_TIMEOUT_S:g} s",
    )
    fetch.set_ylabel("ms")
    rates = [
        (b["exported"].get("impressions", 0) - a["exported"].get("impressions", 0))
        / max(1e-3, b["t"] - a["t"])
        for a, b in itertools.pairwise(samples)
    ]
    flow.plot(minutes[1:], rates, label="impressions exported/s")
    pixels = result["rate"] * result["config"]["mix"]["pixels"]
    flow.axhline(pixels, color="grey", linestyle="--", label=f"pixels offered/s ({pixels:,.0f})")
    flow.axhline(
        result["capacity"]["capacity_per_s"],
        color="black",
        linestyle=":",
        label=f"capacity ({result['capacity']['capacity_per_s']:,.0f}/s)",
    )
    flow.set_ylabel("impressions/s")
    flow.set_xlabel("minutes since the soak began")
    for phase, colour in (("capacity", "tab:orange"), ("soak", "tab:green"), ("drain", "tab:blue")):
        ts = [m for m, s in zip(minutes, samples, strict=True) if s["phase"] == phase]
        if ts:
            for ax in (mem, stores, lag, fetch, flow):
                ax.axvspan(min(ts), max(ts), color=colour, alpha=0.08, label=None)
    for ax in (mem, stores, lag, fetch, flow):
        ax.grid(True, alpha=0.3)
        ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8)
    v = result["verdicts"]
    capacity = result["capacity"]["capacity_per_s"]
    fig.suptitle(
        f"imptrack soak: {result['rate']:,} requests/s (half of {capacity:,.0f} impressions/s) "
        f"for {result['config']['soak_seconds']:g} s; memory bounded: "
        f"{_mark(v['memory bounded'])}, lag bounded: {_mark(v['lag bounded'])}, "
        f"counts: {_mark(v['correct'])}\n(shaded: capacity, soak, drain)"
    )
    fig.tight_layout()
    path.parent.mkdir(exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
