"""Every event kind is declared once (app/events/kinds.py); the exporter's SQL and
columns, the tables' keys and the edge's payloads are checked against it here."""

from __future__ import annotations

from importlib import resources

import duckdb
import pytest

from app.events import kinds
from app.events.kinds import EVENTS, EXPORTS, Export
from app.events.records import (
    Click,
    Impression,
    Postback,
    RejectedClick,
    impression_payload,
    postback_payload,
    rejected_click_payload,
)
from app.ids import IdGenerator
from reports import db, store
from reports.columns import BATCH_BUILDERS
from reports.exporter import EXPORTED_TOPICS
from tests.ids import TEST_SEAL


def test_topics_are_unique_and_keys_are_fields_of_their_records() -> None:
    assert len({kind.topic for kind in EVENTS}) == len(EVENTS)
    for kind in EVENTS:
        if kind.key is not None:
            assert kind.key in kind.record._options.fields, kind.topic


def test_the_exporter_reads_every_exported_kind_and_no_other() -> None:
    assert {topic: export.table for topic, export in EXPORTS} == EXPORTED_TOPICS
    assert list(store.KINDS) == list(BATCH_BUILDERS) == [export.table for _, export in EXPORTS]


@pytest.mark.parametrize(("topic", "export"), EXPORTS, ids=[topic for topic, _ in EXPORTS])
def test_each_exported_kind_has_its_sql_and_columns_matching_its_duckdb_table(
    topic: str, export: Export
) -> None:
    """The Arrow columns a batch is built with are the DuckDB table's, and its export
    SQL ships with the package."""
    table = export.table
    sql = resources.files("reports").joinpath("sql", f"export_{table}.sql")
    assert sql.is_file(), f"reports/sql/export_{table}.sql"
    con = duckdb.connect()
    db.migrate(con)
    stored = [row[0] for row in con.execute(f"DESCRIBE {table}").fetchall()]
    built = BATCH_BUILDERS[table]([]).schema.names
    assert sorted(built) == sorted(stored)
    assert set(export.dedup_key) <= set(built)


def test_the_worker_tables_changelogs_are_named_like_faust_names_them() -> None:
    assert (
        tuple(f"{kinds.WORKER_APP_ID}-{table}-changelog" for table in kinds.WORKER_TABLES)
        == kinds.CHANGELOG_TOPICS
    )


def test_the_edges_payloads_decode_as_their_kinds_records() -> None:
    """The edge writes plain JSON objects (its hot path has no use for Faust's
    models); each decodes as the record its kind declares, nothing lost."""
    ids = IdGenerator(TEST_SEAL)
    payloads = {
        kinds.IMPRESSIONS: {
            **impression_payload(5, 3, "i-1", {"sub1": "a"}, "UA", "1.2.3.4"),
            "aimp_id": ids.new_id(),
        },
        kinds.REJECTED_CLICKS: rejected_click_payload(ids.new_id(), 5, 3, "offer_paused", None, 9),
        kinds.POSTBACKS: postback_payload(
            ids.new_id(), "GET", {"clickid": "x"}, None, "edge-1", None
        ),
    }
    assert {kind.record for kind in payloads} == {Impression, RejectedClick, Postback}
    for kind, payload in payloads.items():
        assert kind.writer == kinds.EDGE
        decoded = kind.record.from_data(payload)
        assert set(payload) <= set(kind.record._options.fields), kind.topic
        assert {name: getattr(decoded, name) for name in payload} == payload
    # The clicks the edge accepts are Click records already (app/edge/click.py).
    assert kinds.CLICKS.record is Click


def test_each_envelope_carries_its_records_fields() -> None:
    """An envelope's current format carries every field of its kind's record (the
    edge's impressions: all but what the worker adds), so a field added to a record
    without a new envelope format fails here instead of being dropped on the wire."""
    added_by_the_worker = {"revenue", "payout", "currency", "advertiser_id"}
    enveloped = [kind for kind in EVENTS if kind.envelope is not None]
    assert {kind.topic for kind in enveloped} == {
        "impressions",
        "impressions-recorded",
        "impressions-rejected",
        "forward-tasks",
        "postback-matches",
        "postback-outcomes",
        "conversions",
    }
    # Matches carry their records whole, each as a column of dicts beside its action
    # key (app.attribution.matches); tests/unit/attribution/test_matches.py reads
    # them back equal.
    matches = kinds.POSTBACK_MATCHES
    assert matches.record is not None
    assert matches.enveloped.current.fields == ("action_key", *matches.record._options.fields)
    for kind in enveloped:
        if kind is matches:
            continue
        assert kind.record is not None
        fields = set(kind.record._options.fields)
        if kind is kinds.IMPRESSIONS:
            fields -= added_by_the_worker
        assert set(kind.enveloped.current.fields) == fields, kind.topic
        # Each envelope starts with its events' IDs, by which it is keyed.
        assert kind.enveloped.current.fields[0] == kind.key, kind.topic
