"""Validation of the query parameters affiliates send to the edge.

Bounds (documented in the README): IDs are decimal integers from 1 to 2**31-1;
``imp_id`` is at most 128 characters and each ``sub1..sub8`` at most 255; no value
may hold control characters, and no parameter may be given twice (the edge would
otherwise have to guess which one the affiliate meant).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from multidict import MultiMapping

from app.catalog.model import MAX_ID
from app.events.records import SUB_FIELDS
from app.exceptions import InvalidParameter
from app.ids import is_valid_id
from app.text_rules import parameter_problem

MAX_IMP_ID_LENGTH = 128
MAX_SUB_LENGTH = 255


@dataclass(frozen=True, slots=True)
class PixelRequest:
    offer_id: int
    pid: int
    imp_id: str | None
    subs: Mapping[str, str]


def _single(query: MultiMapping[str], name: str) -> str | None:
    values = query.getall(name, ())
    if len(values) > 1:
        raise InvalidParameter(name, "is given more than once; send it once")
    return values[0] if values else None


def _positive_id(query: MultiMapping[str], name: str) -> int:
    raw = _single(query, name)
    if raw is None or raw == "":
        raise InvalidParameter(name, "is required")
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 10:
        raise InvalidParameter(name, f"must be a whole number from 1 to {MAX_ID}")
    value = int(raw)
    if not 1 <= value <= MAX_ID:
        raise InvalidParameter(name, f"must be a whole number from 1 to {MAX_ID}")
    return value


def _text(query: MultiMapping[str], name: str, max_length: int) -> str | None:
    raw = _single(query, name)
    if raw is None or raw == "":
        return None
    if (problem := parameter_problem(raw, max_length)) is not None:
        raise InvalidParameter(name, problem)
    return raw


@dataclass(frozen=True, slots=True)
class ClickRequest:
    offer_id: int
    pid: int
    imp_id: str | None
    aimp_id: str | None
    subs: Mapping[str, str]


def parse_click(query: MultiMapping[str]) -> ClickRequest:
    """What ``GET /click`` reads: the pixel's parameters and an optional ``aimp_id``."""
    pixel = parse_pixel(query)
    aimp_id = _single(query, "aimp_id") or None
    if aimp_id is not None and not is_valid_id(aimp_id):
        raise InvalidParameter(
            "aimp_id", "must be the 24-character lowercase hex ID of an impression"
        )
    return ClickRequest(pixel.offer_id, pixel.pid, pixel.imp_id, aimp_id, pixel.subs)


def parse_pixel(query: MultiMapping[str]) -> PixelRequest:
    """Read ``offer_id``, ``pid``, ``imp_id`` and ``sub1..sub8``; unknown parameters
    (cache busters and the like) are ignored."""
    offer_id = _positive_id(query, "offer_id")
    pid = _positive_id(query, "pid")
    imp_id = _text(query, "imp_id", MAX_IMP_ID_LENGTH)
    subs = {}
    for name in SUB_FIELDS:
        value = _text(query, name, MAX_SUB_LENGTH)
        if value is not None:
            subs[name] = value
    return PixelRequest(offer_id=offer_id, pid=pid, imp_id=imp_id, subs=subs)
