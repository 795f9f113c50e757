"""The ``impressions`` table: every recorded impression, keyed by ``aimp_id``."""

from __future__ import annotations

import faust

from app.compat.rocksdb_store import rocksdb_options
from app.events import topic_names
from app.events.records import Impression
from app.streams.faust_app import app
from app.streams.table_progress import TableInput

impressions_table = app.Table(
    "impressions",
    schema=faust.Schema(
        key_type=str,
        value_type=Impression,
        key_serializer="raw",
        value_serializer="json",
    ),
    options=rocksdb_options(),
    help="Recorded impressions by aimp_id, for click and postback matching.",
)
impressions_input = TableInput(topic_names.IMPRESSIONS, "aimp_id")
"""How far the impressions agent has written its input into the table."""
