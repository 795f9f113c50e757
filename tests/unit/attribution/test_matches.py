"""Matched postbacks in envelopes: placed by their action as aiokafka placed a
per-record match, grouped per partition in order, read back whole."""

from __future__ import annotations

import pytest
from aiokafka.partitioner import DefaultPartitioner

from app.attribution.matches import action_partition, match_envelopes, read_matches
from app.events.envelopes import UnreadableEnvelope
from app.events.records import MatchedPostback
from tests.unit.attribution.matched import matched_postback

T0 = 1_790_000_000_000


def _matched(action_id: str) -> tuple[str, MatchedPostback]:
    params = {"clickid": "c", "action_id": action_id}
    matched = matched_postback(1, T0, action_id, params, custom_fields={"k": "v"})
    return f"5:{action_id}", matched


@pytest.mark.parametrize("partitions", [1, 4, 7, 64])
def test_an_action_is_on_the_partition_aiokafka_gave_its_per_record_match(
    partitions: int,
) -> None:
    placed = DefaultPartitioner()
    every = list(range(partitions))
    for n in range(200):
        key = f"{n}:action-{n * 7}"
        assert action_partition(key, partitions) == placed(key.encode(), every, every)


def test_matches_are_grouped_per_partition_in_order_and_read_back_whole() -> None:
    matches = [_matched(f"a-{n}") for n in range(40)]
    envelopes = match_envelopes(matches, 4)

    assert sorted(e.partition for e in envelopes) == sorted(
        {action_partition(k, 4) for k, _ in matches}
    )
    read = []
    for envelope in envelopes:
        kept = read_matches(envelope.value, envelope.key.encode())
        assert envelope.key == kept[0][1].postback.postback_id
        assert {action_partition(key, 4) for key, _ in kept} == {envelope.partition}
        read.extend(kept)
    # Each partition's matches in the order they came; all of them, each whole.
    assert sorted(read, key=matches.index) == matches
    for envelope in envelopes:
        kept = read_matches(envelope.value, None)
        assert kept == sorted(kept, key=matches.index)
    assert match_envelopes([], 4) == []


def test_a_match_of_the_per_record_format_is_read_by_its_key() -> None:
    key, matched = _matched("old")
    assert read_matches(matched.dumps(serializer="json"), key.encode()) == [(key, matched)]


@pytest.mark.parametrize(
    ("value", "key", "problem"),
    [
        ("text", None, "a postback-matches record of str"),
        (b"", None, "an empty record is no postback matches envelope"),
        (b"\x02[[],[],[]]", None, "postback matches envelope of format 2"),
        (b"\x01[[],[]]", None, "not 3 columns of one length"),
        (b'\x01[["5:a"],[{}],[null]]', None, "the match of action '5:a' has no conversion"),
        (b'\x01[["5:a"],[{}],[{}]]', None, "the match of action '5:a': "),
        (b'{"postback": {}}', None, "a per-record postback match without its action key"),
        (b'{"postback": ', b"5:a", "a per-record postback match of '5:a'"),
        (b'{"postback": 1, "conversion": 2}', b"5:a", "a per-record postback match of '5:a'"),
    ],
)
def test_an_unreadable_record_says_what_is_wrong(value: object, key: object, problem: str) -> None:
    with pytest.raises(UnreadableEnvelope) as raised:
        read_matches(value, key)
    assert problem in str(raised.value)
