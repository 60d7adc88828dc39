"""The command-line parser: literal arguments only, never evaluated, clear messages."""

from __future__ import annotations

from pathlib import Path

import pytest

from fedchain.services.console.errors import UsageError
from fedchain.services.console.parser import BareName, RawCall, parse_line


def test_keyword_and_positional_literals() -> None:
    call = parse_line('getModel(3, path="global.safetensors")')
    assert call == RawCall("getModel", (3,), {"path": "global.safetensors"})


def test_bare_name_is_a_call_without_arguments() -> None:
    assert parse_line("  status  ") == RawCall("status")


def test_name_argument_is_kept_as_bare_name() -> None:
    assert parse_line("help(train)") == RawCall("help", (BareName("train"),))


@pytest.mark.parametrize("line", ["", "   ", "# a comment"])
def test_blank_lines_and_comments_are_nothing(line: str) -> None:
    assert parse_line(line) is None


def test_literals_of_every_kind() -> None:
    call = parse_line("f(a=-1, b=2.5, c=True, d=None, e='x', g=[1, 2])")
    assert call is not None and call.kwargs == {"a": -1, "b": 2.5, "c": True, "d": None, "e": "x", "g": [1, 2]}


def test_code_in_an_argument_is_never_run(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    line = f"train(rounds=__import__('pathlib').Path({str(marker)!r}).touch())"
    with pytest.raises(UsageError, match="argument 'rounds' must be a literal"):
        parse_line(line)
    assert not marker.exists()


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("train(rounds=", "cannot read"),
        ("rounds = 3", "cannot read"),
        ("1 + 1", "expected one command call"),
        ("os.system('ls')", "expected one command call"),
        ("train()()", "expected one command call"),
        ("train(*[1])", r"\*arguments are not accepted"),
        ("train(**{'rounds': 1})", r"\*\*arguments are not accepted"),
        ("train(rounds=1+1)", "argument 'rounds' must be a literal"),
        ("train(1, rounds=x.y)", "argument 'rounds' must be a literal"),
        ("train(rounds=1, rounds=2)", "argument 'rounds' given twice"),
    ],
)
def test_rejected_lines_say_why(line: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse_line(line)


def test_overlong_line_is_refused() -> None:
    with pytest.raises(UsageError, match="too long"):
        parse_line("help(" + "1" * 10_000 + ")")
