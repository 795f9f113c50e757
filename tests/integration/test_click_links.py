"""How the edge links a click to its impression (app/edge/links.py): it asks, over
real HTTP, the links server (app/streams/links_server.py) that a real Redis names
for the partition of the aimp_id or imp_id. The servers here read a dict for their
index: the index on RocksDB is tests/unit/compat/test_linked_store.py's."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator

import aiohttp
import pytest
import redis.asyncio as aioredis

from app.attribution.click_links import (
    BY_AIMP_ID,
    BY_IMP_ID,
    NOT_FOUND,
    UNAVAILABLE,
    Link,
    aimp_entry_key,
    imp_entry_key,
    imp_id_partition,
)
from app.attribution.link_owners import announce
from app.edge.links import LINK_TIMEOUT, LinkFinder
from app.ids import IdGenerator
from app.ops import probes
from app.streams.links_server import LinksServer
from tests.ids import TEST_SEAL

pytestmark = pytest.mark.integration

PARTITIONS = 4
NOW_MS = 1_800_000_000_000
WINDOW = 3600


def _server(index: dict[int, dict[bytes, bytes]]) -> LinksServer:
    (port,) = probes.free_ports(1)
    server = LinksServer(lambda p: index[p].get if p in index else None, "127.0.0.1", port)
    server.start()
    return server


@pytest.fixture
def index() -> dict[int, dict[bytes, bytes]]:
    return {p: {} for p in range(PARTITIONS)}


@pytest.fixture
def server(index: dict[int, dict[bytes, bytes]]) -> Iterator[LinksServer]:
    server = _server(index)
    yield server
    server.stop()


@pytest.fixture
async def finder(client: aioredis.Redis, server: LinksServer) -> AsyncIterator[LinkFinder]:
    await announce(client, range(PARTITIONS), server.url)
    finder = LinkFinder(client, PARTITIONS)
    await finder.start()
    yield finder
    await finder.stop()


def _impression(
    index: dict[int, dict[bytes, bytes]], imp_id: str | None, at_ms: int = NOW_MS
) -> str:
    """An impression of offer 7 by affiliate 3, indexed as the worker's store does."""
    partition = imp_id_partition(7, 3, imp_id, PARTITIONS) if imp_id else 1
    aimp_id = IdGenerator(TEST_SEAL).open_envelope(partition, now_ms=at_ms).id(0)
    index[partition][aimp_entry_key(aimp_id)] = f"7:3:{imp_id or ''}".encode()
    if imp_id:
        index[partition][imp_entry_key(7, 3, imp_id)] = aimp_id.encode()
    return aimp_id


async def _find(
    finder: LinkFinder, aimp_id: str | None, imp_id: str | None, offer_id: int = 7
) -> Link:
    named = None if aimp_id is None else (aimp_id, TEST_SEAL.partition(aimp_id) or 0)
    return await finder.find(offer_id, 3, WINDOW, NOW_MS + 1000, named, imp_id)


async def test_a_click_is_linked_by_aimp_id_else_by_imp_id(
    finder: LinkFinder, index: dict[int, dict[bytes, bytes]]
) -> None:
    with_imp_id = _impression(index, "imp-1")
    without = _impression(index, None)

    assert await _find(finder, with_imp_id, None) == Link(BY_AIMP_ID, with_imp_id, "imp-1")
    assert await _find(finder, without, None) == Link(BY_AIMP_ID, without, None)
    assert await _find(finder, None, "imp-1") == Link(BY_IMP_ID, with_imp_id, "imp-1")
    # The aimp_id wins over another impression's imp_id.
    assert await _find(finder, without, "imp-1") == Link(BY_AIMP_ID, without, None)
    # Another offer's click naming them: not linked.
    assert await _find(finder, with_imp_id, "imp-1", offer_id=8) == Link(NOT_FOUND)
    assert await _find(finder, None, "imp-unknown") == Link(NOT_FOUND)
    assert await _find(finder, None, None) == Link(NOT_FOUND)


async def test_an_impression_past_its_window_is_not_linked(
    finder: LinkFinder, index: dict[int, dict[bytes, bytes]]
) -> None:
    old = _impression(index, "old", at_ms=NOW_MS + 1000 - WINDOW * 1000 - 1)
    edge = _impression(index, "edge", at_ms=NOW_MS + 1000 - WINDOW * 1000)
    assert await _find(finder, old, None) == Link(NOT_FOUND)
    assert await _find(finder, None, "old") == Link(NOT_FOUND)
    assert (await _find(finder, edge, None)).how == BY_AIMP_ID


async def test_each_partition_is_asked_of_the_worker_that_holds_it(
    client: aioredis.Redis, index: dict[int, dict[bytes, bytes]]
) -> None:
    """Two workers, each holding half the partitions: an imp_id's click goes to the
    one holding its hash's partition."""
    halves = [{p: index[p] for p in range(PARTITIONS) if p % 2 == n} for n in (0, 1)]
    servers = [_server(half) for half in halves]
    try:
        for server, half in zip(servers, halves, strict=True):
            await announce(client, half, server.url)
        finder = LinkFinder(client, PARTITIONS)
        await finder.start()
        try:
            found = {imp_id: _impression(index, imp_id) for imp_id in ("a", "b", "c", "d", "e")}
            assert {imp_id_partition(7, 3, i, PARTITIONS) % 2 for i in found} == {0, 1}
            for imp_id, aimp_id in found.items():
                assert await _find(finder, None, imp_id) == Link(BY_IMP_ID, aimp_id, imp_id)
        finally:
            await finder.stop()
    finally:
        for server in servers:
            server.stop()


async def test_a_click_no_worker_answers_for_is_tracked_unavailable(
    client: aioredis.Redis, index: dict[int, dict[bytes, bytes]]
) -> None:
    aimp_id = _impression(index, "imp-1")
    finder = LinkFinder(client, PARTITIONS)
    await finder.start()
    try:
        # Nobody announced the partition.
        assert (await _find(finder, aimp_id, None)).how == UNAVAILABLE
        # A worker that went away.
        (closed,) = probes.free_ports(1)
        await announce(client, range(PARTITIONS), f"http://127.0.0.1:{closed}")
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
    stalled = LinksServer(slow, "127.0.0.1", port)
    stalled.start()
    not_held = _server({})
    try:
        for server, partitions in ((stalled, [0, 1]), (not_held, [2, 3])):
            await announce(client, partitions, server.url)
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


@pytest.mark.parametrize(
    ("query", "error"),
    [
        ({"offer_id": "7", "pid": "3", "imp_id": "x"}, "partition must be a whole number below"),
        ({"partition": "256", "offer_id": "7", "pid": "3", "imp_id": "x"}, "below 256"),
        ({"partition": "0", "offer_id": "seven", "pid": "3", "imp_id": "x"}, "offer_id must"),
        ({"partition": "0", "offer_id": "7", "pid": "-3", "imp_id": "x"}, "pid must"),
        ({"partition": "0", "offer_id": "7", "pid": "3"}, "name the impression"),
    ],
)
async def test_a_bad_links_query_gets_400_with_what_was_wrong(
    server: LinksServer, query: dict[str, str], error: str
) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{server.url}/links", params=query) as response,
    ):
        assert response.status == 400
        assert error in (await response.json())["error"]


async def test_a_partition_not_held_gets_421_and_a_malformed_aimp_id_no_link(
    server: LinksServer, index: dict[int, dict[bytes, bytes]]
) -> None:
    del index[3]
    async with aiohttp.ClientSession() as session:
        query = {"partition": "3", "offer_id": "7", "pid": "3", "imp_id": "x"}
        async with session.get(f"{server.url}/links", params=query) as response:
            assert response.status == 421
            assert "partition 3" in (await response.json())["error"]
        query = {"partition": "0", "offer_id": "7", "pid": "3", "aimp_id": "not-an-id"}
        async with session.get(f"{server.url}/links", params=query) as response:
            assert response.status == 200
            assert (await response.json())["how"] == NOT_FOUND
