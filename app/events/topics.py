"""Faust declarations of the event topics (names in :mod:`app.events.topic_names`)."""

from __future__ import annotations

from app.events import topic_names
from app.events.records import (
    AffiliatePostbackTask,
    Click,
    Conversion,
    ForwardTask,
    Impression,
    MatchedPostback,
    Postback,
    PostbackOutcome,
    RejectedImpression,
)
from app.streams.faust_app import app

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

forward_tasks_topic = app.topic(
    topic_names.FORWARD_TASKS,
    key_type=str,
    key_serializer="raw",
    value_type=ForwardTask,
)

# The forwarder publishes delivery attempts already serialized (see
# app.events.records.DeliveryAttempt): they were written to Redis as JSON first.
deliveries_topic = app.topic(
    topic_names.DELIVERIES,
    key_type=str,
    key_serializer="raw",
    value_type=bytes,
    value_serializer="raw",
)

dead_letters_topic = app.topic(
    topic_names.DEAD_LETTERS,
    key_type=str,
    key_serializer="raw",
    value_type=bytes,
    value_serializer="raw",
)

clicks_topic = app.topic(
    topic_names.CLICKS,
    key_type=str,
    key_serializer="raw",
    value_type=Click,
)

postbacks_topic = app.topic(
    topic_names.POSTBACKS,
    key_type=str,
    key_serializer="raw",
    value_type=Postback,
)

postback_matches_topic = app.topic(
    topic_names.POSTBACK_MATCHES,
    key_type=str,
    key_serializer="raw",
    value_type=MatchedPostback,
)

conversions_topic = app.topic(
    topic_names.CONVERSIONS,
    key_type=str,
    key_serializer="raw",
    value_type=Conversion,
)

postback_outcomes_topic = app.topic(
    topic_names.POSTBACK_OUTCOMES,
    key_type=str,
    key_serializer="raw",
    value_type=PostbackOutcome,
)

affiliate_postbacks_topic = app.topic(
    topic_names.AFFILIATE_POSTBACKS,
    key_type=str,
    key_serializer="raw",
    value_type=AffiliatePostbackTask,
)

# Published already serialized, as the impressions' delivery log is.
affiliate_postback_deliveries_topic = app.topic(
    topic_names.AFFILIATE_POSTBACK_DELIVERIES,
    key_type=str,
    key_serializer="raw",
    value_type=bytes,
    value_serializer="raw",
)

affiliate_postback_dead_letters_topic = app.topic(
    topic_names.AFFILIATE_POSTBACK_DEAD_LETTERS,
    key_type=str,
    key_serializer="raw",
    value_type=bytes,
    value_serializer="raw",
)
