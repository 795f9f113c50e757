"""Arrow columns of the kinds carried in envelopes (reports/columns.py), built from
the envelopes' own columns."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pytest

from app.events import kinds
from app.events.envelopes import Envelope, EnvelopeFormat
from app.ids import EPOCH_MS, IdGenerator, id_ms
from reports.columns import (
    ENVELOPE_BUILDERS,
    IMPRESSION_SCHEMA,
    REJECTION_SCHEMA,
    id_times,
    impressions_from_envelopes,
    rejections_from_envelopes,
)
from tests.ids import TEST_SEAL

START_MS = int(datetime(2026, 12, 1, 9, tzinfo=UTC).timestamp() * 1000)


def recorded_factory(count: int, first: int = 0, **fields: Any) -> list[dict[str, Any]]:
    """Recorded impressions as the worker writes them, one millisecond apart."""
    ids = IdGenerator(TEST_SEAL)
    return [
        {
            "aimp_id": ids.new_id(now_ms=START_MS + n),
            "offer_id": 9400 + n % 3,
            "pid": 7,
            "imp_id": f"imp-{n}",
            "sub1": f"s{n}",
            "ua": "UA/1",
            "ip": "203.0.113.9",
            "revenue": "0.0025",
            "payout": "0.0015",
            "currency": "EUR",
            "advertiser_id": 3,
            **fields,
        }
        for n in range(first, first + count)
    ]


def envelope_of(kind: kinds.EventKind, rows: list[dict[str, Any]]) -> Envelope:
    """``rows`` through the wire: encoded and decoded as the exporter reads them."""
    return kind.enveloped.decode(kind.enveloped.current.encode_rows(rows))


def recorded(rows: list[dict[str, Any]]) -> Envelope:
    return envelope_of(kinds.RECORDED_IMPRESSIONS, rows)


def test_envelope_builders_are_those_of_the_exported_kinds_carried_in_envelopes() -> None:
    assert set(ENVELOPE_BUILDERS) == {
        kind.export.table for kind in kinds.EVENTS if kind.export and kind.envelope
    }


def test_no_envelopes_and_an_empty_envelope_give_no_rows_with_the_tables_columns() -> None:
    empty = kinds.RECORDED_ENVELOPE.decode(kinds.RECORDED_ENVELOPE.current.empty())
    for envelopes in ([], [empty], [empty, empty]):
        table = impressions_from_envelopes(envelopes)
        assert table.num_rows == 0
        assert table.schema == IMPRESSION_SCHEMA
    rejected_empty = kinds.REJECTED_ENVELOPE.decode(kinds.REJECTED_ENVELOPE.current.empty())
    assert rejections_from_envelopes([rejected_empty]).schema == REJECTION_SCHEMA


def test_many_envelopes_are_concatenated_in_order_with_every_field() -> None:
    """Three envelopes (one empty) become one table: the rows in the envelopes' order,
    ts read off each aimp_id, money as exact decimals."""
    rows = recorded_factory(5) + recorded_factory(2, first=5)
    envelopes = [recorded(rows[:3]), recorded([]), recorded(rows[3:])]
    table = impressions_from_envelopes(envelopes)
    assert table.schema == IMPRESSION_SCHEMA
    got = table.to_pylist()
    assert [r["aimp_id"] for r in got] == [r["aimp_id"] for r in rows]
    for built, row in zip(got, rows, strict=True):
        assert int(built["ts"].timestamp() * 1000) == id_ms(row["aimp_id"])
        assert built["ts"].tzinfo is not None
        assert (built["offer_id"], built["pid"], built["imp_id"], built["sub1"]) == (
            row["offer_id"],
            7,
            row["imp_id"],
            row["sub1"],
        )
        assert (built["revenue"], built["payout"]) == (Decimal("0.0025"), Decimal("0.0015"))
        assert built["revenue"].as_tuple().exponent == -8
        assert (built["currency"], built["advertiser_id"], built["ua"]) == ("EUR", 3, "UA/1")


def test_nulls_stay_null_but_money_is_zero_and_currency_usd() -> None:
    """An impression that earned nothing (no money, no currency: written before money
    was recorded) counts 0 USD; empty optional fields stay null."""
    rows = recorded_factory(
        3, imp_id=None, sub1=None, ua=None, revenue=None, payout=None, advertiser_id=None
    )
    rows[0]["currency"] = None
    rows[1]["currency"] = ""
    (first, second, third) = impressions_from_envelopes([recorded(rows)]).to_pylist()
    assert [first["currency"], second["currency"], third["currency"]] == ["USD", "USD", "EUR"]
    for built in (first, second, third):
        assert (built["revenue"], built["payout"]) == (Decimal(0), Decimal(0))
        assert built["imp_id"] is built["sub1"] is built["ua"] is built["advertiser_id"] is None
        assert built["sub8"] is None


@pytest.mark.parametrize(
    ("sent", "stored"),
    [
        ("0.0025", "0.00250000"),
        ("12", "12.00000000"),
        ("-1.5", "-1.50000000"),
        ("1234567890.12345678", "1234567890.12345678"),
        # More than 8 places: rounded half-even, as the column always did.
        ("0.000000015", "0.00000002"),
        ("0.000000025", "0.00000002"),
        ("1.123456785", "1.12345678"),
    ],
)
def test_money_is_the_exact_decimal_rounded_half_even_to_8_places(sent: str, stored: str) -> None:
    rows = recorded_factory(2, revenue=sent)
    rows[1]["revenue"] = "0.5"  # a column of both kinds is read alike
    table = impressions_from_envelopes([recorded(rows)])
    assert table.column("revenue").to_pylist() == [Decimal(stored), Decimal("0.5")]
    assert table.schema.field("revenue").type == pa.decimal128(18, 8)


def test_an_envelope_of_a_format_without_a_field_has_it_null() -> None:
    """A format carrying fewer fields (an older one) gives nulls, 0 and USD for the
    rest, beside an envelope of the current format."""
    older = EnvelopeFormat("recorded impressions", 0, ("aimp_id", "offer_id", "pid"))
    rows = recorded_factory(2)
    old = Envelope(older, {name: [rows[0][name]] for name in older.fields})
    built = impressions_from_envelopes([old, recorded(rows[1:])]).to_pylist()
    assert built[0]["aimp_id"] == rows[0]["aimp_id"]
    assert (built[0]["sub1"], built[0]["currency"], built[0]["revenue"]) == (None, "USD", 0)
    assert built[1]["sub1"] == rows[1]["sub1"]


@pytest.mark.parametrize(
    "broken",
    [
        {"offer_id": None},
        {"pid": None},
        {"aimp_id": None},
        {"aimp_id": "not-an-id-at-all-xxxxxxx"},
        {"aimp_id": "0123"},
        {"offer_id": "9400"},
        {"revenue": "lots"},
    ],
    ids=str,
)
def test_an_envelope_with_an_event_of_the_wrong_shape_is_refused(broken: dict[str, Any]) -> None:
    """The exporter sends such an envelope to unreadable-records: the build must fail
    rather than store a row with no offer, affiliate or time."""
    rows = recorded_factory(2)
    rows[1].update(broken)
    with pytest.raises((ValueError, TypeError, ArithmeticError)):
        impressions_from_envelopes([recorded(rows)])


def test_rejections_are_built_from_their_envelopes_and_need_a_reason() -> None:
    ids = IdGenerator(TEST_SEAL)
    rows = [
        {"aimp_id": ids.new_id(now_ms=START_MS + n), "offer_id": 9401, "pid": 2, "reason": r}
        for n, r in enumerate(("offer_not_active", "affiliate_blocked"))
    ]
    envelope = envelope_of(kinds.REJECTED_IMPRESSIONS, rows)
    table = rejections_from_envelopes([envelope, envelope])
    assert table.schema == REJECTION_SCHEMA
    assert table.column("reason").to_pylist() == ["offer_not_active", "affiliate_blocked"] * 2
    assert table.column("imp_id").null_count == 4
    rows[0]["reason"] = None
    with pytest.raises(ValueError, match="reason"):
        rejections_from_envelopes([envelope_of(kinds.REJECTED_IMPRESSIONS, rows)])


def test_id_times_are_the_times_the_ids_carry() -> None:
    """Column-wise, the same milliseconds as app.ids.id_ms, over 44 bits of time."""
    ids = IdGenerator(TEST_SEAL)
    moments = [0, 1, *(START_MS - EPOCH_MS + n * 997 for n in range(1000)), 2**44 - 2]
    values = [ids.new_id(now_ms=EPOCH_MS + m) for m in moments]
    times = id_times(pa.array(values))
    assert times.type == pa.timestamp("ms", tz="UTC")
    assert times.cast(pa.int64()).to_pylist() == [id_ms(v) for v in values]
