"""Kafka topic names, shared by the edge (plain aiokafka) and the Faust workers."""

IMPRESSIONS = "impressions"
"""Impressions as the edge accepted them, keyed by ``aimp_id``."""

RECORDED_IMPRESSIONS = "impressions-recorded"
"""Impressions the impressions agent recorded, for the exporter; keyed by ``aimp_id``."""

EVENT_TOPICS = (IMPRESSIONS, RECORDED_IMPRESSIONS)
