"""Turn one command line into a call: ``name(arg, key=value, ...)`` with literal arguments.

The text is parsed with :mod:`ast` in ``eval`` mode and only a call of a plain name is
accepted; every argument goes through :func:`ast.literal_eval`. Nothing the user typed is
ever evaluated as code. A bare name (``status``) is read as a call without arguments.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from typing import Any

from fedchain.services.console.errors import UsageError

MAX_LINE_CHARS = 4096


@dataclass(frozen=True)
class BareName:
    """An argument written as a plain name, e.g. ``help(train)``; only some parameters take it."""

    name: str


@dataclass(frozen=True)
class RawCall:
    """A parsed but not yet checked command: its name and literal arguments."""

    name: str
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)


def _literal(node: ast.expr, what: str) -> Any:
    if isinstance(node, ast.Name):
        return BareName(node.id)
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        shown = ast.unparse(node)
        raise UsageError(
            f"{what} must be a literal (a number, a quoted string, True, False or None), got {shown}"
        ) from None


def parse_line(text: str) -> RawCall | None:
    """Parse one line into a :class:`RawCall`; ``None`` for a blank line or a comment.

    Raises :class:`UsageError` with a one-line message for anything that is not a single
    call of a name with literal arguments.
    """
    line = text.strip()
    if not line or line.startswith("#"):
        return None
    if len(line) > MAX_LINE_CHARS:
        raise UsageError(f"command is too long ({len(line)} characters, at most {MAX_LINE_CHARS})")
    try:
        tree = ast.parse(line, mode="eval")
    except SyntaxError as exc:
        raise UsageError(
            f"cannot read {line!r}: {exc.msg}; commands look like train(rounds=2) - try help()"
        ) from None
    except (ValueError, MemoryError, RecursionError):
        raise UsageError(f"cannot read {line!r}; commands look like train(rounds=2)") from None
    body = tree.body
    if isinstance(body, ast.Name):
        return RawCall(body.id)
    if not isinstance(body, ast.Call) or not isinstance(body.func, ast.Name):
        raise UsageError(
            f"expected one command call such as train(rounds=2), got {line!r} - try help()"
        )
    name = body.func.id
    args: list[Any] = []
    for position, node in enumerate(body.args, start=1):
        if isinstance(node, ast.Starred):
            raise UsageError(f"{name}(): *arguments are not accepted, write the values out")
        args.append(_literal(node, f"{name}(): positional argument {position}"))
    kwargs: dict[str, Any] = {}
    for keyword in body.keywords:
        if keyword.arg is None:
            raise UsageError(f"{name}(): **arguments are not accepted, write key=value")
        if keyword.arg in kwargs:
            raise UsageError(f"{name}(): argument '{keyword.arg}' given twice")
        kwargs[keyword.arg] = _literal(keyword.value, f"{name}(): argument '{keyword.arg}'")
    return RawCall(name, tuple(args), kwargs)
