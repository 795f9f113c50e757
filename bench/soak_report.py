"""The soak's verdicts, its printed report and its plot (bench.soak).

Memory and backlogs are judged over one window, ``judged_window``: the soak's last
ten minutes, or its second half when it is shorter than twenty. Before it the
caches fill (the soak's ceilings are small enough for that, bench.soak), and a cache
filling grows like a leak.

A process's memory (the Kafka node(s)' JVM and Redis as well as imptrack's own) has
levelled off when it neither trends up over the window (the regression slope) nor
ends higher than the window began by more than that slope allows over it (the
median of the window's last minute minus that of its first).

A backlog is bounded when it does not trend up over the window (slope against the
rate flowing into it) and drains to 0 once the load stops.

Redis keeps each impression's keys for a day (bench/README.md), so it cannot level
off within a soak; it is judged all the same, and its ``used_memory`` is reported per
impression beside it: its growth over the window per impression tracked in it, and
its size at the window's end per impression it holds keys for; with its keys by
kind as the soak began and ended.
"""

from __future__ import annotations

import itertools
import statistics
from pathlib import Path
from typing import Any

from bench.retention import print_retention, retention_figures

JUDGED_SECONDS = 600.0  # the soak's last ten minutes
MEMORY_SLOPE_MAX = 1.0  # MB/min, over the judged window
WARM_UP_MAX_SECONDS = 60.0  # also the length of the windows compared
LAG_SLOPE_SHARE = 0.01  # of the records flowing in per second
LAG_SLOPE_FLOOR = 1.0  # records/s, for the small streams (clicks, postbacks)
# Data files reported beside a process's memory, as the likely reason it grows: by
# role (``worker`` for ``worker-2`` too), the file's figure in a sample's
# ``disk_mb`` for that process, and what it is.
DATA_FILES = {
    "worker": ("rocksdb_wal_mb", "RocksDB write-ahead logs (= unflushed memtables)"),
    "exporter": ("duckdb_mb", "DuckDB file"),
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


def judged_window(seconds: float) -> tuple[float, float]:
    """The part of a soak of ``seconds`` that memory and backlogs are judged over, as
    (start, end) seconds since the soak began: its last JUDGED_SECONDS, or its second
    half when it is shorter than twice that."""
    if seconds >= 2 * JUDGED_SECONDS:
        return seconds - JUDGED_SECONDS, seconds
    return seconds / 2, seconds


def memory_growth_max(seconds: float) -> float:
    """MB a process's memory may end above where the judged window began: what
    MEMORY_SLOPE_MAX allows over the window."""
    start, end = judged_window(seconds)
    return round(MEMORY_SLOPE_MAX * (end - start) / 60, 2)


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


def _judged(points: list[tuple[float, Any]], seconds: float) -> list[tuple[float, Any]]:
    start, _ = judged_window(seconds)
    return [(t, v) for t, v in points if t >= start]


def _trend(points: list[tuple[float, float]], seconds: float) -> dict[str, float]:
    """A series' regression slope per minute over the judged window, and its growth:
    the median of the window's last minute minus that of its first."""
    start, end = judged_window(seconds)
    window = _window(seconds)
    first = [v for t, v in points if start <= t < start + window]
    last = [v for t, v in points if t >= end - window]
    return {
        "slope_per_min": round(60 * _slope_per_s(_judged(points, seconds)), 3),
        "growth": round(statistics.median(last) - statistics.median(first), 2),
    }


def _data_file(raw: dict[str, Any], name: str) -> tuple[str, str] | None:
    """The data file reported beside process ``name``'s memory, if it has one."""
    found = DATA_FILES.get(name.split("-")[0])
    samples = raw["samples"]
    return found if found and samples and name in samples[-1].get("disk_mb", {}) else None


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
    if (data_file := _data_file(raw, name)) is not None:
        key, what = data_file
        beside = _trend(_soak_points(raw, lambda s: s["disk_mb"][name][key]), seconds)
        figures["beside"] = {
            "what": what,
            "slope_mb_per_min": beside["slope_per_min"],
            "growth_mb": beside["growth"],
        }
    figures["bounded"] = trend["slope_per_min"] <= MEMORY_SLOPE_MAX and trend[
        "growth"
    ] <= memory_growth_max(seconds)
    return figures


def redis_figures(raw: dict[str, Any], seconds: float, window: float | None) -> dict[str, Any]:
    """Redis's ``used_memory`` against the impressions it keeps keys for, over the
    judged window (from its first sample to its last): its growth per impression
    tracked (exported) and per key added meanwhile; at the window's end, what it holds
    beyond an empty Redis per impression whose keys still live: those exported in
    the last ``window`` seconds (the soak's view-through and dedup windows; all since
    the start without one). That is the B of the bound
    used_memory = empty + impressions/s x window x B. And its keys by kind, as the
    soak began and ended."""
    judged = _judged(_soak_points(raw, lambda s: s), seconds)
    first, last = judged[0][1], judged[-1][1]

    def used(sample: dict[str, Any]) -> int:
        return int(sample["redis"]["used_memory_bytes"])

    def tracked(sample: dict[str, Any]) -> int:
        return int(sample["exported"].get("impressions", 0))

    grown = used(last) - used(first)
    impressions = tracked(last) - tracked(first)
    keys = last["redis"]["keys"] - first["redis"]["keys"]
    samples = raw["samples"]
    alive_since = last["t"] - window if window else samples[0]["t"]
    expired = [x for x in samples if x["t"] <= alive_since]
    held = tracked(last) - (tracked(expired[-1]) if expired else 0)
    empty = used(samples[0])  # before the soak's traffic: Redis with no impression
    return {
        "used_memory_mb": {
            "start": round(used(first) / 2**20, 2),
            "end": round(used(last) / 2**20, 2),
        },
        "impressions_tracked": impressions,
        "bytes_per_impression_tracked": round(grown / impressions) if impressions > 0 else None,
        "keys_added": keys,
        "bytes_per_key_added": round(grown / keys) if keys > 0 else None,
        "impressions_held": held,
        "held_for_seconds": window,
        "empty_used_memory_mb": round(empty / 2**20, 2),
        "bytes_per_impression_held": round((used(last) - empty) / held) if held > 0 else None,
        "keys_by_kind": raw["redis_keys"],
    }


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


def lag_figures(
    raw: dict[str, Any], series: str, seconds: float, inflow_per_s: float
) -> dict[str, Any]:
    points = _soak_points(raw, lambda s: s["lag"][series])
    limit = max(LAG_SLOPE_FLOOR, LAG_SLOPE_SHARE * inflow_per_s)
    slope = _slope_per_s(_judged(points, seconds))
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


END_TO_END_TARGET_MS = 2_000
"""Issue 23's target: pixel to DuckDB, p99 within 2 s at half capacity (the soak's rate)."""


def end_to_end_figures(raw: dict[str, Any], seconds: float) -> dict[str, Any] | None:
    """Edge to DuckDB over the judged window, from the exporter's per-minute figures
    (reports/freshness.py) sampled every few seconds: the worst minute's p99 is the
    figure judged against the target, reported and not part of the soak's verdicts."""
    minutes = [m for _, m in _judged(_soak_points(raw, lambda s: s.get("end_to_end_ms")), seconds)]
    minutes = [m for m in minutes if m and m["count"]]
    if not minutes:
        return None
    worst = max(m["p99_ms"] for m in minutes)
    copies = [
        c for _, c in _judged(_soak_points(raw, lambda s: s.get("snapshot_copy_s")), seconds) if c
    ]
    return {
        # The snapshot's copy holds the export loop up: a suspect for the worst delays.
        "snapshot_copy_s_max": max(copies, default=None),
        "snapshot_copy_s_median": statistics.median(copies) if copies else None,
        "p50_ms_median": statistics.median(m["p50_ms"] for m in minutes),
        "p99_ms_median": statistics.median(m["p99_ms"] for m in minutes),
        "p99_ms_worst_minute": worst,
        "max_ms": max(m["max_ms"] for m in minutes),
        "target_p99_ms": END_TO_END_TARGET_MS,
        "met": worst <= END_TO_END_TARGET_MS,
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
    accepted, exported, sink = raw["accepted"], raw["exported"], raw["sink"]
    redis = redis_figures(raw, seconds, config.get("redis_window_seconds"))
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
        "memory levelled off": all(m["bounded"] for m in memory.values()),
        "lag bounded": all(f["bounded"] for f in lag.values()) and raw["drain_s"] is not None,
        "correct": all(checks.values()),
    }
    return {
        "benchmark": "soak",
        "config": config,
        "thresholds": {
            "judged_window_s": judged_window(seconds),
            "memory_slope_mb_per_min": MEMORY_SLOPE_MAX,
            "memory_growth_mb": memory_growth_max(seconds),
            "compared_window_s": _window(seconds),
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
        "end_to_end": end_to_end_figures(raw, seconds),
        "redis": redis,
        "retention": retention_figures(
            raw["samples"][-1], exported.get("impressions", 0), redis["bytes_per_impression_held"]
        ),
        "drain_s": raw["drain_s"],
        "accepted": accepted,
        "exported": exported,
        "sink": sink,
        "checks": checks,
        "verdicts": verdicts,
        "ok": all(verdicts.values()),
        "processes": raw["processes"],
        "services": raw["services"],
        "soak_started_t": raw["soak_started_t"],
        "samples": raw["samples"],
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
        f"answered/s, {cfg['soak_seconds']:g} s, {cfg['edge_processes']} edge processes; "
        f"broker: {cfg['broker']}"
    )
    print(
        "edge p50 / p99 ms per chunk: "
        + ", ".join(f"{ch['p50_ms']:g}/{ch['p99_ms']:g}" for ch in result["chunks"])
    )
    t = result["thresholds"]
    start, end = t["judged_window_s"]
    window = t["compared_window_s"]
    print(
        f"\nmemory, RSS MB, judged from {start:g} s to {end:g} s of the soak. Levelled off: "
        f"slope <= {t['memory_slope_mb_per_min']:g} MB/min and growth <= "
        f"{t['memory_growth_mb']:g} MB (median of the last {window:g} s minus the median of "
        f"the first {window:g} s judged; before the window the caches fill)"
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
        if "beside" in m:
            b = m["beside"]
            print(
                f"{'':16}beside it, {b['what']}: {b['slope_mb_per_min']:.2f} MB/min, "
                f"growth {b['growth_mb']:.1f} MB"
            )
    print_redis(result["redis"])
    if "retention" in result:
        print_retention(result["retention"])
    window_s = f"{window:g} s"
    print(
        f"\nCPU, % of one core, over the first {window_s} after the warm-up "
        f"and the last {window_s} (not judged)"
    )
    for name, c in result.get("cpu", {}).items():
        if c is not None and c["first_pct"] is not None and c["last_pct"] is not None:
            print(f"{name:14} {c['first_pct']:>7.1f} {c['last_pct']:>7.1f}")
    print(
        f"\nlag, records (bounded: slope from {start:g} s to {end:g} s {t['lag_slope']}, "
        "0 after the drain)"
    )
    print(
        f"{'backlog':30} {'mean':>7} {'p95':>7} {'max':>7} {'rec/s':>7} {'limit':>7} "
        f"{'drained':>7}  verdict"
    )
    for series, f in result["lag"].items():
        print(
            f"{series:30} {f['mean']:>7,} {f['p95']:>7,} {f['max']:>7,} {f['slope_per_s']:>7.2f} "
            f"{f['slope_limit_per_s']:>7.2f} {f['after_drain']:>7,}  {_mark(f['bounded'])}"
        )
    e2e = result.get("end_to_end")
    if e2e is not None:
        print(
            f"end to end, edge to DuckDB, per impression (a minute's p50 / p99, median over "
            f"the window): {e2e['p50_ms_median']:,} / {e2e['p99_ms_median']:,} ms; worst "
            f"minute's p99 {e2e['p99_ms_worst_minute']:,} ms, max {e2e['max_ms']:,} ms "
            f"(target p99 <= {e2e['target_p99_ms']:,} ms: {'met' if e2e['met'] else 'NOT met'})"
        )
        if e2e.get("snapshot_copy_s_max") is not None:
            print(
                f"  the exporter's snapshot copies (beside its loop, which goes on): median "
                f"{e2e['snapshot_copy_s_median']:.3f} s, longest {e2e['snapshot_copy_s_max']:.3f} s"
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


def _bytes(n: int | None) -> str:
    return "-" if n is None else f"{n:,} B"


def print_redis(r: dict[str, Any]) -> None:
    used = r["used_memory_mb"]
    window = r.get("held_for_seconds")
    held_for = f"the last {window:g} s" if window else "the whole run"
    print(
        f"\nredis used_memory over the judged window: {used['start']:,.1f} -> "
        f"{used['end']:,.1f} MB, {r['impressions_tracked']:,} impressions tracked: "
        f"{_bytes(r['bytes_per_impression_tracked'])} per impression "
        f"({_bytes(r['bytes_per_key_added'])} per key, {r['keys_added']:,} keys added); "
        f"at its end {_bytes(r['bytes_per_impression_held'])} per impression held "
        f"beyond an empty Redis's {r.get('empty_used_memory_mb', 0):,.1f} MB "
        f"({r['impressions_held']:,} impressions of {held_for}, whose keys still live); "
        "reported, not judged"
    )
    before, after = r["keys_by_kind"]["soak_start"], r["keys_by_kind"]["end"]
    sampled = " (a sample, scaled)" if before["sampled"] or after["sampled"] else ""
    print(f"redis keys by kind{sampled}, as the soak began -> once it was over:")
    for kind in {**after["by_kind"], **before["by_kind"]}:
        b, a = before["by_kind"].get(kind, {}), after["by_kind"].get(kind, {})
        kind_type = a.get("type") or b.get("type")
        print(f"  {kind:32} {kind_type:7} {b.get('keys', 0):>10,} -> {a.get('keys', 0):>10,}")
    print(f"  {'all':32} {'':7} {before['keys']:>10,} -> {after['keys']:>10,}")


def plot(result: dict[str, Any], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    samples = sorted(result["samples"], key=lambda s: s["t"])
    start = result["soak_started_t"]
    minutes = [(s["t"] - start) / 60 for s in samples]
    fig, (mem, services, lag, flow) = plt.subplots(
        4, 1, figsize=(12, 13), sharex=True, height_ratios=(3, 3, 3, 2)
    )
    for name in result["processes"]:
        ax = services if name in result["services"] else mem
        ax.plot(minutes, [s["rss_mb"].get(name) for s in samples], label=name)
    for name in result["processes"]:
        if (data_file := _data_file(result, name)) is not None:
            key, what = data_file
            mem.plot(
                minutes,
                [s.get("disk_mb", {}).get(name, {}).get(key) for s in samples],
                linestyle="--",
                label=f"{name}: {what}, MB on disk",
            )
    services.plot(
        minutes,
        [s["redis"]["used_memory_bytes"] / 2**20 for s in samples],
        linestyle="--",
        label="redis used_memory",
    )
    mem.set_ylabel("RSS (MB)")
    services.set_ylabel("RSS, used_memory (MB)")
    for series in result["lag"]:
        lag.plot(minutes, [s["lag"][series] for s in samples], label=series)
    lag.set_ylabel("backlog (records)")
    lag.set_yscale("symlog", linthresh=10)
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
    judged_from = result["thresholds"]["judged_window_s"][0] / 60
    for phase, colour in (("capacity", "tab:orange"), ("soak", "tab:green"), ("drain", "tab:blue")):
        ts = [m for m, s in zip(minutes, samples, strict=True) if s["phase"] == phase]
        if ts:
            for ax in (mem, services, lag, flow):
                ax.axvspan(min(ts), max(ts), color=colour, alpha=0.08, label=None)
    for ax in (mem, services, lag, flow):
        ax.axvline(judged_from, color="black", linewidth=0.8, label="judged from here")
        ax.grid(True, alpha=0.3)
        ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8)
    v = result["verdicts"]
    capacity = result["capacity"]["capacity_per_s"]
    fig.suptitle(
        f"imptrack soak: {result['rate']:,} requests/s (half of {capacity:,.0f} impressions/s) "
        f"for {result['config']['soak_seconds']:g} s; memory levelled off: "
        f"{_mark(v['memory levelled off'])}, lag bounded: {_mark(v['lag bounded'])}, "
        f"counts: {_mark(v['correct'])}\n(shaded: capacity, soak, drain)"
    )
    fig.tight_layout()
    path.parent.mkdir(exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
