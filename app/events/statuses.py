"""The statuses of postbacks and conversions, by number and by name.

The numbers are what advertisers send, and what records, the reporting database and
answers carry (an ``IntEnum`` is its number in JSON, Kafka and DuckDB alike); the
names (:attr:`label`) are how catalog files, the CLI and the stats API spell them.
"""

from __future__ import annotations

from enum import IntEnum

__all__ = ["CONVERSION_STATUS_LABELS", "ConversionStatus", "PostbackStatus"]


class _Labelled(IntEnum):
    @property
    def label(self) -> str:
        """The status by name, lowercase: ``approved``."""
        return self.name.lower()


class ConversionStatus(_Labelled):
    """A conversion's status: the postback's ``status`` parameter (1 by default)."""

    APPROVED = 1
    PENDING = 2
    DECLINED = 3
    HOLD = 5


class PostbackStatus(_Labelled):
    """The ``status`` of the answer to a postback, and of its outcome record."""

    ACCEPTED = 1
    REFUSED = 2


CONVERSION_STATUS_LABELS: dict[str, ConversionStatus] = {s.label: s for s in ConversionStatus}
"""Each conversion status by its name, in the order of their numbers."""
