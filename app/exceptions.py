"""Errors imptrack raises on purpose; each message says what was wrong.

Each carries the HTTP status an API answers it with (``http_status``), so a server
maps the error's type, never its message, to a status.
"""


class ImptrackError(Exception):
    """Base of every error imptrack raises on purpose."""

    http_status = 500


class ConfigurationError(ImptrackError):
    """A setting in the environment cannot be used."""


class InvalidParameter(ImptrackError):
    """A request parameter is missing or malformed."""

    http_status = 400

    def __init__(self, parameter: str, problem: str) -> None:
        super().__init__(f"{parameter}: {problem}")
        self.parameter = parameter
        self.problem = problem


class StackError(ImptrackError):
    """A process of the stack did not start or stop as it should."""


class ReportError(ImptrackError):
    """A report cannot be produced with the options given."""

    http_status = 400


class UnknownSlice(ReportError):
    """No slice has the name asked for."""

    http_status = 404


class ReportUnavailable(ReportError):
    """What the report reads is not there or does not answer yet; it may later."""

    http_status = 503


class CatalogError(ImptrackError):
    """A catalog change was refused; ``field`` says which input was wrong."""

    http_status = 400

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


class UnknownEntity(CatalogError):
    """The advertiser, affiliate or offer named does not exist."""

    http_status = 404


class EntityExists(CatalogError):
    """A create named an id that is already taken."""

    http_status = 409


class CatalogUnavailable(ImptrackError):
    """The catalog topic could not be read or written in time."""

    http_status = 503


class LibraryMismatch(ImptrackError):
    """An installed library is not the version a patch of its internals was written for."""
