"""The peer baseline: a Quix Streams app doing per record what the worker's floor is.

Quix Streams (librdkafka inside) is the Python stream library a network would
otherwise pick. Its stateful per-record app, as issue 23 defines the peer floor:
decode each impression (JSON), write it to its state under its key (one
``state.set``, RocksDB with a changelog topic, as the worker's table has), and
produce it to an output topic. It reads a topic filled beforehand with the same
impressions the pipeline benchmark sends, in a process of its own (Quix's
``Application.run`` owns its process), and times from the first record it handles
to the run's end (its last output produced and its offsets committed); its outputs
keep their input's timestamps, so they cannot time it.

    python -m bench.quix_peer BROKER TOPIC COUNT STATE_DIR   # prints {"records", "seconds"}
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import time
import uuid
from typing import Any

from quixstreams import Application, State

from bench.common import fill_topic

RUN_TIMEOUT_S = 300.0
PARTITIONS = 4  # as the impressions topic the worker reads


def quix_run(broker: str, topic: str, count: int, state_dir: str) -> dict[str, Any]:
    """Run the peer app over ``count`` records of ``topic``; what it took."""
    app = Application(
        broker_address=broker,
        consumer_group=f"bench-quix-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        state_dir=state_dir,
        loglevel="WARNING",
    )
    source = app.topic(topic, key_deserializer="str", value_deserializer="json")
    sink = app.topic(f"{topic}-out", key_serializer="str", value_serializer="json")
    first: list[float] = []

    def keep(value: dict[str, Any], state: State[Any, Any]) -> None:
        if not first:
            first.append(time.perf_counter())
        state.set("impression", value)

    app.dataframe(source).update(keep, stateful=True).to_topic(sink)
    app.run(count=count, timeout=RUN_TIMEOUT_S)
    seconds = time.perf_counter() - first[0] if first else 0.0
    return {"records": count if first else 0, "seconds": round(seconds, 3)}


async def quix_round(broker: str, records: list[tuple[str, bytes]]) -> dict[str, Any]:
    """The peer app over ``records``, on a topic of their own, in a process of its own."""
    topic = f"bench-quix-{uuid.uuid4().hex[:8]}"
    await fill_topic(broker, topic, records, PARTITIONS)
    with tempfile.TemporaryDirectory(prefix="bench-quix-") as state_dir:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.quix_peer",
            broker,
            topic,
            str(len(records)),
            state_dir,
            stdout=asyncio.subprocess.PIPE,
            # Kept, not shown: its dependencies print deprecation notices at import.
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await process.communicate()
    if process.returncode != 0:
        tail = err.decode(errors="replace").strip().splitlines()[-5:]
        raise RuntimeError(
            f"the Quix Streams peer app exited with {process.returncode}: " + " | ".join(tail)
        )
    result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    result["per_s"] = round(result["records"] / result["seconds"]) if result["seconds"] else 0
    return result


def main(argv: list[str]) -> int:
    broker, topic, count, state_dir = argv
    print(json.dumps(quix_run(broker, topic, int(count), state_dir)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
