"""The two checks an offer may ask of a postback: a ``secure`` hash made with the
offer's ``postback_token``, and a source address in its ``postback_ip_whitelist``.

``secure`` is the lowercase hex HMAC-SHA256, keyed with the token, of
``"<clickid or aimp_id>:<action_id>"`` (``action_id`` empty when not sent): the
advertiser computes it from values they send anyway, and a captured postback
cannot be replayed for another conversion.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from ipaddress import IPv6Address, ip_address, ip_network


def secure_hash(token: str, identifier: str, action_id: str | None) -> str:
    message = f"{identifier}:{action_id or ''}".encode()
    return hmac.new(token.encode(), message, hashlib.sha256).hexdigest()


def secure_matches(token: str, identifier: str, action_id: str | None, sent: str | None) -> bool:
    """Constant-time comparison, so the hash cannot be guessed byte by byte."""
    if not sent:
        return False
    expected = secure_hash(token, identifier, action_id)
    return hmac.compare_digest(expected, sent.lower())


def ip_allowed(address: str, whitelist: Iterable[str]) -> bool:
    """Whether ``address`` is in one of the networks; an empty whitelist allows all."""
    networks = [ip_network(n, strict=False) for n in whitelist]
    if not networks:
        return True
    try:
        ip = ip_address(address)
    except ValueError:
        return False
    if isinstance(ip, IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip in network for network in networks)
