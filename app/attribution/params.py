"""Reading a postback's parameters, with a precise message for each thing wrong.

An advertiser's engineer reads these messages in the ``error`` of a status-2 answer
and in the Server postbacks slice, so each names the parameter and what it holds.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from enum import StrEnum

from app.events.statuses import ConversionStatus
from app.ids import IdSeal, is_valid_id
from app.text_rules import parameter_problem

CUSTOM_FIELDS = tuple(f"custom_field{n}" for n in range(1, 8))
MAX_TEXT_LENGTH = 255
MAX_SUM = Decimal("1000000000")
MAX_PARAMETERS = 64
MAX_NAME_LENGTH = 64
MAX_KEPT_VALUE_LENGTH = 1024
"""Bounds on what is kept of a postback's parameters for the Server postbacks slice."""
NO_ID = "neither clickid nor aimp_id is given; send one of them"


class RefusalKind(StrEnum):
    """What kind of error refused a postback: a bounded set, for counting (the
    metrics' ``error_kind``), beside the message that says exactly what was wrong."""

    MISSING_ID = "missing_id"
    BAD_PARAMETER = "bad_parameter"
    NOT_ISSUED = "not_issued"
    UNKNOWN_ID = "unknown_id"
    EXPIRED = "expired"
    OFFER_NOT_ACTIVE = "offer_not_active"
    IP_NOT_ALLOWED = "ip_not_allowed"
    BAD_SECURE = "bad_secure"
    GOAL_NOT_PAID = "goal_not_paid"
    DUPLICATE = "duplicate"
    UNREADABLE = "unreadable"
    """The edge could not read the request (app/edge/postback.py, ``problem``)."""


class PostbackRefused(Exception):
    """The postback cannot be accepted; ``str(exc)`` says why, for the advertiser, and
    ``kind`` what kind of error that is."""

    def __init__(self, message: str, kind: RefusalKind) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class PostbackRequest:
    clickid: str | None
    aimp_id: str | None
    action_id: str | None
    goal: str
    sum: Decimal | None
    status: ConversionStatus
    secure: str | None
    custom_fields: dict[str, str] = field(default_factory=dict)

    @property
    def matched_by(self) -> str:
        """Which ID identifies what converted: a click beats an impression."""
        return "clickid" if self.clickid else "aimp_id"

    @property
    def matched_id(self) -> str:
        """The ID named by :attr:`matched_by`."""
        matched = self.clickid or self.aimp_id
        if matched is None:
            raise PostbackRefused(NO_ID, RefusalKind.MISSING_ID)
        return matched


def _text(params: Mapping[str, str], name: str) -> str | None:
    value = params.get(name)
    if value is None or value == "":
        return None
    if (problem := parameter_problem(value, MAX_TEXT_LENGTH)) is not None:
        raise PostbackRefused(f"{name} {problem}", RefusalKind.BAD_PARAMETER)
    return value


def _id(params: Mapping[str, str], name: str) -> str | None:
    value = _text(params, name)
    if value is not None and not is_valid_id(value):
        raise PostbackRefused(
            f"{name} {value!r} is not a 24-character lowercase hex ID", RefusalKind.BAD_PARAMETER
        )
    return value


def _check_issued(name: str, value: str | None, seal: IdSeal) -> None:
    """Refused by the key alone, before any table is read: a guessed or altered ID."""
    if value is not None and not seal.issued(value):
        raise PostbackRefused(
            f"{name} {value!r} was not issued by this network; send the {name} exactly "
            f"as it reached you",
            RefusalKind.NOT_ISSUED,
        )


def _sum(raw: str | None) -> Decimal | None:
    if raw is None:
        return None
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise PostbackRefused(
            f"sum {raw!r} is not a decimal number (e.g. 12.50)", RefusalKind.BAD_PARAMETER
        ) from None
    if not value.is_finite() or value < 0 or value > MAX_SUM:
        raise PostbackRefused(
            f"sum {raw!r} must be a number from 0 to {MAX_SUM}", RefusalKind.BAD_PARAMETER
        )
    if value.as_tuple().exponent < -4:  # type: ignore[operator]
        raise PostbackRefused(
            f"sum {raw!r} has more than 4 decimal places", RefusalKind.BAD_PARAMETER
        )
    return value


def _status(raw: str | None) -> ConversionStatus:
    if raw is None:
        return ConversionStatus.APPROVED
    if raw.isascii() and raw.isdigit():
        with contextlib.suppress(ValueError):
            return ConversionStatus(int(raw))
    known = ", ".join(f"{s.value} ({s.label})" for s in ConversionStatus)
    raise PostbackRefused(f"status {raw!r} is not one of {known}", RefusalKind.BAD_PARAMETER)


def parse_postback(params: Mapping[str, str], seal: IdSeal) -> PostbackRequest:
    """The postback in ``params`` (query or form values, one per name); ``seal`` tells
    the IDs this network issued from any other.

    ``status`` defaults to 1 (approved) and ``goal`` to "1", as advertisers who send
    neither expect.
    """
    clickid = _id(params, "clickid")
    aimp_id = _id(params, "aimp_id")
    if clickid is None and aimp_id is None:
        raise PostbackRefused(NO_ID, RefusalKind.MISSING_ID)
    request = PostbackRequest(
        clickid=clickid,
        aimp_id=aimp_id,
        action_id=_text(params, "action_id"),
        goal=_text(params, "goal") or "1",
        sum=_sum(_text(params, "sum")),
        status=_status(_text(params, "status")),
        secure=_text(params, "secure"),
        custom_fields={
            name: value for name in CUSTOM_FIELDS if (value := _text(params, name)) is not None
        },
    )
    # Whether the IDs are this network's comes after the form of every parameter: an
    # advertiser's engineer fixes what is malformed first.
    _check_issued("clickid", clickid, seal)
    _check_issued("aimp_id", aimp_id, seal)
    return request


def collect_params(pairs: Iterable[tuple[str, str]]) -> tuple[dict[str, str], str | None]:
    """The parameters to keep from ``(name, value)`` pairs as received, and the
    problem that refuses the postback, if any (a repeated or oversized name, too
    many parameters). Values longer than the kept length are cut, marked with "…":
    :func:`parse_postback` refuses any it reads that are over its own limit anyway.
    """
    params: dict[str, str] = {}
    problem = None
    for count, (name, value) in enumerate(pairs, start=1):
        if count > MAX_PARAMETERS:
            return params, f"more than {MAX_PARAMETERS} parameters"
        if len(name) > MAX_NAME_LENGTH:
            problem = problem or f"a parameter name is longer than {MAX_NAME_LENGTH} characters"
            continue
        if name in params:
            problem = problem or f"{name} is given more than once"
            continue
        if len(value) > MAX_KEPT_VALUE_LENGTH:
            value = value[:MAX_KEPT_VALUE_LENGTH] + "…"
        params[name] = value
    return params, problem
