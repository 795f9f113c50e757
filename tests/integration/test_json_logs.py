"""LOG_FORMAT=json on a real process: an edge started with it writes one JSON object
a line (process, level, logger, event, the IDs an event names), a malformed request
included."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import orjson
import pytest

from tests.integration.conftest import RunningStack

pytestmark = pytest.mark.integration


def _lines(log: Path) -> list[str]:
    return [line for line in log.read_text().splitlines() if line.strip()]


def test_an_edge_started_with_json_logs_writes_only_json_lines(
    running_stack: RunningStack, tmp_path: Path
) -> None:
    with running_stack.extra_edge(tmp_path, LOG_FORMAT="json", LOG_LEVEL="info") as base:
        host, port = base.removeprefix("http://").split(":")
        # A request aiohttp cannot parse: the edge logs one WARNING line for it.
        with socket.create_connection((host, int(port)), timeout=5) as conn:
            conn.sendall(b"GET /imp HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n")
            conn.recv(1024)
        (log,) = tmp_path.glob("extra-edge-*.log")
        deadline = time.monotonic() + 10
        while not any("malformed request" in line for line in _lines(log)):
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
    entries = [orjson.loads(line) for line in _lines(log)]
    assert entries, "the edge logged nothing"
    assert {entry["process"] for entry in entries} == {"edge"}
    assert all({"ts", "level", "logger", "event"} <= set(entry) for entry in entries)
    # The shared catalog topic holds records other tests wrote broken on purpose,
    # which this edge's catalog follower logs too (as JSON lines, as the rest).
    refused = [e for e in entries if "refused a malformed request" in e["event"]]
    assert len(refused) == 1, entries
    assert (refused[0]["level"], refused[0]["logger"]) == ("warning", "aiohttp.server")
    assert "400 Invalid header token" in refused[0]["event"]
