"""Failures the console reports as one line a person can act on (never a traceback)."""

from __future__ import annotations


class ConsoleError(Exception):
    """A failure to show as one line. ``exit_code`` is what the one-shot mode exits with."""

    exit_code: int = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class UsageError(ConsoleError):
    """The command line itself is wrong (syntax, unknown command, bad argument)."""

    exit_code = 2


class ConnectError(ConsoleError):
    """Nothing answered, it answered too slowly, or it is not a fedchain super node."""


class AuthError(ConsoleError):
    """The node refused the API token (HTTP 401)."""


class ApiError(ConsoleError):
    """The node answered the request with an error (4xx/5xx) and a message."""

    def __init__(self, message: str, status_code: int) -> None:
        super().__init__(message)
        self.status_code = status_code
