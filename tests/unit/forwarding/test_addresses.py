"""Which destination addresses the forwarder may call."""

from __future__ import annotations

import socket
from ipaddress import ip_network

import pytest
from aiohttp.abc import AbstractResolver, ResolveResult

from app.catalog.destination_addresses import AddressPolicy, AddressRefused, GuardedResolver


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("127.9.9.9", "loopback"),
        ("::1", "loopback"),
        ("10.0.0.1", "private"),
        ("172.16.5.4", "private"),
        ("192.168.1.1", "private"),
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("fc00::1", "private"),
        ("0.0.0.0", "unspecified"),
        ("::ffff:10.0.0.1", "private"),  # an IPv4-mapped IPv6 address is its IPv4 one
        ("::ffff:127.0.0.1", "loopback"),
        # Carrier-grade NAT space: one cloud's metadata service answers at 100.100.100.200.
        ("100.100.100.200", "shared (carrier-grade NAT)"),
        ("100.64.0.1", "shared (carrier-grade NAT)"),
        # IPv4 addresses carried in IPv6 ones are judged as the IPv4 address.
        ("2002:a9fe:a9fe::1", "link-local"),  # 6to4 of 169.254.169.254
        ("64:ff9b::a9fe:a9fe", "link-local"),  # NAT64 of 169.254.169.254
        ("64:ff9b::7f00:1", "loopback"),  # NAT64 of 127.0.0.1
        ("2001:0:4136:e378:8000:63bf:f5ff:fffe", "private"),  # Teredo, client 10.0.0.1
        ("198.18.0.1", "private"),  # benchmarking networks
        ("240.0.0.1", "private"),  # future use (class E)
        ("2001:db8::1", "private"),  # documentation
    ],
)
def test_inside_addresses_are_refused(address: str, kind: str) -> None:
    refusal = AddressPolicy().refusal(address)
    assert refusal is not None and f"a {kind} address" in refusal


@pytest.mark.parametrize(
    "address",
    [
        "93.184.216.34",
        "8.8.8.8",
        "100.128.0.1",  # just past the shared space
        "2606:4700:4700::1111",
        "2002:5db8:d822::1",  # 6to4 of 93.184.216.34
        "64:ff9b::808:808",  # NAT64 of 8.8.8.8
    ],
)
def test_public_addresses_are_allowed(address: str) -> None:
    assert AddressPolicy().refusal(address) is None


def test_configured_networks_are_allowed_and_nothing_else() -> None:
    policy = AddressPolicy([ip_network("127.0.0.1/32"), ip_network("10.20.0.0/16")])
    assert policy.refusal("127.0.0.1") is None
    assert policy.refusal("10.20.3.4") is None
    assert policy.refusal("::ffff:127.0.0.1") is None
    assert policy.refusal("127.0.0.2") is not None
    assert policy.refusal("10.21.0.1") is not None


def test_ip_literals_are_checked_before_the_request_and_names_are_left_to_the_resolver() -> None:
    policy = AddressPolicy()
    with pytest.raises(AddressRefused, match=r"10\.0\.0\.1 is a private address"):
        policy.check_literal("10.0.0.1")
    with pytest.raises(AddressRefused, match="loopback"):
        policy.check_literal("[::1]")
    policy.check_literal("advertiser.example")
    policy.check_literal("93.184.216.34")


class _Fixed(AbstractResolver):
    """Answers with fixed addresses: the resolver under test only filters them."""

    def __init__(self, *addresses: str) -> None:
        self.addresses = addresses

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        return [
            ResolveResult(hostname=host, host=a, port=port, family=family, proto=0, flags=0)
            for a in self.addresses
        ]

    async def close(self) -> None:
        pass


async def test_the_resolver_drops_refused_addresses() -> None:
    resolver = GuardedResolver(AddressPolicy(), _Fixed("10.0.0.5", "93.184.216.34"))
    kept = await resolver.resolve("mixed.example", 80)
    assert [r["host"] for r in kept] == ["93.184.216.34"]


async def test_a_name_resolving_only_inside_is_refused() -> None:
    resolver = GuardedResolver(AddressPolicy(), _Fixed("127.0.0.1", "::1"))
    with pytest.raises(AddressRefused, match=r"localhost\.example resolves to refused addresses"):
        await resolver.resolve("localhost.example", 80)
