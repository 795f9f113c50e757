"""The ``imptrack`` command."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from app import logs
from app.attribution.params import RefusalKind
from app.exceptions import ConfigurationError, ImptrackError
from app.settings import Settings, settings

if TYPE_CHECKING:
    import faust

    from reports.slice_request import SliceRequest
    from reports.slices import SliceResult


def _cmd_up(args: argparse.Namespace) -> int:
    from app.ops.stack import Stack

    s = settings()
    stack = Stack(s)
    stack.up(on_ready=lambda name, took: print(f"  {name:<9} ready in {took:.1f} s"))
    print(
        f"\nimptrack is up\n"
        f"  edge      {s.edge_url}   (pixel: {s.edge_url}/imp?offer_id=1&pid=1)\n"
        f"  broker    {s.broker}{'' if s.kafka_broker else '   (local Apache Kafka)'}\n"
        f"  redis     {s.redis_shown}{'' if s.redis_url else '   (local)'}\n"
        f"  exporter  {s.exporter_url}/healthz\n"
        f"  worker    {s.worker_url}/healthz\n"
        f"  forwarder {s.forwarder_url}/healthz\n"
        f"  dashboard {s.exporter_url}/dashboard   (log in with the key in {s.api_key_file})\n"
        f"  duckdb    {s.duckdb_path}   (analysts' snapshot, docs/REPORTING.md)\n"
        f"  logs      {s.log_dir}\n"
        f"  data      {s.data_dir}\n"
        f"Stop it with `make down`."
    )
    return 0


def _cmd_down(args: argparse.Namespace) -> int:
    from app.ops.stack import Stack

    stack = Stack(settings())
    if not stack.running():
        print("nothing is running")
        return 0
    stack.down(on_stopped=lambda name: print(f"  {name:<9} stopped"))
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    from app.ops import status
    from app.ops.stack import Stack

    s = settings()
    stack = Stack(s)
    if not stack.running():
        # Exit status 1 for scripts; `make status` prints this line and no make error.
        print(f"nothing is running under {s.home}; `make up` (or `imptrack up`) starts it")
        return 1
    readings = status.Readings(s.run_dir / "status-readings.jsonl")
    shown = 0
    while True:
        screen = status.take(stack, readings)
        if args.json:
            print(json.dumps(screen), flush=True)
        else:
            if args.watch is not None and sys.stdout.isatty():
                print("\033[H\033[2J", end="")  # a fresh screen each time
            print(status.render(s.home, screen), end="\n\n" if args.watch else "\n", flush=True)
        shown += 1
        if args.watch is None or (args.times is not None and shown >= args.times):
            return 0
        time.sleep(args.watch)


def _cmd_postbacks_replay(args: argparse.Namespace) -> int:
    import asyncio
    from collections import Counter

    from app.edge.postback_replay import Replayed, replay_postbacks
    from reports.refused_postbacks import refused_postbacks

    s = settings()
    since, until = _replay_range(args)
    refused = refused_postbacks(s.duckdb_path, since, until, args.offer, args.error_kind)
    kinds_seen = Counter(r.error_kind or "unknown" for r in refused)
    what = (
        f"{len(refused)} refused postbacks from {since.isoformat()} to {until.isoformat()}"
        + ("" if args.offer is None else f" of offer {args.offer}")
        + (
            ""
            if not kinds_seen
            else " (" + ", ".join(f"{k} {n}" for k, n in kinds_seen.most_common()) + ")"
        )
    )
    if args.dry_run or not refused:
        print(f"{what}{' would be sent again' if refused else ''}; nothing sent")
        return 0
    sent = asyncio.run(
        replay_postbacks(s, [Replayed(r.method, r.params, r.ip, r.original) for r in refused])
    )
    print(
        f"sent {len(sent)} of {what} again; each new decision is in the Server postbacks "
        "slice, its replay_of naming the postback as the advertiser sent it"
    )
    return 0


def _cmd_deliveries_replay(args: argparse.Namespace) -> int:
    import asyncio
    from collections import Counter

    from app.forwarding.replay import replay_deliveries
    from reports.dead_letters import dead_letters

    s = settings()
    since, until = _replay_range(args)
    dead = dead_letters(s.duckdb_path, since, until, args.offer, args.destination)
    by_kind = Counter(str(d.task["kind"]) for d in dead)
    what = (
        f"{len(dead)} dead-lettered deliveries"
        + (
            ""
            if not by_kind
            else " (" + ", ".join(f"{k} {n}" for k, n in sorted(by_kind.items())) + ")"
        )
        + ("" if args.offer is None else f" of offer {args.offer}")
        + ("" if args.destination is None else f" to {args.destination}")
    )
    if args.dry_run or not dead:
        print(f"{what}{' would be sent again' if dead else ''}; nothing sent")
        return 0
    scheduled = asyncio.run(replay_deliveries(s, [(d.task, d.attempts) for d in dead]))
    print(
        f"scheduled {scheduled} of {what} again"
        + (
            ""
            if scheduled == len(dead)
            else f" ({len(dead) - scheduled} were scheduled by an earlier replay)"
        )
        + "; each attempt is in the Deliveries slice, numbered on from its dead letter's"
    )
    return 0


def _replay_range(args: argparse.Namespace) -> tuple[datetime, datetime]:
    """A replay's ``--from`` (the epoch when not asked for) and ``--to`` (now)."""
    since = args.since or datetime(1970, 1, 1, tzinfo=UTC)
    until = args.until or datetime.now(UTC)
    if until <= since:
        raise ConfigurationError(
            f"--to {until.isoformat()} is not after --from {since.isoformat()}"
        )
    return since, until


def _add_replay_arguments(parser: argparse.ArgumentParser, what: str, since_required: bool) -> None:
    """``--from``, ``--to``, ``--offer`` and ``--dry-run``, of the moments ``what``
    happened ("refused", "dead-lettered")."""
    parser.add_argument(
        "--from",
        dest="since",
        type=_when,
        required=since_required,
        metavar="WHEN",
        help=f"{what} at or after (a date, or a date and time; UTC)",
    )
    parser.add_argument(
        "--to", dest="until", type=_when, metavar="WHEN", help=f"{what} before (default: now)"
    )
    parser.add_argument("--offer", type=_positive_id, help="only this offer's")
    parser.add_argument("--dry-run", action="store_true", help="count them, send nothing")


def _when(raw: str) -> datetime:
    """A moment on the command line: a date (its midnight) or a date and time, in UTC
    unless it names its offset."""
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{raw!r} is not a date (2026-12-04) or a date and time (2026-12-04T09:30)"
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _cmd_worker(args: argparse.Namespace) -> int:
    from app.streams.worker import build_worker

    return _run_faust("worker", build_worker)


def _cmd_forwarder(args: argparse.Namespace) -> int:
    from app.streams.forwarder import build_forwarder

    return _run_faust("forwarder", build_forwarder)


def _run_faust(role: str, build: Callable[[Settings], faust.App]) -> int:
    from app.ops.topic_specs import ensure_topics

    s = settings()
    # Its topics exist before it joins its group (app/ops/topic_specs.py), whoever
    # started it.
    ensure_topics(s)
    app = build(s)
    # Faust's own CLI runs the worker (signals, logging, recovery); we only choose
    # its arguments.
    sys.argv = [f"imptrack {role}", "--loop", "uvloop", "worker", "--loglevel", s.log_level]
    app.main()
    return 0


def _cmd_edge(args: argparse.Namespace) -> int:
    from app.edge.server import run_edge_processes

    run_edge_processes(settings())
    return 0


def _cmd_exporter(args: argparse.Namespace) -> int:
    from reports.exporter_server import run_exporter

    run_exporter(settings())
    return 0


def _write_result(args: argparse.Namespace, read: Callable[[], SliceResult]) -> int:
    """``read()``'s rows in ``--format``, to ``-o FILE`` or stdout (`report`, `sql`).
    A binary format is never written to a terminal, and is refused before reading."""
    from reports.formatting import BINARY_FORMATS, render_bytes

    if args.format in BINARY_FORMATS and args.output is None and sys.stdout.isatty():
        print(f"imptrack: {args.format} is binary; give -o FILE", file=sys.stderr)
        return 2
    body = render_bytes(read(), args.format)
    if args.output is None:
        sys.stdout.buffer.write(body)
        sys.stdout.flush()
    else:
        args.output.write_bytes(body)
    return 0


def _add_output_arguments(parser: argparse.ArgumentParser) -> None:
    from reports.formatting import FORMATS

    parser.add_argument("--format", choices=FORMATS, default="table")
    parser.add_argument("-o", "--output", type=Path, help="write to this file (default: stdout)")


def _cmd_sql(args: argparse.Namespace) -> int:
    from reports.analyst_sql import run_sql

    return _write_result(args, lambda: run_sql(settings().duckdb_path, args.query))


def _cmd_links(args: argparse.Namespace) -> int:
    from app.catalog.local import offer_links_of
    from app.catalog.offer_links import links_text

    _quiet_clients()
    links = offer_links_of(settings(), args.offer, args.affiliate)
    print(json.dumps(links, indent=2) if args.format == "json" else links_text(links))
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from reports.reading import read_request

    return _write_result(args, lambda: read_request(settings(), _slice_request(args)))


def _slice_request(args: argparse.Namespace) -> SliceRequest:
    from reports.slice_request import SliceRequest

    return SliceRequest.parse(
        args.slice,
        {
            "from": args.date_from,
            "to": args.date_to,
            "tz": args.tz,
            "offer": args.offer,
            "affiliate": args.affiliate,
            "advertiser": args.advertiser,
            "status": args.status,
            "group_by": args.group_by,
            "sort": args.sort,
            "limit": args.limit,
            "errors": "1" if args.errors else None,
        },
    )


def _quiet_clients() -> None:
    """A one-shot command shows its result, not the broker client's chatter: a
    broker it cannot reach is said once, in the command's own error line."""
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    logging.getLogger("imptrack.catalog").setLevel(logging.WARNING)


def _cmd_catalog_apply(args: argparse.Namespace) -> int:
    from app.catalog.local import apply_file

    _quiet_clients()
    applied = apply_file(settings(), args.file)
    for error in applied.errors:
        print(f"imptrack: {args.file}: {error}", file=sys.stderr)
    if applied.errors:
        count = "1 error" if len(applied.errors) == 1 else f"{len(applied.errors)} errors"
        print(f"imptrack: nothing was applied ({count})", file=sys.stderr)
        return 2
    for warning in applied.warnings:
        print(f"imptrack: warning: {warning}", file=sys.stderr)
    print(f"applied {args.file}: {applied.written} catalog changes")
    return 0


def _cmd_catalog_export(args: argparse.Namespace) -> int:
    import json

    import yaml

    from app.catalog.local import export_document

    _quiet_clients()
    document = export_document(settings())
    if args.format == "json":
        text = json.dumps(document, indent=2) + "\n"
    else:
        text = yaml.safe_dump(document, sort_keys=False, allow_unicode=True)
    if args.output is None:
        sys.stdout.write(text)
    else:
        args.output.write_text(text, "utf-8")
        print(f"wrote the catalog to {args.output}")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from demo.run import run_demo

    return run_demo(settings(), args.requests)


def _positive_id(raw: str) -> int:
    """An offer or affiliate id on the command line (app.catalog.validation)."""
    from app.catalog.validation import id_from_text
    from app.exceptions import CatalogError

    try:
        return id_from_text(raw, "id")
    except CatalogError as exc:
        raise argparse.ArgumentTypeError(exc.problem) from None


def _positive_seconds(raw: str) -> float:
    try:
        seconds = float(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{raw!r} is not a number of seconds") from None
    if not 0.1 <= seconds <= 3600:
        raise argparse.ArgumentTypeError(f"{raw} s is not between 0.1 and 3600 s")
    return seconds


def _count(raw: str) -> int:
    if not raw.isdigit() or int(raw) < 1:
        raise argparse.ArgumentTypeError(f"{raw!r} is not a whole number from 1")
    return int(raw)


def build_parser() -> argparse.ArgumentParser:
    from app.events.statuses import CONVERSION_STATUS_LABELS
    from reports.slices import SLICES

    parser = argparse.ArgumentParser(
        prog="imptrack", description="Full-cycle impression tracking for affiliate networks."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser("up", help="start the stack and wait until every part is ready").set_defaults(
        run=_cmd_up
    )
    sub.add_parser("down", help="stop everything `up` started").set_defaults(run=_cmd_down)
    postbacks = sub.add_parser("postbacks", help="operate on postbacks already decided")
    postbacks_sub = postbacks.add_subparsers(
        dest="postbacks_command", required=True, metavar="ACTION"
    )
    replay = postbacks_sub.add_parser(
        "replay",
        help="send refused postbacks of a time range again, to be decided anew",
        description="Refused postbacks (from the analysts' DuckDB snapshot) are sent again "
        "to be decided by today's catalog, for example after a catalog fix: each gets a "
        "new decision in the log, naming the original in replay_of; none is edited. One "
        "accepted, first or when sent again, is never sent again.",
    )
    _add_replay_arguments(replay, "refused", since_required=True)
    replay.add_argument(
        "--error-kind", choices=[k.value for k in RefusalKind], help="only refusals of this kind"
    )
    replay.set_defaults(run=_cmd_postbacks_replay)
    deliveries = sub.add_parser("deliveries", help="operate on deliveries already made")
    deliveries_sub = deliveries.add_subparsers(
        dest="deliveries_command", required=True, metavar="ACTION"
    )
    again = deliveries_sub.add_parser(
        "replay",
        help="send dead-lettered deliveries again",
        description="Dead-lettered deliveries (impressions to advertisers, conversions to "
        "affiliates; from the analysts' DuckDB snapshot) go back into the delivery "
        "schedule, due now, each with FORWARD_MAX_ATTEMPTS attempts of its own, numbered "
        "on from its dead letter's. One attempted since is not sent again, nor one dead "
        "letter twice.",
    )
    _add_replay_arguments(again, "dead-lettered", since_required=False)
    again.add_argument(
        "--destination",
        metavar="URL",
        help="only this destination: the URL as configured, or the start of "
        "the URL requested (e.g. https://adv.example)",
    )
    again.set_defaults(run=_cmd_deliveries_replay)
    state = sub.add_parser(
        "status",
        help="one screen: each process, consumer lag and its trend, rates, open breakers",
    )
    state.add_argument(
        "--watch",
        type=_positive_seconds,
        nargs="?",
        const=2.0,
        metavar="SECONDS",
        help="refresh every SECONDS (2 by default) until interrupted",
    )
    state.add_argument(
        "--times", type=_count, metavar="N", help="with --watch: stop after N screens"
    )
    state.add_argument("--json", action="store_true", help="the same as JSON, one object a screen")
    state.set_defaults(run=_cmd_status)
    sub.add_parser("worker", help="run a Faust worker in the foreground").set_defaults(
        run=_cmd_worker
    )
    sub.add_parser(
        "forwarder", help="run the forwarder (delivery to advertisers) in the foreground"
    ).set_defaults(run=_cmd_forwarder)
    sub.add_parser("edge", help="run the HTTP edge in the foreground").set_defaults(run=_cmd_edge)
    sub.add_parser("exporter", help="run the DuckDB exporter in the foreground").set_defaults(
        run=_cmd_exporter
    )
    report = sub.add_parser(
        "report",
        help="print or save a statistics slice",
        description="Slices: " + ", ".join(SLICES) + ". See docs/REPORTING.md.",
    )
    report.add_argument("slice", choices=list(SLICES))
    report.add_argument("--from", dest="date_from", metavar="YYYY-MM-DD", help="first day")
    report.add_argument("--to", dest="date_to", metavar="YYYY-MM-DD", help="last day (inclusive)")
    report.add_argument("--tz", default="UTC", help="IANA timezone of the days (default UTC)")
    report.add_argument("--offer", metavar="IDS", help="only these offers (comma-separated)")
    report.add_argument("--affiliate", metavar="IDS", help="only these affiliates (pid)")
    report.add_argument("--advertiser", metavar="IDS", help="only these advertisers")
    report.add_argument(
        "--status",
        metavar="STATUSES",
        help="conversion statuses (conversions, affiliate-postbacks, counts): "
        + ",".join(CONVERSION_STATUS_LABELS),
    )
    report.add_argument(
        "--group-by",
        metavar="DIMS",
        help="custom slice: date,hour,offer,affiliate,advertiser,goal,attribution,sub1..sub8",
    )
    report.add_argument("--sort", metavar="COL[:desc],...", help="order of the rows")
    report.add_argument("--limit", metavar="N", help="at most N rows")
    _add_output_arguments(report)
    report.add_argument(
        "--errors", action="store_true", help="postbacks: only the refused ones, with their error"
    )
    report.set_defaults(run=_cmd_report)
    links = sub.add_parser(
        "links",
        help="an offer's impression pixel, click link and postback URLs for an affiliate",
    )
    links.add_argument("offer", type=_positive_id, help="the offer's id")
    links.add_argument(
        "--affiliate", type=_positive_id, required=True, metavar="PID", help="the affiliate"
    )
    links.add_argument("--format", choices=("text", "json"), default="text")
    links.set_defaults(run=_cmd_links)
    query = sub.add_parser(
        "sql",
        help="query the analysts' DuckDB snapshot (read-only), e.g. 'select * from daily'",
        description='Views: see docs/REPORTING.md, "The DuckDB file".',
    )
    query.add_argument("query", help="a DuckDB SQL query")
    _add_output_arguments(query)
    query.set_defaults(run=_cmd_sql)
    catalog = sub.add_parser("catalog", help="load or save advertisers, affiliates and offers")
    catalog_sub = catalog.add_subparsers(dest="catalog_command", required=True, metavar="ACTION")
    apply = catalog_sub.add_parser("apply", help="apply a YAML or JSON catalog file")
    apply.add_argument("file", type=Path, help="the catalog file (.yaml, .yml or .json)")
    apply.set_defaults(run=_cmd_catalog_apply)
    export = catalog_sub.add_parser("export", help="write the whole catalog as a catalog file")
    export.add_argument("-o", "--output", type=Path, help="file to write (default: stdout)")
    export.add_argument("--format", choices=("yaml", "json"), default="yaml")
    export.set_defaults(run=_cmd_catalog_export)
    demo = sub.add_parser("demo", help="start, send pixels, report, stop")
    demo.add_argument("--requests", type=int, default=3000, help="pixel requests to send")
    demo.set_defaults(run=_cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        # Inside the try: a setting that cannot be read is the command's one error
        # line, not a traceback.
        logs.configure(settings(), str(getattr(args, "command", None) or "imptrack"))
        code: int = args.run(args)
    except ImptrackError as exc:
        print(f"imptrack: {exc}", file=sys.stderr)
        return 2
    return code


if __name__ == "__main__":
    sys.exit(main())
