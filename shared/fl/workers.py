"""Parallel simulation: clients pinned to N worker processes (``fedchain simulate --workers N``).

Each worker is a fresh interpreter (``python -m fedchain.shared.fl.workers FD``, spawned,
never forked: torch's threads and locks do not survive a fork; and, unlike
``multiprocessing``'s spawn, it never re-runs the caller's ``__main__`` script), talking to
the parent over a socket pair in typed messages (``worker_codec.py``: a checked JSON header
and safetensors tensors; nothing in a message is executed), holding a ``WorkerCore``: a
model, a strategy bound to it and a ``LocalRunner`` with the clients pinned to it (their
data arrives once, in one message; their heads stay there).
The parent keeps the server side: selection, the strategy's aggregation, evaluation
bookkeeping. Per round it sends every worker the global shared state and the indices of
its selected clients; the workers train in parallel and send back CPU-tensor updates,
which the parent puts in client-index order before the strategy aggregates them.

Same inputs, same arithmetic: a worker trains client i exactly as the serial loop does
(same model, state, seed ``round_seed(seed, round, i)``), so with the same number of torch
threads per process the global model is bitwise the serial loop's.

Pinning: a client goes to the worker with the fewest training samples so far. Threads:
the run's threads (default: the usable cores) split evenly over the workers. Ctrl-C:
workers ignore SIGINT; the parent asks idle workers to stop and terminates at once those
interrupted mid-call (they would not read a stop before their call ends), then kills any
still running; every wait is shared by all workers, so a stop is bounded by
``STOP_SECONDS`` + ``KILL_SECONDS`` however many workers there are.

``ShardedRunner`` holds what the process and Ray runners share (pinning, fan-out, the
order of answers); a transport implements ``_start`` and ``_call_all``.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from abc import abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from fedchain.shared.config import ConfigError, Settings
from fedchain.shared.fl.data import ClientData
from fedchain.shared.fl.engine import ClientRunner, FitOutcome, LocalRunner, threads_per_worker
from fedchain.shared.fl.models import build_model
from fedchain.shared.fl.strategy import strategy_from_settings
from fedchain.shared.fl.training import EvalResult
from fedchain.shared.fl.worker_codec import (
    WORKER_ERRORS,
    CodecError,
    decode_call,
    decode_reply,
    encode_call,
    encode_error,
    encode_reply,
    recv_frame,
    send_frame,
)

STOP_SECONDS = 5.0
"""How long ``close`` waits for idle workers to stop before terminating them."""

KILL_SECONDS = 2.0
"""How long ``close`` waits for terminated workers before killing them."""


class WorkerFailed(RuntimeError):
    """A worker process stopped or could not be reached (the message says which)."""


class WorkerCore:
    """The client side inside one worker: a model, a bound strategy, a ``LocalRunner``."""

    def __init__(
        self, settings: Settings, global_state: Mapping[str, torch.Tensor], vectorize: int,
        threads: int,
    ) -> None:
        torch.set_num_threads(threads)
        strategy = strategy_from_settings(settings)
        model = build_model(settings.model, settings.dataset, data_dir=settings.data_dir)
        model.load_state_dict(global_state)
        strategy.bind(model)
        self.runner = LocalRunner(
            settings, strategy, model, global_state, vectorize=vectorize,
            device=torch.device("cpu"),
        )

    def add(self, datas: list[ClientData]) -> None:
        """Register the clients pinned to this worker."""
        for data in datas:
            self.runner.add(data)

    def set_global(self, state: Mapping[str, torch.Tensor]) -> None:
        """Clients added later start from ``state``."""
        self.runner.set_global(state)

    def fit(
        self, server_round: int, shared: Mapping[str, torch.Tensor], indices: list[int]
    ) -> list[FitOutcome]:
        """Train ``indices`` (pinned here) from ``shared``."""
        return self.runner.fit(server_round, shared, indices)

    def evaluate(self, shared: Mapping[str, torch.Tensor]) -> dict[int, EvalResult]:
        """Evaluate every client pinned here."""
        return self.runner.evaluate(shared)

    def heads(self) -> dict[int, dict[str, torch.Tensor]]:
        """The personal tensors of every client pinned here."""
        return self.runner.personal_states()

    def set_heads(self, states: dict[int, dict[str, torch.Tensor]]) -> None:
        """Give clients pinned here their saved personal tensors."""
        self.runner.set_personal_states(states)


class ShardedRunner(ClientRunner):
    """Clients pinned to ``shards`` remote ``WorkerCore``s (processes or Ray actors)."""

    def __init__(self, shards: int) -> None:
        self.shards = shards
        self.owner: dict[int, int] = {}
        self._load = [0] * shards
        self._pending: list[list[ClientData]] = [[] for _ in range(shards)]
        self._global: dict[str, torch.Tensor] | None = None
        self._started = False

    @abstractmethod
    def _start(self) -> None:
        """Start the workers (called once, before the first call)."""

    @abstractmethod
    def _call_all(self, calls: Mapping[int, tuple[str, tuple[Any, ...]]]) -> dict[int, Any]:
        """Run ``method(*args)`` on each shard's WorkerCore, in parallel; their answers."""

    def _ready(self) -> None:
        if not self._started:
            self._start()
            self._started = True
        pending = {s: ("add", (datas,)) for s, datas in enumerate(self._pending) if datas}
        if pending:
            if self._global is not None:  # late clients start from the current global state
                call = ("set_global", (self._global,))
                self._call_all({s: call for s in pending})
                self._global = None
            self._pending = [[] for _ in range(self.shards)]
            self._call_all(pending)

    def add(self, data: ClientData) -> None:
        if data.index in self.owner:
            raise ConfigError(f"a client with index {data.index} is already registered")
        shard = min(range(self.shards), key=lambda s: (self._load[s], s))
        self.owner[data.index] = shard
        self._load[shard] += len(data.train)  # type: ignore[arg-type]
        self._pending[shard].append(data)

    def set_global(self, state: Mapping[str, torch.Tensor]) -> None:
        """Recorded here; sent to the workers only with the next clients added."""
        self._global = dict(state)

    def fit(
        self, server_round: int, shared: Mapping[str, torch.Tensor], indices: Sequence[int]
    ) -> list[FitOutcome]:
        self._ready()
        groups: dict[int, list[int]] = {}
        for index in indices:
            groups.setdefault(self.owner[index], []).append(index)
        state = dict(shared)
        answers = self._call_all(
            {s: ("fit", (server_round, state, idx)) for s, idx in groups.items()}
        )
        by_index = {o.index: o for outcomes in answers.values() for o in outcomes}
        return [by_index[i] for i in indices]

    def evaluate(self, shared: Mapping[str, torch.Tensor]) -> dict[int, EvalResult]:
        self._ready()
        call = ("evaluate", (dict(shared),))  # one object: encoded once for all the shards
        answers = self._call_all({s: call for s in range(self.shards)})
        merged: dict[int, EvalResult] = {}
        for part in answers.values():
            merged.update(part)
        return merged

    def personal_states(self) -> dict[int, dict[str, torch.Tensor]]:
        self._ready()
        answers = self._call_all({s: ("heads", ()) for s in range(self.shards)})
        merged: dict[int, dict[str, torch.Tensor]] = {}
        for part in answers.values():
            merged.update(part)
        return {i: merged[i] for i in sorted(merged)}

    def set_personal_states(self, states: Mapping[int, Mapping[str, torch.Tensor]]) -> None:
        self._ready()
        unknown = sorted(set(states) - set(self.owner))
        if unknown:
            raise ConfigError(f"no client with index {unknown[0]} here")
        groups: dict[int, dict[int, dict[str, torch.Tensor]]] = {}
        for index, state in states.items():
            groups.setdefault(self.owner[index], {})[index] = dict(state)
        self._call_all({s: ("set_heads", (group,)) for s, group in groups.items()})


def _worker_env() -> dict[str, str]:
    """The parent's environment, with its import path: a custom model, dataset or strategy
    (``package.module:name``) the parent can import, the workers can import too (as
    ``multiprocessing``'s spawn hands over ``sys.path``)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p or os.getcwd() for p in sys.path)
    return env


def _worker_main(sock: socket.socket) -> None:
    """A worker process: build a WorkerCore from the first message, then serve calls.

    A call that cannot be read is answered with a ``CodecError``; after one too large to
    read, the stream is lost, so the worker answers and exits.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and stops us
    core: WorkerCore | None = None
    while True:
        try:
            data = recv_frame(sock)
        except (EOFError, OSError):
            return
        except CodecError as exc:
            _answer(sock, encode_error(None, exc))
            return
        method: str | None = None
        try:
            method, args = decode_call(data)
            if method == "stop":
                return
            if method == "init":
                core = WorkerCore(*args)
                answer = encode_reply(method, None)
            elif core is None:
                raise CodecError(f"a {method} call before init")
            else:
                answer = encode_reply(method, getattr(core, method)(*args))
        except WORKER_ERRORS as exc:
            answer = encode_error(method, exc)
        if not _answer(sock, answer):
            return


def _answer(sock: socket.socket, message: bytes) -> bool:
    """Send ``message`` to the parent; False when it is gone."""
    try:
        send_frame(sock, message)
    except OSError:
        return False
    return True


class ProcessRunner(ShardedRunner):
    """``workers`` spawned processes on this machine, each a ``WorkerCore``."""

    def __init__(
        self, settings: Settings, global_state: Mapping[str, torch.Tensor], *, workers: int,
        vectorize: int = 1,
    ) -> None:
        super().__init__(workers)
        self.settings = settings
        self.global_state = {k: v.detach().cpu() for k, v in global_state.items()}
        self.vectorize = vectorize
        self.threads = threads_per_worker(settings, workers)
        self._procs: list[subprocess.Popen[bytes]] = []
        self._socks: list[socket.socket] = []
        self._in_call = False  # a call was sent and not all its answers came back

    def _start(self) -> None:
        for _ in range(self.shards):
            parent, child = socket.socketpair()
            proc = subprocess.Popen(
                [sys.executable, "-m", "fedchain.shared.fl.workers", str(child.fileno())],
                pass_fds=(child.fileno(),), env=_worker_env(),
            )
            child.close()
            self._procs.append(proc)
            self._socks.append(parent)
        init = ("init", (self.settings, self.global_state, self.vectorize, self.threads))
        self._call_all({i: init for i in range(self.shards)})

    def _send(self, shard: int, message: bytes) -> None:
        try:
            send_frame(self._socks[shard], message)
        except OSError as exc:
            raise self._failed(shard) from exc

    def _failed(self, shard: int) -> WorkerFailed:
        proc = self._procs[shard]
        try:
            code: int | None = proc.wait(timeout=1.0)
        except subprocess.TimeoutExpired:
            code = None
        return WorkerFailed(
            f"simulation worker {shard} stopped (exit code {code}); see its output above"
        )

    def _call_all(self, calls: Mapping[int, tuple[str, tuple[Any, ...]]]) -> dict[int, Any]:
        encoded: dict[int, bytes] = {}  # a call shared by several shards is encoded once
        for call in calls.values():
            if id(call) not in encoded:
                encoded[id(call)] = encode_call(*call)
        messages = {s: encoded[id(c)] for s, c in calls.items()}
        self._in_call = True  # stays set if a Ctrl-C or a failure interrupts the call
        for shard, message in messages.items():
            self._send(shard, message)
        answers: dict[int, Any] = {}
        error: BaseException | None = None
        for shard, (method, _) in calls.items():
            try:
                answer = decode_reply(recv_frame(self._socks[shard]), method)
            except (EOFError, OSError) as exc:
                raise self._failed(shard) from exc
            except CodecError as exc:
                raise WorkerFailed(f"simulation worker {shard} sent an answer that cannot be read: {exc}") from exc
            if answer.error is not None and error is None:
                error = answer.error
            answers[shard] = answer.value
        self._in_call = False
        if error is not None:
            raise error
        return answers

    def close(self) -> None:
        """Stop the workers within ``STOP_SECONDS`` + ``KILL_SECONDS``, however many.

        Idle workers are asked to stop and get ``STOP_SECONDS`` to exit; workers interrupted
        mid-call (Ctrl-C during a round) are terminated at once, since they read the stop
        only after their call. Those still running after ``KILL_SECONDS`` more are killed.
        """
        if not self._in_call:
            stop = encode_call("stop", ())
            for sock in self._socks:
                try:
                    send_frame(sock, stop)
                except OSError:
                    pass
            running = _wait_all(self._procs, STOP_SECONDS)
        else:
            running = [p for p in self._procs if p.poll() is None]
        for proc in running:
            proc.terminate()
        for proc in _wait_all(running, KILL_SECONDS):
            proc.kill()
            proc.wait()
        for sock in self._socks:
            sock.close()
        self._procs, self._socks = [], []
        self._started = False
        self._in_call = False


def _wait_all(procs: Sequence[subprocess.Popen[bytes]], seconds: float) -> list[subprocess.Popen[bytes]]:
    """Wait up to ``seconds`` in all for ``procs`` to exit; the ones still running."""
    deadline = time.monotonic() + seconds
    for proc in procs:
        try:
            proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
    return [p for p in procs if p.poll() is None]


if __name__ == "__main__":
    from fedchain.shared.fl.workers import _worker_main as main  # the importable module's

    main(socket.socket(fileno=int(sys.argv[1])))
