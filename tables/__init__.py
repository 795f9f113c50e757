"""The worker's Faust tables: declarations only.

Each table is keyed like the topic its agent reads, so a key's table partition is
its event's partition; RocksDB keeps them under one memory budget
(app/compat/rocksdb_store.py). Their changelog topics are created with the event
topics (app.events.kinds.CHANGELOG_TOPICS).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import faust

from app.attribution.conversions import ActionState
from app.attribution.links_store import LINKED_STORE_SCHEME, register_linked_store
from app.compat.rocksdb_store import STORE_SCHEME, rocksdb_options
from app.events.records import Click


@dataclass(frozen=True)
class WorkerTables:
    impressions: Any
    clicks: Any
    conversions: Any


def declare_tables(app: faust.App) -> WorkerTables:
    # On the worker's RocksDB, the impressions table keeps the clicks' links index
    # beside its entries (app/attribution/links_store.py); the unit tests' memory store
    # has no index.
    on_rocksdb = str(app.conf.store).startswith(f"{STORE_SCHEME}:")
    register_linked_store()
    return WorkerTables(
        impressions=_table(
            app,
            "impressions",
            bytes,
            "Recorded impressions by envelope key (app.ids.IdParts.envelope_key): each "
            "entry is an envelope's recorded impressions, as the recorded envelope "
            "(app.events.kinds.RECORDED_ENVELOPE), for postback matching; with the "
            "clicks' links index beside it (app.attribution.click_links).",
            # With the table's name as its path: Faust takes a URL with none
            # ("scheme://", which yarl makes false) for no store at all.
            store=f"{LINKED_STORE_SCHEME}:impressions" if on_rocksdb else None,
        ),
        clicks=_table(
            app,
            "clicks",
            Click,
            "Recorded clicks by clickid, for postback matching within the offer's click_session.",
        ),
        conversions=_table(
            app,
            "conversions",
            ActionState,
            "Conversions by offer and action_id, for deduplication and status updates.",
        ),
    )


def _table(
    app: faust.App, name: str, value_type: type, help_text: str, store: str | None = None
) -> Any:
    # key_type and value_type as well as the schema: Faust takes the serializers its
    # store encodes with from these (an envelope entry is raw bytes, not JSON), the
    # schema only for the changelog's records.
    return app.Table(
        name,
        key_type=str,
        value_type=value_type,
        schema=faust.Schema(
            key_type=str,
            value_type=value_type,
            key_serializer="raw",
            value_serializer="raw" if value_type is bytes else "json",
        ),
        options=rocksdb_options(),
        help=help_text,
        store=store,
    )
