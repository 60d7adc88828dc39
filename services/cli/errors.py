"""How the ``fedchain`` command reports a user's error: one line on stderr,
``fedchain <command>: <message>``, and an exit code (2 for a usage or config error).

The command is recorded when typer dispatches it (``set_command``), so an error raised
deep inside a command — a ``ConfigError`` from a config file, a taken port — still names
the command it came from.
"""

from __future__ import annotations

import sys
from typing import NoReturn

import typer

_command = ["fedchain"]


def set_command(path: str) -> None:
    """Record the command being run (``fedchain simulate``) for ``error_line``."""
    _command[0] = path


def error_line(message: str, command: str | None = None) -> str:
    """``fedchain simulate: <message>``, the message folded onto one line."""
    return f"{command or _command[0]}: {' '.join(message.split())}"


def fail(message: str, code: int = 2) -> NoReturn:
    """Print ``error_line(message)`` on stderr and end the command with ``code``."""
    print(error_line(message), file=sys.stderr)
    raise typer.Exit(code)
