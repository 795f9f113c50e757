"""Conversion and postback statuses: numbers on the wire and in the database, names
for people (app.events.statuses)."""

from __future__ import annotations

import json
import re

import duckdb
import orjson
import pytest

from app.attribution.conversions import UPDATED, refusal, verdict
from app.attribution.params import RefusalKind, parse_postback
from app.events.records import Postback, PostbackOutcome
from app.events.statuses import CONVERSION_STATUS_LABELS, ConversionStatus, PostbackStatus
from app.ids import IdGenerator
from reports import sql
from tests.ids import TEST_SEAL

_ids = IdGenerator(TEST_SEAL)


def _updated(status: ConversionStatus, previous: ConversionStatus) -> PostbackOutcome:
    """An accepted postback's outcome that changed a conversion's status."""
    return PostbackOutcome(
        postback_id=_ids.new_id(),
        method="GET",
        params={"status": str(status.value)},
        status=PostbackStatus.ACCEPTED,
        outcome=UPDATED,
        conversion_id=_ids.new_id(),
        conversion_status=status,
        previous_status=previous,
    )


def test_a_postbacks_status_parameter_is_read_as_the_conversion_status() -> None:
    """Each number an advertiser may send is its status; none sent is approved."""
    aimp_id = _ids.new_id()
    for status in ConversionStatus:
        request = parse_postback({"aimp_id": aimp_id, "status": str(status.value)}, TEST_SEAL)
        assert request.status is status
    assert parse_postback({"aimp_id": aimp_id}, TEST_SEAL).status is ConversionStatus.APPROVED


def test_records_carry_statuses_as_the_same_numbers_through_json() -> None:
    """An outcome made with the enums is the numbers 1, 5 and 2 in the JSON Kafka
    carries, and reads back as those numbers."""
    outcome = _updated(ConversionStatus.HOLD, ConversionStatus.PENDING)
    wire = orjson.loads(outcome.dumps())
    statuses = (wire["status"], wire["conversion_status"], wire["previous_status"])
    assert statuses == (1, 5, 2) and all(type(n) is int for n in statuses)
    read = PostbackOutcome.loads(outcome.dumps(), default_serializer="json")
    assert (read.status, read.conversion_status, read.previous_status) == (1, 5, 2)


def test_the_answer_to_a_postback_has_the_number_and_the_name() -> None:
    """The verdict, as Redis carries it (orjson) and the edge sends it (json):
    ``status`` 1, the conversion's status and the one it was updated from by name;
    a refusal is ``status`` 2."""
    body = verdict(_updated(ConversionStatus.HOLD, ConversionStatus.PENDING))
    for encoded in (orjson.dumps(body), json.dumps(body).encode()):
        answer = json.loads(encoded)
        assert (answer["status"], answer["conversion_status"], answer["updated_from"]) == (
            1,
            "hold",
            "pending",
        )
    postback = Postback(postback_id=_ids.new_id(), method="GET", params={})
    refused = verdict(refusal(postback, "unknown aimp_id", RefusalKind.UNKNOWN_ID))
    assert (
        json.loads(orjson.dumps(refused))["status"]
        == json.loads(json.dumps(refused))["status"]
        == 2
    )


def test_duckdb_binds_a_status_as_its_number() -> None:
    """The slices filter the status columns (SMALLINT) by the statuses' numbers."""
    con = duckdb.connect()
    try:
        row = con.execute("SELECT ?::SMALLINT, ?", [ConversionStatus.HOLD, [1, 5]]).fetchone()
    finally:
        con.close()
    assert row == (5, [1, 5])


@pytest.mark.parametrize("name", ["slices/conversions", "slices/affiliate_postbacks"])
def test_the_slices_sql_names_each_conversion_status_as_the_enum_does(name: str) -> None:
    """The SQL spells out the statuses (a CASE per slice); it must agree with the enum."""
    spelled = re.findall(r"WHEN (\d+) THEN '(\w+)'", sql.load(name))
    assert {int(n): label for n, label in spelled} == {
        s.value: label for label, s in CONVERSION_STATUS_LABELS.items()
    }


def test_the_postbacks_slice_names_the_answers_as_the_enum_does() -> None:
    accepted, refused = PostbackStatus.ACCEPTED, PostbackStatus.REFUSED
    query = sql.load("slices/postbacks")
    assert f"WHEN {accepted.value} THEN '{accepted.label}' ELSE '{refused.label}'" in query
    assert f"$errors_only OR status = {refused.value})" in query
