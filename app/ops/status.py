"""``imptrack status``: one screen on a running installation.

Each process (up or not, pid, resident memory, healthy or why not, from its
``/healthz``), each consumer group's lag with its trend over the last minute, the
last minute's rates and the open circuit breakers (from the processes' ``/metrics``).
A rate or a trend needs an earlier reading: each run keeps its readings for a few
minutes in ``var/run/status-readings.jsonl``; a first run reads twice, a few seconds
apart, and says over how long its rates are.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from app.ops.stack import Component, Stack

RATE_WINDOW_SECONDS = 60.0
KEPT_SECONDS = 600.0
FIRST_READING_GAP_SECONDS = 3.0
"""With no earlier reading, a run reads twice this far apart to give rates at all."""
HTTP_TIMEOUT = 2.0
IMPTRACK_ROLES = ("worker", "forwarder", "exporter", "edge")


def _counter(name: str, **labels: str) -> Callable[[dict[str, float]], float]:
    def total(counters: dict[str, float]) -> float:
        return sum(value for key, value in counters.items() if _matches(key, name, labels))

    return total


def _matches(key: str, name: str, labels: dict[str, str]) -> bool:
    found, _, rest = key.partition("{")
    return found == name and all(f'{k}="{v}"' in rest for k, v in labels.items())


RATES: dict[str, Callable[[dict[str, float]], float]] = {
    "pixels": _counter("imptrack_http_requests_total", endpoint="/imp"),
    "clicks": _counter("imptrack_http_requests_total", endpoint="/click"),
    "postbacks": _counter("imptrack_http_requests_total", endpoint="/postback"),
    "impressions judged": _counter(
        "imptrack_agent_events_total", agent="impressions", direction="in"
    ),
    "deliveries": _counter("imptrack_deliveries_total"),
    "rows exported": _counter("imptrack_exported_rows_total"),
}
"""Each rate shown, by name, as a sum over one reading's counters."""


@dataclass
class ProcessState:
    name: str
    up: bool
    pid: int | None
    rss_bytes: int | None
    health: str
    """"ok", why not, or "-" for a part without a health page (Kafka, Redis)."""


@dataclass
class Reading:
    at: float
    processes: list[ProcessState] = field(default_factory=list)
    counters: dict[str, float] = field(default_factory=dict)
    """Every imptrack counter sample, ``name{labels}`` → value, summed over processes."""
    lag: dict[str, float] = field(default_factory=dict)
    """Records behind, per consumer group."""
    open_breakers: float | None = None


def _get(url: str) -> tuple[int, bytes] | None:
    try:
        with urllib.request.urlopen(url, timeout=HTTP_TIMEOUT) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except (urllib.error.URLError, OSError, TimeoutError):
        return None


def _health(base: str) -> str:
    got = _get(f"{base}/healthz")
    if got is None:
        return "not answering"
    status, body = got
    try:
        said = json.loads(body).get("status")
    except (ValueError, AttributeError):
        said = None
    if status == 200:
        return "ok" if said in (None, "ok") else str(said)
    return str(said or f"HTTP {status}")


def _rss(pid: int) -> int | None:
    """The resident memory of ``pid`` and its children (an edge's processes)."""
    total = 0
    pids = [pid]
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        pids += [int(child) for child in children]
    except (OSError, ValueError):
        pass
    for one in pids:
        try:
            for line in Path(f"/proc/{one}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except (OSError, ValueError):
            continue
    return total or None


def _base_url(stack: Stack, part: Component) -> str | None:
    role = part.name.split("-")[0]
    if role not in IMPTRACK_ROLES or part.port is None:
        return None
    if role == "edge":
        return stack.settings.edge_url
    return f"http://127.0.0.1:{part.port}"


def read(stack: Stack) -> Reading:
    """One reading of every part of ``stack``."""
    reading = Reading(at=time.time())
    running = stack.running()
    for part in stack.components():
        pid = running.get(part.name)
        base = _base_url(stack, part)
        health = "-" if base is None else ("stopped" if pid is None else _health(base))
        rss = None if pid is None else _rss(pid)
        reading.processes.append(ProcessState(part.name, pid is not None, pid, rss, health))
        if base is not None and pid is not None:
            _add_metrics(reading, base)
    return reading


def _add_metrics(reading: Reading, base: str) -> None:
    got = _get(f"{base}/metrics")
    if got is None or got[0] != 200:
        return
    for family in text_string_to_metric_families(got[1].decode()):
        for sample in family.samples:
            if not sample.name.startswith("imptrack_"):
                continue
            if family.type == "counter" and sample.name.endswith("_total"):
                labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
                key = f"{sample.name}{{{labels}}}"
                reading.counters[key] = reading.counters.get(key, 0.0) + sample.value
            elif sample.name == "imptrack_consumer_lag_records":
                group = sample.labels.get("group", "?")
                reading.lag[group] = reading.lag.get(group, 0.0) + sample.value
            elif sample.name == "imptrack_open_circuit_breakers":
                reading.open_breakers = (reading.open_breakers or 0.0) + sample.value


class Readings:
    """The readings of the last KEPT_SECONDS, kept in a file between runs."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> list[Reading]:
        kept = []
        try:
            lines = self.path.read_text().splitlines()
        except OSError:
            return []
        for line in lines:
            try:
                raw = json.loads(line)
                kept.append(
                    Reading(
                        at=float(raw["at"]),
                        counters=dict(raw["counters"]),
                        lag=dict(raw["lag"]),
                        open_breakers=raw.get("open_breakers"),
                    )
                )
            except (ValueError, KeyError, TypeError):
                continue  # a line cut by a crash: the others still count
        return kept

    def add(self, reading: Reading) -> list[Reading]:
        """Keep ``reading``; return the readings now kept, oldest first."""
        horizon = reading.at - KEPT_SECONDS
        kept = [r for r in self.load() if horizon <= r.at < reading.at] + [reading]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text(
            "".join(
                json.dumps(
                    {
                        "at": r.at,
                        "counters": r.counters,
                        "lag": r.lag,
                        "open_breakers": r.open_breakers,
                    }
                )
                + "\n"
                for r in kept
            )
        )
        os.replace(temporary, self.path)
        return kept


def earlier(readings: list[Reading], now: Reading) -> Reading | None:
    """The reading closest to RATE_WINDOW_SECONDS before ``now`` (None: none before)."""
    before = [r for r in readings if r.at < now.at]
    if not before:
        return None
    return min(before, key=lambda r: abs((now.at - r.at) - RATE_WINDOW_SECONDS))


def summary(now: Reading, then: Reading | None) -> dict[str, Any]:
    """What the screen and ``--json`` show."""
    seconds = None if then is None else now.at - then.at
    rates: dict[str, float | None] = {}
    for name, total in RATES.items():
        if then is None or not seconds:
            rates[name] = None
        else:
            # A counter that went down was reset by a restart: no rate across it.
            grown = total(now.counters) - total(then.counters)
            rates[name] = round(grown / seconds, 2) if grown >= 0 else None
    lag = {}
    for group, behind in sorted(now.lag.items()):
        before = None if then is None else then.lag.get(group)
        lag[group] = {
            "records": int(behind),
            "before": None if before is None else int(before),
            "trend": _trend(behind, before),
        }
    return {
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now.at)),
        "processes": [asdict(p) for p in now.processes],
        "lag": lag,
        "rates_per_second": rates,
        "rates_over_seconds": None if seconds is None else round(seconds, 1),
        "open_breakers": None if now.open_breakers is None else int(now.open_breakers),
    }


def _trend(now: float, before: float | None) -> str:
    if before is None:
        return "?"
    if now > before:
        return "growing"
    if now < before:
        return "shrinking"
    return "steady"


def render(home: Path, shown: dict[str, Any]) -> str:
    """The screen for ``shown`` (:func:`summary`)."""
    lines = [f"imptrack status of {home} at {shown['at']}", ""]
    lines.append(f"  {'process':<12} {'state':<8} {'pid':>8} {'memory':>10}  health")
    for p in shown["processes"]:
        memory = "-" if p["rss_bytes"] is None else f"{p['rss_bytes'] / 2**20:,.0f} MiB"
        pid = "-" if p["pid"] is None else str(p["pid"])
        state = "up" if p["up"] else "down"
        lines.append(f"  {p['name']:<12} {state:<8} {pid:>8} {memory:>10}  {p['health']}")
    lines.append("")
    over = shown["rates_over_seconds"]
    lines.append("  consumer lag (records behind)" + ("" if over is None else f", {over:g} s ago"))
    if not shown["lag"]:
        lines.append("    no group has committed offsets yet")
    for group, lag in shown["lag"].items():
        before = "" if lag["before"] is None else f"  (was {lag['before']:,})"
        lines.append(f"    {group:<22} {lag['records']:>10,}  {lag['trend']}{before}")
    lines.append("")
    if over is None:
        lines.append("  rates: no earlier reading yet")
    else:
        lines.append(f"  rates over the last {over:g} s, per second")
        for name, rate in shown["rates_per_second"].items():
            value = "-" if rate is None else f"{rate:,.1f}"
            lines.append(f"    {name:<22} {value:>10}")
    lines.append("")
    breakers = shown["open_breakers"]
    lines.append(
        "  open circuit breakers: "
        + ("- (no forwarder answered)" if breakers is None else str(breakers))
    )
    return "\n".join(lines)


def take(stack: Stack, readings: Readings) -> dict[str, Any]:
    """Read now, against the kept readings (reading twice when there are none)."""
    now = read(stack)
    kept = readings.add(now)
    then = earlier(kept, now)
    if then is None:
        time.sleep(FIRST_READING_GAP_SECONDS)
        then, now = now, read(stack)
        readings.add(now)
    return summary(now, then)
