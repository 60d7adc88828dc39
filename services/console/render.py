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
from fedchain.services.console.spec import Outcome, jsonable
from fedchain.shared.control_api import (
    BlockInfo,
    EvalResult,
    NodeStatus,
    ParticipantEvidence,
    PauseResult,
    RoundEvidence,
    RoundSummary,
    SaveResult,
    SuperNodeInfo,
    TrainStarted,
    VerifiedChain,
    VerifyResult,
)


class Renderer(Protocol):
    """Shows outcomes, errors and notices, and opens a view that follows a training run."""

    def show(self, command: str, outcome: Outcome) -> None: ...

    def error(self, command: str | None, message: str) -> None: ...

    def notice(self, message: str) -> None: ...

    def training_view(self, start: TrainStarted) -> Any: ...


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


def rounds_table(rounds: list[RoundSummary], title: str | None = None) -> Table:
    """Rounds with accuracy, loss, participants, rejected updates, block height and time."""
    table = Table(title=title, title_justify="left")
    for column in ("round", "alg.", "model", "accuracy", "loss", "nodes", "rejected", "height", "s"):
        table.add_column(column, justify="left" if column == "alg." else "right", no_wrap=True)
    for r in rounds:
        table.add_row(
            str(r.round),
            r.algorithm,
            f"v{r.model_version}",
            pct(r.accuracy),
            num(r.loss),
            str(len(r.participants)),
            str(len(r.rejected)),
            str(r.height),
            num(r.seconds, 3),
        )
    return table


def evidence_table(
    title: str, participants: list[ParticipantEvidence], decisions: list[Mapping[str, Any]]
) -> Table:
    """A round's evidence: each participant's signed row (leaf, node, SN, digest, samples,
    signature), then what aggregation decided about whom."""
    table = Table(title=title, title_justify="left")
    for column in ("leaf", "node", "SN", "update", "samples", "EN signature"):
        table.add_column(column, justify="right" if column in ("leaf", "samples") else "left",
                         no_wrap=True)
    for p in participants:
        table.add_row(str(p.leaf_index), p.node_id, p.parent_sn, short(p.update_digest, 12),
                      str(p.samples), short(p.signature, 12))
    for d in decisions:
        table.add_row("", str(d.get("node_id", "")), str(d.get("by", "")),
                      Text(str(d.get("action", "")), style="yellow"), "",
                      str(d.get("reason", ""))[:60])
    return table


def _block_evidence(payload: Mapping[str, Any], height: int) -> Table | None:
    rows = payload.get("participants")
    if not isinstance(rows, list) or not rows:
        return None
    try:
        participants = [ParticipantEvidence(**row, leaf_index=i) for i, row in enumerate(rows)]
    except (TypeError, ValueError):
        return None
    decisions = [d for d in payload.get("decisions", []) if isinstance(d, Mapping)]
    root = short(str(payload.get("merkle_root")), 12)
    title = f"round {payload.get('round')} (height {height}), Merkle root {root}"
    return evidence_table(title, participants, decisions)


def _round_evidence_table(ev: RoundEvidence) -> Table:
    title = (
        f"round {ev.round} (height {ev.height}, block {short(ev.block_hash, 12)}): "
        f"{len(ev.participants)} signed updates from {len(ev.manifests)} signed SN manifests, "
        f"Merkle root {short(ev.merkle_root, 12)}"
    )
    return evidence_table(title, ev.participants, [d.model_dump() for d in ev.decisions])


def status_line(status: NodeStatus) -> str:
    """One line: state, round/target, model version, height, node counts."""
    return (
        f"{status.state} · round {status.round}/{status.target_round}"
        f" · {status.algorithm or '-'} · model v{status.model_version}"
        f" · height {status.height} · SNs {status.sns} · ENs {status.ens}"
    )


# ---- rich -----------------------------------------------------------------------------


class _LiveView:
    """A rich Live table of the run's rounds on a terminal."""

    def __init__(self, live: Live, start: TrainStarted) -> None:
        self.live = live
        self.start = start

    def update(self, status: NodeStatus, rounds: list[RoundSummary]) -> None:
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
        self.printed: set[int] = set()

    def update(self, status: NodeStatus, rounds: list[RoundSummary]) -> None:
        for r in rounds:
            if r.round in self.printed:
                continue
            self.printed.add(r.round)
            self.console.print(
                f"round {r.round}: accuracy {pct(r.accuracy)}, loss {num(r.loss)}, "
                f"{len(r.participants)} participants, {len(r.rejected)} rejected, "
                f"height {r.height}, {num(r.seconds, 3)} s",
                highlight=False, soft_wrap=True,
            )


def _run_title(start: TrainStarted) -> str:
    return (
        f"training {start.algorithm} rounds {start.start_round}..{start.target_round}"
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
    def training_view(self, start: TrainStarted) -> Iterator[TrainingView]:
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
            self.out.print_json(data=jsonable(outcome.data))
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
        status: NodeStatus = outcome.data
        for key, value in status.model_dump(exclude_none=True).items():
            table.add_row(key, str(value))
        self.out.print(table)

    def _show_train(self, outcome: Outcome) -> None:
        start: TrainStarted = outcome.data["start"]
        status: NodeStatus | None = outcome.data["status"]
        at = f"round {status.round}" if status is not None else "the start"
        # the rounds themselves were shown while following (live table or one line each)
        if outcome.interrupted or status is None:
            self.notice(
                f"left the progress display at {at} of {start.target_round}; "
                "training goes on (status() to check, pause() to hold)"
            )
        else:
            self._line(
                f"done: round {status.round} of {start.target_round}, "
                f"model v{status.model_version}, chain height {status.height}",
                "green",
            )

    def _show_train_started(self, outcome: Outcome) -> None:
        d: TrainStarted = outcome.data
        self._line(
            f"training started: {d.algorithm} rounds {d.start_round}..{d.target_round}"
            " (status() or rounds() to follow)".replace("  ", " ")
        )

    def _show_pause(self, outcome: Outcome) -> None:
        d: PauseResult = outcome.data
        if d.status == "pausing":
            text = f"pausing: the round after {d.round} finishes, then training holds (train() resumes)"
        elif d.status == "paused":
            text = f"paused after round {d.round} (train() resumes)"
        else:
            text = f"nothing to pause: the network is {d.status} at round {d.round}"
        self._line(text)

    def _show_save(self, outcome: Outcome) -> None:
        d: SaveResult = outcome.data
        self._line(
            f"saved model v{d.version} (sha256 {short(d.digest, 16)}) in checkpoint block "
            f"{d.height}: {d.path} (on the entry)"
        )

    def _show_eval(self, outcome: Outcome) -> None:
        d: EvalResult = outcome.data
        table = Table(title="evaluation (personal models on each EN's test split)", title_justify="left")
        for column in ("EN", "SN", "accuracy", "correct", "total", "loss"):
            table.add_column(column, justify="left" if column in ("EN", "SN") else "right")
        for c in d.clients:
            table.add_row(c.node_id, c.sn or "-", pct(c.accuracy), num(c.correct), num(c.total),
                          num(c.loss))
        table.add_section()
        table.add_row("pooled", "", pct(d.pooled.accuracy), num(d.pooled.correct),
                      num(d.pooled.total), "", style="bold")
        self.out.print(table)
        for failed in d.failed:
            self._line(f"EN {failed.node_id} did not answer: {failed.reason}", "yellow")

    def _show_sn(self, outcome: Outcome) -> None:
        table = Table(title="super nodes", title_justify="left")
        for column in ("node", "gRPC", "HTTP", "ENs", "status", "entry"):
            table.add_column(column)
        sns: list[SuperNodeInfo] = outcome.data
        for sn in sns:
            table.add_row(sn.node_id, sn.address or "-", sn.http_address or "-", str(sn.ens),
                          Text(sn.status, style="green" if sn.status == "alive" else "red"),
                          "yes" if sn.entry else "")
        self.out.print(table)

    def _show_model(self, outcome: Outcome) -> None:
        d = outcome.data
        digest = short(d["digest"], 16)
        self._line(f"model v{d['version']} -> {d['path']} ({d['bytes']:,} bytes, sha256 {digest} checked)")

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
        blocks: list[BlockInfo] = outcome.data
        for b in blocks:
            table.add_row(
                str(b.height),
                b.kind,
                short(b.hash, 8),
                short(b.producer, 10),
                when(b.timestamp_ms),
                payload_summary(b.payload),
            )
        self.out.print(table)
        for b in blocks:
            if b.kind == "round":
                evidence = _block_evidence(b.payload, b.height)
                if evidence is not None:
                    self.out.print(evidence)

    def _show_verify(self, outcome: Outcome) -> None:
        d: VerifyResult = outcome.data
        self._line(f"chain OK: {d.checked} blocks checked, tip at height {d.height}", "green")
        last = d.last_round if isinstance(d, VerifiedChain) else None
        if last is not None:
            self.out.print(_round_evidence_table(last))

    def _show_quit(self, outcome: Outcome) -> None:
        return None


# ---- JSON -----------------------------------------------------------------------------


class _SilentView:
    def update(self, status: NodeStatus, rounds: list[RoundSummary]) -> None:
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
        obj: dict[str, Any] = {"command": command, "ok": True, "result": jsonable(outcome.data)}
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
    def training_view(self, start: TrainStarted) -> Iterator[TrainingView]:
        """No display: the result carries the rounds."""
        yield _SilentView()
