"""Every event kind imptrack carries on Kafka, each declared once.

A kind names its topic, the field whose value keys each record (the partitioner
places equal keys on the same partition in every topic and table), its record, who
writes it, and, for the kinds analysts see, the DuckDB table it is exported to and
the key a row is stored once by. The Faust topics (:mod:`app.events.topics`), the
topics ``imptrack up`` creates (:mod:`app.ops.topic_specs`), the exporter's topics
and dedup keys (:mod:`reports.exporter`, :mod:`reports.store`) are all read from
here; tests/unit/events/ checks the export SQL, the Arrow columns and the edge's
payloads against it.
"""

from __future__ import annotations

from dataclasses import dataclass

import faust

from app.events.envelopes import EnvelopeKind, envelope_kind
from app.events.records import SUB_FIELDS as _SUBS
from app.events.records import (
    AffiliatePostbackAttempt,
    AffiliatePostbackTask,
    Click,
    Conversion,
    DeliveryAttempt,
    ForwardTask,
    Impression,
    MatchedPostback,
    Postback,
    PostbackOutcome,
    RejectedClick,
    RejectedImpression,
)

EDGE = "edge"
WORKER = "worker"
FORWARDER = "forwarder"


@dataclass(frozen=True)
class Export:
    """Where the exporter stores a kind: the DuckDB ``table`` (with its
    ``reports/sql/export_<table>.sql`` and its Arrow columns in reports/columns.py),
    and the columns a row is stored once by; the first is a time-ordered ID."""

    table: str
    dedup_key: tuple[str, ...]
    updated_in_place: bool = False
    """A newer revision replaces the stored row instead of being dropped as stored."""


@dataclass(frozen=True)
class EventKind:
    topic: str
    key: str | None
    """The record field whose value is the Kafka key; None: a key made otherwise
    (the kind's docstring says how)."""
    record: type[faust.Record] | None
    """Each event's record; None for a kind whose values are kept as they came."""
    writer: str
    export: Export | None = None
    serialized: bool = False
    """Published already serialized (written to Redis as JSON first, then shipped)."""
    envelope: EnvelopeKind | None = None
    """Carried in envelopes (app.events.envelopes), many events a Kafka record, keyed
    by the envelope's key (app.ids.envelope_key); ``key`` is then each event's ID."""

    @property
    def enveloped(self) -> EnvelopeKind:
        if self.envelope is None:
            raise TypeError(f"{self.topic} is not carried in envelopes")
        return self.envelope


IMPRESSION_ENVELOPE = envelope_kind(
    "impressions", ("aimp_id", "offer_id", "pid", "imp_id", *_SUBS, "ua", "ip")
)
"""An edge's impressions of one partition and a few milliseconds."""

RECORDED_ENVELOPE = envelope_kind(
    "recorded impressions",
    (
        *IMPRESSION_ENVELOPE.formats[0].fields,
        "revenue",
        "payout",
        "currency",
        "advertiser_id",
    ),
)
"""An envelope's recorded impressions, with what they earned; also the value of its
entry in the ``impressions`` table."""

REJECTED_ENVELOPE = envelope_kind(
    "rejected impressions", ("aimp_id", "offer_id", "pid", "reason", "imp_id", "advertiser_id")
)
"""An envelope's impressions that were not tracked, with their reason."""

FORWARD_TASK_ENVELOPE = envelope_kind(
    "forward tasks",
    ("aimp_id", "offer_id", "pid", "advertiser_id", "destination", "url", "kind"),
)
"""An envelope's deliveries to make to impressions destination URLs."""

_OUTCOME_FIELDS_V1 = (
    "postback_id",
    "method",
    "params",
    "status",
    "outcome",
    "ip",
    "error",
    "conversion_id",
    "conversion_status",
    "previous_status",
    "attribution",
    "offer_id",
    "pid",
    "goal",
    "advertiser_id",
    "revision",
)
OUTCOME_ENVELOPE = envelope_kind(
    "postback outcomes", _OUTCOME_FIELDS_V1, (*_OUTCOME_FIELDS_V1, "error_kind", "replay_of")
)
"""What became of a batch's postbacks (``params``: each one's parameters, an object).
Format 2 added each refusal's ``error_kind`` and a replay's ``replay_of``."""

CONVERSION_ENVELOPE = envelope_kind(
    "conversions",
    (
        "conversion_id",
        "revision",
        "postback_id",
        "offer_id",
        "pid",
        "advertiser_id",
        "attribution",
        "goal",
        "status",
        "revenue",
        "payout",
        "currency",
        "event_ms",
        "created_ms",
        "updated_ms",
        "aimp_id",
        "clickid",
        "action_id",
        "sum",
        "imp_id",
        *_SUBS,
        "custom_fields",
    ),
)
"""A batch's new conversions and status changes (``custom_fields``: an object, or null)."""

MATCH_ENVELOPE = envelope_kind("postback matches", ("action_key", "postback", "conversion"))
"""A batch's postbacks matched to their click or impression, whose actions are on one
partition: each one's action key, and its postback and the conversion it makes as
their records' fields (app.attribution.matches)."""


IMPRESSIONS = EventKind("impressions", "aimp_id", Impression, EDGE, envelope=IMPRESSION_ENVELOPE)
"""Impressions as the edge accepted them."""

RECORDED_IMPRESSIONS = EventKind(
    "impressions-recorded",
    "aimp_id",
    Impression,
    WORKER,
    Export("impressions", ("aimp_id",)),
    envelope=RECORDED_ENVELOPE,
)
"""Impressions the impressions agent recorded, with what they earned."""

REJECTED_IMPRESSIONS = EventKind(
    "impressions-rejected",
    "aimp_id",
    RejectedImpression,
    WORKER,
    Export("rejections", ("aimp_id",)),
    envelope=REJECTED_ENVELOPE,
)
"""Impressions the impressions agent did not track, with their reason."""

FORWARD_TASKS = EventKind(
    "forward-tasks", "aimp_id", ForwardTask, WORKER, envelope=FORWARD_TASK_ENVELOPE
)
"""One delivery to make to an advertiser's impressions destination URL."""

DELIVERIES = EventKind(
    "deliveries",
    "aimp_id",
    DeliveryAttempt,
    FORWARDER,
    Export("deliveries", ("aimp_id", "destination", "attempt")),
    serialized=True,
)
"""Every delivery attempt and its outcome."""

DEAD_LETTERS = EventKind(
    "forward-dead-letters", "aimp_id", DeliveryAttempt, FORWARDER, serialized=True
)
"""Forward tasks that were never delivered, with the last attempt's error."""

CLICKS = EventKind("clicks", "clickid", Click, EDGE, Export("clicks", ("clickid",)))
"""Clicks the edge accepted and redirected: the clicks agent keeps them for
postbacks, and the exporter exports them as they are (the edge's verdict on a click
is final, no worker stands between a click and DuckDB)."""

REJECTED_CLICKS = EventKind(
    "clicks-rejected",
    "clickid",
    RejectedClick,
    EDGE,
    Export("click_rejections", ("clickid",)),
)
"""Clicks the edge did not track, with their reason."""

POSTBACKS = EventKind("postbacks", None, Postback, EDGE)
"""Postbacks as the edge received them. Keyed by the ``clickid`` they name, else the
``aimp_id``, else their own ID (app/edge/postback.py): a postback lands on the
partition of the click or impression it names, where the worker holding that part
of the tables reads it."""

POSTBACK_MATCHES = EventKind(
    "postback-matches", None, MatchedPostback, WORKER, envelope=MATCH_ENVELOPE
)
"""Postbacks matched to their click or impression, in envelopes of one batch and
partition. The partition is that of each one's action key, ``<offer_id>:<action_id>``
(``<offer_id>:postback:<postback_id>`` without one, app.attribution.conversions
``action_key``), so every postback of one advertiser action meets the earlier ones
in one place; the record's key is its first postback's ID (app.attribution.matches)."""

CONVERSIONS = EventKind(
    "conversions",
    "conversion_id",
    Conversion,
    WORKER,
    Export("conversions", ("conversion_id",), updated_in_place=True),
    envelope=CONVERSION_ENVELOPE,
)
"""Each new conversion and each change of its status (a new ``revision``), in one
envelope per batch of the conversions agent, keyed by its first conversion's ID."""

POSTBACK_OUTCOMES = EventKind(
    "postback-outcomes",
    "postback_id",
    PostbackOutcome,
    WORKER,
    Export("server_postbacks", ("postback_id",)),
    envelope=OUTCOME_ENVELOPE,
)
"""What became of every postback, accepted or refused, in one envelope per batch of
the agent that decided them, keyed by its first postback's ID."""

AFFILIATE_POSTBACKS = EventKind(
    "affiliate-postbacks", "conversion_id", AffiliatePostbackTask, WORKER
)
"""One conversion revision to post back to one affiliate postback URL."""

AFFILIATE_POSTBACK_DELIVERIES = EventKind(
    "affiliate-postback-deliveries",
    "conversion_id",
    AffiliatePostbackAttempt,
    FORWARDER,
    Export("affiliate_postbacks", ("conversion_id", "revision", "destination", "attempt")),
    serialized=True,
)
"""Every attempt to deliver an affiliate postback and its outcome."""

AFFILIATE_POSTBACK_DEAD_LETTERS = EventKind(
    "affiliate-postback-dead-letters",
    "conversion_id",
    AffiliatePostbackAttempt,
    FORWARDER,
    serialized=True,
)
"""Affiliate postbacks that were never delivered: a topic of their own, so readers
of ``forward-dead-letters`` find impressions only."""

UNREADABLE = EventKind("unreadable-records", None, None, WORKER, serialized=True)
"""Records a reader could not read (an envelope of a format it does not know, a
malformed record), as they were, with headers naming where they came from and why
(app.events.dead_letters): never dropped silently, and replayable once a reader
that knows them runs. Written by whichever process met them."""

EVENTS = (
    IMPRESSIONS,
    RECORDED_IMPRESSIONS,
    REJECTED_IMPRESSIONS,
    FORWARD_TASKS,
    DELIVERIES,
    DEAD_LETTERS,
    CLICKS,
    REJECTED_CLICKS,
    POSTBACKS,
    POSTBACK_MATCHES,
    CONVERSIONS,
    POSTBACK_OUTCOMES,
    AFFILIATE_POSTBACKS,
    AFFILIATE_POSTBACK_DELIVERIES,
    AFFILIATE_POSTBACK_DEAD_LETTERS,
    UNREADABLE,
)
"""Every event kind, in the order the exporter stores a batch's kinds."""

EXPORTS = tuple((kind.topic, kind.export) for kind in EVENTS if kind.export is not None)
"""Each exported kind's topic and where the exporter stores it, in order."""

EDGE_TOPICS = frozenset(kind.topic for kind in EVENTS if kind.writer == EDGE)
"""Written by the edge's plain (never transactional) producer."""

CATALOG_TOPIC = "catalog"
"""Advertisers, affiliates, offers and access rules; compacted, one partition. Not
an event kind: a compacted state, read whole by every process (app.catalog)."""

WORKER_APP_ID = "imptrack"
"""The worker's Faust application id: its consumer group and its topics' prefix."""

FORWARDER_APP_ID = "imptrack-forwarder"
"""The forwarder's Faust application id (its consumer group)."""

WORKER_TABLES = ("impressions", "clicks", "conversions")
"""The worker's tables (tables/); each keeps a compacted changelog topic."""


def changelog(table: str) -> str:
    """Faust's name for a worker table's changelog topic."""
    return f"{WORKER_APP_ID}-{table}-changelog"


CHANGELOG_TOPICS = tuple(changelog(table) for table in WORKER_TABLES)
"""Created by ``imptrack up`` with the event topics: a worker that created them itself
on a fresh cluster often joined its group before the consumer's metadata had them,
got none of their partitions ("Ignoring missing topic") and did not process
impressions until aiokafka refreshed its metadata, 5 minutes later (a soak's worker
on Apache Kafka 4.4)."""

EVENT_TOPICS = tuple(kind.topic for kind in EVENTS)
