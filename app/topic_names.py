"""Kafka topic names, shared by the edge (plain aiokafka) and the Faust workers."""

IMPRESSIONS = "impressions"
"""Impressions as the edge accepted them, keyed by ``aimp_id``."""

RECORDED_IMPRESSIONS = "impressions-recorded"
"""Impressions the impressions agent recorded, for the exporter; keyed by ``aimp_id``."""

REJECTED_IMPRESSIONS = "impressions-rejected"
"""Impressions the impressions agent did not track, with their reason; keyed by ``aimp_id``."""

CATALOG = "catalog"
"""Advertisers, affiliates, offers and access rules; compacted, one partition."""

EVENT_TOPICS = (IMPRESSIONS, RECORDED_IMPRESSIONS, REJECTED_IMPRESSIONS)
