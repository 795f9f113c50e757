"""One rule for text parameters, at the edge and in postbacks alike (app.text_rules):
the same value is refused with the same words by both."""

from __future__ import annotations

import pytest
from multidict import MultiDict

from app.attribution.params import PostbackRefused, parse_postback
from app.edge.params import MAX_SUB_LENGTH, parse_pixel
from app.exceptions import InvalidParameter
from app.ids import IdGenerator
from tests.ids import TEST_SEAL

AIMP_ID = IdGenerator(TEST_SEAL).new_id()


def _pixel_sub1(value: str) -> MultiDict[str]:
    return MultiDict([("offer_id", "1"), ("pid", "1"), ("sub1", value)])


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("a\x00b", "must not contain control characters"),
        ("tab\there", "must not contain control characters"),
        ("line\r\nbreak", "must not contain control characters"),
        ("esc\x1b[31m", "must not contain control characters"),
        ("del\x7f", "must not contain control characters"),
        ("x" * 256, "is 256 characters long; the limit is 255"),
    ],
)
def test_the_edge_and_postbacks_refuse_a_value_alike(value: str, problem: str) -> None:
    """A pixel's sub1 and a postback's action_id (both up to 255 characters)."""
    with pytest.raises(InvalidParameter) as at_edge:
        parse_pixel(_pixel_sub1(value))
    assert (at_edge.value.parameter, at_edge.value.problem) == ("sub1", problem)
    with pytest.raises(PostbackRefused) as in_postback:
        parse_postback({"aimp_id": AIMP_ID, "action_id": value}, TEST_SEAL)
    assert str(in_postback.value) == f"action_id {problem}"


@pytest.mark.parametrize("value", ["x" * MAX_SUB_LENGTH, "café ☕ 東京", "a b\u00a0c", "\u200b"])
def test_text_within_the_rule_is_taken_as_sent(value: str) -> None:
    """Unicode, spaces and a value at the limit pass both."""
    assert parse_pixel(_pixel_sub1(value)).subs["sub1"] == value
    assert parse_postback({"aimp_id": AIMP_ID, "action_id": value}, TEST_SEAL).action_id == value
