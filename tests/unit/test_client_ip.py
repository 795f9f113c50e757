"""Which address is the client's (pure logic over a request)."""

from __future__ import annotations

from aiohttp.test_utils import make_mocked_request

from app.edge.client_ip import MAX_USER_AGENT_LENGTH, client_ip, user_agent


def _request(headers: dict[str, str]) -> object:
    return make_mocked_request("GET", "/imp", headers=headers)


def test_forwarded_for_is_ignored_without_trusted_proxies() -> None:
    """By default a client cannot choose its recorded IP through X-Forwarded-For."""
    request = _request({"X-Forwarded-For": "198.51.100.7"})
    assert client_ip(request, trusted_proxy_hops=0) == request.remote  # type: ignore[arg-type,attr-defined]


def test_one_trusted_proxy_means_the_rightmost_entry() -> None:
    """Entries left of what our proxy appended were written by the client and are skipped."""
    request = _request({"X-Forwarded-For": "6.6.6.6, 198.51.100.7"})
    assert client_ip(request, trusted_proxy_hops=1) == "198.51.100.7"  # type: ignore[arg-type]


def test_two_trusted_proxies() -> None:
    request = _request({"X-Forwarded-For": "6.6.6.6, 198.51.100.7, 10.0.0.2"})
    assert client_ip(request, trusted_proxy_hops=2) == "198.51.100.7"  # type: ignore[arg-type]


def test_garbage_in_forwarded_for_falls_back_to_the_peer() -> None:
    request = _request({"X-Forwarded-For": "not-an-ip"})
    assert client_ip(request, trusted_proxy_hops=1) == request.remote  # type: ignore[arg-type,attr-defined]


def test_long_user_agents_are_cut() -> None:
    request = _request({"User-Agent": "u" * 5000})
    assert len(user_agent(request) or "") == MAX_USER_AGENT_LENGTH  # type: ignore[arg-type]
