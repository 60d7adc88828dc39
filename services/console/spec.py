"""The shapes of the command table: parameter specs, commands, and what a command returns.

A :class:`Param` knows its type, bounds and help, checks a literal (with pydantic, in
strict mode) and says what it expects when the literal is wrong. A :class:`Command` binds a parsed call to its
parameters (positional in order, then by keyword) before its handler runs.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Annotated, Any, Literal, Protocol

from pydantic import BaseModel, Field, Strict, TypeAdapter, ValidationError

from fedchain.services.console.errors import UsageError
from fedchain.services.console.parser import BareName, RawCall

if TYPE_CHECKING:
    from fedchain.services.console.client import ControlClient
    from fedchain.shared.control_api import TrainStarted

Kind = Literal["int", "float", "str", "bool", "command"]


@dataclass(frozen=True)
class Outcome:
    """What a command produced: ``kind`` picks the renderer.

    ``data`` is the control API's typed answer (``fedchain.shared.control_api`` models, lists
    of them, or a dict holding them); :func:`jsonable` turns it into plain JSON values.
    """

    kind: str
    data: Any
    interrupted: bool = False


def jsonable(data: Any) -> Any:
    """``data`` with every pydantic model replaced by its JSON form (recursively)."""
    if isinstance(data, BaseModel):
        return data.model_dump(mode="json")
    if isinstance(data, Mapping):
        return {k: jsonable(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [jsonable(v) for v in data]
    return data


class CommandContext(Protocol):
    """What a handler may use: the connected client and the training follower."""

    @property
    def client(self) -> ControlClient: ...

    @property
    def table(self) -> CommandTable: ...

    def follow_training(self, start: TrainStarted, prev_round: int, timeout: float | None) -> Outcome: ...


Handler = Callable[..., Outcome]


@dataclass(frozen=True)
class Param:
    """One keyword argument of a command."""

    name: str
    kind: Kind
    help: str
    default: Any = None
    required: bool = False
    nullable: bool = False
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] | None = None

    def expects(self) -> str:
        """Describe the accepted values, e.g. ``an integer >= 1``."""
        if self.choices:
            text = "one of " + ", ".join(repr(c) for c in self.choices)
        elif self.kind == "int" and self.minimum is not None and self.maximum is not None:
            text = f"an integer from {self.minimum:g} to {self.maximum:g}"
        elif self.kind == "int":
            text = "an integer" + (f" >= {self.minimum:g}" if self.minimum is not None else "")
        elif self.kind == "float":
            text = "a number" + (f" > {self.minimum:g}" if self.minimum is not None else "")
        elif self.kind == "bool":
            text = "True or False"
        elif self.kind == "command":
            text = "a command name"
        else:
            text = "a quoted string"
        return text + (" or None" if self.nullable else "")

    def check(self, command: str, value: Any) -> Any:
        """Return ``value`` if it fits this parameter, else raise a :class:`UsageError`."""
        if isinstance(value, BareName):
            if self.kind == "command":
                return value.name
            raise self._wrong(command, value.name, hint=f' (quote text: "{value.name}")')
        try:
            return self._adapter.validate_python(value)
        except ValidationError:
            raise self._wrong(command, repr(value)) from None

    @cached_property
    def _adapter(self) -> TypeAdapter[Any]:
        """Pydantic's check of a value: this kind in strict mode (no bool for a number), its bounds."""
        base: Any
        if self.choices:
            base = Literal[self.choices]
        elif self.kind == "int":
            base = Annotated[int, Strict(), Field(ge=self.minimum, le=self.maximum)]
        elif self.kind == "float":
            base = Annotated[float, Strict(), Field(gt=self.minimum)]
        elif self.kind == "bool":
            base = Annotated[bool, Strict()]
        elif self.kind == "command":
            base = Annotated[str, Strict(), Field(pattern=r"\S")]
        else:
            base = Annotated[str, Strict()]
        return TypeAdapter(base | None if self.nullable else base)

    def _wrong(self, command: str, shown: str, hint: str = "") -> UsageError:
        return UsageError(f"{command}(): argument '{self.name}' expects {self.expects()}, got {shown}{hint}")


@dataclass(frozen=True)
class Command:
    """A console command: its name, one-line summary, parameters and handler."""

    name: str
    summary: str
    handler: Handler
    params: tuple[Param, ...] = ()
    example: str | None = None

    def param(self, name: str) -> Param | None:
        """The parameter called ``name``, if any."""
        return next((p for p in self.params if p.name == name), None)

    def signature(self) -> str:
        """``name(key=default, ...)`` as help shows it."""
        parts = []
        for p in self.params:
            parts.append(p.name if p.required else f"{p.name}={p.default!r}")
        return f"{self.name}({', '.join(parts)})"

    def bind(self, call: RawCall) -> dict[str, Any]:
        """Match a parsed call to the parameters, checking every value."""
        if len(call.args) > len(self.params):
            raise UsageError(
                f"{self.name}() takes at most {len(self.params)} argument(s), got {len(call.args)}: "
                f"use {self.signature()}"
            )
        given: dict[str, Any] = {}
        for param, value in zip(self.params, call.args, strict=False):  # fewer args than params is fine
            given[param.name] = value
        names = [p.name for p in self.params]
        for key, value in call.kwargs.items():
            if key not in names:
                near = difflib.get_close_matches(key, names, n=1)
                hint = f" - did you mean '{near[0]}'?" if near else ""
                known = ", ".join(names) if names else "none"
                raise UsageError(f"{self.name}() has no argument '{key}'{hint} (arguments: {known})")
            if key in given:
                raise UsageError(f"{self.name}(): argument '{key}' given twice")
            given[key] = value
        bound: dict[str, Any] = {}
        for param in self.params:
            if param.name in given:
                bound[param.name] = param.check(self.name, given[param.name])
            elif param.required:
                raise UsageError(f"{self.name}() needs argument '{param.name}' ({param.expects()})")
            else:
                bound[param.name] = param.default
        return bound


@dataclass
class CommandTable:
    """Commands by name, in the order help lists them."""

    commands: dict[str, Command] = field(default_factory=dict)

    def add(self, command: Command) -> None:
        """Register ``command`` (names are unique)."""
        if command.name in self.commands:
            raise ValueError(f"duplicate command {command.name}")
        self.commands[command.name] = command

    def __iter__(self) -> Iterator[Command]:
        return iter(self.commands.values())

    def get(self, name: str) -> Command | None:
        """The command called ``name`` (exact spelling), if any."""
        return self.commands.get(name)

    def resolve(self, name: str) -> Command:
        """The command called ``name``, or a :class:`UsageError` suggesting the nearest one."""
        command = self.commands.get(name)
        if command is not None:
            return command
        by_lower = {n.lower(): n for n in self.commands}
        near = difflib.get_close_matches(name.lower(), list(by_lower), n=1, cutoff=0.5)
        hint = f" - did you mean {by_lower[near[0]]}()?" if near else ""
        raise UsageError(f"unknown command '{name}'{hint} (help() lists the commands)")
