"""Which addresses a destination URL may reach: never the network's own inside.

A destination is an advertiser's URL, but its host is ours to resolve; without this
check an offer (or a macro in its host) could make the forwarder call loopback,
private or link-local services, e.g. a cloud metadata endpoint. The check runs on
every address a name resolves to, at connect time (see :class:`GuardedResolver`),
so a DNS answer that changes after the offer was saved is checked too.
"""

from __future__ import annotations

import socket
from collections.abc import Sequence
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

Network = IPv4Network | IPv6Network
Address = IPv4Address | IPv6Address


SHARED_ADDRESS_SPACE = IPv4Network("100.64.0.0/10")
NAT64 = IPv6Network("64:ff9b::/96")


def _inner_ipv4(ip: Address) -> Address:
    """The IPv4 address an IPv6 one carries, where the network would deliver it there:
    IPv4-mapped (::ffff:10.0.0.1), 6to4 (2002:a9fe:a9fe::), Teredo (its client) and
    NAT64 (64:ff9b::a9fe:a9fe); otherwise the address itself."""
    if isinstance(ip, IPv4Address):
        return ip
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if ip in NAT64:
        return IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip


class AddressRefused(Exception):
    """A destination resolves only to addresses the forwarder may not call."""


class AddressPolicy:
    def __init__(self, allowed: Sequence[Network] = ()) -> None:
        self.allowed = tuple(allowed)

    def refusal(self, address: str) -> str | None:
        """Why ``address`` may not be called, or None when it may."""
        ip = _inner_ipv4(ip_address(address))
        if any(ip in network for network in self.allowed):
            return None
        for kind, flag in (
            ("unspecified", ip.is_unspecified),
            ("loopback", ip.is_loopback),
            ("link-local", ip.is_link_local),
            ("private", ip.is_private),
            ("multicast", ip.is_multicast),
            ("reserved", ip.is_reserved),
            # 100.64.0.0/10, carrier-grade NAT: inside some clouds (one serves its
            # instance metadata at 100.100.100.200), and neither private nor global.
            ("shared (carrier-grade NAT)", ip in SHARED_ADDRESS_SPACE),
            ("non-global", not ip.is_global),
        ):
            if flag:
                return (
                    f"{address} is a {kind} address; destinations there are refused "
                    "unless FORWARD_ALLOWED_NETWORKS lists it"
                )
        return None

    def literal_refusal(self, host: str) -> str | None:
        """Why a URL whose host is ``host`` may not be called, when the host is an IP
        address the policy refuses; None for an allowed address or a name (what a
        name resolves to is checked at connect time)."""
        try:
            return self.refusal(host.strip("[]"))
        except ValueError:
            return None

    def check_literal(self, host: str) -> None:
        """Refuse a URL whose host is an IP address the policy does not allow.

        aiohttp connects to IP literals without asking the resolver, so they are
        checked here, before each request.
        """
        refusal = self.literal_refusal(host)
        if refusal is not None:
            raise AddressRefused(refusal)


class GuardedResolver(AbstractResolver):
    """Resolves as aiohttp does, then drops every address the policy refuses."""

    def __init__(self, policy: AddressPolicy, inner: AbstractResolver | None = None) -> None:
        self.policy = policy
        self.inner = inner or DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self.inner.resolve(host, port, family)
        kept = [r for r in results if self.policy.refusal(r["host"]) is None]
        if not kept:
            reasons = "; ".join(str(self.policy.refusal(r["host"])) for r in results)
            raise AddressRefused(f"{host} resolves to refused addresses only: {reasons}")
        return kept

    async def close(self) -> None:
        await self.inner.close()
