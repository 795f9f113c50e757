"""Kafka topic names, shared by the edge (plain aiokafka) and the Faust workers."""

IMPRESSIONS = "impressions"
"""Impressions as the edge accepted them, keyed by ``aimp_id``."""

RECORDED_IMPRESSIONS = "impressions-recorded"
"""Impressions the impressions agent recorded, for the exporter; keyed by ``aimp_id``."""

REJECTED_IMPRESSIONS = "impressions-rejected"
"""Impressions the impressions agent did not track, with their reason; keyed by ``aimp_id``."""

FORWARD_TASKS = "forward-tasks"
"""One delivery to make to an advertiser's impressions destination URL; keyed by ``aimp_id``."""

DELIVERIES = "deliveries"
"""Every delivery attempt and its outcome, for the exporter; keyed by ``aimp_id``."""

DEAD_LETTERS = "forward-dead-letters"
"""Forward tasks that were never delivered, with the last attempt's error."""

CLICKS = "clicks"
"""Clicks the edge accepted and redirected, keyed by ``clickid``: the clicks agent
keeps them for postbacks and the exporter exports them as they are."""

REJECTED_CLICKS = "clicks-rejected"
"""Clicks the edge did not track, with their reason; keyed by ``clickid``."""

POSTBACKS = "postbacks"
"""Postbacks as the edge received them, keyed by ``clickid``, else ``aimp_id``, else
the postback's own ID: a postback lands on the partition of the click or
impression it names, where the worker holding that part of the tables reads it."""

POSTBACK_MATCHES = "postback-matches"
"""Postbacks matched to their click or impression, keyed by ``<offer_id>:<action_id>``
(``<offer_id>:postback:<postback_id>`` without one), so every postback of one
advertiser action meets the previous ones in one place."""

CONVERSIONS = "conversions"
"""Each new conversion and each change of its status (a new ``revision``); keyed by
``conversion_id``."""

POSTBACK_OUTCOMES = "postback-outcomes"
"""What became of every postback, accepted or refused; keyed by ``postback_id``."""

AFFILIATE_POSTBACKS = "affiliate-postbacks"
"""One conversion revision to post back to one affiliate postback URL, for the
forwarder; keyed by ``conversion_id``."""

AFFILIATE_POSTBACK_DELIVERIES = "affiliate-postback-deliveries"
"""Every attempt to deliver an affiliate postback and its outcome, for the exporter;
keyed by ``conversion_id``."""

AFFILIATE_POSTBACK_DEAD_LETTERS = "affiliate-postback-dead-letters"
"""Affiliate postbacks that were never delivered, with the last attempt's error: a
topic of their own, so readers of ``forward-dead-letters`` find impressions only."""

CATALOG = "catalog"
"""Advertisers, affiliates, offers and access rules; compacted, one partition."""

EVENT_TOPICS = (
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
)

WORKER_APP_ID = "imptrack"
"""The worker's Faust application id: its consumer group and its topics' prefix."""

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
