"""The edge's payload and the worker's record agree."""

from __future__ import annotations

import orjson

from app.events.records import Impression, impression_payload


def test_edge_payload_decodes_as_an_impression() -> None:
    """What the edge produces is read by the worker field for field."""
    payload = impression_payload(
        offer_id=3, pid=4, imp_id="i", subs={"sub2": "x"}, ua="UA", ip="10.0.0.1"
    )
    payload["aimp_id"] = "0" * 24  # given by its envelope (app.edge.envelope_writer)
    record = Impression.loads(orjson.dumps(payload), default_serializer="json")
    assert (record.aimp_id, record.offer_id, record.pid, record.imp_id) == ("0" * 24, 3, 4, "i")
    assert (record.sub1, record.sub2, record.ua, record.ip) == (None, "x", "UA", "10.0.0.1")
