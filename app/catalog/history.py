"""The catalog as it was at a given moment, for judging events at their own time.

An impression accepted a moment before an offer was paused must still be tracked,
even when the worker reads it after the pause (and again when a replay after a
crash reads it much later). So the worker judges each impression against the
catalog in force when it was accepted: the current catalog with every later
change undone. Changes are kept for ``horizon_ms``; events older than that are
judged as of the oldest change kept.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass

from app.catalog.changes import Change, apply_change, current_state
from app.catalog.model import Catalog

DEFAULT_HORIZON_MS = 15 * 60 * 1000
MAX_SNAPSHOTS = 16


@dataclass(frozen=True)
class _Applied:
    at_ms: int  # when the change was written (the record's timestamp)
    undo: Change  # the state of its key just before it


class CatalogHistory:
    def __init__(self, horizon_ms: int = DEFAULT_HORIZON_MS) -> None:
        self.current = Catalog()
        self.horizon_ms = horizon_ms
        self._applied: list[_Applied] = []
        self._times: list[int] = []
        # Catalog as it was before self._applied[i], keyed by that change's time and
        # position; a past state never changes, so entries stay valid until pruned.
        self._snapshots: dict[tuple[int, int], Catalog] = {}
        self._dropped = 0

    def apply(self, change: Change, at_ms: int, now_ms: int) -> None:
        if at_ms >= now_ms - self.horizon_ms:
            undo = current_state(self.current, change.key)
            apply_change(self.current, change)
            # Timestamps may step back a little (clocks of several writers); a change
            # is filed at its place in time so the search below stays a bisection.
            at_ms = max(at_ms, self._times[-1]) if self._times else at_ms
            self._applied.append(_Applied(at_ms, undo))
            self._times.append(at_ms)
        else:
            apply_change(self.current, change)
        self._prune(now_ms)

    def at(self, moment_ms: int) -> Catalog:
        """The catalog in force at ``moment_ms`` (epoch milliseconds)."""
        if not self._times or moment_ms >= self._times[-1]:
            return self.current
        first_later = bisect_right(self._times, moment_ms)
        key = (self._times[first_later], self._dropped + first_later)
        snapshot = self._snapshots.get(key)
        if snapshot is None:
            snapshot = self.current.copy()
            for applied in reversed(self._applied[first_later:]):
                apply_change(snapshot, applied.undo)
            if len(self._snapshots) >= MAX_SNAPSHOTS:
                # Lagging traffic asks for few distinct moments; the oldest goes first.
                del self._snapshots[next(iter(self._snapshots))]
            self._snapshots[key] = snapshot
        return snapshot

    def _prune(self, now_ms: int) -> None:
        cut = bisect_right(self._times, now_ms - self.horizon_ms)
        if cut:
            del self._applied[:cut]
            del self._times[:cut]
            self._dropped += cut
            self._snapshots = {k: v for k, v in self._snapshots.items() if k[1] >= self._dropped}
