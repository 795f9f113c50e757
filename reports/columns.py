"""Turning exported events into Arrow batches DuckDB inserts column by column."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from decimal import ROUND_HALF_EVEN, Decimal
from itertools import repeat
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from app.attribution.params import CUSTOM_FIELDS
from app.events import kinds
from app.events.envelopes import Envelope, EnvelopeKind
from app.events.records import SUB_FIELDS
from app.ids import EPOCH_MS, id_ms

MONEY = pa.decimal128(18, 8)
_MONEY_QUANTUM = Decimal("0.00000001")
_ZERO = pa.scalar(Decimal(0), MONEY)
_TIMESTAMP = pa.timestamp("ms", tz="UTC")
_TIME_HEX_DIGITS = 11  # an ID's first 44 bits: ms since app.ids.EPOCH_MS

IMPRESSION_SCHEMA = pa.schema(
    [
        ("aimp_id", pa.string()),
        ("ts", pa.timestamp("ms", tz="UTC")),
        ("offer_id", pa.int32()),
        ("pid", pa.int32()),
        ("imp_id", pa.string()),
        *[(name, pa.string()) for name in SUB_FIELDS],
        ("ua", pa.string()),
        ("ip", pa.string()),
        ("revenue", MONEY),
        ("payout", MONEY),
        ("currency", pa.string()),
        ("advertiser_id", pa.int32()),
    ]
)
_TEXT_FIELDS = ("imp_id", *SUB_FIELDS, "ua", "ip")

REJECTION_SCHEMA = pa.schema(
    [
        ("aimp_id", pa.string()),
        ("ts", pa.timestamp("ms", tz="UTC")),
        ("offer_id", pa.int32()),
        ("pid", pa.int32()),
        ("reason", pa.string()),
        ("imp_id", pa.string()),
        ("advertiser_id", pa.int32()),
    ]
)


DELIVERY_SCHEMA = pa.schema(
    [
        ("aimp_id", pa.string()),
        ("impression_ts", pa.timestamp("ms", tz="UTC")),
        ("ts", pa.timestamp("ms", tz="UTC")),
        ("offer_id", pa.int32()),
        ("pid", pa.int32()),
        ("advertiser_id", pa.int32()),
        ("destination", pa.string()),
        ("url", pa.string()),
        ("attempt", pa.int16()),
        ("outcome", pa.string()),
        ("status", pa.int16()),
        ("error", pa.string()),
        ("latency_ms", pa.float64()),
    ]
)
_DELIVERY_FIELDS = (
    "offer_id",
    "pid",
    "advertiser_id",
    "destination",
    "url",
    "attempt",
    "outcome",
    "latency_ms",
)


CLICK_SCHEMA = pa.schema(
    [
        ("clickid", pa.string()),
        ("ts", pa.timestamp("ms", tz="UTC")),
        ("offer_id", pa.int32()),
        ("pid", pa.int32()),
        ("advertiser_id", pa.int32()),
        ("link", pa.string()),
        ("aimp_id", pa.string()),
        ("imp_id", pa.string()),
        *[(name, pa.string()) for name in SUB_FIELDS],
        ("ua", pa.string()),
        ("ip", pa.string()),
        ("currency", pa.string()),
    ]
)
_CLICK_TEXT_FIELDS = ("aimp_id", *_TEXT_FIELDS)

CLICK_REJECTION_SCHEMA = pa.schema(
    [
        ("clickid", pa.string()),
        ("ts", pa.timestamp("ms", tz="UTC")),
        ("offer_id", pa.int32()),
        ("pid", pa.int32()),
        ("reason", pa.string()),
        ("imp_id", pa.string()),
        ("advertiser_id", pa.int32()),
    ]
)


def clicks_batch(events: list[dict[str, Any]]) -> pa.Table:
    """Columns for the ``clicks`` table."""
    columns = _event_columns(events, "clickid")
    columns["advertiser_id"] = [e["advertiser_id"] for e in events]
    columns["link"] = [e["link"] for e in events]
    for name in _CLICK_TEXT_FIELDS:
        columns[name] = [e.get(name) for e in events]
    columns["currency"] = [e.get("currency") or DEFAULT_CURRENCY for e in events]
    return pa.Table.from_pydict(columns, schema=CLICK_SCHEMA)


def click_rejections_batch(events: list[dict[str, Any]]) -> pa.Table:
    """Columns for the ``click_rejections`` table."""
    columns = _event_columns(events, "clickid")
    columns["reason"] = [e["reason"] for e in events]
    columns["imp_id"] = [e.get("imp_id") for e in events]
    columns["advertiser_id"] = [e.get("advertiser_id") for e in events]
    return pa.Table.from_pydict(columns, schema=CLICK_REJECTION_SCHEMA)


def _event_columns(events: list[dict[str, Any]], id_field: str = "aimp_id") -> dict[str, list[Any]]:
    """The columns every exported kind starts with: its time-ordered ID (``aimp_id``
    or ``clickid``), ``ts`` read off that ID, offer and affiliate."""
    ids = [e[id_field] for e in events]
    return {
        id_field: ids,
        "ts": [id_ms(i) for i in ids],
        "offer_id": [e["offer_id"] for e in events],
        "pid": [e["pid"] for e in events],
    }


def _envelope_event_columns(envelopes: Sequence[Envelope]) -> dict[str, pa.Array]:
    """The columns every enveloped kind starts with (as :func:`_event_columns` for
    rows): ``aimp_id``, ``ts`` read off it, offer and affiliate."""
    ids = _column(envelopes, "aimp_id", pa.string(), required=True)
    return {
        "aimp_id": ids,
        "ts": id_times(ids),
        "offer_id": _column(envelopes, "offer_id", pa.int32(), required=True),
        "pid": _column(envelopes, "pid", pa.int32(), required=True),
    }


def impressions_from_envelopes(envelopes: Sequence[Envelope]) -> pa.Table:
    """Columns for the ``impressions`` table from envelopes of recorded impressions,
    each field's columns concatenated (no dict per impression)."""
    arrays = {
        **_envelope_event_columns(envelopes),
        **{name: _column(envelopes, name, pa.string()) for name in _TEXT_FIELDS},
        "revenue": _money_column(_values(envelopes, "revenue")),
        "payout": _money_column(_values(envelopes, "payout")),
        "currency": _currency_column(_column(envelopes, "currency", pa.string())),
        "advertiser_id": _column(envelopes, "advertiser_id", pa.int32()),
    }
    return pa.table(arrays, schema=IMPRESSION_SCHEMA)


def rejections_from_envelopes(envelopes: Sequence[Envelope]) -> pa.Table:
    """Columns for the ``rejections`` table from envelopes of rejected impressions."""
    arrays = {
        **_envelope_event_columns(envelopes),
        "reason": _column(envelopes, "reason", pa.string(), required=True),
        "imp_id": _column(envelopes, "imp_id", pa.string()),
        "advertiser_id": _column(envelopes, "advertiser_id", pa.int32()),
    }
    return pa.table(arrays, schema=REJECTION_SCHEMA)


def impressions_batch(events: list[dict[str, Any]]) -> pa.Table:
    """Columns for the ``impressions`` table from recorded impressions one dict each
    (for code that holds rows, such as tests): the rows as one envelope."""
    return impressions_from_envelopes([_as_envelope(kinds.RECORDED_ENVELOPE, events)])


def rejections_batch(events: list[dict[str, Any]]) -> pa.Table:
    """Columns for the ``rejections`` table from rejected impressions one dict each."""
    return rejections_from_envelopes([_as_envelope(kinds.REJECTED_ENVELOPE, events)])


def _as_envelope(kind: EnvelopeKind, events: list[dict[str, Any]]) -> Envelope:
    fmt = kind.current
    return Envelope(fmt, {name: [e.get(name) for e in events] for name in fmt.fields})


def _values(envelopes: Sequence[Envelope], field: str) -> list[Any]:
    """One field's values across ``envelopes``, in order; null in an envelope whose
    format does not carry the field."""
    values: list[Any] = []
    for envelope in envelopes:
        column = envelope.columns.get(field)
        values.extend(repeat(None, len(envelope)) if column is None else column)
    return values


def _column(
    envelopes: Sequence[Envelope], field: str, type_: pa.DataType, *, required: bool = False
) -> pa.Array:
    array = pa.array(_values(envelopes, field), type_)
    if required and array.null_count:
        raise ValueError(f"{array.null_count} events without their {field}")
    return array


_HEX_DIGITS = pa.array(list("0123456789abcdef"))


def id_times(ids: pa.Array) -> pa.Array:
    """When each ID was issued (its first 11 hex digits, app.ids.id_ms), column-wise;
    ValueError if one does not start with 11 lowercase hex digits.

    The IDs of one envelope share their millisecond (app.ids.EnvelopeIds), so each
    distinct time is read once: a batch of 250,000 impressions has about 1,250."""
    times = pc.utf8_slice_codeunits(ids, 0, _TIME_HEX_DIGITS).dictionary_encode()
    distinct = times.dictionary
    ms = pa.array(repeat(0, len(distinct)), pa.int64())
    for position in range(_TIME_HEX_DIGITS):
        char = pc.utf8_slice_codeunits(distinct, position, position + 1)
        digit = pc.index_in(char, value_set=_HEX_DIGITS).cast(pa.int64())
        ms = pc.add(pc.multiply(ms, 16), digit)
    if ms.null_count:
        wrong = distinct.filter(pc.is_null(ms)).to_pylist()[:3]
        raise ValueError(f"IDs that do not start with their time in hex, such as {wrong}")
    return pc.take(pc.add(ms, EPOCH_MS).cast(_TIMESTAMP), times.indices)


def _money_column(values: list[Any]) -> pa.Array:
    """Decimal text as the column's exact decimals; null is 0. Each distinct amount
    is cast once: prices repeat, and Arrow's cast costs more than the lookup."""
    try:
        amounts = pa.array(values, pa.string()).dictionary_encode()
        money = pc.take(amounts.dictionary.cast(MONEY), amounts.indices)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        # More than 8 places (Arrow refuses to round), or not text: one by one.
        money = pa.array([_money(v) for v in values], MONEY)
    return pc.fill_null(money, _ZERO)


def _currency_column(currencies: pa.Array) -> pa.Array:
    named = pc.if_else(pc.equal(currencies, ""), None, currencies)
    return pc.fill_null(named, DEFAULT_CURRENCY)


def deliveries_batch(events: list[dict[str, Any]]) -> pa.Table:
    """Columns for the ``deliveries`` table: one row per attempt."""
    aimp_ids = [e["aimp_id"] for e in events]
    columns: dict[str, list[Any]] = {
        "aimp_id": aimp_ids,
        "impression_ts": [id_ms(a) for a in aimp_ids],
        "ts": [e["at_ms"] for e in events],
    }
    for name in _DELIVERY_FIELDS:
        columns[name] = [e[name] for e in events]
    columns["status"] = [e.get("status") for e in events]
    columns["error"] = [e.get("error") for e in events]
    return pa.Table.from_pydict(columns, schema=DELIVERY_SCHEMA)


DEFAULT_CURRENCY = "USD"
"""For events written before money was recorded (they earned nothing)."""


def _money(value: str | None) -> Decimal:
    """Decimal text as the column's exact decimal (at most 8 places, half-even)."""
    if value is None:
        return Decimal(0)
    return Decimal(value).quantize(_MONEY_QUANTUM, rounding=ROUND_HALF_EVEN)


CONVERSION_SCHEMA = pa.schema(
    [
        ("conversion_id", pa.string()),
        ("revision", pa.int32()),
        ("postback_id", pa.string()),
        ("ts", pa.timestamp("ms", tz="UTC")),
        ("updated_ts", pa.timestamp("ms", tz="UTC")),
        ("event_ts", pa.timestamp("ms", tz="UTC")),
        ("offer_id", pa.int32()),
        ("pid", pa.int32()),
        ("advertiser_id", pa.int32()),
        ("attribution", pa.string()),
        ("aimp_id", pa.string()),
        ("clickid", pa.string()),
        ("action_id", pa.string()),
        ("goal", pa.string()),
        ("status", pa.int16()),
        ("sum", pa.decimal128(18, 4)),
        ("revenue", MONEY),
        ("payout", MONEY),
        ("currency", pa.string()),
        ("imp_id", pa.string()),
        *[(name, pa.string()) for name in SUB_FIELDS],
        *[(name, pa.string()) for name in CUSTOM_FIELDS],
    ]
)
_CONVERSION_FIELDS = (
    "conversion_id",
    "revision",
    "postback_id",
    "offer_id",
    "pid",
    "advertiser_id",
    "attribution",
    "goal",
    "status",
    "currency",
)


def conversions_from_envelopes(envelopes: Sequence[Envelope]) -> pa.Table:
    """Columns for the ``conversions`` table from envelopes of conversion revisions:
    one row per revision."""
    columns: dict[str, list[Any]] = {name: _values(envelopes, name) for name in _CONVERSION_FIELDS}
    columns["ts"] = _values(envelopes, "created_ms")
    columns["updated_ts"] = _values(envelopes, "updated_ms")
    columns["event_ts"] = _values(envelopes, "event_ms")
    for name in ("aimp_id", "clickid", "action_id", "imp_id", *SUB_FIELDS):
        columns[name] = _values(envelopes, name)
    columns["sum"] = [None if v is None else Decimal(v) for v in _values(envelopes, "sum")]
    columns["revenue"] = [_money(v) for v in _values(envelopes, "revenue")]
    columns["payout"] = [_money(v) for v in _values(envelopes, "payout")]
    custom = [fields or {} for fields in _values(envelopes, "custom_fields")]
    for name in CUSTOM_FIELDS:
        columns[name] = [fields.get(name) for fields in custom]
    return pa.Table.from_pydict(columns, schema=CONVERSION_SCHEMA)


def conversions_batch(events: list[dict[str, Any]]) -> pa.Table:
    """Columns for the ``conversions`` table from revisions one dict each (for code
    that holds rows, such as tests): the rows as one envelope."""
    return conversions_from_envelopes([_as_envelope(kinds.CONVERSION_ENVELOPE, events)])


SERVER_POSTBACK_SCHEMA = pa.schema(
    [
        ("postback_id", pa.string()),
        ("ts", pa.timestamp("ms", tz="UTC")),
        ("method", pa.string()),
        ("ip", pa.string()),
        ("params", pa.string()),
        ("clickid", pa.string()),
        ("aimp_id", pa.string()),
        ("action_id", pa.string()),
        ("status", pa.int16()),
        ("outcome", pa.string()),
        ("error", pa.string()),
        ("conversion_id", pa.string()),
        ("conversion_status", pa.int16()),
        ("previous_status", pa.int16()),
        ("attribution", pa.string()),
        ("offer_id", pa.int32()),
        ("pid", pa.int32()),
        ("goal", pa.string()),
        ("advertiser_id", pa.int32()),
        ("error_kind", pa.string()),
        ("replay_of", pa.string()),
    ]
)
_OUTCOME_FIELDS = (
    "ip",
    "error",
    "conversion_id",
    "conversion_status",
    "previous_status",
    "attribution",
    "offer_id",
    "pid",
    "goal",
    "advertiser_id",
    "error_kind",
    "replay_of",
)


def server_postbacks_from_envelopes(envelopes: Sequence[Envelope]) -> pa.Table:
    """Columns for the ``server_postbacks`` table from envelopes of postback outcomes:
    every postback's outcome, with the parameters it was sent with (as a JSON
    object)."""
    ids = _values(envelopes, "postback_id")
    params = _values(envelopes, "params")
    columns: dict[str, list[Any]] = {
        "postback_id": ids,
        "ts": [id_ms(i) for i in ids],
        "method": _values(envelopes, "method"),
        "params": [orjson.dumps(p).decode() for p in params],
        "status": _values(envelopes, "status"),
        "outcome": _values(envelopes, "outcome"),
    }
    for name in ("clickid", "aimp_id", "action_id"):
        columns[name] = [p.get(name) for p in params]
    for name in _OUTCOME_FIELDS:
        columns[name] = _values(envelopes, name)
    return pa.Table.from_pydict(columns, schema=SERVER_POSTBACK_SCHEMA)


def server_postbacks_batch(events: list[dict[str, Any]]) -> pa.Table:
    """Columns for the ``server_postbacks`` table from outcomes one dict each."""
    return server_postbacks_from_envelopes([_as_envelope(kinds.OUTCOME_ENVELOPE, events)])


AFFILIATE_POSTBACK_SCHEMA = pa.schema(
    [
        ("conversion_id", pa.string()),
        ("revision", pa.int32()),
        ("postback_id", pa.string()),
        ("status_ts", pa.timestamp("ms", tz="UTC")),
        ("ts", pa.timestamp("ms", tz="UTC")),
        ("offer_id", pa.int32()),
        ("pid", pa.int32()),
        ("advertiser_id", pa.int32()),
        ("action_id", pa.string()),
        ("goal", pa.string()),
        ("conversion_status", pa.int16()),
        ("payout", MONEY),
        ("currency", pa.string()),
        ("destination", pa.string()),
        ("url", pa.string()),
        ("attempt", pa.int16()),
        ("outcome", pa.string()),
        ("status", pa.int16()),
        ("error", pa.string()),
        ("latency_ms", pa.float64()),
    ]
)
_AFFILIATE_POSTBACK_FIELDS = (
    "conversion_id",
    "revision",
    "postback_id",
    "offer_id",
    "pid",
    "advertiser_id",
    "goal",
    "conversion_status",
    "currency",
    "destination",
    "url",
    "attempt",
    "outcome",
    "latency_ms",
)


def affiliate_postbacks_batch(events: list[dict[str, Any]]) -> pa.Table:
    """Columns for the ``affiliate_postbacks`` table: one row per attempt."""
    columns: dict[str, list[Any]] = {
        name: [e[name] for e in events] for name in _AFFILIATE_POSTBACK_FIELDS
    }
    columns["status_ts"] = [id_ms(e["postback_id"]) for e in events]
    columns["ts"] = [e["at_ms"] for e in events]
    columns["payout"] = [_money(e["payout"]) for e in events]
    for name in ("action_id", "status", "error"):
        columns[name] = [e.get(name) for e in events]
    return pa.Table.from_pydict(columns, schema=AFFILIATE_POSTBACK_SCHEMA)


EnvelopesBuilder = Callable[[Sequence[Envelope]], pa.Table]
RowsBuilder = Callable[[list[dict[str, Any]]], pa.Table]

ENVELOPE_BUILDERS: dict[str, EnvelopesBuilder] = {
    "impressions": impressions_from_envelopes,
    "rejections": rejections_from_envelopes,
    "conversions": conversions_from_envelopes,
    "server_postbacks": server_postbacks_from_envelopes,
}
"""The builders of the kinds carried in envelopes (app.events.kinds ``envelope``):
from a fetch's envelopes, column by column."""

ROW_BUILDERS: dict[str, RowsBuilder] = {
    "deliveries": deliveries_batch,
    "clicks": clicks_batch,
    "click_rejections": click_rejections_batch,
    "affiliate_postbacks": affiliate_postbacks_batch,
}
"""The builders of the kinds carried one JSON object a record: from the decoded objects."""

BATCH_BUILDERS: dict[str, EnvelopesBuilder | RowsBuilder] = {
    export.table: ENVELOPE_BUILDERS.get(export.table) or ROW_BUILDERS[export.table]
    for _, export in kinds.EXPORTS
}
"""Each exported kind's column builder, in the order a batch stores them."""
