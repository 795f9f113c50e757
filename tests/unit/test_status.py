"""``imptrack status``'s figures from readings: rates over the last minute, lag trends,
readings kept between runs, and the screen."""

from __future__ import annotations

from pathlib import Path

from app.ops.status import (
    KEPT_SECONDS,
    ProcessState,
    Reading,
    Readings,
    earlier,
    render,
    summary,
)

PIXELS = 'imptrack_http_requests_total{endpoint="/imp",status="200"}'
REFUSED = 'imptrack_http_requests_total{endpoint="/imp",status="503"}'
DELIVERED = 'imptrack_deliveries_total{kind="impression",outcome="delivered"}'


def _reading(at: float, pixels: float, lag: float, delivered: float = 0.0) -> Reading:
    return Reading(
        at=at,
        processes=[
            ProcessState("worker", True, 41, 150 * 2**20, "ok"),
            ProcessState("broker-1", True, 40, None, "-"),
            ProcessState("forwarder", False, None, None, "stopped"),
        ],
        counters={PIXELS: pixels, REFUSED: 10.0, DELIVERED: delivered},
        lag={"imptrack": lag},
        open_breakers=1.0,
    )


def test_rates_are_the_counters_growth_over_the_seconds_between_readings() -> None:
    then, now = _reading(1000.0, 500.0, 80.0, 100.0), _reading(1060.0, 6500.0, 20.0, 700.0)
    shown = summary(now, then)
    assert shown["rates_over_seconds"] == 60.0
    # Every /imp answer counts, whatever its status.
    assert shown["rates_per_second"]["pixels"] == 100.0
    assert shown["rates_per_second"]["deliveries"] == 10.0
    assert shown["lag"] == {"imptrack": {"records": 20, "before": 80, "trend": "shrinking"}}
    assert shown["open_breakers"] == 1


def test_a_counter_reset_by_a_restart_gives_no_rate_and_no_reading_none_at_all() -> None:
    shown = summary(_reading(1060.0, 5.0, 20.0), _reading(1000.0, 500.0, 20.0))
    assert shown["rates_per_second"]["pixels"] is None
    assert shown["lag"]["imptrack"]["trend"] == "steady"
    first = summary(_reading(1000.0, 5.0, 20.0), None)
    assert first["rates_over_seconds"] is None
    assert set(first["rates_per_second"].values()) == {None}
    assert first["lag"]["imptrack"]["trend"] == "?"


def test_the_reading_nearest_a_minute_back_is_the_one_compared(tmp_path: Path) -> None:
    readings = Readings(tmp_path / "status.jsonl")
    for at in (1000.0, 1030.0, 1055.0, 1090.0):
        kept = readings.add(_reading(at, at, 0.0))
    now = _reading(1100.0, 1100.0, 0.0)
    kept = readings.add(now)
    assert [r.at for r in kept] == [1000.0, 1030.0, 1055.0, 1090.0, 1100.0]
    then = earlier(kept, now)
    assert then is not None and then.at == 1030.0
    # Readings older than KEPT_SECONDS are dropped; a broken line is skipped.
    with readings.path.open("a") as file:
        file.write('{"at": 1101, "counters"\n')
    later = readings.add(_reading(1000.0 + KEPT_SECONDS + 60, 0.0, 0.0))
    assert [r.at for r in later] == [1090.0, 1100.0, 1000.0 + KEPT_SECONDS + 60]


def test_the_screen_shows_processes_lag_rates_and_breakers() -> None:
    screen = render(
        Path("/srv/imptrack"),
        summary(_reading(1060.0, 6500.0, 20.0), _reading(1000.0, 500.0, 80.0)),
    )
    assert "imptrack status of /srv/imptrack at 1970-01-01T00:17:40Z" in screen
    assert "worker       up             41    150 MiB  ok" in screen
    assert "forwarder    down            -          -  stopped" in screen
    assert "imptrack                       20  shrinking  (was 80)" in screen
    assert "rates over the last 60 s, per second" in screen
    assert "pixels                      100.0" in screen
    assert "open circuit breakers: 1" in screen
