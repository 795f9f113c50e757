"""The ``conversions`` table: each advertiser action's conversion and the outcomes
of the postbacks about it, keyed by ``<offer_id>:<action_id>``."""

from __future__ import annotations

import faust

from app.attribution.conversions import ActionState
from app.compat.rocksdb_store import rocksdb_options
from app.streams.faust_app import app

conversions_table = app.Table(
    "conversions",
    schema=faust.Schema(
        key_type=str,
        value_type=ActionState,
        key_serializer="raw",
        value_serializer="json",
    ),
    options=rocksdb_options(),
    help="Conversions by offer and action_id, for deduplication and status updates.",
)
