"""The ``clicks`` table: every recorded click, keyed by ``clickid``, for postbacks."""

from __future__ import annotations

import faust

from app.compat.rocksdb_store import rocksdb_options
from app.events import topic_names
from app.events.records import Click
from app.streams.faust_app import app
from app.streams.table_progress import TableInput

clicks_table = app.Table(
    "clicks",
    schema=faust.Schema(
        key_type=str,
        value_type=Click,
        key_serializer="raw",
        value_serializer="json",
    ),
    options=rocksdb_options(),
    help="Recorded clicks by clickid, for postback matching within the offer's click_session.",
)
clicks_input = TableInput(topic_names.CLICKS, "clickid")
"""How far the clicks agent has written its input into the table."""
