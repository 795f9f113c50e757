"""The ``impressions`` table: every recorded impression, keyed by ``aimp_id``."""

from __future__ import annotations

import faust

from app.faust_app import app
from app.records import Impression

impressions_table = app.Table(
    "impressions",
    schema=faust.Schema(
        key_type=str,
        value_type=Impression,
        key_serializer="raw",
        value_serializer="json",
    ),
    help="Recorded impressions by aimp_id, for click and postback matching.",
)
