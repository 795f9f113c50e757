"""What an attempt's result means: delivered, worth retrying, or final.

Pure rules, so the forwarder's loop only carries them out.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

DELIVERED = "delivered"
"""The destination answered 2xx."""
RETRYING = "retrying"
"""5xx, 429, a timeout or a connection error; another attempt is scheduled."""
DEAD_LETTER = "dead_letter"
"""As for ``retrying``, but it was the last attempt allowed."""
FAILED = "failed"
"""The destination answered another status (e.g. 404): retrying would not help."""
BLOCKED = "blocked"
"""Never sent: the destination's address is refused (see app.catalog.destination_addresses)."""

OUTCOMES = (DELIVERED, RETRYING, DEAD_LETTER, FAILED, BLOCKED)
FINAL_FAILURES = (DEAD_LETTER, FAILED, BLOCKED)
"""Outcomes that end a delivery without success; each leaves a dead-letter record."""


@dataclass(frozen=True)
class AttemptResult:
    """What one attempt observed: an HTTP status, or an error and whether a later
    attempt could succeed."""

    status: int | None
    error: str | None
    latency_ms: float
    retryable: bool
    # Seconds the destination asked us to wait (Retry-After), if it said.
    retry_after: float | None = None
    blocked: bool = False

    @property
    def host_alive(self) -> bool:
        """Whether the host answered sensibly: resets its circuit breaker."""
        return self.status is not None and not self.retryable


def from_status(status: int, latency_ms: float, retry_after: float | None) -> AttemptResult:
    if 200 <= status < 300:
        return AttemptResult(status, None, latency_ms, retryable=False)
    retryable = status == 429 or status >= 500
    return AttemptResult(
        status,
        f"HTTP {status}",
        latency_ms,
        retryable=retryable,
        retry_after=retry_after if retryable else None,
    )


def outcome(result: AttemptResult, attempt: int, max_attempts: int) -> str:
    if result.blocked:
        return BLOCKED
    if result.status is not None and 200 <= result.status < 300:
        return DELIVERED
    if not result.retryable:
        return FAILED
    return RETRYING if attempt < max_attempts else DEAD_LETTER


def retry_delay(
    attempt: int,
    base: float,
    maximum: float,
    retry_after: float | None = None,
    rng: random.Random | None = None,
) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1 for the first).

    Exponential (``base``, 2 * base, 4 * base, ...) with "equal jitter": a random point
    in the upper half of the step, so retries of a burst spread out instead of
    arriving together, yet never come much sooner than the step. A destination's
    ``Retry-After`` is honoured when longer, up to ``maximum``.
    """
    step = min(maximum, base * float(2 ** (attempt - 1)))
    jitter: float = (rng or random).uniform(0, step / 2)
    delay = step / 2 + jitter
    if retry_after is not None:
        delay = max(delay, min(retry_after, maximum))
    return delay


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header given in seconds; HTTP dates are ignored."""
    if not value:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return seconds if seconds >= 0 else None
