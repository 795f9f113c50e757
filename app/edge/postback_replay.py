"""Sending refused postbacks again (``imptrack postbacks replay``), for example after a
catalog fix: each goes to the ``postbacks`` topic as the edge sends a postback, on
the partition of the ID it names, with a new postback ID and ``replay_of`` naming
the postback as the advertiser sent it.

The worker decides it anew: by the catalog in force now, but by its original's time
(the attribution windows) and as its original's action, so a postback sent again
twice makes one conversion (app.attribution.postback_judgement). The past is not
edited: the refusal stays in the log, the new decision is one more row.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import orjson

from app.edge.placement import Placement
from app.edge.producer import EventProducer
from app.events import kinds
from app.events.records import postback_payload
from app.ids import IdGenerator, IdSeal
from app.installation_secrets import load_id_key
from app.settings import Settings

ACK_TIMEOUT_SECONDS = 30.0


@dataclass(frozen=True)
class Replayed:
    """A postback to send again: the request as the advertiser sent it."""

    method: str
    params: dict[str, str]
    ip: str | None
    original: str


async def replay_postbacks(settings: Settings, postbacks: Iterable[Replayed]) -> list[str]:
    """Send each of ``postbacks`` again; return the new postback IDs, in order, once the
    broker has every one (an error stops the replay: those sent are listed by
    ``replay_of``, and a run again sends only the rest)."""
    placement = Placement(IdGenerator(IdSeal(load_id_key(settings))), settings.topic_partitions)
    producer = EventProducer(settings.broker, settings.edge_linger_ms, ACK_TIMEOUT_SECONDS)
    await producer.start()
    sent = []
    try:
        for postback in postbacks:
            partition = placement.of_postback(postback.params)
            postback_id = placement.ids.new_id(partition=partition)
            payload = postback_payload(
                postback_id,
                postback.method,
                postback.params,
                postback.ip,
                None,  # nobody waits for its verdict: it is in the log
                None,
                replay_of=postback.original,
            )
            await producer.produce(
                kinds.POSTBACKS.topic, postback_id, orjson.dumps(payload), partition
            )
            sent.append(postback_id)
    finally:
        await producer.stop()
    return sent
