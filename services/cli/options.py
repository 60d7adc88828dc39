"""Command-line options generated from ``Settings`` fields, so every command spells them alike.

``@settings_options(LEARNING_FIELDS)`` replaces a command's ``learning`` parameter by one
typer option per field: the flag is the field's name (``--client-fraction``; booleans
``--eval/--no-eval``), the help is the field's description, the default shown is the
field's default, and the options are grouped under their own help panel. Every option
defaults to None, so an option the user does not give overrides nothing (defaults <
``--config`` < environment < flags); the command receives the given ones as a dict::

    @settings_options(LEARNING_FIELDS)
    def simulate(learning: SettingsFlags, out: Path | None = typer.Option(None)) -> None:
        settings = load_settings(config, **learning)
"""

from __future__ import annotations

import functools
import inspect
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Literal, Optional

import typer

from fedchain.shared.config import Settings, flag_name

FLAG_ALIASES: dict[str, tuple[str, ...]] = {"algorithm": ("--strategy",)}
"""Other spellings of some options (``--strategy`` is ``--algorithm``)."""

SettingsFlags = dict[str, Any]
"""The settings options the user gave (field name -> value), what a decorated command receives."""


def _value_type(name: str) -> type[Any]:
    """The type click parses the option as: the field's type without None; Literals as str."""
    annotation = Settings.model_fields[name].annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        annotation = next(a for a in typing.get_args(annotation) if a is not type(None))
    if typing.get_origin(annotation) is Literal:
        return str
    if annotation in (bool, int, float, str, Path):
        return typing.cast(type[Any], annotation)
    raise TypeError(f"Settings.{name}: no command-line type for {annotation!r}")


def _default_text(name: str, value_type: type[Any]) -> str | bool:
    default = Settings.model_fields[name].default
    if default is None:
        return False
    if value_type is bool:
        return flag_name(name) if default else "--no-" + name.replace("_", "-")
    return str(default)


def _option(name: str, panel: str, shown: Mapping[str, str]) -> inspect.Parameter:
    value_type = _value_type(name)
    flag = flag_name(name)
    decl = f"{flag}/--no-{flag[2:]}" if value_type is bool else flag
    info = typer.Option(
        None,
        decl,
        *FLAG_ALIASES.get(name, ()),
        help=Settings.model_fields[name].description,
        show_default=shown.get(name, _default_text(name, value_type)),
        rich_help_panel=panel,
    )
    return inspect.Parameter(
        name, inspect.Parameter.KEYWORD_ONLY, default=info, annotation=Optional[value_type]  # noqa: UP045
    )


def settings_options(
    fields: Iterable[str],
    *,
    into: str = "learning",
    panel: str = "Learning settings",
    shown_defaults: Mapping[str, str] | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Give a typer command one option per Settings field in ``fields``.

    The command's parameter named ``into`` is replaced by the options (at its place, so
    ``--help`` lists them there) and receives the values given as a ``SettingsFlags`` dict.
    ``shown_defaults`` overrides the default ``--help`` shows for a field (a command whose own
    default differs, such as ``up``'s three rounds).
    """
    names = tuple(fields)
    shown = dict(shown_defaults or {})
    unknown = [n for n in (*names, *shown) if n not in Settings.model_fields]
    if unknown:
        raise TypeError(f"not Settings fields: {unknown}")

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        signature = inspect.signature(func)
        params = list(signature.parameters.values())
        at = [i for i, p in enumerate(params) if p.name == into]
        clash = [p.name for p in params if p.name in names]
        if not at or clash:
            raise TypeError(f"{func.__name__}: needs a '{into}' parameter and no own {clash} options")
        generated = [_option(name, panel, shown) for name in names]
        own = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in params]
        new_params = own[: at[0]] + generated + own[at[0] + 1 :]

        @functools.wraps(func)
        def command(**kwargs: Any) -> Any:
            given = {name: kwargs.pop(name) for name in names}
            kwargs[into] = {name: value for name, value in given.items() if value is not None}
            return func(**kwargs)

        setattr(command, "__signature__", signature.replace(parameters=new_params))  # noqa: B010
        annotations = {k: v for k, v in func.__annotations__.items() if k != into}
        annotations.update({p.name: p.annotation for p in generated})
        command.__annotations__ = annotations
        return command

    return decorate
