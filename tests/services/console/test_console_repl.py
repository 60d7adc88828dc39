"""The interactive console driven through prompt_toolkit's pipe input."""

from __future__ import annotations

import io
import threading
import time
from pathlib import Path

from fake_control_node import TOKEN, RunningNode
from prompt_toolkit.completion import CompleteEvent
from prompt_toolkit.document import Document
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput
from rich.console import Console

from fedchain.services.console.client import ControlClient
from fedchain.services.console.commands import build_table
from fedchain.services.console.render import RichRenderer
from fedchain.services.console.repl import CommandCompleter, default_history_path, run_repl
from fedchain.services.console.session import Session


def make_session(node: RunningNode, token: str = TOKEN) -> tuple[Session, io.StringIO, io.StringIO]:
    out, err = io.StringIO(), io.StringIO()
    renderer = RichRenderer(Console(file=out, width=160), Console(file=err, width=160))
    session = Session(lambda: ControlClient(node.url, token, timeout=5), renderer, poll_interval=0.01)
    return session, out, err


def drive(session: Session, keys: str | list[str], history: Path, pause: float = 0.3) -> int:
    """Run the REPL on ``keys``; a list is typed piece by piece (completion runs in between)."""
    session.connect()
    pieces = [keys] if isinstance(keys, str) else keys
    with create_pipe_input() as pipe:

        def typist() -> None:
            for piece in pieces:
                pipe.send_text(piece)
                time.sleep(pause)

        thread = threading.Thread(target=typist, daemon=True)
        thread.start()
        try:
            return run_repl(session, history, input=pipe, output=DummyOutput())
        finally:
            thread.join(timeout=10)


def test_repl_runs_the_vocabulary(fake_node: RunningNode, tmp_path: Path) -> None:
    session, out, err = make_session(fake_node)
    keys = "help()\rtrain(rounds=2)\reval()\rgetSN()\rblocks(n=3)\rverify()\rtrian()\rtrain(rounds=0)\rquit()\r"
    assert drive(session, keys, tmp_path / "hist") == 0
    text, errors = out.getvalue(), err.getvalue()
    for command in ("train(", "pause()", "save(", "eval()", "getSN()", "getModel(", "trainFL(", "status()",
                    "blocks(", "verify()", "help(", "quit()", "exit()"):
        assert command in text, command
    assert "round 1: accuracy 51.00%" in text and "round 2: accuracy 52.00%" in text
    assert "done: round 2 of 2, model v2, chain height 3" in text
    assert "pooled" in text and "85.00%" in text
    assert "127.0.0.1:9080" in text and "alive" in text
    assert "chain OK: 4 blocks checked, tip at height 3" in text
    assert "error: unknown command 'trian' - did you mean train()?" in errors
    assert "error: train(): argument 'rounds' expects an integer >= 1, got 0" in errors
    assert "Traceback" not in text + errors
    assert fake_node.node.train_calls == [{"rounds": 2, "algorithm": "fedper"}]


def test_history_survives_sessions(fake_node: RunningNode, tmp_path: Path) -> None:
    history = tmp_path / "home" / "console_history"
    first, _, _ = make_session(fake_node)
    drive(first, "trainFL(rounds=1)\rexit()\r", history)
    assert "trainFL(rounds=1)" in history.read_text()
    second, out, _ = make_session(fake_node)
    # Up twice: exit(), then trainFL(rounds=1) from the first session
    drive(second, "\x1b[A\x1b[A\rquit()\r", history)
    assert fake_node.node.train_calls == [{"rounds": 1, "algorithm": "fedavg"}] * 2
    assert "done: round 2 of 2" in out.getvalue()


def test_tab_completes_command_and_argument_names(fake_node: RunningNode, tmp_path: Path) -> None:
    fake_node.node.round = 3
    target = tmp_path / "m.safetensors"
    session, out, err = make_session(fake_node)
    drive(session, ["getMo", "\t", "vers", "\t", "2, pa", "\t", f'"{target}")\r', "quit()\r"], tmp_path / "hist")
    assert "model v2 -> " in out.getvalue(), err.getvalue()
    assert target.is_file()


def test_ctrl_d_leaves_and_ctrl_c_clears_the_line(fake_node: RunningNode, tmp_path: Path) -> None:
    session, out, _ = make_session(fake_node)
    assert drive(session, "train(rounds=5)\x03status()\r\x04", tmp_path / "hist") == 0
    assert fake_node.node.train_calls == []
    assert "state" in out.getvalue() and "idle" in out.getvalue()


def test_completer_offers_commands_arguments_and_choices() -> None:
    completer = CommandCompleter(build_table())

    def complete(text: str) -> list[str]:
        return [c.text for c in completer.get_completions(Document(text), CompleteEvent(completion_requested=True))]

    assert complete("get") == ["getSN(", "getModel("]
    assert complete("train(") == ["rounds=", "algorithm=", "wait=", "timeout="]
    assert complete("train(rounds=2, a") == ["algorithm="]
    assert complete("train(rounds=2, ") == ["algorithm=", "wait=", "timeout="]
    assert complete('train(algorithm="fedp') == ['"fedper"']
    assert complete("nosuch(") == []


def test_history_location_follows_fedchain_home(monkeypatch, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("FEDCHAIN_HOME", str(tmp_path))
    assert default_history_path() == tmp_path / "console_history"
    monkeypatch.delenv("FEDCHAIN_HOME")
    assert default_history_path() == Path.home() / ".fedchain_history"
