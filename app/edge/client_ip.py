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
    ua = request.headers.get("User-Agent")
    return ua[:MAX_USER_AGENT_LENGTH] if ua else None
