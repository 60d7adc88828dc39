"""``EntryRole``: the façade the gRPC servicer and the HTTP API of the entry call.

It composes the entry's parts, each built with its collaborators: ``Admissions``,
``AggregateIntake``, ``RoundRunner`` (one round), ``RoundDriver`` (plan, pause, retry,
resume), ``Evaluation``, ``Checkpoints`` and ``EntryStatus``, around the ``GlobalModel``.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import grpc

from fedchain.services.sn.entry.admissions import Admissions
from fedchain.services.sn.entry.authority import EntryAuthority
from fedchain.services.sn.entry.checkpoints import Checkpoints
from fedchain.services.sn.entry.driver import PlanFile, RoundDriver
from fedchain.services.sn.entry.evaluation import Evaluation
from fedchain.services.sn.entry.intake import AggregateIntake
from fedchain.services.sn.entry.model import GlobalModel
from fedchain.services.sn.entry.ports import (
    AggregateStream,
    ChainWriter,
    Clock,
    OwnSuperNode,
    PeerDirectory,
    UpdateStream,
)
from fedchain.services.sn.entry.retained import RetainedUpdates
from fedchain.services.sn.entry.round import RoundRunner
from fedchain.services.sn.entry.status import EntryStatus
from fedchain.services.sn.registry import Registry
from fedchain.services.sn.validation import Rejected
from fedchain.shared.config import Settings
from fedchain.shared.control_api import NodeStatus, PauseResult, SaveResult, TrainStarted
from fedchain.shared.crypto import NodeKey
from fedchain.shared.node.trust import EntryTrust
from fedchain.shared.rpc import node_pb2 as pb

log = logging.getLogger("fedchain.entry")


class EntryRole:
    """Everything only the entry does; shares the process with its own SuperNode role."""

    def __init__(
        self,
        settings: Settings,
        key: NodeKey,
        chain: ChainWriter,
        model: GlobalModel,
        registry: Registry,
        admissions: Admissions,
        intake: AggregateIntake,
        driver: RoundDriver,
        evaluation: Evaluation,
        checkpoints: Checkpoints,
        status: EntryStatus,
        authority: EntryAuthority,
        own_sn: OwnSuperNode,
    ) -> None:
        self.settings = settings
        self.key = key
        self.node_id = key.node_id
        self.chain = chain
        self.model = model
        self.registry = registry
        self.admissions = admissions
        self.intake = intake
        self.driver = driver
        self.evaluation = evaluation
        self.checkpoints = checkpoints
        self._status = status
        self.authority = authority
        self.own_sn = own_sn

    @classmethod
    def build(
        cls,
        settings: Settings,
        key: NodeKey,
        chain: ChainWriter,
        peers: PeerDirectory,
        own_sn: OwnSuperNode,
        model: GlobalModel,
        *,
        address: str,
        http_address: str,
        clock: Clock | None = None,
    ) -> EntryRole:
        """Wire the parts; the registry and the plan live in ``settings.state_dir``."""
        clock = clock or Clock()
        state_dir = Path(settings.state_dir)
        state_dir.mkdir(parents=True, exist_ok=True)
        registry = Registry(state_dir / "registry.json", settings.heartbeat_timeout)
        registry.add_entry(key.node_id, key.public_hex, address, http_address)
        stop = threading.Event()
        authority = EntryAuthority(key, settings)
        retained = RetainedUpdates(settings.keep_updates_policy, model.max_bytes)
        intake = AggregateIntake(
            registry, model.max_bytes, authority, retained, own_updates=own_sn.used_update_bytes
        )
        evaluation = Evaluation(settings, registry, peers, authority)
        runner = RoundRunner(
            settings, registry, chain, peers, own_sn, model, intake, evaluation,
            authority=authority, stop=stop, clock=clock,
        )
        driver = RoundDriver(
            settings, chain, model, own_sn, runner, PlanFile(state_dir / "training.json"),
            stop=stop, clock=clock,
        )
        admissions = Admissions(
            settings, key, registry, chain, peers, own_sn, http_address=http_address,
            authority=authority, clock=clock,
        )
        admissions.in_round = lambda: runner.in_flight
        return cls(
            settings, key, chain, model, registry, admissions, intake, driver, evaluation,
            Checkpoints(chain, model, state_dir), EntryStatus(key.node_id, driver, model, chain, registry),
            authority, own_sn,
        )

    # ---- start-up and shutdown ----
    def bootstrap(self) -> None:
        """Write genesis on an empty chain, or resume from the chain tip (and the saved plan)."""
        self.model.bootstrap(self.settings, self.key)
        genesis = self.chain.genesis()
        assert genesis is not None  # bootstrap wrote or read it
        self.authority.bind(genesis.hash)
        self.own_sn.trust = EntryTrust(genesis.hash, self.key.public_bytes)
        ref = self.model.ref
        log.info(
            "entry at round %d, model version %d (height %d)",
            ref.round, ref.version, self.chain.cached_height,
        )
        self.driver.resume()

    def stop(self) -> None:
        """Stop the driver after the current round (process shutdown)."""
        self.driver.stop()

    # ---- gRPC ----
    def join(self, req: pb.JoinRequest, source: str = "") -> pb.JoinReply:
        return self.admissions.join(req, source)

    def heartbeat(self, req: pb.HeartbeatRequest) -> pb.HeartbeatReply:
        return self.admissions.heartbeat(req)

    def tick(self) -> None:
        self.admissions.tick()

    def model_bytes(self, version: int, model_digest: str) -> bytes:
        return self.model.model_bytes(version, model_digest)

    def submit_aggregate(self, parts: AggregateStream) -> pb.SubmitReply:
        return self.intake.submit(parts)

    def consistency(self, from_size: int, to_size: int) -> list[bytes]:
        """A consistency proof between two sizes of the chain (IndexError outside it)."""
        return self.chain.consistency(from_size, to_size)

    def retain_update(self, parts: UpdateStream) -> pb.SubmitReply:
        """An EN update an SN hands over after its aggregate (``RetainedUpdates.receive``)."""
        if self.intake.retained is None:
            raise Rejected(grpc.StatusCode.FAILED_PRECONDITION, "this entry keeps no updates")
        return self.intake.retained.receive(parts)

    # ---- control API ----
    def start_training(self, rounds: int, algorithm: str | None) -> TrainStarted:
        return self.driver.start(rounds, algorithm)

    def pause(self) -> PauseResult:
        return self.driver.pause()

    def evaluate_all(self) -> pb.EvaluateReply:
        """Personal evaluation of the current model on every live EN."""
        ref = self.model.ref
        return self.evaluation.evaluate_all(ref.version, ref.digest, self.driver.plan.algorithm)

    def save(self, name: str | None) -> SaveResult:
        return self.checkpoints.save(name)

    def status(self) -> NodeStatus:
        return self._status.status()
