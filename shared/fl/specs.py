"""``package.module:attribute`` specs: user code named by a setting.

``--model``, ``--dataset`` and ``--algorithm`` (``--strategy``) take either one of
fedchain's own names or a spec ``package.module:attribute`` (``attribute`` may be dotted:
``module:Outer.factory``). ``load_spec`` imports the module and returns the attribute;
every failure is a ``SpecError`` (a ``ConfigError``) whose one-line message names the
flag and the value, so nothing starts with a spec that cannot be used.

A spec is resolved in every process that needs it (the simulation, each ``--workers``
process, each network node): the module must be importable there (installed, or on
``PYTHONPATH``). ``spec_of(obj)`` gives the spec of a class or function, for the Python
API (``fedchain.simulate(model=MyNet)``).
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable

from fedchain.shared.config import ConfigError

_SPEC = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


class SpecError(ConfigError):
    """A spec that does not import, has no such attribute, or is not what the flag needs."""


def is_spec(value: str) -> bool:
    """True when ``value`` has the ``module:attribute`` form (it may still not import)."""
    return ":" in value


def load_spec(spec: str, flag: str) -> object:
    """The object ``spec`` names; ``flag`` (``--model``) is named in any error.

    Raises SpecError when the text is not ``module:attribute``, the module does not import
    (or raises while importing) or has no such attribute.
    """
    if not _SPEC.match(spec):
        raise SpecError(f"{flag} {spec!r}: not a spec of the form package.module:attribute")
    module_name, _, attribute = spec.partition(":")
    try:
        obj: object = importlib.import_module(module_name)
    except ImportError as exc:
        raise SpecError(f"{flag} {spec!r}: cannot import module {module_name!r} ({_one_line(exc)})") from exc
    except Exception as exc:  # the user's module raised while importing: any type
        raise SpecError(
            f"{flag} {spec!r}: importing {module_name!r} failed: {type(exc).__name__}: {_one_line(exc)}"
        ) from exc
    for part in attribute.split("."):
        if not hasattr(obj, part):
            raise SpecError(f"{flag} {spec!r}: module {module_name!r} has no attribute {attribute!r}")
        obj = getattr(obj, part)
    return obj


def load_callable(spec: str, flag: str) -> object:
    """``load_spec``, refusing an object that cannot be called (a factory, a loader, a class)."""
    obj = load_spec(spec, flag)
    if not callable(obj):
        raise SpecError(f"{flag} {spec!r}: {type(obj).__name__} object is not callable")
    return obj


def checked_setting(check: Callable[[str, str], object], value: str, flag: str) -> None:
    """Run ``check(value, flag)`` for a Settings validator: a ConfigError becomes the
    ValueError pydantic reports, its reason without the ``flag 'value': `` prefix (the
    settings' own message names where the value came from and shows it)."""
    try:
        check(value, flag)
    except ConfigError as exc:
        text, prefix = str(exc), f"{flag} {value!r}: "
        raise ValueError(text.removeprefix(prefix)) from None


def spec_of(obj: object) -> str:
    """``module:qualname`` of a class or function (``__main__:Net`` for a script's own)."""
    module = getattr(obj, "__module__", None)
    qualname = getattr(obj, "__qualname__", None)
    if not isinstance(module, str) or not isinstance(qualname, str) or "<" in qualname:
        raise SpecError(f"{obj!r} has no importable name: define it at the top level of a module")
    return f"{module}:{qualname}"


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
