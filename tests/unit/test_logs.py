"""LOG_FORMAT=json: one JSON object a line, with the process, level, logger, event
and the IDs it names; the default stays the readable line; a Faust worker's logging
takes the same formatter."""

from __future__ import annotations

import io
import logging
import sys

import orjson
import pytest
from mode.utils.logging import setup_logging

from app.exceptions import ConfigurationError
from app.logs import TEXT_FORMAT, JsonFormatter, configure, faust_logging_config, formatter
from app.settings import Settings

AIMP_ID, POSTBACK_ID = "0" * 11 + "a" * 13, "1" * 24


def _record(message: str, *args: object, exc: bool = False) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise ValueError("broken")
        except ValueError:
            exc_info = sys.exc_info()
    return logging.LogRecord(
        "imptrack.postbacks", logging.WARNING, __file__, 1, message, args, exc_info
    )


def test_a_json_line_has_the_fields_machines_read() -> None:
    line = JsonFormatter("worker").format(
        _record("postback %s names %s; %s again", POSTBACK_ID, AIMP_ID, POSTBACK_ID)
    )
    entry = orjson.loads(line)
    assert "\n" not in line
    assert entry["level"] == "warning" and entry["process"] == "worker"
    assert entry["logger"] == "imptrack.postbacks"
    assert entry["event"] == f"postback {POSTBACK_ID} names {AIMP_ID}; {POSTBACK_ID} again"
    assert entry["ids"] == [POSTBACK_ID, AIMP_ID]
    assert entry["ts"].endswith("Z") and "T" in entry["ts"]
    assert "error" not in entry


def test_a_traceback_is_one_field_of_one_line() -> None:
    line = JsonFormatter("edge").format(_record("failed", exc=True))
    entry = orjson.loads(line)
    assert line.count("\n") == 0
    assert "ValueError: broken" in entry["error"]
    assert "ids" not in entry


def test_text_stays_the_default_and_json_is_asked_for() -> None:
    assert not isinstance(formatter(Settings.from_env({}), "worker"), JsonFormatter)
    assert formatter(Settings.from_env({}), "worker")._fmt == TEXT_FORMAT
    chosen = formatter(Settings.from_env({"LOG_FORMAT": "json"}), "exporter")
    assert isinstance(chosen, JsonFormatter) and chosen.process == "exporter"
    with pytest.raises(ConfigurationError, match="LOG_FORMAT='xml' is not one of text, json"):
        Settings.from_env({"LOG_FORMAT": "xml"})


def test_a_process_configured_for_json_logs_json_lines(capsys: pytest.CaptureFixture[str]) -> None:
    root = logging.getLogger()
    kept = root.handlers[:], root.level
    try:
        configure(Settings.from_env({"LOG_FORMAT": "json", "LOG_LEVEL": "info"}), "edge")
        logging.getLogger("imptrack.test").info("pixel %s", AIMP_ID)
        (line,) = capsys.readouterr().err.splitlines()
        assert orjson.loads(line)["ids"] == [AIMP_ID]
    finally:
        root.handlers[:], _ = kept
        root.setLevel(kept[1])


def test_a_faust_workers_logging_takes_the_json_formatter() -> None:
    """mode's setup_logging (what faust.Worker runs) with the config we merge."""
    assert faust_logging_config(Settings.from_env({}), "worker") is None
    config = faust_logging_config(Settings.from_env({"LOG_FORMAT": "json"}), "forwarder")
    root = logging.getLogger()
    kept = root.handlers[:], root.level
    try:
        setup_logging(loglevel="info", logfile=io.StringIO(), logging_config=config)
        formatters = [handler.formatter for handler in root.handlers]
        assert any(isinstance(f, JsonFormatter) and f.process == "forwarder" for f in formatters)
    finally:
        root.handlers[:], _ = kept
        root.setLevel(kept[1])
