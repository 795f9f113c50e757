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
)
