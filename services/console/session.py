"""A console session: runs command lines against one node and renders what they return.

Both front ends use it: the REPL feeds it one line at a time, the one-shot mode feeds it
the ``-c`` commands in order and stops at the first failure.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from fedchain.services.console.client import ControlClient
from fedchain.services.console.commands import build_table
from fedchain.services.console.errors import ConsoleError
from fedchain.services.console.parser import parse_line
from fedchain.services.console.progress import follow_training
from fedchain.services.console.render import Renderer
from fedchain.services.console.spec import CommandTable, Outcome
from fedchain.shared.control_api import Health, TrainStarted

EXIT_INTERRUPTED = 130


@dataclass(frozen=True)
class LineResult:
    """How one line went: ``status`` is ok, empty, failed, interrupted or quit."""

    status: str
    exit_code: int = 0


class Session:
    """Connects lazily (on the first command that needs the node) and runs command lines."""

    def __init__(
        self,
        client_factory: Callable[[], ControlClient],
        renderer: Renderer,
        table: CommandTable | None = None,
        poll_interval: float = 0.5,
    ) -> None:
        self._client_factory = client_factory
        self._client: ControlClient | None = None
        self.renderer = renderer
        self._table = table or build_table()
        self.poll_interval = poll_interval
        self.node: Health | None = None

    @property
    def table(self) -> CommandTable:
        """The command table this session runs."""
        return self._table

    @property
    def client(self) -> ControlClient:
        """The client of a checked super node (connects and checks /health on first use)."""
        if self._client is None:
            client = self._client_factory()
            try:
                self.node = client.ensure_super_node()
            except BaseException:
                client.close()
                raise
            self._client = client
        return self._client

    def connect(self) -> Health:
        """Connect now and return the node's /health answer."""
        _ = self.client
        assert self.node is not None
        return self.node

    def close(self) -> None:
        """Close the HTTP client."""
        if self._client is not None:
            self._client.close()
            self._client = None

    def follow_training(self, start: TrainStarted, prev_round: int, timeout: float | None) -> Outcome:
        """Follow a run just started with the renderer's training view."""
        return follow_training(
            self.client,
            self.renderer.training_view,
            start,
            prev_round,
            timeout,
            poll_interval=self.poll_interval,
            notice=self.renderer.notice,
        )

    def run_line(self, text: str) -> LineResult:
        """Parse, check and run one command line, rendering its outcome or one error line."""
        name: str | None = None
        try:
            call = parse_line(text)
            if call is None:
                return LineResult("empty")
            name = call.name
            command = self._table.resolve(call.name)
            kwargs = command.bind(call)
            outcome = command.handler(self, **kwargs)
            self.renderer.show(command.name, outcome)
        except ConsoleError as exc:
            self.renderer.error(name, exc.message)
            return LineResult("failed", exc.exit_code)
        except KeyboardInterrupt:
            self.renderer.error(name, "interrupted")
            return LineResult("interrupted", EXIT_INTERRUPTED)
        except Exception as exc:  # noqa: BLE001 - last resort: one line, never a traceback
            self.renderer.error(name, f"unexpected {type(exc).__name__}: {' '.join(str(exc).split())[:200]}")
            return LineResult("failed", 1)
        if outcome.kind == "quit":
            return LineResult("quit")
        if outcome.interrupted:
            return LineResult("interrupted", EXIT_INTERRUPTED)
        return LineResult("ok")

    def run_script(self, lines: Iterable[str]) -> int:
        """Run ``lines`` in order; stop at the first failure and return its exit code (0 if none)."""
        for line in lines:
            result = self.run_line(line)
            if result.status == "quit":
                return 0
            if result.exit_code != 0:
                return result.exit_code
        return 0
