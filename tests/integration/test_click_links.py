"""How the edge links a click to its impression (app/edge/links.py): it asks, over
a real TCP connection, the links server (app/streams/links_server.py) that a real
Redis names for the partition of the aimp_id or imp_id. The servers here read
dicts for the table's entries and the index: the ones on RocksDB are
tests/unit/compat/test_indexed_store.py's."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator

import orjson
import pytest
import redis.asyncio as aioredis

from app.attribution.click_links import (
    BY_AIMP_ID,
    BY_IMP_ID,
    NOT_FOUND,
    UNAVAILABLE,
    Link,
    PartitionLinks,
    imp_id_partition,
    link_entries,
)
from app.attribution.link_owners import announce
from app.attribution.links_wire import MAX_LINE_BYTES, ask
from app.edge.links import LINK_TIMEOUT, LinkFinder
from app.events.kinds import RECORDED_ENVELOPE
from app.ids import IdGenerator
from app.ops import probes
from app.streams.links_server import LinksServer
from tests.ids import TEST_SEAL

pytestmark = pytest.mark.integration

PARTITIONS = 4
NOW_MS = 1_800_000_000_000
WINDOW = 3600


class _Partition:
    """One partition as the worker's store holds it: envelope entries of recorded
    impressions (rows by envelope key), and the links index."""

    def __init__(self) -> None:
        self.rows: dict[str, list[dict[str, object]]] = {}
        self.entries: dict[str, bytes] = {}
        self.index: dict[bytes, bytes] = {}

    def links(self) -> PartitionLinks:
        return PartitionLinks(self.entries.get, self.index.get)


Held = dict[int, _Partition]


def _server(held: Held) -> LinksServer:
    def reads_of(partition: int) -> PartitionLinks | None:
        return held[partition].links() if partition in held else None

    (port,) = probes.free_ports(1)
    server = LinksServer(reads_of, TEST_SEAL, "127.0.0.1", port)
    server.start()
    return server


@pytest.fixture
def held() -> Held:
    return {p: _Partition() for p in range(PARTITIONS)}


@pytest.fixture
def server(held: Held) -> Iterator[LinksServer]:
    server = _server(held)
    yield server
    server.stop()


@pytest.fixture
async def finder(client: aioredis.Redis, server: LinksServer) -> AsyncIterator[LinkFinder]:
    await announce(client, range(PARTITIONS), server.address)
    finder = LinkFinder(client, PARTITIONS)
    await finder.start()
    yield finder
    await finder.stop()


def _impression(held: Held, imp_id: str | None, at_ms: int = NOW_MS) -> str:
    """An impression of offer 7 by affiliate 3, stored as the worker's store does: in
    its envelope's entry (the next slot of the envelope of its partition and
    millisecond), and indexed."""
    partition = imp_id_partition(7, 3, imp_id, PARTITIONS) if imp_id else 1
    ids = IdGenerator(TEST_SEAL).open_envelope(partition, now_ms=at_ms)
    stored = held[partition]
    rows = stored.rows.setdefault(ids.key, [])
    aimp_id = ids.id(len(rows))
    rows.append({"aimp_id": aimp_id, "offer_id": 7, "pid": 3, "imp_id": imp_id})
    stored.entries[ids.key] = RECORDED_ENVELOPE.current.encode_rows(rows)
    stored.index.update(link_entries(RECORDED_ENVELOPE.decode(stored.entries[ids.key])))
    return aimp_id


async def _find(
    finder: LinkFinder, aimp_id: str | None, imp_id: str | None, offer_id: int = 7
) -> Link:
    named = None if aimp_id is None else (aimp_id, TEST_SEAL.partition(aimp_id) or 0)
    return await finder.find(offer_id, 3, WINDOW, NOW_MS + 1000, named, imp_id)


async def test_a_click_is_linked_by_aimp_id_else_by_imp_id(finder: LinkFinder, held: Held) -> None:
    with_imp_id = _impression(held, "imp-1")
    without = _impression(held, None)

    assert await _find(finder, with_imp_id, None) == Link(BY_AIMP_ID, with_imp_id, "imp-1")
    assert await _find(finder, without, None) == Link(BY_AIMP_ID, without, None)
    assert await _find(finder, None, "imp-1") == Link(BY_IMP_ID, with_imp_id, "imp-1")
    # The aimp_id wins over another impression's imp_id.
    assert await _find(finder, without, "imp-1") == Link(BY_AIMP_ID, without, None)
    # Another offer's click naming them: not linked.
    assert await _find(finder, with_imp_id, "imp-1", offer_id=8) == Link(NOT_FOUND)
    assert await _find(finder, None, "imp-unknown") == Link(NOT_FOUND)
    assert await _find(finder, None, None) == Link(NOT_FOUND)


async def test_an_impression_past_its_window_is_not_linked(finder: LinkFinder, held: Held) -> None:
    old = _impression(held, "old", at_ms=NOW_MS + 1000 - WINDOW * 1000 - 1)
    edge = _impression(held, "edge", at_ms=NOW_MS + 1000 - WINDOW * 1000)
    assert await _find(finder, old, None) == Link(NOT_FOUND)
    assert await _find(finder, None, "old") == Link(NOT_FOUND)
    assert (await _find(finder, edge, None)).how == BY_AIMP_ID


async def test_each_partition_is_asked_of_the_worker_that_holds_it(
    client: aioredis.Redis, held: Held
) -> None:
    """Two workers, each holding half the partitions: an imp_id's click goes to the
    one holding its hash's partition."""
    halves = [{p: held[p] for p in range(PARTITIONS) if p % 2 == n} for n in (0, 1)]
    servers = [_server(half) for half in halves]
    try:
        for server, half in zip(servers, halves, strict=True):
            await announce(client, half, server.address)
        finder = LinkFinder(client, PARTITIONS)
        await finder.start()
        try:
            found = {imp_id: _impression(held, imp_id) for imp_id in ("a", "b", "c", "d", "e")}
            assert {imp_id_partition(7, 3, i, PARTITIONS) % 2 for i in found} == {0, 1}
            for imp_id, aimp_id in found.items():
                assert await _find(finder, None, imp_id) == Link(BY_IMP_ID, aimp_id, imp_id)
        finally:
            await finder.stop()
    finally:
        for server in servers:
            server.stop()


async def test_a_click_no_worker_answers_for_is_tracked_unavailable(
    client: aioredis.Redis, held: Held
) -> None:
    aimp_id = _impression(held, "imp-1")
    finder = LinkFinder(client, PARTITIONS)
    await finder.start()
    try:
        # Nobody announced the partition.
        assert (await _find(finder, aimp_id, None)).how == UNAVAILABLE
        # A worker that went away.
        (closed,) = probes.free_ports(1)
        await announce(client, range(PARTITIONS), f"127.0.0.1:{closed}")
        await finder.stop()
        finder = LinkFinder(client, PARTITIONS)
        await finder.start()
        assert (await _find(finder, aimp_id, "imp-1")).how == UNAVAILABLE
    finally:
        await finder.stop()


async def test_a_worker_not_holding_the_partition_or_too_slow_gives_unavailable(
    client: aioredis.Redis,
) -> None:
    def slow(partition: int) -> None:
        time.sleep(LINK_TIMEOUT * 4)  # on the server's thread, as a stalled read would be

    (port,) = probes.free_ports(1)
    stalled = LinksServer(slow, TEST_SEAL, "127.0.0.1", port)
    stalled.start()
    not_held = _server({})
    try:
        for server, partitions in ((stalled, [0, 1]), (not_held, [2, 3])):
            await announce(client, partitions, server.address)
        finder = LinkFinder(client, PARTITIONS)
        await finder.start()
        try:
            for imp_id in ("a", "b", "c", "d", "e", "f"):
                started = time.monotonic()
                assert (await _find(finder, None, imp_id)).how == UNAVAILABLE
                assert time.monotonic() - started < LINK_TIMEOUT + 0.5
        finally:
            await finder.stop()
    finally:
        stalled.stop()
        not_held.stop()


async def _lines(server: LinksServer, *lines: bytes) -> list[list[object]]:
    """What the server answers ``lines`` sent together, one answer a line."""
    reader, writer = await asyncio.open_connection(server.host, server.port)
    try:
        writer.write(b"".join(lines))
        return [orjson.loads(await reader.readline()) for _ in lines]
    finally:
        writer.close()


@pytest.mark.parametrize(
    ("line", "error"),
    [
        (b'[1, 256, 7, 3, null, "x"]\n', "partition must be a whole number below 256"),
        (b'[1, 0, "seven", 3, null, "x"]\n', "offer_id must"),
        (b'[1, 0, 7, -3, null, "x"]\n', "pid must"),
        (b"[1, 0, 7, 3, null, 5]\n", "imp_id must be text"),
        (b"[1, 0, 7, 3, null, null]\n", "name the impression"),
        (b"[1, 0, 7]\n", "an ask is [seq, partition"),
        (b"not json\n", "one JSON array a line"),
    ],
)
async def test_a_bad_ask_gets_its_reason_and_the_connection_goes_on(
    server: LinksServer, held: Held, line: bytes, error: str
) -> None:
    aimp_id = _impression(held, "imp-1")
    good = ask(2, TEST_SEAL.partition(aimp_id) or 0, 7, 3, aimp_id, None)
    bad, answered = await _lines(server, line, good)
    assert bad[1] == "bad" and error in str(bad[2]), bad
    assert answered == [2, "ok", BY_AIMP_ID, aimp_id, "imp-1"]


async def test_a_partition_not_held_is_said_and_a_malformed_aimp_id_links_nothing(
    server: LinksServer, held: Held
) -> None:
    del held[3]
    not_held, malformed = await _lines(
        server, ask(5, 3, 7, 3, None, "x"), ask(6, 0, 7, 3, "not-an-id", None)
    )
    assert not_held[:2] == [5, "not_held"] and "partition 3" in str(not_held[2])
    assert malformed == [6, "ok", NOT_FOUND, None, None]


async def test_an_ask_longer_than_a_line_may_be_is_refused_and_the_connection_closed(
    server: LinksServer,
) -> None:
    reader, writer = await asyncio.open_connection(server.host, server.port)
    try:
        writer.write(b"[" + b" " * (MAX_LINE_BYTES + 10))
        refused = orjson.loads(await reader.readline())
        assert refused[1] == "bad" and "longer than" in refused[2]
        assert await reader.read() == b""  # closed
    finally:
        writer.close()
