"""The forwarder's deliveries: attempts by outcome, how long each took, and the
destinations whose circuit breaker is open."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

DELIVERIES = Counter(
    "imptrack_deliveries_total",
    "Delivery attempts, by what they deliver (impression, affiliate_postback) and outcome.",
    ["kind", "outcome"],
)
DELIVERY_LATENCY = Histogram(
    "imptrack_delivery_attempt_duration_seconds",
    "Time one delivery attempt took, to the destination's answer or the error.",
    ["kind"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
OPEN_BREAKERS = Gauge(
    "imptrack_open_circuit_breakers",
    "Destination hosts whose circuit breaker is open now (deliveries to them wait).",
)


def attempted(kind: str, outcome: str, latency_ms: float) -> None:
    """One delivery attempt of ``kind`` made, with its outcome and how long it took."""
    DELIVERIES.labels(kind, outcome).inc()
    DELIVERY_LATENCY.labels(kind).observe(latency_ms / 1000)
