"""One action's postbacks: created, status updates, duplicates and replays
(app.attribution.conversions)."""

from __future__ import annotations

import orjson

from app.attribution.conversions import (
    KEPT_OUTCOMES,
    ActionState,
    action_key,
    decide,
    verdict,
)
from app.events.records import MatchedPostback
from app.ids import IdGenerator
from tests.ids import TEST_SEAL
from tests.unit.attribution.matched import matched_postback

_ids = IdGenerator(TEST_SEAL)
T0 = 1_790_000_000_000


def _matched(status: int, at_ms: int, action_id: str | None = "A-1") -> MatchedPostback:
    return matched_postback(status, at_ms, action_id, event_ms=T0 - 1000)


def _round_trip(state: ActionState) -> ActionState:
    """The state as the conversions table stores and reads it (JSON)."""
    loaded = ActionState.from_data(orjson.loads(state.dumps()))
    assert isinstance(loaded, ActionState)
    return loaded


def test_created_then_updated_then_refused_as_a_duplicate() -> None:
    """pending creates; approved updates the same conversion (revision 2, the
    previous status said); approved again is a duplicate naming the conversion."""
    first = _matched(2, T0)
    state, outcome, conversion = decide(None, first)
    assert (outcome.outcome, outcome.status, conversion) == ("created", 1, first.conversion)
    assert verdict(outcome)["conversion_status"] == "pending"

    second = _matched(1, T0 + 60_000)
    state, outcome, conversion = decide(_round_trip(state), second)
    assert conversion is not None
    assert (conversion.conversion_id, conversion.revision, conversion.status) == (
        first.conversion.conversion_id,
        2,
        1,
    )
    assert (conversion.postback_id, conversion.updated_ms) == (
        second.postback.postback_id,
        T0 + 60_000,
    )
    assert conversion.created_ms == T0
    assert (outcome.outcome, outcome.previous_status) == ("updated", 2)
    assert verdict(outcome)["updated_from"] == "pending"

    third = _matched(1, T0 + 120_000)
    state, outcome, conversion = decide(_round_trip(state), third)
    assert conversion is None and (outcome.status, outcome.error_kind) == (2, "duplicate")
    assert outcome.error == (
        f"duplicate action_id 'A-1' for offer 5: conversion {first.conversion.conversion_id} "
        "already has status 1 (approved); a postback with another status changes it"
    )
    assert verdict(outcome) == {
        "status": 2,
        "error": outcome.error,
        "postback_id": third.postback.postback_id,
    }
    assert state.conversion.revision == 2


def test_a_replayed_postback_gets_its_first_answer_again() -> None:
    """Read again after a crash, a postback already decided is neither a second
    conversion nor a duplicate of itself, and a replayed refusal stays refused."""
    first, repeat = _matched(1, T0), _matched(1, T0 + 1000)
    state, created, _ = decide(None, first)
    state, refused, _ = decide(state, repeat)
    stored = _round_trip(state)
    again, outcome, conversion = decide(stored, first)
    assert outcome == created and conversion == state.conversion
    assert again.conversion.revision == 1
    _, outcome, conversion = decide(stored, repeat)
    assert outcome == refused and conversion is None


def test_outcomes_kept_per_action_are_bounded() -> None:
    """An action remembers its latest KEPT_OUTCOMES postbacks, not all of them."""
    state, _, _ = decide(None, _matched(1, T0))
    for n in range(KEPT_OUTCOMES + 5):
        state, _, _ = decide(state, _matched(1 + (n % 2), T0 + 1000 * (n + 1)))
    assert len(state.outcomes) == KEPT_OUTCOMES


def test_postbacks_without_action_id_are_actions_of_their_own() -> None:
    """The key groups an offer's postbacks by action_id; without one, by postback."""
    assert action_key(5, "A-1", "p1") == action_key(5, "A-1", "p2") == "5:A-1"
    assert action_key(6, "A-1", "p1") != action_key(5, "A-1", "p1")
    assert action_key(5, None, "p1") != action_key(5, None, "p2")
