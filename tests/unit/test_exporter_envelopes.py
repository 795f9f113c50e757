"""What the exporter makes of a fetch of envelopes (reports.exporter.read_envelopes)
or of JSON objects (read_objects): the rows of those it can read, and every other
record with the reason it is sent to unreadable-records."""

from __future__ import annotations

from typing import Any

import orjson
from aiokafka import ConsumerRecord

from app.events import kinds
from app.ids import IdGenerator
from reports.exporter import ENVELOPED_TOPICS, EXPORTED_TOPICS, read_envelopes, read_objects
from tests.ids import TEST_SEAL

RECORDED = kinds.RECORDED_IMPRESSIONS


def fetch_factory(values: list[bytes]) -> list[ConsumerRecord[bytes, bytes]]:
    """``values`` as one fetch of partition 0 of impressions-recorded, from offset 40."""
    return [
        ConsumerRecord(
            RECORDED.topic, 0, 40 + n, 0, 0, b"key-%d" % n, value, None, 5, len(value), []
        )
        for n, value in enumerate(values)
    ]


def rows_factory(count: int, **fields: Any) -> list[dict[str, Any]]:
    ids = IdGenerator(TEST_SEAL)
    return [
        {"aimp_id": ids.new_id(), "offer_id": 9404, "pid": 3, "sub1": f"s{n}", **fields}
        for n in range(count)
    ]


def test_the_exporter_reads_the_enveloped_exported_topics() -> None:
    assert set(ENVELOPED_TOPICS) == {
        "impressions-recorded",
        "impressions-rejected",
        "conversions",
        "postback-outcomes",
    }
    assert set(ENVELOPED_TOPICS) <= set(EXPORTED_TOPICS)


def test_readable_envelopes_become_rows_and_the_others_are_set_aside_with_why() -> None:
    """Good envelopes around unreadable records are built in order; each unreadable
    record (unknown format byte, broken JSON, no bytes, an event without its offer)
    is returned untouched with its reason, in offset order."""
    encode = RECORDED.enveloped.current.encode_rows
    first, second = rows_factory(2), rows_factory(1)
    fetch = fetch_factory(
        [
            encode(first),
            b"\x7f[[1]]",
            b"\x01[[broken",
            encode(rows_factory(2, offer_id=None)),
            b"",
            encode(second),
        ]
    )
    table, unreadable = read_envelopes(RECORDED.enveloped, "impressions", fetch)
    assert table.column("aimp_id").to_pylist() == [r["aimp_id"] for r in first + second]
    assert [message for message, _ in unreadable] == [fetch[1], fetch[2], fetch[3], fetch[4]]
    reasons = [reason for _, reason in unreadable]
    assert "of format 127, which this imptrack does not know (it reads 1)" in reasons[0]
    assert reasons[1].startswith("recorded impressions envelope v1: ")
    assert reasons[2] == "recorded impressions envelope v1: 2 events without their offer_id"
    assert reasons[3] == "an empty record is no recorded impressions envelope"


def test_a_fetch_of_good_envelopes_sets_nothing_aside() -> None:
    encode = RECORDED.enveloped.current.encode_rows
    rows = rows_factory(3)
    fetch = fetch_factory([encode(rows[:1]), RECORDED.enveloped.current.empty(), encode(rows[1:])])
    table, unreadable = read_envelopes(RECORDED.enveloped, "impressions", fetch)
    assert unreadable == []
    assert table.column("sub1").to_pylist() == ["s0", "s1", "s2"]


def test_envelopes_of_postback_outcomes_become_server_postbacks_and_a_bad_one_is_set_aside() -> (
    None
):
    """An outcome whose parameters are no object cannot be a row: its envelope is set
    aside whole with why, and the envelopes around it are exported; a per-record
    outcome (JSON, as written before outcomes were enveloped) is no envelope."""
    ids = IdGenerator(TEST_SEAL)
    encode = kinds.POSTBACK_OUTCOMES.enveloped.current.encode_rows

    def outcome(**fields: Any) -> dict[str, Any]:
        return {
            "postback_id": ids.new_id(),
            "method": "GET",
            "params": {"clickid": "c1", "action_id": "a1"},
            "status": 2,
            "outcome": "refused",
            "error": "unknown clickid",
            **fields,
        }

    good = [outcome(), outcome(status=1, outcome="created", conversion_id="x")]
    per_record = b'{"postback_id": "p", "status": 2}'
    # Format 1 (before error_kind) is read as well.
    older = kinds.OUTCOME_ENVELOPE.formats[0].encode_rows([outcome()])
    fetch = fetch_factory([encode(good), encode([outcome(params="text")]), per_record, older])
    rows, unreadable = read_envelopes(
        kinds.OUTCOME_ENVELOPE, EXPORTED_TOPICS["postback-outcomes"], fetch
    )
    assert rows.num_rows == 3
    assert rows.column("postback_id").to_pylist()[:2] == [o["postback_id"] for o in good]
    assert rows.column("clickid").to_pylist() == ["c1", "c1", "c1"]
    assert rows.column("conversion_id").to_pylist() == [None, "x", None]
    assert [(m.offset, why.split(":")[0]) for m, why in unreadable] == [
        (41, "postback outcomes envelope v2"),
        (
            42,
            "postback outcomes envelope of format 123, which this imptrack does not know "
            "(it reads 1, 2)",
        ),
    ]


def _attempt(**fields: Any) -> dict[str, Any]:
    ids = IdGenerator(TEST_SEAL)
    return {
        "conversion_id": ids.new_id(),
        "revision": 1,
        "postback_id": ids.new_id(),
        "offer_id": 1,
        "pid": 2,
        "advertiser_id": 3,
        "goal": "1",
        "conversion_status": 1,
        "currency": "USD",
        "destination": "https://aff.example/pb",
        "url": "https://aff.example/pb?c=1",
        "attempt": 1,
        "outcome": "delivered",
        "latency_ms": 12.5,
        "at_ms": 1_795_000_000_000,
        "payout": "3.00",
        **fields,
    }


def test_json_records_of_the_wrong_shape_are_set_aside_not_a_stop_of_the_export() -> None:
    """A JSON kind's records (affiliate postback attempts): the good ones become rows;
    text that is no JSON, JSON that is no object, and an object whose payout is no
    number (decimal's InvalidOperation, which once stopped the export loop) are each
    returned with why, in offset order."""
    good = [_attempt(), _attempt(revision=2)]
    fetch = fetch_factory(
        [
            orjson.dumps(good[0]),
            b"{not json",
            orjson.dumps([1, 2]),
            orjson.dumps(_attempt(payout="three")),
            orjson.dumps(good[1]),
        ]
    )
    table, unreadable = read_objects("affiliate_postbacks", fetch)
    assert table.column("conversion_id").to_pylist() == [a["conversion_id"] for a in good]
    assert [message for message, _ in unreadable] == fetch[1:4]
    reasons = [reason for _, reason in unreadable]
    assert reasons[0].startswith("affiliate_postbacks record: not JSON (")
    assert reasons[1].startswith("affiliate_postbacks record of the wrong shape: TypeError")
    assert reasons[2].startswith("affiliate_postbacks record of the wrong shape: Invalid")
