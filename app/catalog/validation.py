"""Turning admin API / catalog file input into catalog entities, or saying what is wrong.

Every error names the field and the problem, e.g.
``impressions_url: {clickid} cannot be used in an impressions destination URL ...``.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping
from dataclasses import asdict, replace
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlsplit

from app.catalog.model import (
    ACCESS_MODES,
    MAX_ID,
    OFFER_STATUSES,
    PARTNER_STATUSES,
    PAYMENT_TYPES,
    Advertiser,
    Affiliate,
    AffiliatePostback,
    Destination,
    Offer,
    Payment,
)
from app.events.statuses import CONVERSION_STATUS_LABELS
from app.exceptions import CatalogError
from app.text_rules import has_control_chars

MAX_ADDITIONAL_URLS = 10
MAX_URL_LENGTH = 2048
MAX_DURATION_SECONDS = 366 * 86_400
"""A year (a leap one): longer view-through windows and click sessions mean nothing
for attribution, and Redis refuses expiry times past its 64-bit range (an offer with
one would stop the impressions agent at its first impression)."""

SUB_MACROS = frozenset(f"sub{n}" for n in range(1, 9))
IMPRESSION_MACROS = (
    frozenset(
        {"offer_id", "pid", "advertiser_id", "impression_id", "aimp_id", "ua", "ip", "time", "rand"}
    )
    | SUB_MACROS
)
TRACKING_MACROS = IMPRESSION_MACROS | {"clickid"}
TRAFFICBACK_MACROS = frozenset({"offer_id", "pid", "ua", "ip", "time", "rand"}) | SUB_MACROS
AFFILIATE_POSTBACK_MACROS = (
    frozenset(
        {
            "clickid",
            "aimp_id",
            "impression_id",
            "status",
            "payout",
            "currency",
            "goal",
            "action_id",
            "offer_id",
            "pid",
        }
    )
    | SUB_MACROS
)
"""Affise's macros of an affiliate postback URL, filled from the conversion
(app.attribution.affiliate_postbacks)."""
MAX_AFFILIATE_POSTBACKS = 10

_MACRO = re.compile(r"\{([^{}]*)\}")
_DURATION = re.compile(r"^(\d+)([smhd]?)$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86_400}
_CURRENCY = re.compile(r"[A-Z]{3}")  # fullmatch: a $ would let "USD\n" through


def _known(data: Mapping[str, Any], allowed: set[str], what: str) -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise CatalogError(
            unknown[0], f"is not a field of {what}; known: {', '.join(sorted(allowed))}"
        )


def entity_id(value: Any, field: str = "id") -> int:
    """An advertiser's, affiliate's or offer's id: a JSON or YAML whole number (``true``
    is not 1, nor is ``1.0``)."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_ID:
        raise CatalogError(field, f"must be a whole number from 1 to {MAX_ID}, not {value!r}")
    return value


def id_from_text(raw: str, field: str) -> int:
    """An id written in a path, a query or on the command line: the digits 0-9 only
    (Python's int() and regex \\d also take other scripts' digits: /offers/٣ must not
    be offer 3), from 1 to MAX_ID."""
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 10 or not 1 <= int(raw) <= MAX_ID:
        raise CatalogError(
            field, f"must be a whole number from 1 to {MAX_ID} in the digits 0-9, not {raw!r}"
        )
    return int(raw)


def _text(value: Any, field: str, max_length: int = 255) -> str:
    if not isinstance(value, str) or not value.strip():
        raise CatalogError(field, "must be a non-empty string")
    if len(value) > max_length:
        raise CatalogError(field, f"is {len(value)} characters long; the limit is {max_length}")
    if has_control_chars(value):
        raise CatalogError(field, f"must not contain control characters, as {value!r} does")
    return value


def _choice(value: Any, field: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise CatalogError(field, f"must be one of {', '.join(choices)}, not {value!r}")
    return str(value)


def _duration(value: Any, field: str) -> int:
    """Seconds, as a whole number or text like ``90m``, ``24h``, ``30d``."""
    if isinstance(value, int) and not isinstance(value, bool):
        seconds = value
    elif isinstance(value, str) and (match := _DURATION.match(value.strip())):
        seconds = int(match.group(1)) * _UNITS[match.group(2)]
    else:
        raise CatalogError(field, f"must be seconds or a duration like 24h or 30d, not {value!r}")
    if seconds <= 0:
        raise CatalogError(field, "must be longer than zero")
    if seconds > MAX_DURATION_SECONDS:
        raise CatalogError(
            field, f"is {seconds} seconds; at most {MAX_DURATION_SECONDS} (366d) is allowed"
        )
    return seconds


def check_url(value: Any, field: str, macros: frozenset[str], *, impressions: bool = False) -> str:
    """An http(s) URL whose ``{macros}`` are all known for this kind of URL."""
    url = _text(value, field, MAX_URL_LENGTH)
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError as exc:  # an unclosed [IPv6 bracket, a host that NFKC breaks...
        raise CatalogError(field, f"is not a valid URL ({exc})") from None
    if not parts.scheme:
        raise CatalogError(
            field, f"must be an http or https URL; {url!r} has no scheme (start it with https://)"
        )
    if parts.scheme not in ("http", "https"):
        raise CatalogError(field, f"must be an http or https URL, not a {parts.scheme}: one")
    if not host:
        raise CatalogError(field, "must name a host, as in https://advertiser.example/imp")
    in_authority = _MACRO.search(parts.netloc)
    if in_authority:
        # A macro's value comes from the affiliate's request: in the host it would let
        # them choose where clicks are redirected and impressions are sent.
        raise CatalogError(
            field,
            f"has the macro {in_authority.group(0)} in its host; macros may only be used "
            "in the path, query or fragment",
        )
    for name in _MACRO.findall(url):
        if name == "clickid" and impressions:
            raise CatalogError(
                field,
                "{clickid} cannot be used in an impressions destination URL: an impression "
                "has no click; use {aimp_id} to identify it",
            )
        if name not in macros:
            raise CatalogError(
                field, f"unknown macro {{{name}}}; known: {', '.join(sorted(macros))}"
            )
    return url


def _destinations(value: Any) -> tuple[Destination, ...]:
    field = "additional_impressions_urls"
    if not isinstance(value, list):
        raise CatalogError(field, "must be a list of {url, weight} objects")
    if len(value) > MAX_ADDITIONAL_URLS:
        raise CatalogError(
            field, f"has {len(value)} URLs; at most {MAX_ADDITIONAL_URLS} are allowed"
        )
    found = []
    for n, item in enumerate(value):
        where = f"{field}[{n}]"
        if not isinstance(item, Mapping) or set(item) != {"url", "weight"}:
            raise CatalogError(where, "must be an object with exactly url and weight")
        weight = item["weight"]
        if isinstance(weight, bool) or not isinstance(weight, int) or not 1 <= weight <= 100:
            raise CatalogError(
                f"{where}.weight", f"must be a whole number from 1 to 100, not {weight!r}"
            )
        url = check_url(item["url"], f"{where}.url", IMPRESSION_MACROS, impressions=True)
        found.append(Destination(url, weight))
    total = sum(d.weight for d in found)
    if total > 100:
        raise CatalogError(
            field,
            f"weights add up to {total}; they may add up to at most 100 "
            "(the main URL takes the rest)",
        )
    return tuple(found)


def _money(value: Any, field: str) -> str:
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        raise CatalogError(field, f"must be a decimal amount, not {value!r}") from None
    if not amount.is_finite() or amount < 0:
        raise CatalogError(field, "must be a finite amount of at least 0")
    return str(amount)


def _payments(value: Any) -> tuple[Payment, ...]:
    if not isinstance(value, list):
        raise CatalogError("payments", "must be a list of payment objects")
    found, seen = [], set()
    for n, item in enumerate(value):
        where = f"payments[{n}]"
        if not isinstance(item, Mapping):
            raise CatalogError(where, "must be an object")
        _known(item, {"type", "revenue", "payout", "currency", "goal", "affiliates"}, "a payment")
        kind = _choice(item.get("type"), f"{where}.type", PAYMENT_TYPES)
        currency = item.get("currency", "USD")
        if not isinstance(currency, str) or not _CURRENCY.fullmatch(currency):
            raise CatalogError(
                f"{where}.currency", f"must be a three-letter code like USD, not {currency!r}"
            )
        goal = _text(str(item.get("goal", "1")), f"{where}.goal", 64)
        affiliates = _personal(item.get("affiliates", []), f"{where}.affiliates")
        for pid in affiliates or (None,):
            if (kind, goal, currency, pid) in seen:
                whose = "" if pid is None else f" of affiliate {pid}"
                raise CatalogError(
                    where, f"repeats the {kind} payment{whose} for goal {goal!r} in {currency}"
                )
            seen.add((kind, goal, currency, pid))
        found.append(
            Payment(
                kind,
                _money(item.get("revenue"), f"{where}.revenue"),
                _money(item.get("payout"), f"{where}.payout"),
                currency,
                goal,
                affiliates,
            )
        )
    return tuple(found)


def _personal(value: Any, field: str) -> tuple[int, ...]:
    """The affiliates a personal payment is for (none: the offer's own payment)."""
    if not isinstance(value, list):
        raise CatalogError(field, "must be a list of affiliate ids")
    pids = tuple(entity_id(pid, field) for pid in value)
    if len(set(pids)) != len(pids):
        raise CatalogError(field, "lists an affiliate twice")
    return pids


def _statuses(value: Any, field: str) -> tuple[str, ...]:
    """The conversion statuses a postback URL is notified of (none given: all)."""
    if value is None:
        return ()
    known = ", ".join(CONVERSION_STATUS_LABELS)
    if not isinstance(value, list) or not value:
        raise CatalogError(
            field,
            f"must be a non-empty list of conversion statuses ({known}); leave it out to "
            "be notified of every status",
        )
    for status in value:
        if not isinstance(status, str) or status not in CONVERSION_STATUS_LABELS:
            raise CatalogError(field, f"{status!r} is not a conversion status; known: {known}")
    if len(set(value)) != len(value):
        raise CatalogError(field, "lists a status twice")
    return tuple(value)


def affiliate_postbacks(
    value: Any, field: str, *, per_affiliate: bool
) -> tuple[AffiliatePostback, ...]:
    """An affiliate's global postback URLs, or (``per_affiliate``) an offer's
    overrides of them, which may name the affiliates they are for. Each item is a URL
    or ``{url, statuses}`` (and ``affiliates`` on an offer)."""
    shape = "{url, statuses, affiliates}" if per_affiliate else "{url, statuses}"
    if not isinstance(value, list):
        raise CatalogError(field, f"must be a list of postback URLs or {shape} objects")
    if len(value) > MAX_AFFILIATE_POSTBACKS:
        raise CatalogError(
            field, f"has {len(value)} URLs; at most {MAX_AFFILIATE_POSTBACKS} are allowed"
        )
    allowed = {"url", "statuses", "affiliates"} if per_affiliate else {"url", "statuses"}
    found, seen = [], set()
    for n, item in enumerate(value):
        where = f"{field}[{n}]"
        if isinstance(item, str):
            item = {"url": item}
        if not isinstance(item, Mapping):
            raise CatalogError(where, f"must be a URL or a {shape} object")
        if not per_affiliate and "affiliates" in item:
            raise CatalogError(
                f"{where}.affiliates",
                "is for an offer's affiliate_postbacks; an affiliate's own postback URLs "
                "are its own",
            )
        for name in sorted(set(item) - allowed):
            raise CatalogError(
                f"{where}.{name}",
                f"is not a field of an affiliate postback; known: {', '.join(sorted(allowed))}",
            )
        if "url" not in item:
            raise CatalogError(f"{where}.url", "is required")
        url = check_url(item["url"], f"{where}.url", AFFILIATE_POSTBACK_MACROS)
        statuses = _statuses(item.get("statuses"), f"{where}.statuses")
        affiliates = _personal(item.get("affiliates", []), f"{where}.affiliates")
        for pid in affiliates or (None,):
            if (url, pid) in seen:
                whose = "every affiliate" if pid is None else f"affiliate {pid}"
                raise CatalogError(
                    where,
                    f"repeats the postback URL {url!r} for {whose}; give one URL once, "
                    "with every status it is for",
                )
            seen.add((url, pid))
        found.append(AffiliatePostback(url, statuses, affiliates))
    return tuple(found)


AddressRefusal = Callable[[str], str | None]
"""Why a URL's host may not be called, when it is an address the forwarder refuses
(app.catalog.destination_addresses.AddressPolicy.literal_refusal); None when it may."""

POSTBACK_URL_FIELDS = ("postback_urls", "affiliate_postbacks")


def refused_postback_addresses(
    entity: Mapping[str, Any], refusal: AddressRefusal
) -> list[CatalogError]:
    """The affiliate postback URLs of an affiliate or offer (as :func:`as_dict` gives
    it) whose host is an IP address the forwarder would refuse to call.

    Names are judged when they are resolved, at each delivery; an address written in
    the URL never changes, so it is refused when it is saved rather than found
    ``blocked`` in the Affiliate postbacks slice later. Affiliates supply these URLs
    themselves, which makes them the likelier way in to the network's inside."""
    errors = []
    for field in POSTBACK_URL_FIELDS:
        for n, item in enumerate(entity.get(field) or ()):
            host = urlsplit(item["url"]).hostname
            reason = refusal(host) if host else None
            if reason is not None:
                errors.append(CatalogError(f"{field}[{n}].url", reason))
    return errors


def _whitelist(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise CatalogError("postback_ip_whitelist", "must be a list of IP addresses or networks")
    found = []
    for n, item in enumerate(value):
        try:
            found.append(str(ipaddress.ip_network(str(item), strict=False)))
        except ValueError:
            raise CatalogError(
                f"postback_ip_whitelist[{n}]", f"{item!r} is not an IP address or network"
            ) from None
    return tuple(found)


def _optional_url(field: str, macros: frozenset[str], *, impressions: bool = False) -> Any:
    return lambda v: None if v is None else check_url(v, field, macros, impressions=impressions)


def _bool(value: Any, field: str) -> bool:
    if not isinstance(value, bool):
        raise CatalogError(field, f"must be true or false, not {value!r}")
    return value


_OFFER_PARSERS: dict[str, Any] = {
    "title": lambda v: _text(v, "title"),
    "advertiser_id": lambda v: entity_id(v, "advertiser_id"),
    "status": lambda v: _choice(v, "status", OFFER_STATUSES),
    "access": lambda v: _choice(v, "access", ACCESS_MODES),
    "allow_impressions": lambda v: _bool(v, "allow_impressions"),
    "impressions_url": _optional_url("impressions_url", IMPRESSION_MACROS, impressions=True),
    "additional_impressions_urls": _destinations,
    "tracking_url": _optional_url("tracking_url", TRACKING_MACROS),
    "trafficback_url": _optional_url("trafficback_url", TRAFFICBACK_MACROS),
    "view_through_window": lambda v: _duration(v, "view_through_window"),
    "click_session": lambda v: _duration(v, "click_session"),
    "payments": _payments,
    "postback_token": lambda v: None if v is None else _text(v, "postback_token", 128),
    "postback_ip_whitelist": _whitelist,
    "affiliate_postbacks": lambda v: affiliate_postbacks(
        v, "affiliate_postbacks", per_affiliate=True
    ),
}


def parse_offer(data: Mapping[str, Any], existing: Offer | None = None) -> Offer:
    """A new offer from ``data`` (which needs id, title, advertiser_id), or ``existing``
    with the fields in ``data`` changed."""
    if not isinstance(data, Mapping):
        raise CatalogError("offer", "must be a JSON object")
    _known(data, {"id", *_OFFER_PARSERS}, "an offer")
    changes = {name: _OFFER_PARSERS[name](value) for name, value in data.items() if name != "id"}
    if existing is None:
        offer_id = entity_id(data.get("id"), "id")
        for required in ("title", "advertiser_id"):
            if required not in changes:
                raise CatalogError(required, "is required for a new offer")
        offer = Offer(id=offer_id, **changes)
    else:
        if "id" in data and data["id"] != existing.id:
            raise CatalogError("id", f"cannot change an offer's id ({existing.id})")
        offer = replace(existing, **changes)
    if (
        offer.allow_impressions
        and offer.impressions_url is None
        and offer.additional_impressions_urls
    ):
        raise CatalogError(
            "impressions_url", "is required when additional impressions destination URLs are set"
        )
    return offer


def _parse_partner(
    data: Mapping[str, Any],
    kind: str,
    existing: Any,
    cls: Any,
    parsers: Mapping[str, Any] | None = None,
) -> Any:
    """An advertiser or affiliate: name and status, and the fields of ``parsers``."""
    if not isinstance(data, Mapping):
        raise CatalogError(kind, "must be a JSON object")
    parsers = {
        "name": lambda v: _text(v, "name"),
        "status": lambda v: _choice(v, "status", PARTNER_STATUSES),
        **(parsers or {}),
    }
    _known(data, {"id", *parsers}, f"an {kind}")
    changes = {name: parsers[name](value) for name, value in data.items() if name != "id"}
    if existing is None:
        if "name" not in changes:
            raise CatalogError("name", f"is required for a new {kind}")
        return cls(id=entity_id(data.get("id"), "id"), **changes)
    if "id" in data and data["id"] != existing.id:
        raise CatalogError("id", f"cannot change an {kind}'s id ({existing.id})")
    return replace(existing, **changes)


def parse_advertiser(data: Mapping[str, Any], existing: Advertiser | None = None) -> Advertiser:
    advertiser: Advertiser = _parse_partner(data, "advertiser", existing, Advertiser)
    return advertiser


_AFFILIATE_PARSERS: dict[str, Any] = {
    "postback_urls": lambda v: affiliate_postbacks(v, "postback_urls", per_affiliate=False),
}


def parse_affiliate(data: Mapping[str, Any], existing: Affiliate | None = None) -> Affiliate:
    affiliate: Affiliate = _parse_partner(
        data, "affiliate", existing, Affiliate, _AFFILIATE_PARSERS
    )
    return affiliate


def as_dict(entity: Advertiser | Affiliate | Offer) -> dict[str, Any]:
    """The JSON shape of an entity, as the admin API answers and catalog files hold it."""
    data = asdict(entity)
    for name, value in data.items():
        if isinstance(value, tuple):
            data[name] = list(value)
    # Only personal payments and overrides name their affiliates, and only a postback
    # URL for some statuses names them: the others keep the shortest shape a catalog
    # file may give them in.
    for item in (
        *data.get("payments", []),
        *data.get("postback_urls", []),
        *data.get("affiliate_postbacks", []),
    ):
        for name in ("affiliates", "statuses"):
            if name not in item:
                continue
            if item[name]:
                item[name] = list(item[name])
            else:
                del item[name]
    return data
