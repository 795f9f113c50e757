"""Validation of pixel parameters (pure logic)."""

from __future__ import annotations

import pytest
from multidict import MultiDict

from app.edge.params import MAX_ID, parse_pixel
from app.exceptions import InvalidParameter


def test_a_full_pixel_is_read() -> None:
    """offer_id, pid, imp_id and every sub are taken as sent; empty subs are absent."""
    query = MultiDict(
        [
            ("offer_id", "7"),
            ("pid", "42"),
            ("imp_id", "abc"),
            ("sub1", "a&b=c"),
            ("sub8", "z"),
            ("sub2", ""),
        ]
    )
    got = parse_pixel(query)
    assert (got.offer_id, got.pid, got.imp_id) == (7, 42, "abc")
    assert dict(got.subs) == {"sub1": "a&b=c", "sub8": "z"}


@pytest.mark.parametrize(
    ("pairs", "parameter"),
    [
        ([("pid", "1")], "offer_id"),
        ([("offer_id", "1")], "pid"),
        ([("offer_id", str(MAX_ID + 1)), ("pid", "1")], "offer_id"),
        ([("offer_id", "1e3"), ("pid", "1")], "offer_id"),
        ([("offer_id", " 1"), ("pid", "1")], "offer_id"),
        ([("offer_id", "1"), ("pid", "1"), ("pid", "2")], "pid"),
        ([("offer_id", "1"), ("pid", "1"), ("imp_id", "\x00")], "imp_id"),
        ([("offer_id", "1"), ("pid", "1"), ("sub5", "x" * 256)], "sub5"),
    ],
)
def test_bad_parameters_name_themselves(pairs: list[tuple[str, str]], parameter: str) -> None:
    """Every refusal names the parameter that was wrong."""
    with pytest.raises(InvalidParameter) as caught:
        parse_pixel(MultiDict(pairs))
    assert caught.value.parameter == parameter


def test_largest_values_are_accepted() -> None:
    """The documented bounds themselves are valid."""
    got = parse_pixel(
        MultiDict(
            [("offer_id", str(MAX_ID)), ("pid", "1"), ("imp_id", "i" * 128), ("sub3", "s" * 255)]
        )
    )
    assert got.offer_id == MAX_ID and len(got.imp_id or "") == 128
