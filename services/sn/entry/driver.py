"""The round driver: the training plan, start and pause, retrying a failing round, resuming.

The driver runs rounds in a thread toward ``plan.target_round``. A round that fails
(ledger down, quorum missed) is retried for ``retry_span()`` seconds; after a failure the
chain tip is read again, and a round already on the chain (its append reply was lost) is
adopted instead of being run twice. The plan is saved so a restarted entry resumes.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from dataclasses import asdict, dataclass
from pathlib import Path

import grpc

from fedchain.services.sn.entry.errors import AlgorithmRefused, Busy, RoundFailed
from fedchain.services.sn.entry.model import GlobalModel
from fedchain.services.sn.entry.ports import ChainWriter, Clock, OwnSuperNode
from fedchain.services.sn.entry.round import RoundRunner
from fedchain.shared.config import Settings
from fedchain.shared.control_api import PauseResult, TrainStarted
from fedchain.shared.ledger.errors import LedgerError

log = logging.getLogger("fedchain.entry")

MIN_RETRY_SPAN_S = 60.0
"""A failing round (ledger down, quorum missed) is retried for max(this, round_timeout) seconds."""
MAX_RETRY_PAUSE_S = 5.0
"""Longest pause between two attempts of a failing round."""
STOP_JOIN_S = 2.0


@dataclass
class TrainingPlan:
    """What the driver works toward; saved so a restarted entry resumes."""

    target_round: int = 0
    algorithm: str = "fedper"
    paused: bool = False


class PlanFile:
    """The plan saved as JSON (``training.json`` in the state dir), replaced atomically."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self, default: TrainingPlan) -> TrainingPlan:
        if not self.path.is_file():
            return default
        return TrainingPlan(**json.loads(self.path.read_text(encoding="utf-8")))

    def save(self, plan: TrainingPlan) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(plan)), encoding="utf-8")
        os.replace(tmp, self.path)


class RoundDriver:
    """Starts, pauses and runs training; ``state`` and ``error`` are what /status shows."""

    def __init__(
        self,
        settings: Settings,
        chain: ChainWriter,
        model: GlobalModel,
        own_sn: OwnSuperNode,
        runner: RoundRunner,
        plans: PlanFile,
        *,
        stop: threading.Event,
        clock: Clock | None = None,
    ) -> None:
        self.settings = settings
        self.chain = chain
        self.model = model
        self.own_sn = own_sn
        self.runner = runner
        self.plans = plans
        self.stop_event = stop
        self.clock = clock or Clock()
        self._lock = threading.RLock()
        self.state = "idle"
        self.error: str | None = None
        self.plan = TrainingPlan(algorithm=settings.algorithm)
        self._thread: threading.Thread | None = None

    # ---- control ----
    def resume(self) -> None:
        """Load the saved plan; keep training toward it unless it was paused."""
        self.plan = self.plans.load(self.plan)
        if self.plan.target_round > self.model.ref.round and not self.plan.paused:
            log.info("resuming training toward round %d", self.plan.target_round)
            self._start_thread()

    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self, rounds: int, algorithm: str | None) -> TrainStarted:
        """Train ``rounds`` more rounds (resumes after a pause). Raises Busy when running."""
        with self._lock:
            if self.running():
                raise Busy(f"training is already running ({self.state}); pause it or wait")
            algo = algorithm or self.settings.algorithm
            allowed = ("fedper", "fedavg", self.settings.algorithm)
            if algo not in allowed:  # a spec would make every node import what the request names
                raise AlgorithmRefused(
                    f"algorithm {algo!r} is not this federation's: use fedper, fedavg or "
                    f"{self.settings.algorithm!r} (genesis), or leave it out"
                )
            current = self.model.ref.round
            self.plan = TrainingPlan(target_round=current + rounds, algorithm=algo, paused=False)
            self.plans.save(self.plan)
            self.error = None
            self._start_thread()
            return TrainStarted(
                algorithm=algo, start_round=current + 1, target_round=self.plan.target_round
            )

    def pause(self) -> PauseResult:
        """Finish the current round, then hold."""
        with self._lock:
            if self.running():
                self.state = "pausing"
            elif self.plan.target_round > self.model.ref.round:
                self.state = "paused"
            self.plan.paused = True
            self.plans.save(self.plan)
            return PauseResult(status=self.state, round=self.model.ref.round)

    def stop(self) -> None:
        """Stop after the current round (process shutdown)."""
        self.stop_event.set()
        if self._thread is not None:
            self._thread.join(timeout=STOP_JOIN_S)

    def join(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the driver thread to end; True when it did."""
        if self._thread is not None:
            self._thread.join(timeout)
        return not self.running()

    def retry_span(self) -> float:
        """Seconds a failing round is retried before the driver gives up (derived from round_timeout)."""
        return max(MIN_RETRY_SPAN_S, self.settings.round_timeout)

    def _start_thread(self) -> None:
        self.state = "training"
        self._thread = threading.Thread(target=self._drive, name="round-driver", daemon=True)
        self._thread.start()

    # ---- the loop ----
    def _finished(self) -> bool:
        """True (and the state set) when the driver must stop: paused, or the target reached."""
        with self._lock:
            if self.state == "pausing":
                self.state = "paused"
                return True
            if self.model.ref.round >= self.plan.target_round:
                self.state = "idle"
                self.plan.paused = False
                self.plans.save(self.plan)
                return True
            return False

    def _drive(self) -> None:
        failures = 0
        failing_since = 0.0
        while not self.stop_event.is_set():
            if self._finished():
                return
            r = self.model.ref.round + 1
            try:
                self._ledger_ready(resync=failures > 0)
                if self.model.ref.round < r:
                    self.runner.run(r, self.plan.algorithm)
                # else: round r was on the chain already (its append reply was lost)
                failures = 0
                self.error = None
            except RoundFailed as exc:
                if failures == 0:
                    failing_since = self.clock.monotonic()
                failures += 1
                span = self.retry_span()
                self.error = f"round {r}: {exc}"
                log.warning("round %d failed (%d/%.0fs): %s", r, failures, span, exc)
                if self.clock.monotonic() - failing_since >= span:
                    log.error("round %d kept failing for %.0f s; training stops", r, span)
                    with self._lock:
                        self.state = "idle"
                    return
                pause = min(MAX_RETRY_PAUSE_S, self.settings.heartbeat_interval * failures)
                self.clock.wait(self.stop_event, pause)
            except (LedgerError, grpc.RpcError, ValueError, OSError, RuntimeError) as exc:
                log.exception("round %d crashed", r)
                self.error = f"round {r}: {exc}"
                with self._lock:
                    self.state = "idle"
                return

    def _ledger_ready(self, *, resync: bool) -> None:
        """Raise RoundFailed while the ledger is unreachable; after a failure adopt rounds already on the chain."""
        try:
            self.chain.height()
            if not resync:
                return
            ref = self.chain.latest_model()
            if ref.round <= self.model.ref.round:
                return
            data = self.chain.ledger.get_blob(ref.digest)
        except LedgerError as exc:
            first = (str(exc).splitlines() or [type(exc).__name__])[0]
            raise RoundFailed(f"waiting for the ledger: {first}") from None
        self.model.adopt(ref, data)
        self.own_sn.remember_model(data)
        log.info(
            "round %d is on the chain already (its append reply was lost); continuing from it",
            ref.round,
        )
