"""The client's IP address, trusting ``X-Forwarded-For`` only as far as configured."""

from __future__ import annotations

import ipaddress

from aiohttp import web

MAX_USER_AGENT_LENGTH = 512


def client_ip(request: web.Request, trusted_proxy_hops: int) -> str | None:
    """With N trusted proxies in front of the edge, the client is the Nth address
    from the right of ``X-Forwarded-For``: anything further left was written by the
    client itself and can be forged."""
    if trusted_proxy_hops > 0:
        forwarded = request.headers.getall("X-Forwarded-For", [])
        hops = [hop.strip() for header in forwarded for hop in header.split(",")]
        if len(hops) >= trusted_proxy_hops:
            candidate = hops[-trusted_proxy_hops]
            try:
                return str(ipaddress.ip_address(candidate))
            except ValueError:
                pass
    return request.remote


def user_agent(request: web.Request) -> str | None:
    """The ``User-Agent``, cut to its stored length; bytes that are not UTF-8 become
    U+FFFD (aiohttp keeps them as lone surrogates, which no JSON encoder takes)."""
    ua = request.headers.get("User-Agent")
    if not ua:
        return None
    text = ua.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return text[:MAX_USER_AGENT_LENGTH]
