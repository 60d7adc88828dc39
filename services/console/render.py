"""Renderers: rich tables and lines for people, one JSON object per command for scripts."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, Protocol, TextIO

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from fedchain.services.console.progress import TrainingView
from fedchain.services.console.spec import Outcome


class Renderer(Protocol):
    """Shows outcomes, errors and notices, and opens a view that follows a training run."""

    def show(self, command: str, outcome: Outcome) -> None: ...

    def error(self, command: str | None, message: str) -> None: ...

    def notice(self, message: str) -> None: ...

    def training_view(self, start: Mapping[str, Any]) -> Any: ...


# ---- formatting helpers ---------------------------------------------------------------


def pct(value: Any) -> str:
    """An accuracy in [0, 1] as a percentage; '-' when absent."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return f"{100 * value:.2f}%" if value <= 1 else f"{value:.2f}"
    return "-"


def num(value: Any, digits: int = 4) -> str:
    """A number with ``digits`` significant figures; '-' when absent."""
    if isinstance(value, bool) or value is None:
        return "-" if value is None else str(value)
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def short(digest: Any, n: int = 12) -> str:
    """The first ``n`` characters of a hex digest."""
    return str(digest)[:n] if digest else "-"


def when(ms: Any) -> str:
    """A millisecond timestamp as UTC time."""
    try:
        return datetime.fromtimestamp(int(ms) / 1000, tz=UTC).strftime("%H:%M:%S")
    except (TypeError, ValueError, OverflowError, OSError):
        return "-"


def payload_summary(payload: Any, limit: int = 60) -> str:
    """A few key=value pairs of a block payload."""
    if not isinstance(payload, Mapping):
        return "-"
    parts = []
    for key in ("round", "version", "model_version", "algorithm", "node_id", "role", "reason", "note", "model_digest"):
        if key in payload and not isinstance(payload[key], (dict, list)):
            value = payload[key]
            parts.append(f"{key}={short(value) if 'digest' in key else value}")
    if "participants" in payload and isinstance(payload["participants"], list):
        parts.append(f"participants={len(payload['participants'])}")
    text = " ".join(parts) or ", ".join(list(payload)[:4])
    return text if len(text) <= limit else text[: limit - 1] + "…"


def rounds_table(rounds: list[dict[str, Any]], title: str | None = None) -> Table:
    """Rounds with accuracy, loss, participants, rejected updates, block height and time."""
    table = Table(title=title, title_justify="left")
    for column in ("round", "alg.", "model", "accuracy", "loss", "nodes", "rejected", "height", "s"):
        table.add_column(column, justify="left" if column == "alg." else "right", no_wrap=True)
    for r in rounds:
        rejected = r.get("rejected") or []
        table.add_row(
            str(r.get("round", "-")),
            str(r.get("algorithm", "-")),
            f"v{r.get('model_version', '-')}",
            pct(r.get("accuracy")),
            num(r.get("loss")),
            str(len(r.get("participants") or [])),
            str(len(rejected)),
            str(r.get("height", "-")),
            num(r.get("seconds"), 3),
        )
    return table


def status_line(status: Mapping[str, Any]) -> str:
    """One line: state, round/target, model version, height, node counts."""
    return (
        f"{status.get('state', '?')} · round {status.get('round', '?')}/{status.get('target_round', '?')}"
        f" · {status.get('algorithm') or '-'} · model v{status.get('model_version', '?')}"
        f" · height {status.get('height', '?')} · SNs {status.get('sns', '?')} · ENs {status.get('ens', '?')}"
    )


# ---- rich -----------------------------------------------------------------------------


class _LiveView:
    """A rich Live table of the run's rounds on a terminal."""

    def __init__(self, live: Live, start: Mapping[str, Any]) -> None:
        self.live = live
        self.start = start

    def update(self, status: Mapping[str, Any], rounds: list[dict[str, Any]]) -> None:
        caption = Text(status_line(status) + "   (Ctrl-C leaves this display; training goes on)", style="dim")
        rows = max(3, self.live.console.height - 10)
        title = _run_title(self.start)
        if len(rounds) > rows:
            title += f" (last {rows} of {len(rounds)} shown; rounds() lists more)"
        self.live.update(Group(rounds_table(rounds[-rows:], title=title), caption))


class _LineView:
    """One line per finished round, for a console that is not a terminal."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.printed: set[Any] = set()

    def update(self, status: Mapping[str, Any], rounds: list[dict[str, Any]]) -> None:
        for r in rounds:
            if r.get("round") in self.printed:
                continue
            self.printed.add(r.get("round"))
            self.console.print(
                f"round {r.get('round')}: accuracy {pct(r.get('accuracy'))}, loss {num(r.get('loss'))}, "
                f"{len(r.get('participants') or [])} participants, {len(r.get('rejected') or [])} rejected, "
                f"height {r.get('height', '-')}, {num(r.get('seconds'), 3)} s",
                highlight=False, soft_wrap=True,
            )


def _run_title(start: Mapping[str, Any]) -> str:
    return (
        f"training {start.get('algorithm') or ''} rounds {start.get('start_round', '?')}"
        f"..{start.get('target_round', '?')}"
    ).replace("  ", " ")


class RichRenderer:
    """Tables and short lines for a person; errors go to ``err`` in red."""

    def __init__(self, out: Console | None = None, err: Console | None = None) -> None:
        self.out = out or Console()
        self.err = err or Console(stderr=True)

    def error(self, command: str | None, message: str) -> None:
        """One line, prefixed with ``error:``."""
        self.err.print(Text("error: " + message, style="red"), soft_wrap=True)

    def notice(self, message: str) -> None:
        """An informational line."""
        self.out.print(Text(message, style="yellow"), soft_wrap=True)

    @contextmanager
    def training_view(self, start: Mapping[str, Any]) -> Iterator[TrainingView]:
        """A live table on a terminal, else one printed line per round."""
        self.out.print(Text(f"{_run_title(start)} started", style="bold"), highlight=False)
        if self.out.is_terminal:
            with Live(console=self.out, refresh_per_second=4, transient=False) as live:
                yield _LiveView(live, start)
        else:
            yield _LineView(self.out)

    def show(self, command: str, outcome: Outcome) -> None:
        """Render ``outcome`` according to its kind."""
        method = getattr(self, "_show_" + outcome.kind.replace("-", "_"), None)
        if method is None:
            self.out.print_json(data=outcome.data)
        else:
            method(outcome)

    def _line(self, text: str, style: str | None = None) -> None:
        self.out.print(Text(text, style=style or ""), soft_wrap=True)

    def _show_help(self, outcome: Outcome) -> None:
        data = outcome.data
        if data["detail"]:
            entry = data["commands"][0]
            self._line(entry["signature"], "bold")
            self._line("  " + entry["summary"])
            for p in entry["params"]:
                self._line(f"  {p['name']}: {p['help']} - {p['expects']} (default {p['default']!r})")
            if entry["example"]:
                self._line("  example: " + entry["example"])
            return
        table = Table(title="commands (arguments are literals: train(rounds=5, algorithm=\"fedavg\"))",
                      title_justify="left", show_header=False, box=None)
        table.add_column("command", style="bold")
        table.add_column("what it does")
        for entry in data["commands"]:
            table.add_row(entry["signature"], entry["summary"])
        self.out.print(table)

    def _show_status(self, outcome: Outcome) -> None:
        table = Table(show_header=False, box=None)
        table.add_column("key", style="bold")
        table.add_column("value")
        for key, value in outcome.data.items():
            table.add_row(str(key), str(value))
        self.out.print(table)

    def _show_train(self, outcome: Outcome) -> None:
        data = outcome.data
        status = data.get("status") or {}
        start = data.get("start") or {}
        # the rounds themselves were shown while following (live table or one line each)
        if outcome.interrupted:
            self.notice(
                f"left the progress display at round {status.get('round', '?')} of {start.get('target_round', '?')}; "
                "training goes on (status() to check, pause() to hold)"
            )
        else:
            self._line(
                f"done: round {status.get('round')} of {start.get('target_round')}, "
                f"model v{status.get('model_version')}, chain height {status.get('height')}",
                "green",
            )

    def _show_train_started(self, outcome: Outcome) -> None:
        d = outcome.data
        self._line(
            f"training started: {d.get('algorithm') or ''} rounds {d.get('start_round')}..{d.get('target_round')}"
            " (status() or rounds() to follow)".replace("  ", " ")
        )

    def _show_pause(self, outcome: Outcome) -> None:
        d = outcome.data
        state = d.get("status")
        if state == "pausing":
            text = f"pausing: the round after {d.get('round')} finishes, then training holds (train() resumes)"
        elif state == "paused":
            text = f"paused after round {d.get('round')} (train() resumes)"
        else:
            text = f"nothing to pause: the network is {state} at round {d.get('round')}"
        self._line(text)

    def _show_save(self, outcome: Outcome) -> None:
        d = outcome.data
        self._line(
            f"saved model v{d.get('version')} (sha256 {short(d.get('digest'), 16)}) in checkpoint block "
            f"{d.get('height')}: {d.get('path')} (on the entry)"
        )

    def _show_eval(self, outcome: Outcome) -> None:
        d = outcome.data
        table = Table(title="evaluation (personal models on each EN's test split)", title_justify="left")
        for column in ("EN", "SN", "accuracy", "correct", "total", "loss"):
            table.add_column(column, justify="left" if column in ("EN", "SN") else "right")
        for c in d.get("clients") or []:
            table.add_row(str(c.get("node_id")), str(c.get("sn", "-")), pct(c.get("accuracy")),
                          num(c.get("correct")), num(c.get("total")), num(c.get("loss")))
        pooled = d.get("pooled") or {}
        table.add_section()
        table.add_row("pooled", "", pct(pooled.get("accuracy")), num(pooled.get("correct")),
                      num(pooled.get("total")), "", style="bold")
        self.out.print(table)
        for failed in d.get("failed") or []:
            self._line(f"EN {failed.get('node_id')} did not answer: {failed.get('reason')}", "yellow")

    def _show_sn(self, outcome: Outcome) -> None:
        table = Table(title="super nodes", title_justify="left")
        for column in ("node", "gRPC", "HTTP", "ENs", "status", "entry"):
            table.add_column(column)
        for sn in outcome.data:
            status = str(sn.get("status", "-"))
            table.add_row(str(sn.get("node_id")), str(sn.get("address", "-")), str(sn.get("http_address", "-")),
                          str(sn.get("ens", "-")), Text(status, style="green" if status == "alive" else "red"),
                          "yes" if sn.get("entry") else "")
        self.out.print(table)

    def _show_model(self, outcome: Outcome) -> None:
        d = outcome.data
        self._line(f"model v{d['version']} -> {d['path']} ({d['bytes']:,} bytes, sha256 {short(d['digest'], 16)} checked)")

    def _show_rounds(self, outcome: Outcome) -> None:
        if not outcome.data:
            self._line("no rounds yet (train() runs some)")
            return
        self.out.print(rounds_table(outcome.data))

    def _show_blocks(self, outcome: Outcome) -> None:
        table = Table(title="blocks", title_justify="left")
        for column in ("height", "kind", "hash", "producer", "time (UTC)"):
            table.add_column(column, justify="right" if column == "height" else "left", no_wrap=True)
        table.add_column("payload", min_width=16, ratio=1, overflow="fold")
        for b in outcome.data:
            table.add_row(str(b.get("height")), str(b.get("kind")), short(b.get("hash"), 8),
                          short(b.get("producer", "-"), 10), when(b.get("timestamp_ms")), payload_summary(b.get("payload")))
        self.out.print(table)

    def _show_verify(self, outcome: Outcome) -> None:
        d = outcome.data
        self._line(f"chain OK: {d.get('checked')} blocks checked, tip at height {d.get('height')}", "green")

    def _show_quit(self, outcome: Outcome) -> None:
        return None


# ---- JSON -----------------------------------------------------------------------------


class _SilentView:
    def update(self, status: Mapping[str, Any], rounds: list[dict[str, Any]]) -> None:
        return None


class JsonRenderer:
    """One JSON object per command on ``out``: ``{"command", "ok", "result"|"error"}``.

    Errors are also written as one line on ``err`` so a script's log shows them.
    """

    def __init__(self, out: TextIO | None = None, err: TextIO | None = None) -> None:
        self.out = out or sys.stdout
        self.err = err or sys.stderr

    def _emit(self, obj: dict[str, Any]) -> None:
        self.out.write(json.dumps(obj, default=str) + "\n")
        self.out.flush()

    def show(self, command: str, outcome: Outcome) -> None:
        """Write the outcome's data as ``result``."""
        if outcome.kind == "quit":
            return
        obj: dict[str, Any] = {"command": command, "ok": True, "result": outcome.data}
        if outcome.interrupted:
            obj["interrupted"] = True
        self._emit(obj)

    def error(self, command: str | None, message: str) -> None:
        """Write ``{"ok": false, "error": message}`` and the message on stderr."""
        self._emit({"command": command, "ok": False, "error": message})
        self.err.write(f"error: {message}\n")
        self.err.flush()

    def notice(self, message: str) -> None:
        """Notices go to stderr so stdout stays JSON."""
        self.err.write(message + "\n")
        self.err.flush()

    @contextmanager
    def training_view(self, start: Mapping[str, Any]) -> Iterator[TrainingView]:
        """No display: the result carries the rounds."""
        yield _SilentView()
