"""Rules every piece of text from outside follows, wherever it comes in (pixel and
click parameters, postbacks, catalog names)."""

from __future__ import annotations

CONTROL_CHARS = frozenset(chr(c) for c in (*range(0x20), 0x7F))
"""C0 controls and DEL: in a name or a parameter they break the terminal tables,
CSV exports and log lines they end up in, and no affiliate or advertiser means one."""


def has_control_chars(text: str) -> bool:
    return not CONTROL_CHARS.isdisjoint(text)
