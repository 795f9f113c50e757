"""The edge's impressions, gathered into envelopes (app.events.envelopes).

An envelope takes impressions until it holds ``max_events`` or has been open
``linger_ms``, whichever comes first; then it is sent as one Kafka record to its
partition. An impression without an ``imp_id`` joins the envelope opened last (a
new one opens on the next partition in turn); one with an ``imp_id`` must live on
the partition its offer, affiliate and ``imp_id`` hash to
(app.attribution.click_links.imp_id_partition), so a click naming that ``imp_id``
finds it, and joins that partition's envelope: at most one is open per partition.
Each impression's ``aimp_id`` is its envelope's ID for its slot
(app.ids.EnvelopeIds), so a lookup by ``aimp_id`` finds the envelope without an
index. A pixel is answered when its envelope is acknowledged by the broker, never
before: the GIF still means the broker has the impression.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import Any

from app.edge.placement import Placement
from app.edge.producer import BrokerUnavailable, EventProducer
from app.events.envelopes import EnvelopeFormat
from app.ids import ENVELOPE_SLOTS, EnvelopeIds

log = logging.getLogger("imptrack.edge")

MAX_ENVELOPE_CHARS = 256 * 1024
"""An envelope also closes once its text reaches this many characters: at up to 3
bytes a character (UTF-8; the edge stores what is not as U+FFFD) it stays under the
1 MB a Kafka record and an aiokafka request may hold by default, whatever the
impressions' subs and User-Agents (2.7 kB each at most)."""
_ROW_OVERHEAD_CHARS = 64  # numbers, nulls and JSON punctuation of one impression


class _Open:
    """The envelope being filled."""

    __slots__ = ("acked", "chars", "ids", "rows", "timer")

    def __init__(self, ids: EnvelopeIds, acked: asyncio.Future[None]) -> None:
        self.ids = ids
        self.rows: list[dict[str, Any]] = []
        self.chars = 0
        self.acked = acked
        self.timer: asyncio.TimerHandle | None = None


class EnvelopeWriter:
    def __init__(
        self,
        producer: EventProducer,
        placement: Placement,
        topic: str,
        fmt: EnvelopeFormat,
        max_events: int,
        linger_ms: float,
    ) -> None:
        if not 1 <= max_events <= ENVELOPE_SLOTS:
            raise ValueError(f"an envelope holds 1-{ENVELOPE_SLOTS} events, not {max_events}")
        self._producer = producer
        self._placement = placement
        self._topic = topic
        self._format = fmt
        self._max_events = max_events
        self._linger = linger_ms / 1000
        self._open: dict[int, _Open] = {}
        self._latest: _Open | None = None  # the last opened, while open
        self._sending: set[asyncio.Task[None]] = set()
        self.envelopes_sent = 0

    def add(self, row: dict[str, Any], partition: int | None = None) -> tuple[str, Awaitable[None]]:
        """Put ``row`` in an open envelope, on ``partition`` if it must live there,
        under a new ``aimp_id``; return the ID and what to await for the broker's ack
        (it raises :class:`BrokerUnavailable` if the envelope is not acknowledged in
        time)."""
        current = self._latest if partition is None else self._open.get(partition)
        if current is None:
            loop = asyncio.get_running_loop()
            if partition is None:
                partition = self._placement.next_partition()
            current = _Open(self._placement.ids.open_envelope(partition), loop.create_future())
            current.timer = loop.call_later(self._linger, self._close, current)
            self._open[partition] = self._latest = current
        aimp_id = current.ids.id(len(current.rows))
        row["aimp_id"] = aimp_id
        current.rows.append(row)
        current.chars += _ROW_OVERHEAD_CHARS + sum(
            len(v) for v in row.values() if isinstance(v, str)
        )
        if len(current.rows) >= self._max_events or current.chars >= MAX_ENVELOPE_CHARS:
            self._close(current)
        # Many requests await one future: shield it, so one cancelled request (its
        # client went away) does not cancel the ack the others wait for.
        return aimp_id, asyncio.shield(current.acked)

    def _close(self, envelope: _Open) -> None:
        partition = envelope.ids.partition
        if self._open.get(partition) is not envelope:
            return  # closed already, full before its time was up
        del self._open[partition]
        if self._latest is envelope:
            self._latest = None
        if envelope.timer is not None:
            envelope.timer.cancel()
        task = asyncio.create_task(self._send(envelope))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _send(self, envelope: _Open) -> None:
        try:
            value = self._format.encode_rows(envelope.rows)
            await self._producer.produce(
                self._topic, envelope.ids.key, value, envelope.ids.partition
            )
        except Exception as exc:  # every waiting pixel must get an answer
            if not isinstance(exc, BrokerUnavailable):
                # Not the broker's answer (a client error, an encoding bug): the pixels
                # get a 503, as for a broker that did not acknowledge, and it is logged.
                log.exception("an envelope of %d impressions was not sent", len(envelope.rows))
                exc = BrokerUnavailable(f"{type(exc).__name__}: {exc}")
            envelope.acked.set_exception(exc)
            # Retrieved here too: a future whose requests all went away must not log
            # "exception was never retrieved".
            envelope.acked.exception()
            return
        self.envelopes_sent += 1
        envelope.acked.set_result(None)

    async def flush(self) -> None:
        """Send the open envelope now and wait for every envelope in flight."""
        for envelope in list(self._open.values()):
            self._close(envelope)
        if self._sending:
            await asyncio.gather(*self._sending, return_exceptions=True)
