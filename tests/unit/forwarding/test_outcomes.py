"""What each attempt result means, and how long a retry waits."""

from __future__ import annotations

import random

import pytest

from app.forwarding import outcomes
from app.forwarding.outcomes import AttemptResult, from_status, outcome, retry_delay


@pytest.mark.parametrize(
    ("status", "expected", "retryable"),
    [
        (200, "delivered", False),
        (204, "delivered", False),
        (404, "failed", False),
        (400, "failed", False),
        (410, "failed", False),
        (429, "retrying", True),
        (500, "retrying", True),
        (503, "retrying", True),
    ],
)
def test_statuses(status: int, expected: str, retryable: bool) -> None:
    result = from_status(status, 1.0, None)
    assert result.retryable is retryable
    assert outcome(result, 1, 5) == expected


def test_the_last_retryable_failure_is_a_dead_letter() -> None:
    result = from_status(503, 1.0, None)
    assert outcome(result, 4, 5) == "retrying"
    assert outcome(result, 5, 5) == "dead_letter"
    timeout = AttemptResult(None, "timed out", 3000.0, retryable=True)
    assert outcome(timeout, 5, 5) == "dead_letter"


def test_a_blocked_destination_is_final_at_once() -> None:
    blocked = AttemptResult(None, "refused", 0.1, retryable=False, blocked=True)
    assert outcome(blocked, 1, 5) == "blocked"
    assert "blocked" in outcomes.FINAL_FAILURES and "delivered" not in outcomes.FINAL_FAILURES


def test_host_alive_only_for_sensible_answers() -> None:
    assert from_status(200, 1, None).host_alive
    assert from_status(404, 1, None).host_alive
    assert not from_status(500, 1, None).host_alive
    assert not AttemptResult(None, "connection refused", 1, retryable=True).host_alive


def test_retry_delay_doubles_within_its_jitter_band_and_is_capped() -> None:
    rng = random.Random(7)
    for attempt, step in ((1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0)):
        delays = [retry_delay(attempt, 1.0, 300.0, rng=rng) for _ in range(200)]
        assert all(step / 2 <= d <= step for d in delays)
        assert max(delays) - min(delays) > step / 4  # actually jittered
    assert all(10 <= retry_delay(20, 1.0, 20.0, rng=rng) <= 20 for _ in range(50))


def test_retry_after_is_honoured_up_to_the_maximum() -> None:
    assert retry_delay(1, 1.0, 300.0, retry_after=30) == 30
    assert retry_delay(1, 1.0, 60.0, retry_after=3600) == 60
    assert outcomes.parse_retry_after("120") == 120
    assert outcomes.parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") is None
    assert outcomes.parse_retry_after("-5") is None
    assert outcomes.parse_retry_after(None) is None
    # Only retryable answers carry it on.
    assert from_status(404, 1, None).retry_after is None
    assert from_status(429, 1, 9.0).retry_after == 9.0
