"""Errors imptrack raises on purpose; each message says what was wrong."""


class ImptrackError(Exception):
    """Base of every error imptrack raises on purpose."""


class ConfigurationError(ImptrackError):
    """A setting in the environment cannot be used."""


class InvalidParameter(ImptrackError):
    """A request parameter is missing or malformed."""

    def __init__(self, parameter: str, problem: str) -> None:
        super().__init__(f"{parameter}: {problem}")
        self.parameter = parameter
        self.problem = problem


class StackError(ImptrackError):
    """A process of the embedded stack did not start or stop as it should."""


class ReportError(ImptrackError):
    """A report cannot be produced with the options given."""
