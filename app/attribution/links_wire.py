"""What the edge and a worker's links server say to each other: one JSON array per
line, over one TCP connection per edge process and worker, many asks in flight.

An HTTP request through aiohttp's client cost the edge about 0.3 ms of its CPU per
click and made the redirect's p99 at 1,000 clicks/s 300 ms (py-spy, bench
click_redirect); a line on a connection kept open costs a few microseconds, and a
worker answers every line that arrived together in one write.

- An ask: ``[seq, partition, offer_id, pid, aimp_id or null, imp_id or null]``.
- Its answer: ``[seq, "ok", how, aimp_id, imp_id]`` (``how`` as in
  app.attribution.click_links.LINKS, the IDs null when not linked),
  ``[seq, "not_held", reason]`` when the partition is not ready on that worker, or
  ``[seq, "bad", reason]`` for an ask that is not one (with seq null when even that
  could not be read).

JSON escapes line breaks inside strings, so a line is always one message.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from app.attribution.click_links import (
    NOT_FOUND,
    Link,
    PartitionLinks,
    linked_by_aimp_id,
    linked_by_imp_id,
)
from app.ids import MAX_PARTITIONS, IdSeal

OK, NOT_HELD, BAD = "ok", "not_held", "bad"
MAX_LINE_BYTES = 16 * 1024
"""An ask is far smaller (the edge bounds an imp_id); a longer line is refused."""

ReadsOf = Callable[[int], PartitionLinks | None]
"""Reads of one partition's impressions and links index, or None when it is not
ready here."""


def complete_lines(buffer: bytes, data: bytes) -> tuple[list[bytes], bytes]:
    """The whole lines of ``buffer`` + ``data`` (what arrived so far), and the part
    of a line still to come: both ends of a connection read this way."""
    *lines, rest = (buffer + data).split(b"\n")
    return lines, rest


def ask(
    seq: int, partition: int, offer_id: int, pid: int, aimp_id: str | None, imp_id: str | None
) -> bytes:
    return orjson.dumps([seq, partition, offer_id, pid, aimp_id, imp_id]) + b"\n"


def _whole(value: Any, name: str, below: int | None = None) -> int:
    if type(value) is not int or value < 0 or (below is not None and value >= below):
        limit = f" below {below}" if below is not None else ""
        raise ValueError(f"{name} must be a whole number{limit}, not {value!r}")
    return value


def _text(value: Any, name: str) -> str | None:
    if value is not None and not isinstance(value, str):
        raise ValueError(f"{name} must be text or null, not {value!r}")
    return value or None


def answer_line(line: bytes, reads_of: ReadsOf, seal: IdSeal) -> bytes:
    """The answer to one ask; ``seal`` tells an ``aimp_id``'s envelope and slot."""
    seq = None
    try:
        try:
            asked = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise ValueError(f"an ask is one JSON array a line, not that: {exc}") from None
        if not isinstance(asked, list) or len(asked) != 6:
            raise ValueError("an ask is [seq, partition, offer_id, pid, aimp_id, imp_id]")
        seq = _whole(asked[0], "seq")
        partition = _whole(asked[1], "partition", MAX_PARTITIONS)
        offer_id, pid = _whole(asked[2], "offer_id"), _whole(asked[3], "pid")
        aimp_id, imp_id = _text(asked[4], "aimp_id"), _text(asked[5], "imp_id")
        if aimp_id is None and imp_id is None:
            raise ValueError("name the impression: aimp_id, imp_id or both")
    except ValueError as exc:
        return orjson.dumps([seq, BAD, str(exc)]) + b"\n"
    links = reads_of(partition)
    if links is None:
        reason = f"partition {partition} of impressions is not ready on this worker"
        return orjson.dumps([seq, NOT_HELD, reason]) + b"\n"
    link = None
    parts = None if aimp_id is None else seal.parts(aimp_id)
    if aimp_id is not None and parts is not None:
        link = linked_by_aimp_id(links, offer_id, pid, aimp_id, parts)
    if link is None and imp_id is not None:
        link = linked_by_imp_id(links, offer_id, pid, imp_id)
    link = link or Link(NOT_FOUND)
    return orjson.dumps([seq, OK, link.how, link.aimp_id, link.imp_id]) + b"\n"


def read_answer(line: bytes) -> tuple[int | None, Link | str]:
    """An answer's seq, and its link, or why there is none."""
    answered = orjson.loads(line)
    if answered[1] == OK:
        return answered[0], Link(answered[2], answered[3], answered[4])
    return answered[0], f"{answered[1]}: {answered[2]}"
