"""What the agents take in and send out, and what they decide: events per agent,
rejections by reason (the edge's clicks too), postback outcomes by error kind."""

from __future__ import annotations

from prometheus_client import Counter

AGENT_EVENTS = Counter(
    "imptrack_agent_events_total",
    "Events an agent took in and sent out (each event of an envelope counts).",
    ["agent", "direction"],
)
REJECTIONS = Counter(
    "imptrack_rejections_total", "Impressions and clicks not tracked.", ["event", "reason"]
)
POSTBACK_OUTCOMES = Counter(
    "imptrack_postback_outcomes_total",
    "Postbacks decided, by outcome (created, updated, refused) and, for a refusal, "
    "the kind of error (none otherwise).",
    ["outcome", "error_kind"],
)


def took_in(agent: str, events: int) -> None:
    AGENT_EVENTS.labels(agent, "in").inc(events)


def sent_out(agent: str, events: int) -> None:
    AGENT_EVENTS.labels(agent, "out").inc(events)


def postbacks_decided(outcomes: list[tuple[str, str | None]]) -> None:
    """Count ``(outcome, error_kind)`` pairs of decided postbacks (an accepted one has
    no error kind: "none"; a refusal decided before kinds existed: "unknown")."""
    for outcome, kind in outcomes:
        POSTBACK_OUTCOMES.labels(
            outcome, kind or ("none" if outcome != "refused" else "unknown")
        ).inc()


def rejected(event: str, reason: str, count: int = 1) -> None:
    REJECTIONS.labels(event, reason).inc(count)


def envelope_judged(agent: str, taken: int, counts: dict[str, int]) -> None:
    """An envelope of ``taken`` impressions judged: ``counts`` as
    app.attribution.impressions.EnvelopeVerdicts keeps them."""
    took_in(agent, taken)
    out = counts.get("recorded", 0) + counts.get("forward", 0)
    for key, count in counts.items():
        if key.startswith("rejected:"):
            rejected("impression", key.removeprefix("rejected:"), count)
            out += count
    sent_out(agent, out)
