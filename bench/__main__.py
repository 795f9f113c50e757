"""Every benchmark, one after another, on one stack of its own: ``make bench``.

    python -m bench                    # all of them (QUICK=1 for a smoke run)
    python -m bench pipeline recovery  # some of them, in the order given

Prints one table of every figure against its bare baseline and target, and writes
``bench/results/latest.json``: the figures, each benchmark's raw runs and the
machine's facts. A benchmark that fails is reported with its error and the others
still run; the exit status is then 1.
"""

from __future__ import annotations

import importlib
import sys
import time
import traceback
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from typing import Any

from bench.common import QUICK, bench_stack, machine, write_result

# In this order: the edge benchmarks first, on an idle system; the pipeline fills the
# worker's table that recovery then restarts with; retained measures the stores
# between them, holding what went through the whole stack and nothing else;
# reports_speed needs no stack.
BENCHMARKS = (
    "edge_pixel",
    "click_redirect",
    "postback_verdict",
    "forwarder",
    "pipeline",
    "retained",
    "recovery",
    "reports_speed",
)


STACKLESS = frozenset({"reports_speed"})
"""Benchmarks that need no running system. In QUICK they run in a process of their
own while the stack starts and the others run (QUICK's figures are not judged, and
its time is a developer's wait: issue 23 asks for under a minute); in a full run
they run alone after the others, as their figures need the machine to themselves."""


def _run_one(name: str, stack: Any) -> dict[str, Any]:
    begun = time.monotonic()
    module = importlib.import_module(f"bench.{name}")
    result: dict[str, Any] = module.run(stack)
    return result | {"seconds": round(time.monotonic() - begun, 1)}


def _collect(
    name: str, get: Callable[[], dict[str, Any]], results: dict[str, Any], errors: dict[str, str]
) -> None:
    """Keep ``name``'s result, or its error: one broken benchmark must not hide the
    others' figures."""
    try:
        results[name] = get()
    except Exception:
        errors[name] = traceback.format_exc()
        print(errors[name], file=sys.stderr, flush=True)
    else:
        print(f"    {results[name]['seconds']} s", flush=True)


def run_all(names: tuple[str, ...]) -> dict[str, Any]:
    started = time.monotonic()
    results: dict[str, Any] = {}
    errors: dict[str, str] = {}
    aside = [name for name in names if QUICK and name in STACKLESS]
    with ProcessPoolExecutor(max_workers=1) as pool:
        running = {name: pool.submit(_run_one, name, None) for name in aside}
        with bench_stack() as stack:
            for name in names:
                if name not in running:
                    print(f"--- {name}", flush=True)
                    _collect(name, partial(_run_one, name, stack), results, errors)
        for name, future in running.items():
            print(f"--- {name} (run beside the others)", flush=True)
            _collect(name, future.result, results, errors)
    # In the order given, whichever ran when.
    results = {name: results[name] for name in names if name in results}
    figures = [
        {"benchmark": name, **f} for name, result in results.items() for f in result["figures"]
    ]
    return {
        "quick": QUICK,
        "seconds": round(time.monotonic() - started, 1),
        "figures": figures,
        "failed_checks": [n for n, r in results.items() if not r["details"].get("ok", False)],
        "errors": errors,
        "benchmarks": results,
        "machine": machine(),
    }


def _number(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and abs(value) < 100:
        return f"{value:,.3g}" if abs(value) < 1 else f"{value:,.2f}"
    return f"{value:,.0f}"


def print_table(report: dict[str, Any]) -> None:
    rows = [("benchmark", "figure", "value", "bare", "ratio", "target", "met")]
    for f in report["figures"]:
        met = {True: "yes", False: "NO", None: "-"}[f["met"]]
        rows.append(
            (
                f["benchmark"],
                f["name"],
                f"{_number(f['value'])} {f['unit']}",
                _number(f["baseline"]),
                "-" if f["ratio"] is None else f"{f['ratio']:.2f}",
                f["target"],
                met,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for n, row in enumerate(rows):
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
        if n == 0:
            print("  ".join("-" * width for width in widths))


def main(argv: list[str]) -> int:
    names = tuple(argv) or BENCHMARKS
    unknown = [name for name in names if name not in BENCHMARKS]
    if unknown:
        print(f"unknown benchmark {', '.join(unknown)}; known: {', '.join(BENCHMARKS)}")
        return 2
    report = run_all(names)
    path = write_result("latest", report)
    print()
    print_table(report)
    quick = " (QUICK: figures not meaningful, targets not judged)" if QUICK else ""
    print(f"\n{len(names)} benchmarks in {report['seconds']} s{quick}; written: {path}")
    for name in report["failed_checks"]:
        print(f"{name}: a sanity check failed, see details.ok in the results", file=sys.stderr)
    for name in report["errors"]:
        print(f"{name}: failed with an error (above)", file=sys.stderr)
    return 1 if report["errors"] or report["failed_checks"] else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
