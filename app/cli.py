"""The ``imptrack`` command."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from app.exceptions import ImptrackError
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
    from app.ops.stack import Stack

    s = settings()
    stack = Stack(s)
    running = stack.running()
    if not running:
        # Exit status 1 for scripts; `make status` prints this line and no make error.
        print(f"nothing is running under {s.home}; `make up` (or `imptrack up`) starts it")
        return 1
    for part in stack.components():
        pid = running.get(part.name)
        state = "stopped" if pid is None else ("ready" if part.ready() else "starting/unhealthy")
        print(f"  {part.name:<9} {state}{'' if pid is None else f'  (pid {pid})'}")
    return 0


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
    sub.add_parser("status", help="show which parts run").set_defaults(run=_cmd_status)
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
        logging.basicConfig(
            level=settings().log_level.upper(),
            format="%(asctime)s %(name)s %(levelname)s %(message)s",
        )
        code: int = args.run(args)
    except ImptrackError as exc:
        print(f"imptrack: {exc}", file=sys.stderr)
        return 2
    return code


if __name__ == "__main__":
    sys.exit(main())
