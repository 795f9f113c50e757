"""Rules every piece of text from outside follows, wherever it comes in (pixel and
click parameters, postbacks, catalog names)."""

from __future__ import annotations

CONTROL_CHARS = frozenset(chr(c) for c in (*range(0x20), 0x7F))
"""C0 controls and DEL: in a name or a parameter they break the terminal tables,
CSV exports and log lines they end up in, and no affiliate or advertiser means one."""


def has_control_chars(text: str) -> bool:
    return not CONTROL_CHARS.isdisjoint(text)


def parameter_problem(value: str, max_length: int) -> str | None:
    """What is wrong with ``value`` as a request parameter's text, worded to follow
    the parameter's name ("sub1 is 300 characters long; ..."), or None."""
    if len(value) > max_length:
        return f"is {len(value)} characters long; the limit is {max_length}"
    if has_control_chars(value):
        return "must not contain control characters"
    return None
