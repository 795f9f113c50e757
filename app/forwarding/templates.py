"""Destination URL templates, compiled once per catalog change, filled per impression.

A template is split once into literal text and macro names; filling it joins the
pieces with each value percent-encoded, so a ``sub1`` of ``a&b=c`` arrives as one
value and can never add a parameter or change the path.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote

_MACRO = re.compile(r"\{([a-z0-9_]+)\}")


@dataclass(frozen=True)
class UrlTemplate:
    url: str
    # Literal pieces and macro names, alternating: literal, name, literal, ...
    _parts: tuple[str, ...]

    @classmethod
    def compile(cls, url: str) -> UrlTemplate:
        return cls(url, tuple(_MACRO.split(url)))

    @property
    def macros(self) -> tuple[str, ...]:
        return self._parts[1::2]

    def fill(self, values: Mapping[str, object]) -> str:
        """The URL with each macro replaced by its URL-encoded value (empty if unset)."""
        parts = list(self._parts)
        for n in range(1, len(parts), 2):
            value = values.get(parts[n])
            parts[n] = "" if value is None else quote(str(value), safe="")
        return "".join(parts)
