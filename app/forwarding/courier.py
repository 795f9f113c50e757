"""One HTTP attempt at a destination URL, and what it observed.

A single ``aiohttp`` session per forwarder process keeps connections alive between
deliveries. Redirects are followed here rather than by aiohttp, so the address
policy sees every hop: aiohttp connects to IP literals without consulting the
resolver, and a redirect to ``http://169.254.169.254/`` must be refused as surely
as the first URL.
"""

from __future__ import annotations

import asyncio
import time
from functools import lru_cache

import aiohttp
from yarl import URL

from app.catalog.destination_addresses import AddressPolicy, AddressRefused, GuardedResolver
from app.forwarding.outcomes import AttemptResult, from_status, parse_retry_after
from app.settings import ForwardingSettings

MAX_REDIRECTS = 5
REDIRECTS = frozenset({301, 302, 303, 307, 308})
# Destinations answer pixels; their bodies are read (to keep the connection
# reusable) up to this much, and dropped.
MAX_BODY_BYTES = 64 * 1024
USER_AGENT = "imptrack-forwarder/1"
LITERAL_CACHE_SIZE = 4096


class _Unsendable(Exception):
    """The URL itself is wrong: no later attempt can succeed."""


class Courier:
    def __init__(self, settings: ForwardingSettings) -> None:
        self.settings = settings
        self.policy = AddressPolicy(settings.allowed_networks)
        # The policy is fixed for the process and a host is checked before every
        # request: parsing and matching an address each time was a twentieth of a
        # delivery's CPU.
        self._literal_refusal = lru_cache(maxsize=LITERAL_CACHE_SIZE)(self.policy.literal_refusal)
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(
            limit=self.settings.concurrency,
            limit_per_host=self.settings.host_concurrency,
            resolver=GuardedResolver(self.policy),
            ttl_dns_cache=60,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=self.settings.connect_timeout),
            headers={"User-Agent": USER_AGENT},
            # Each cookie an advertiser sets would otherwise go to every later delivery.
            cookie_jar=aiohttp.DummyCookieJar(),
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def attempt(self, url: str) -> AttemptResult:
        started = time.perf_counter()

        def took() -> float:
            return round((time.perf_counter() - started) * 1000, 3)

        timeout = self.settings.timeout
        try:
            async with asyncio.timeout(timeout):
                status, retry_after = await self._follow(url)
        except AddressRefused as exc:
            return AttemptResult(None, f"refused: {exc}", took(), retryable=False, blocked=True)
        except _Unsendable as exc:
            return AttemptResult(None, str(exc), took(), retryable=False)
        except TimeoutError:
            return AttemptResult(None, f"timed out after {timeout:g} s", took(), retryable=True)
        except (aiohttp.InvalidURL, ValueError) as exc:
            # yarl refuses some URLs (a port out of range, a broken IPv6 host) with a
            # plain ValueError; no later attempt can do better.
            return AttemptResult(None, f"invalid URL: {exc}", took(), retryable=False)
        except (aiohttp.ClientError, OSError) as exc:
            reason = str(exc) or type(exc).__name__
            return AttemptResult(None, f"connection error: {reason}", took(), retryable=True)
        return from_status(status, took(), retry_after)

    async def _follow(self, url: str) -> tuple[int, float | None]:
        if self._session is None:
            raise RuntimeError("Courier.start() was not called")
        # The URL was encoded when it was filled; yarl must send it exactly so.
        target = URL(url, encoded=True)
        for _ in range(MAX_REDIRECTS + 1):
            if target.scheme not in ("http", "https") or not target.host:
                raise _Unsendable(f"not an http(s) URL: {str(target)[:200]}")
            refusal = self._literal_refusal(target.host)
            if refusal is not None:
                raise AddressRefused(refusal)
            async with self._session.get(target, allow_redirects=False) as response:
                await _drain(response)
                location = response.headers.get("Location")
                if response.status not in REDIRECTS or not location:
                    return response.status, parse_retry_after(response.headers.get("Retry-After"))
            target = target.join(URL(location))
        raise _Unsendable(f"more than {MAX_REDIRECTS} redirects")


async def _drain(response: aiohttp.ClientResponse) -> None:
    read = 0
    async for chunk in response.content.iter_chunked(16 * 1024):
        read += len(chunk)
        if read > MAX_BODY_BYTES:
            response.close()  # not worth reading; the connection is dropped
            return
