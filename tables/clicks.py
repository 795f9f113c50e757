"""The ``clicks`` table: every recorded click, keyed by ``clickid``, for postbacks."""

from __future__ import annotations

import faust

from app import topic_names
from app.faust_app import app
from app.records import Click
from tables.progress import TableInput
from tables.storage import rocksdb_options

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
