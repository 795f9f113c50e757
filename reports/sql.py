"""The SQL that ships with the package, read from its ``.sql`` files."""

from __future__ import annotations

from functools import cache
from importlib import resources


@cache
def load(name: str) -> str:
    """The text of ``reports/sql/<name>.sql``."""
    return resources.files("reports").joinpath("sql", f"{name}.sql").read_text("utf-8")


@cache
def statements(name: str) -> tuple[str, ...]:
    """The statements of a multi-statement file, split at lines ending in ``;``.

    DuckDB binds parameters only in the last statement of an ``execute`` call, so
    such files are run one statement at a time.
    """
    found, current = [], []
    for line in load(name).splitlines():
        current.append(line)
        if line.rstrip().endswith(";"):
            statement = "\n".join(current).strip()
            if any(not part.strip().startswith("--") for part in statement.splitlines()):
                found.append(statement)
            current = []
    return tuple(found)
