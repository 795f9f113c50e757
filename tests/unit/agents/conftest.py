"""Agents tested alone (Faust's ``agent.test_context()``): no broker, no Redis.

Each agent is declared on a worker app of its own with in-memory tables. Its output
topics are in-memory Faust channels (:class:`ChannelTopics`), read back by the test;
the catalog is a fixed one (:class:`FixedCatalog`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import faust
import pytest

from app.catalog.model import Catalog
from app.events.kinds import EVENTS, EventKind
from app.events.topics import EventTopics
from app.settings import Settings
from app.streams.faust_app import Role, build_faust_app
from tables import WorkerTables, declare_tables


class FixedCatalog:
    """A catalog loaded once and current at every moment."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self.ready = asyncio.Event()
        self.ready.set()

    def catalog_at(self, moment_ms: int) -> Catalog:
        return self.catalog

    async def wait_current(self, moment_ms: int, within: float) -> bool:
        return True


class ChannelTopics(EventTopics):
    """Each event kind as an in-memory channel of ``app``; what an agent sends to a
    kind is kept in order, with its headers and the partition it named (None: the
    key's), for the test to read."""

    def __init__(self, app: faust.App) -> None:
        self.sent: dict[str, list[tuple[Any, Any]]] = {kind.topic: [] for kind in EVENTS}
        self.headers: dict[str, list[Any]] = {kind.topic: [] for kind in EVENTS}
        self.partitions: dict[str, list[int | None]] = {kind.topic: [] for kind in EVENTS}
        self._channels = {
            kind.topic: _Recording(
                app, self.sent[kind.topic], self.headers[kind.topic], self.partitions[kind.topic]
            )
            for kind in EVENTS
        }

    def __getitem__(self, kind: EventKind) -> Any:
        return self._channels[kind.topic]

    def values(self, kind: EventKind) -> list[Any]:
        return [value for _, value in self.sent[kind.topic]]

    def rows(self, kind: EventKind) -> list[dict[str, Any]]:
        """Every event sent of a kind carried in envelopes, as a dict, in order."""
        return [row for value in self.values(kind) for row in kind.enveloped.decode(value).rows()]


class _Recording(faust.Channel):  # type: ignore[misc]
    """A channel that keeps what is sent to it: ``await send(key=, value=)`` gives a
    future done once the record is "on the broker" (here: at once)."""

    def __init__(
        self,
        app: faust.App,
        sent: list[tuple[Any, Any]],
        headers: list[Any],
        partitions: list[int | None],
    ) -> None:
        super().__init__(app)
        self._sent = sent
        self._headers = headers
        self._partitions = partitions

    async def send(
        self,
        *,
        key: Any = None,
        value: Any = None,
        headers: Any = None,
        partition: int | None = None,
        **_: Any,
    ) -> Any:
        self._sent.append((key, value))
        self._headers.append(headers)
        self._partitions.append(partition)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


class Worker:
    def __init__(self, app: faust.App, topics: ChannelTopics, tables: WorkerTables) -> None:
        self.app, self.topics, self.tables = app, topics, tables


@pytest.fixture
def worker(tmp_path: Path) -> Worker:
    """A worker app as the factory builds it, with in-memory tables; its input
    channels are the agents' test contexts'."""
    settings = Settings.from_env({"IMPTRACK_HOME": str(tmp_path)})
    app = build_faust_app(
        settings, Role("agents-test", tmp_path / "worker", 65000, "at_least_once")
    )
    app.conf.store = "memory://"
    tables = declare_tables(app)
    return Worker(app, ChannelTopics(app), tables)


async def settled(done: Callable[[], bool], seconds: float = 10.0) -> None:
    """Wait until ``done()``: an agent taking batches (``take_events``) handles a
    batch once its window closes, after ``put`` returned."""
    async with asyncio.timeout(seconds):
        while not done():  # noqa: ASYNC110 - a condition of the agent under test, no event to await
            await asyncio.sleep(0.01)
