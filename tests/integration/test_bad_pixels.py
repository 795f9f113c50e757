"""Bad pixel requests: a 400 naming the parameter, and nothing produced."""

from __future__ import annotations

import aiohttp
import pytest

from tests.integration.conftest import RunningStack

pytestmark = pytest.mark.integration

BAD_REQUESTS = [
    ("pid=1", "offer_id", "offer_id is required"),
    ("offer_id=1", "pid", "pid is required"),
    ("offer_id=abc&pid=1", "offer_id", "offer_id must be a whole number from 1 to 2147483647"),
    ("offer_id=1&pid=-4", "pid", "pid must be a whole number from 1 to 2147483647"),
    ("offer_id=0&pid=1", "offer_id", "offer_id must be a whole number"),
    ("offer_id=99999999999&pid=1", "offer_id", "offer_id must be a whole number"),
    ("offer_id=1.5&pid=1", "offer_id", "offer_id must be a whole number"),
    ("offer_id=1&pid=1&offer_id=2", "offer_id", "offer_id is given more than once"),
    ("offer_id=1&pid=1&imp_id=" + "x" * 129, "imp_id", "imp_id is 129 characters long"),
    ("offer_id=1&pid=1&sub3=" + "y" * 256, "sub3", "sub3 is 256 characters long"),
    ("offer_id=1&pid=1&sub1=a%0Db", "sub1", "sub1 must not contain control characters"),
    ("offer_id=%D9%A3&pid=1", "offer_id", "offer_id must be a whole number"),
]


async def test_bad_pixels_get_a_400_that_names_the_parameter(stack: RunningStack) -> None:
    """Each malformed request is refused with its parameter and problem; none is exported."""
    before = stack.exported_impressions()
    async with aiohttp.ClientSession() as session:
        for query, parameter, message in BAD_REQUESTS:
            async with session.get(f"{stack.edge_url}/imp?{query}") as response:
                assert response.status == 400, query
                body = await response.json()
                assert body["parameter"] == parameter, query
                assert body["error"].startswith(message), (query, body)
                assert "X-Aimp-Id" not in response.headers
        # A good pixel after the bad ones: exactly one more impression arrives.
        async with session.get(f"{stack.edge_url}/imp?offer_id=13&pid=1") as response:
            assert response.status == 200
    assert stack.wait_exported(before + 1) == before + 1
    assert stack.query("SELECT count(*) FROM impressions WHERE offer_id = 13") == [(1,)]


async def test_unknown_parameters_are_ignored(stack: RunningStack) -> None:
    """Cache busters and other extra parameters do not make a pixel fail."""
    async with aiohttp.ClientSession() as session:
        url = f"{stack.edge_url}/imp?offer_id=1&pid=1&cb=123456&utm_source=x"
        async with session.get(url) as response:
            assert response.status == 200
            assert response.content_type == "image/gif"
