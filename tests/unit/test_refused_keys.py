"""Refused API keys in the log: who knocked, never the key, and never a flood."""

from __future__ import annotations

import logging
from unittest import mock

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from app.edge.api_keys import HEADER, ApiKeyGate, RefusedKeys

LOG = logging.getLogger("test.refused")
KEY = "near-miss-key-do-not-log-7d1f"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def request(
    address: str | None, key: str | None = KEY, path: str = "/api/v1/offers"
) -> web.Request:
    headers = {HEADER: key} if key is not None else {}
    transport = mock.Mock()
    transport.get_extra_info.return_value = (address, 40000) if address else None
    return make_mocked_request("GET", path, headers=headers, transport=transport)


def lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOG.name]


def test_a_refusal_names_address_method_path_and_never_the_key(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    refused = RefusedKeys(LOG, clock=Clock())
    refused.refused(request("203.0.113.7"))
    refused.refused(request("203.0.113.8", key=None))
    refused.refused(request(None))  # a peer the transport no longer knows
    assert lines(caplog) == [
        "refused GET /api/v1/offers from 203.0.113.7: a wrong key",
        f"refused GET /api/v1/offers from 203.0.113.8: no {HEADER} header",
        "refused GET /api/v1/offers from unknown: a wrong key",
    ]
    assert all(KEY not in r.getMessage() and KEY[:8] not in r.getMessage() for r in caplog.records)


def test_a_path_cannot_forge_a_log_line_or_leak_its_query(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    refused = RefusedKeys(LOG, clock=Clock())
    forged = "/api/v1/%0A2026-11-30 refused nothing: all is well" + "a" * 9000
    refused.refused(request("203.0.113.9", path=forged + f"?api_key={KEY}"))
    (line,) = lines(caplog)
    assert "\n" not in line and "%0A" in line and KEY not in line
    assert len(line) < 300


def test_a_flood_from_one_address_is_one_line_a_minute_with_its_count(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    clock = Clock()
    refused = RefusedKeys(LOG, every=60.0, clock=clock)
    for _ in range(500):
        refused.refused(request("198.51.100.1"))
        clock.now += 0.1  # 50 s in all
    assert len(lines(caplog)) == 1
    clock.now += 11.0  # past the minute since the first line
    refused.refused(request("198.51.100.1"))
    assert lines(caplog)[-1].endswith("a wrong key; 499 more refused since its last line")
    # Another address is not held back by the first one's flood.
    refused.refused(request("198.51.100.2"))
    assert lines(caplog)[-1] == "refused GET /api/v1/offers from 198.51.100.2: a wrong key"


def test_guesses_from_many_addresses_are_a_bounded_number_of_lines(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    clock = Clock()
    refused = RefusedKeys(LOG, every=60.0, lines=3, clock=clock)
    for n in range(10):
        refused.refused(request(f"2001:db8::{n}"))
    assert len(lines(caplog)) == 3
    clock.now += 61.0
    refused.refused(request("2001:db8::ff"))
    assert lines(caplog)[-1] == (
        "refused GET /api/v1/offers from 2001:db8::ff: a wrong key; "
        "7 refused and not logged (over 3 lines)"
    )


def test_it_remembers_a_bounded_number_of_addresses(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    refused = RefusedKeys(LOG, addresses=3, clock=Clock())
    for n in range(10):
        refused.refused(request(f"192.0.2.{n}"))
    assert len(lines(caplog)) == 10
    # The newest three are remembered: within the minute, no second line...
    for n in (7, 8, 9):
        refused.refused(request(f"192.0.2.{n}"))
    assert len(lines(caplog)) == 10
    # ...while the oldest were forgotten, so the next refusal from one is a line again.
    refused.refused(request("192.0.2.0"))
    assert len(lines(caplog)) == 11


def test_the_gate_admits_the_key_and_logs_every_refusal(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    gate = ApiKeyGate("the-right-key", LOG)
    assert gate.admits(request("203.0.113.10", key="the-right-key"))
    assert lines(caplog) == []
    assert not gate.admits(request("203.0.113.10"))
    assert lines(caplog) == ["refused GET /api/v1/offers from 203.0.113.10: a wrong key"]
