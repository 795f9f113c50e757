"""Where a click is sent: the offer's tracking URL, or its trafficback URL.

Templates are compiled once per URL, i.e. once per catalog change that sets one;
every value is percent-encoded, so nothing an affiliate sends can add a parameter,
change the path or reach a header (CR and LF are encoded too).
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from functools import lru_cache

from app.forwarding.templates import UrlTemplate

TEMPLATE_CACHE_SIZE = 8192


@lru_cache(maxsize=TEMPLATE_CACHE_SIZE)
def compiled(url: str) -> UrlTemplate:
    return UrlTemplate.compile(url)


def location(url: str, values: Mapping[str, object]) -> str:
    """``url`` with its macros filled; ``{rand}`` is drawn here."""
    return compiled(url).fill({**values, "rand": random.getrandbits(31)})
