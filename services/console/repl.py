"""The interactive console: a prompt_toolkit prompt with history and completion."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from prompt_toolkit import PromptSession
from prompt_toolkit.completion import CompleteEvent, Completer, Completion
from prompt_toolkit.document import Document
from prompt_toolkit.history import FileHistory, History, InMemoryHistory

from fedchain.services.console.session import Session
from fedchain.services.console.spec import CommandTable

PROMPT = "fedchain> "
_CALL_OPEN = re.compile(r"^\s*([A-Za-z_]\w*)\s*\((.*)$", re.DOTALL)
_WORD = re.compile(r"[A-Za-z_]\w*|")


def default_history_path() -> Path:
    """``$FEDCHAIN_HOME/console_history`` when FEDCHAIN_HOME is set, else ``~/.fedchain_history``."""
    from fedchain.shared.config import load_settings

    home = load_settings().home
    if home is not None:
        return home.expanduser() / "console_history"
    return Path.home() / ".fedchain_history"


def open_history(path: Path) -> tuple[History, str | None]:
    """A file history at ``path`` (parents created), or in-memory with a reason if unwritable."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(exist_ok=True)
        return FileHistory(str(path)), None
    except OSError as exc:
        return InMemoryHistory(), f"history not kept: cannot write {path} ({exc.strerror})"


class CommandCompleter(Completer):
    """Completes command names, then the keyword names (and choices) of the command typed."""

    def __init__(self, table: CommandTable) -> None:
        self.table = table

    def get_completions(self, document: Document, complete_event: CompleteEvent) -> Iterable[Completion]:
        text = document.text_before_cursor
        opened = _CALL_OPEN.match(text)
        if opened is None:
            word = text.lstrip()
            if not _WORD.fullmatch(word):
                return
            for command in self.table:
                if command.name.lower().startswith(word.lower()):
                    yield Completion(command.name + "(", start_position=-len(word),
                                     display=command.signature(), display_meta=command.summary)
            return
        found = self.table.get(opened.group(1))
        if found is None:
            return
        command = found
        inside = opened.group(2)
        fragment = re.split(r"[(,]", inside)[-1].lstrip()
        if "=" in fragment:
            key, value = fragment.split("=", 1)
            param = command.param(key.strip())
            value = value.lstrip()
            if param is not None and param.choices:
                for choice in param.choices:
                    quoted = f'"{choice}"'
                    if quoted.startswith(value) or choice.startswith(value.strip("\"'")):
                        yield Completion(quoted, start_position=-len(value), display_meta=param.help)
            return
        used = set(re.findall(r"([A-Za-z_]\w*)\s*=", inside))
        for param in command.params:
            if param.name not in used and param.name.startswith(fragment):
                yield Completion(param.name + "=", start_position=-len(fragment),
                                 display_meta=f"{param.help} ({param.expects()})")


def run_repl(session: Session, history_path: Path, banner: bool = True, **prompt_io: Any) -> int:
    """Read commands until quit()/exit() or Ctrl-D; Ctrl-C clears the line. Returns 0.

    ``prompt_io`` may carry prompt_toolkit ``input``/``output`` objects (tests use a pipe).
    """
    history, problem = open_history(history_path)
    prompt: PromptSession[str] = PromptSession(
        history=history, completer=CommandCompleter(session.table), complete_while_typing=True, **prompt_io
    )
    if problem:
        session.renderer.notice(problem)
    if banner:
        node = session.node
        who = f"{'entry ' if node.entry else ''}SN {node.node_id}" if node else "a super node"
        session.renderer.notice(
            f"connected to {who}; "
            "help() lists the commands, quit() leaves"
        )
    while True:
        try:
            line = prompt.prompt(PROMPT)
        except KeyboardInterrupt:
            continue
        except EOFError:
            break
        if session.run_line(line).status == "quit":
            break
    return 0
