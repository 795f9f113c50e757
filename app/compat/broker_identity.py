"""Which Kafka cluster are we talking to? Its cluster id, from a metadata request."""

from __future__ import annotations

from typing import Any

from aiokafka.protocol.metadata import MetadataRequest

from app.exceptions import ImptrackError


async def cluster_id(client: Any) -> str:
    """The cluster id the broker reports (metadata v2 and later), via an aiokafka client."""
    node_id = client.get_random_node()
    response = await client.send(node_id, MetadataRequest([]))
    found = getattr(response, "cluster_id", None)
    if not found:
        raise ImptrackError("the broker reports no cluster id (Kafka metadata v2 or later needed)")
    return str(found)
