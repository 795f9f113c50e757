"""Reading Redis replies: imptrack's clients do not decode them, so text stored in
Redis (the click index, the delivery schedule) comes back as bytes."""

from __future__ import annotations


def reply_text(value: str | bytes) -> str:
    """A reply as text: bytes decoded as UTF-8, text (a client that decodes) as it is."""
    return value.decode() if isinstance(value, bytes) else value
