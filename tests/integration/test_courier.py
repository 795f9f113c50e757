"""One delivery attempt against real local servers: keep-alive, timeouts, connection
errors, redirects and Retry-After."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Iterator

import pytest

from app.forwarding.courier import MAX_REDIRECTS, Courier
from app.settings import Settings
from demo.advertiser import LocalAdvertiser

pytestmark = pytest.mark.integration


def _answer(path: str, params: dict[str, list[str]], asked: int) -> int:
    if path == "/hop":
        return 302
    if path == "/busy":
        return 429
    return 200


@pytest.fixture(scope="module")
def server() -> Iterator[LocalAdvertiser]:
    advertiser = LocalAdvertiser(_answer).start()
    yield advertiser
    advertiser.stop()


@pytest.fixture
async def courier() -> AsyncIterator[Courier]:
    base = Settings.from_env({"FORWARD_ALLOWED_NETWORKS": "127.0.0.1/32"}).forwarding
    courier = Courier(dataclasses.replace(base, timeout=0.5, connect_timeout=0.5))
    await courier.start()
    yield courier
    await courier.close()


async def test_connections_are_kept_alive_between_deliveries(
    courier: Courier, server: LocalAdvertiser
) -> None:
    for n in range(20):
        result = await courier.attempt(server.url(f"/keep?a=k{n}"))
        assert result.status == 200
    peers = {r.peer for r in server.requests("/keep")}
    assert len(peers) == 1  # twenty requests, one connection


async def test_a_destination_that_never_answers_times_out_and_is_retryable(
    courier: Courier,
) -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(65536)
        await asyncio.sleep(5)
        writer.close()

    listener = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    try:
        result = await courier.attempt(f"http://127.0.0.1:{port}/imp")
    finally:
        listener.close()
    assert result.retryable and result.status is None
    assert result.error == "timed out after 0.5 s"
    assert 450 <= result.latency_ms < 2000


async def test_a_refused_connection_is_retryable(courier: Courier) -> None:
    listener = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    listener.close()
    await listener.wait_closed()
    result = await courier.attempt(f"http://127.0.0.1:{port}/imp")
    assert result.retryable and result.status is None
    assert result.error is not None and result.error.startswith("connection error:")


async def test_redirects_are_followed_to_the_final_answer_and_loops_end(
    courier: Courier, server: LocalAdvertiser
) -> None:
    landing = server.url("/landed")
    result = await courier.attempt(server.url(f"/hop?a=r1&to={landing}"))
    assert result.status == 200
    looped = await courier.attempt(server.url("/hop?a=loop"))
    assert looped.status is None and not looped.retryable
    assert looped.error == f"more than {MAX_REDIRECTS} redirects"


async def test_429_is_retryable(courier: Courier, server: LocalAdvertiser) -> None:
    result = await courier.attempt(server.url("/busy?a=b"))
    assert result.status == 429 and result.retryable


async def test_a_url_that_is_not_http_is_final(courier: Courier) -> None:
    result = await courier.attempt("ftp://127.0.0.1/x")
    assert not result.retryable and result.error is not None


@pytest.mark.parametrize("url", ["http://127.0.0.1:99999/x", "http://[::1/x"])
async def test_a_url_nobody_can_request_is_final_not_retried(courier: Courier, url: str) -> None:
    result = await courier.attempt(url)
    assert not result.retryable and result.status is None
    assert result.error is not None
