"""A postback's parameters, and the message for each thing wrong with them."""

from __future__ import annotations

from decimal import Decimal

import pytest

from app.attribution.params import PostbackRefused, parse_postback
from app.ids import IdGenerator, IdSeal
from tests.ids import TEST_SEAL

CLICKID = IdGenerator(TEST_SEAL).new_id()
AIMP_ID = IdGenerator(TEST_SEAL).new_id()


def _not_ours() -> str:
    """An ID of another network: one in 8,192 also passes this network's 13 check
    bits (app.ids), and is then refused by the tables, not by the check this test
    is about; such a draw is not the case here, so it is drawn again."""
    other = IdGenerator(IdSeal(b"another network's key"))
    return next(i for i in iter(other.new_id, None) if not TEST_SEAL.issued(i))


def _neighbour(value: str) -> str:
    """A guess at the neighbour of ``value`` that this network's check refuses (as
    8,191 of 8,192 guesses are)."""
    for last in "0123456789abcdef":
        guess = value[:-1] + last
        if guess != value and not TEST_SEAL.issued(guess):
            return guess
    raise AssertionError("no neighbour of the ID fails the check")


def test_a_full_postback() -> None:
    request = parse_postback(
        {
            "clickid": CLICKID,
            "aimp_id": AIMP_ID,
            "action_id": "order-17",
            "goal": "sale",
            "sum": "12.50",
            "status": "2",
            "secure": "abc",
            "custom_field1": "x",
            "custom_field7": "y",
            "custom_field8": "ignored",
        },
        TEST_SEAL,
    )
    assert (request.clickid, request.aimp_id, request.action_id) == (CLICKID, AIMP_ID, "order-17")
    assert (request.goal, request.sum, request.status) == ("sale", Decimal("12.50"), 2)
    assert request.custom_fields == {"custom_field1": "x", "custom_field7": "y"}
    assert request.matched_by == "clickid"  # a click beats an impression


def test_defaults_status_approved_goal_1_no_sum() -> None:
    request = parse_postback({"aimp_id": AIMP_ID}, TEST_SEAL)
    assert (request.status, request.goal, request.sum, request.matched_by) == (
        1,
        "1",
        None,
        "aimp_id",
    )


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({}, "neither clickid nor aimp_id is given; send one of them"),
        ({"clickid": "", "aimp_id": ""}, "neither clickid nor aimp_id is given"),
        ({"clickid": "XYZ"}, "clickid 'XYZ' is not a 24-character lowercase hex ID"),
        ({"aimp_id": "1234"}, "aimp_id '1234' is not a 24-character lowercase hex ID"),
        # Well formed, but not sealed with this network's key: another network's, or a
        # guess at the neighbour of one seen.
        (
            {"aimp_id": _not_ours()},
            "was not issued by this network; send the aimp_id exactly as it reached you",
        ),
        ({"clickid": _neighbour(AIMP_ID)}, "was not issued"),
        ({"aimp_id": AIMP_ID, "sum": "12,50"}, "sum '12,50' is not a decimal number"),
        ({"aimp_id": AIMP_ID, "sum": "-1"}, "sum '-1' must be a number from 0 to"),
        ({"aimp_id": AIMP_ID, "sum": "NaN"}, "sum 'NaN' must be a number from 0 to"),
        ({"aimp_id": AIMP_ID, "sum": "1e12"}, "sum '1e12' must be a number from 0 to"),
        ({"aimp_id": AIMP_ID, "sum": "0.00001"}, "more than 4 decimal places"),
        ({"aimp_id": AIMP_ID, "status": "4"}, "status '4' is not one of 1 (approved), 2 (pending)"),
        ({"aimp_id": AIMP_ID, "status": "approved"}, "status 'approved' is not one of"),
        # An Arabic-Indic digit one: str.isdigit() says yes, but it is not "1".
        ({"aimp_id": AIMP_ID, "status": "\u0661"}, "status '\u0661' is not one of"),
        ({"aimp_id": AIMP_ID, "action_id": "a" * 256}, "action_id is 256 characters long"),
        ({"aimp_id": AIMP_ID, "goal": "a\r\nb"}, "goal must not contain control characters"),
    ],
)
def test_each_problem_has_its_message(params: dict[str, str], message: str) -> None:
    with pytest.raises(PostbackRefused) as refused:
        parse_postback(params, TEST_SEAL)
    assert message in str(refused.value)
