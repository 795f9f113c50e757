"""Every patch of a library's internals, declared once: where it is, which library
and version it was written for, why, its upstream issue, and the test that fails
without it (docs/ARCHITECTURE.md, "Library patches").

An upgrade can move the internals a patch reaches into without any error: a
private attribute set on an object that no longer reads it, a method overridden
that is no longer called. So ``install()`` refuses to start a process when a patched
library is at another version than its patches were written for. Nothing here
imports the patched libraries: the check runs before anything of theirs is used.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version

from app.exceptions import LibraryMismatch

FAUST = "faust-streaming"
AIOKAFKA = "aiokafka"
ROCKSDICT = "rocksdict"

_FAUST_ISSUES = "https://github.com/faust-streaming/faust"


@dataclass(frozen=True)
class Patch:
    """One workaround in app/compat/."""

    module: str
    library: str  # the distribution whose internals it reaches into
    written_for: str  # the version of ``library`` it was written and tested for
    reason: str  # why it is there, in one line
    upstream: str | None  # the upstream issue; None when there is none to point to
    test: str  # the test file that fails without it


def installed_version(library: str) -> str | None:
    try:
        return version(library)
    except PackageNotFoundError:
        return None


def _advice(patches: Sequence[Patch], found: str | None) -> str:
    first = patches[0]
    tests = ", ".join(sorted({p.test for p in patches}))
    if found is None:
        return f"install {first.library}=={first.written_for}"
    return (
        f"check the patch against {first.library} {found}, run {tests}, then raise its "
        f"written_for in app/compat/patches.py (or install {first.library}=={first.written_for})"
    )


def missing_internal(patch: Patch, internal: str) -> LibraryMismatch:
    """The error for a private attribute ``patch`` needs and its library does not have."""
    found = installed_version(patch.library)
    written_for = f"{patch.module} was written for {patch.library} {patch.written_for}"
    if found == patch.written_for:
        advice = f"{written_for}, the version installed, so something else made this object: "
        advice += f"check the patch, then run {patch.test}"
    else:
        advice = f"{written_for}: {_advice([patch], found)}"
    return LibraryMismatch(f"{patch.module} needs {internal}, which is not there; {advice}")


def check_versions(patches: Iterable[Patch]) -> None:
    """Refuse, with one error naming each of them, patches whose library is installed
    at another version than they were written for."""
    stale: dict[tuple[str, str, str, str | None], list[Patch]] = {}
    for patch in patches:
        found = installed_version(patch.library)
        if found != patch.written_for:
            key = (patch.module, patch.library, patch.written_for, found)
            stale.setdefault(key, []).append(patch)
    if not stale:
        return
    lines = [
        f"- {module} was written for {library} {written_for}, and "
        + (f"{library} {found} is installed" if found else f"{library} is not installed")
        + f": {_advice(group, found)}"
        for (module, library, written_for, found), group in stale.items()
    ]
    raise LibraryMismatch(
        "a library patched by app/compat/ is not the version its patch was written for; "
        "an upgrade may have changed the internals the patch relies on without any error.\n"
        + "\n".join(lines)
    )


FETCH_SNAPSHOT = Patch(
    module="app.compat.faust_consumer",
    library=FAUST,
    written_for="0.15.3",
    reason="Faust hands aiokafka its live set of active partitions; emptied during a fetch it "
    "means every partition, whose records are then consumed and dropped",
    upstream=f"{_FAUST_ISSUES}/issues/216",
    test="tests/integration/test_fetch_snapshot.py",
)
CONTIGUITY_GUARD = Patch(
    module="app.compat.faust_consumer",
    library=FAUST,
    written_for="0.15.3",
    reason="Faust drops fetched records (paused partition, stopped flow, new generation) after "
    "aiokafka moved past them; a record beyond a drop is held back and its partition sought back",
    upstream=f"{_FAUST_ISSUES}/issues/221",
    test="tests/unit/test_faust_transport.py",
)
GAPS_NOT_COMMITTED = Patch(
    module="app.compat.faust_consumer",
    library=FAUST,
    written_for="0.15.3",
    reason="Faust marks a jump in fetched offsets as done and commits past records no agent saw",
    upstream=f"{_FAUST_ISSUES}/issues/606",
    test="tests/unit/test_faust_transport.py",
)
UNACKED_HEAD_NOT_COMMITTED = Patch(
    module="app.compat.faust_consumer",
    library=FAUST,
    written_for="0.15.3",
    reason="Faust checks the acked offsets' head as if the committed offset were the last "
    "record processed, not the next to read, and commits past one record no agent processed",
    upstream=None,
    test="tests/unit/test_faust_transport.py",
)
STALE_ACK_REFUSED = Patch(
    module="app.compat.faust_consumer",
    library=FAUST,
    written_for="0.15.3",
    reason="Faust acks the stale copy of a record fetched before a rebalance, so a commit can "
    "pass its fresh copy before an agent processed it",
    upstream=f"{_FAUST_ISSUES}/pull/223",
    test="tests/unit/test_faust_transport.py",
)
IDEMPOTENT_PRODUCER = Patch(
    module="app.compat.faust_consumer",
    library=FAUST,
    written_for="0.15.3",
    reason="Faust makes its producer idempotent only under exactly_once; a retried send could "
    "write a record twice",
    upstream=None,
    test="tests/unit/test_faust_transport.py",
)
FETCH_SETTINGS = Patch(
    module="app.compat.faust_consumer",
    library=AIOKAFKA,
    written_for="0.14.0",
    reason="Faust hard-codes a 1.5 s fetch wait and reads committed records only under "
    "exactly_once; set on the private fields of aiokafka's consumer, which has no setter",
    upstream=None,
    test="tests/unit/test_faust_transport.py",
)
TABLE_WRITES = Patch(
    module="app.compat.table_writes",
    library=FAUST,
    written_for="0.15.3",
    reason="Faust refuses a table write outside stream iteration, and a take_events batch is "
    "outside it (also faust#300): Faust's private current-event variable is set per write",
    upstream=f"{_FAUST_ISSUES}/issues/497",
    test="tests/integration/test_pixel_to_duckdb.py",
)
ROCKSDB_STORE = Patch(
    module="app.compat.rocksdb_store",
    library=FAUST,
    written_for="0.15.3",
    reason="Faust's RocksDB store gives each table and partition a cache and write buffers of "
    "its own; the subclass shares one budget",
    upstream=None,
    test="tests/unit/test_table_storage.py",
)
ROCKSDB_BUDGET = Patch(
    module="app.compat.rocksdb_store",
    library=ROCKSDICT,
    written_for="0.3.29",
    reason="the shared budget is a rocksdict Cache charged with every database's memtables "
    "through one WriteBufferManager, measured on this version",
    upstream=None,
    test="tests/unit/test_table_storage.py",
)
TABLE_INDEX = Patch(
    module="app.compat.indexed_store",
    library=FAUST,
    written_for="0.15.3",
    reason="the clicks' links index lives in a column family of the impressions table's "
    "databases, written in one batch with each entry: Faust's store has no write hook, so its "
    "private _set, _del and apply_changelog_batch are overridden",
    upstream=None,
    test="tests/unit/compat/test_indexed_store.py",
)
TABLE_EXPIRY = Patch(
    module="app.compat.table_expiry",
    library=FAUST,
    written_for="0.15.3",
    reason="Faust tables never expire keys and list no partition's keys in order; the "
    "impressions table's oldest are read from the store's per-partition databases and deleted "
    "with Faust's private current-event variable set to that partition",
    upstream=None,
    test="tests/unit/test_table_expiry.py",
)
WAIT_FOR_PARTITIONS = Patch(
    module="app.compat.kafka_metadata",
    library=AIOKAFKA,
    written_for="0.14.0",
    reason="a consumer assigning partitions by hand has no public call to refresh its metadata, "
    "which partitions_for_topic only reads; the consumer's private client is asked",
    upstream=None,
    test="tests/integration/test_kafka_metadata.py",
)
CLUSTER_ID = Patch(
    module="app.compat.kafka_metadata",
    library=AIOKAFKA,
    written_for="0.14.0",
    reason="aiokafka's clients keep no cluster id; a raw MetadataRequest goes through the "
    "consumer's private client instead of an admin client of its own",
    upstream=None,
    test="tests/integration/test_kafka_metadata.py",
)

DIRECT_DRAIN = Patch(
    module="app.compat.faust_drain",
    library=FAUST,
    written_for="0.15.3",
    reason="Faust's drain loop races each record's hand-over to the streams against the "
    "consumer stopping in four tasks and an asyncio.wait; a hand-over that does not wait runs "
    "in the loop's own task, one that waits is raced as in Faust (a copy of its loop)",
    upstream=None,
    test="tests/unit/compat/test_faust_drain.py",
)
ROOT_LOG_LEVEL = Patch(
    module="app.compat.faust_worker",
    library=FAUST,
    written_for="0.15.3",
    reason="at --loglevel warn Faust's worker sets the root logger to DEBUG for its startup "
    "spinner and leaves it there, so every log.debug builds a LogRecord that is dropped",
    upstream=None,
    test="tests/unit/compat/test_faust_worker.py",
)
RUNNING_PRODUCER = Patch(
    module="app.compat.faust_producer",
    library=FAUST,
    written_for="0.15.3",
    reason="every record sent asks App.maybe_start_producer for the producer, and its "
    "@stampede wrapper awaits asyncio.sleep(0) on each call: a whole turn of the event loop "
    "per send, long after the producer started",
    upstream=None,
    test="tests/unit/compat/test_faust_producer.py",
)
QUEUES_KEPT_ON_RESUME = Patch(
    module="app.compat.faust_flow",
    library=FAUST,
    written_for="0.15.3",
    reason="after a table recovery Faust resumes the running flow a second time, and each "
    "resume empties the streams' queues: the records handed over since the seek to the "
    "committed offsets were thrown away unseen and never fetched again",
    upstream=None,
    test="tests/unit/compat/test_faust_flow.py",
)

PATCHES = (
    FETCH_SNAPSHOT,
    CONTIGUITY_GUARD,
    GAPS_NOT_COMMITTED,
    UNACKED_HEAD_NOT_COMMITTED,
    STALE_ACK_REFUSED,
    IDEMPOTENT_PRODUCER,
    FETCH_SETTINGS,
    DIRECT_DRAIN,
    QUEUES_KEPT_ON_RESUME,
    ROOT_LOG_LEVEL,
    RUNNING_PRODUCER,
    TABLE_WRITES,
    ROCKSDB_STORE,
    ROCKSDB_BUDGET,
    TABLE_INDEX,
    TABLE_EXPIRY,
    WAIT_FOR_PARTITIONS,
    CLUSTER_ID,
)
