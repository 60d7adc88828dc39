"""The command table: the seed's vocabulary, parameter checking and suggestions."""

from __future__ import annotations

import pytest

from fedchain.services.console.commands import build_table
from fedchain.services.console.errors import UsageError
from fedchain.services.console.parser import parse_line
from fedchain.services.console.spec import CommandTable


@pytest.fixture
def table() -> CommandTable:
    return build_table()


def bind(table: CommandTable, line: str) -> dict[str, object]:
    call = parse_line(line)
    assert call is not None
    return table.resolve(call.name).bind(call)


def test_seed_vocabulary_and_chain_commands_exist(table: CommandTable) -> None:
    names = {c.name for c in table}
    assert {"train", "pause", "save", "eval", "getSN", "getModel", "trainFL", "quit", "exit"} <= names
    assert {"status", "blocks", "verify", "help"} <= names


def test_every_command_has_a_one_line_summary(table: CommandTable) -> None:
    for command in table:
        assert command.summary and "\n" not in command.summary
        for param in command.params:
            assert param.help and "\n" not in param.help


def test_seed_calls_work_as_written(table: CommandTable) -> None:
    assert bind(table, "train()") == {"rounds": 1, "algorithm": None, "wait": True, "timeout": None}
    assert bind(table, 'train(rounds=5, algorithm="fedavg")')["algorithm"] == "fedavg"
    assert bind(table, "trainFL(rounds=5)")["rounds"] == 5
    assert bind(table, 'getModel(version=3, path="global.safetensors")') == {"version": 3, "path": "global.safetensors"}
    assert bind(table, "save(name='x.safetensors')") == {"name": "x.safetensors"}
    assert bind(table, "blocks(n=10)") == {"n": 10, "start": None}
    assert bind(table, "getSN()") == {}


def test_positional_arguments_bind_in_order(table: CommandTable) -> None:
    assert bind(table, 'getModel(2, "m.safetensors")') == {"version": 2, "path": "m.safetensors"}
    assert bind(table, "help(train)") == {"command": "train"}


def test_a_whole_number_for_a_float_argument_becomes_a_float(table: CommandTable) -> None:
    timeout = bind(table, "train(timeout=5)")["timeout"]
    assert timeout == 5.0 and isinstance(timeout, float)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("train(rounds=0)", r"train\(\): argument 'rounds' expects an integer >= 1, got 0"),
        ("train(rounds='5')", r"argument 'rounds' expects an integer >= 1, got '5'"),
        ("train(rounds=True)", r"argument 'rounds' expects an integer >= 1, got True"),
        ("train(rounds=2.5)", r"argument 'rounds' expects an integer >= 1, got 2.5"),
        ('train(algorithm="fedprox")', r"argument 'algorithm' expects one of 'fedper', 'fedavg' or None"),
        ("train(wait=1)", r"argument 'wait' expects True or False"),
        ("getModel(path=model)", r"argument 'path' expects a quoted string or None, got model \(quote text"),
        ("blocks(n=-1)", r"argument 'n' expects an integer from 1 to 1000, got -1"),
        ("blocks(n=1001)", r"argument 'n' expects an integer from 1 to 1000, got 1001"),
        ("train(timeout=0)", r"argument 'timeout' expects a number > 0 or None, got 0"),
        ("train(timeout=True)", r"argument 'timeout' expects a number > 0 or None, got True"),
        ("train(timeout='5')", r"argument 'timeout' expects a number > 0 or None, got '5'"),
        ('help(command=" ")', r"argument 'command' expects a command name or None, got ' '"),
        ("train(round=3)", r"train\(\) has no argument 'round' - did you mean 'rounds'\?"),
        ("eval(1)", r"eval\(\) takes at most 0 argument"),
        ("train(5, rounds=5)", r"argument 'rounds' given twice"),
    ],
)
def test_bad_arguments_name_the_argument_and_what_it_expects(table: CommandTable, line: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        bind(table, line)


@pytest.mark.parametrize(("typed", "suggested"), [("trian", "train"), ("getsn", "getSN"), ("trainfl", "trainFL"),
                                                  ("verfy", "verify"), ("getmodel", "getModel")])
def test_unknown_command_suggests_the_nearest(table: CommandTable, typed: str, suggested: str) -> None:
    with pytest.raises(UsageError, match=rf"unknown command '{typed}' - did you mean {suggested}\(\)\?"):
        table.resolve(typed)


def test_unknown_command_without_near_match_points_at_help(table: CommandTable) -> None:
    with pytest.raises(UsageError, match=r"unknown command 'zzzzzz' \(help\(\) lists the commands\)"):
        table.resolve("zzzzzz")


def test_usage_errors_exit_with_code_2(table: CommandTable) -> None:
    with pytest.raises(UsageError) as info:
        bind(table, "train(rounds=0)")
    assert info.value.exit_code == 2
