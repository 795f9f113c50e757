"""Faust declarations of the event topics (names in :mod:`app.topic_names`)."""

from __future__ import annotations

from app import topic_names
from app.faust_app import app
from app.records import Impression, RejectedImpression

# Keys are the raw ID bytes, exactly as the edge sends them, so the producer's
# partitioner places a key on the same partition in every topic and table.
impressions_topic = app.topic(
    topic_names.IMPRESSIONS,
    key_type=str,
    key_serializer="raw",
    value_type=Impression,
)

recorded_impressions_topic = app.topic(
    topic_names.RECORDED_IMPRESSIONS,
    key_type=str,
    key_serializer="raw",
    value_type=Impression,
)

rejected_impressions_topic = app.topic(
    topic_names.REJECTED_IMPRESSIONS,
    key_type=str,
    key_serializer="raw",
    value_type=RejectedImpression,
)
