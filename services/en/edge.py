"""The EN role: joins through the entry, trains its partition with the FL core, submits signed updates.

An EN keeps its key, partition index and personal (head) layers in its state dir, so a
restarted EN comes back as the same client. When its SN stops answering it re-joins
through the entry, which assigns another SN.

At join the EN learns the chain id and the entry's key (kept in its state dir); it acts on
an ``OpenRound`` or ``Evaluate`` only when the entry signed it (its SN relays the entry's
request unchanged), and it signs its heartbeats, its update headers and its evaluation
answers.

For experiments an EN can attack (``--attack`` / ``FEDCHAIN_ATTACK``, off by default): it
then poisons its own data or updates with the FL core's ``AttackPlan``, as a simulation's
attacking client with its partition index does, and says so at start-up and in /status.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

import grpc

from fedchain.shared.config import ConfigError, Settings
from fedchain.shared.control_api import NodeStatus, node_status
from fedchain.shared.crypto import NodeKey
from fedchain.shared.limits import chunk_bytes, message_bytes
from fedchain.shared.net.federation import apply_fl_config
from fedchain.shared.net.signing import evaluation_fields, update_fields
from fedchain.shared.net.statements import Domain, sign
from fedchain.shared.net.streams import fetch_model, join_model_chunks, update_parts
from fedchain.shared.node.entry_requests import EntryRequests
from fedchain.shared.node.heads import HeadKeeper, proofs_from_entry
from fedchain.shared.node.heartbeats import (
    Beat,
    HeartbeatCounter,
    HeartbeatLoop,
    RejoinAfter,
    signed_heartbeat,
)
from fedchain.shared.node.joining import ChainReplaced, Joiner, entry_key_of, join_token_for
from fedchain.shared.node.peers import Peers
from fedchain.shared.node.trust import EntryTrust, TrustStore
from fedchain.shared.rpc import node_pb2 as pb
from fedchain.shared.tensors import decode, digest, encode

log = logging.getLogger("fedchain.en")


class ShuttingDown(Exception):
    """Raised inside local training when the node is stopping (checked before every batch)."""


class EdgeNode:
    """State and behaviour of an EN; its gRPC servicer and HTTP API call into it."""

    def __init__(
        self,
        settings: Settings,
        key: NodeKey,
        peers: Peers,
        *,
        address: str,
        http_address: str,
        stop: threading.Event | None = None,
    ) -> None:
        if not settings.entry:
            raise ConfigError("an edge node needs --entry HOST:PORT of the entry super node")
        self.local = settings
        self.settings = settings
        self.key = key
        self.node_id = key.node_id
        self.peers = peers
        self.address = address
        self.http_address = http_address
        self.state_dir = Path(settings.state_dir)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.sn_node_id = ""
        self.sn_address = ""
        self.partition_index = -1
        self.max_bytes = message_bytes(settings)
        self.chunk_bytes = chunk_bytes(settings)
        self._lock = threading.Lock()  # one training/evaluation at a time
        self._clients: dict[str, Any] = {}
        self._data: Any = None
        self._model: Any = None
        self.state = "starting"
        self.last_round = 0
        self.last_version = 0  # global model version last trained from
        self.last_accuracy: float | None = None
        self._stop = stop if stop is not None else threading.Event()
        self.joiner = Joiner(
            peers, key, role="EN", entry=settings.entry, token=join_token_for("EN", settings),
            address=address, http_address=http_address, stop=self._stop,
            trust=TrustStore(self.state_dir), entry_key=entry_key_of(settings),
            tls=getattr(peers, "tls", None),
        )
        self.trust: EntryTrust | None = None
        self.requests = EntryRequests(lambda: self.trust)
        self.heads = HeadKeeper(
            self.state_dir, proofs_from_entry(lambda: self.peers.stub(settings.entry or ""))
        )
        """The highest signed tree head seen: a round on a chain that does not extend it is refused."""
        self._counter = HeartbeatCounter()
        self.partition_size = 0
        self._last_algorithm: str = settings.algorithm
        self._workers: list[threading.Thread] = []
        self._downloads: set[grpc.Future] = set()
        """Model downloads in flight: ``stop()`` cancels them (a round stops mid-download)."""
        self._downloads_lock = threading.Lock()
        self.attack = settings.attack
        """The poisoning attack this EN runs (an experiment), or None."""
        self._plan: Any = None
        if self.attack is not None:
            log.warning(
                "ATTACK (experiment): this edge node sends %s updates instead of honest ones",
                self.attack,
            )

    # ------------------------------------------------------------ joining
    def join(self, avoid_sn: str = "", timeout: float = 120.0) -> None:
        """Join through the entry (retrying while it is unreachable); raise ConfigError if refused.

        Raises ``JoinCancelled`` when the node is stopped while it waits for the entry.
        """
        reply = self.joiner.join(avoid_sn=avoid_sn, timeout=timeout)
        config = json.loads(reply.config_json)
        first = self._data is None
        if first:
            self.settings = apply_fl_config(self.local, config)
            self._last_algorithm = self.settings.algorithm
        self.sn_node_id, self.sn_address = reply.sn_node_id, reply.sn_address
        previous = self._saved_identity().get("partition_index")
        if not first and reply.partition_index != self.partition_index:
            raise ConfigError("the entry assigned a different partition on re-join; restart this edge node")
        self.partition_index = reply.partition_index
        self.partition_size = int(reply.partition_size)
        self.trust = self.joiner.trust.trust if self.joiner.trust is not None else None
        self._save_identity()
        if first:
            self._prepare(keep_personal=previous == reply.partition_index)
        log.info("joined: partition %d, SN %s at %s", self.partition_index, self.sn_node_id, self.sn_address)
        self.state = "idle"

    def _identity_path(self) -> Path:
        return self.state_dir / "edge.json"

    def _saved_identity(self) -> dict[str, Any]:
        p = self._identity_path()
        return json.loads(p.read_text(encoding="utf-8")) if p.is_file() else {}

    def _save_identity(self) -> None:
        p = self._identity_path()
        tmp = p.with_suffix(".tmp")
        tmp.write_text(
            json.dumps({"node_id": self.node_id, "partition_index": self.partition_index, "sn": self.sn_node_id}),
            encoding="utf-8",
        )
        os.replace(tmp, p)

    def _personal_path(self, algorithm: str) -> Path:
        return self.state_dir / f"personal-{algorithm}.safetensors"

    def _prepare(self, keep_personal: bool) -> None:
        """Load this EN's data share once and build its model (the FL core's objects)."""
        from fedchain.shared.fl.data import load_client
        from fedchain.shared.fl.models import initial_model
        from fedchain.shared.fl.training import warm_up

        t0 = time.monotonic()
        self._data = load_client(self.settings, self.partition_index)
        if self.attack is not None:
            from fedchain.shared.fl.attacks import AttackPlan, parse_attack

            self._plan = AttackPlan(  # this EN is the one attacking client: its partition
                parse_attack(self.attack), frozenset({self.partition_index}), 1.0, self.settings.seed
            )
            self._data = self._plan.prepare(self._data)  # label-flip: trains on labels 9 - y
        # The simulation's clients start from the seeded initial model (heads included); so do we.
        self._model = initial_model(self.settings)
        self._model.register_forward_pre_hook(self._abort_if_stopping)
        warm_up()
        for algorithm in {"fedper", "fedavg", self.settings.algorithm}:  # the last may be a custom spec
            path = self._personal_path(algorithm)
            if path.is_file() and not keep_personal:
                path.unlink()
        log.info("data share %d loaded in %.1f s", self.partition_index, time.monotonic() - t0)

    def client(self, algorithm: str) -> Any:
        """The core's LocalClient for ``algorithm`` (one per algorithm, sharing model and data)."""
        from fedchain.shared.fl.client import LocalClient
        from fedchain.shared.fl.strategy import strategy_from_settings

        c = self._clients.get(algorithm)
        if c is None:
            settings = self.settings.model_copy(update={"algorithm": algorithm})
            c = LocalClient(settings, self._data, self._model, strategy=strategy_from_settings(settings))
            path = self._personal_path(algorithm)
            if path.is_file() and c.personal_keys:
                try:
                    c.load_personal(path)
                    log.info("personal layers restored from %s", path)
                except (ValueError, OSError) as exc:
                    log.warning("ignoring unreadable personal layers %s: %s", path, exc)
            self._clients[algorithm] = c
        return c

    # ------------------------------------------------------------ heartbeats
    def heartbeat_loop(self) -> None:
        """Beat the SN; after heartbeat_timeout without an answer, re-join via the entry."""
        HeartbeatLoop(
            self._beat_sn,
            self._rejoin,
            interval=self.local.heartbeat_interval,
            rejoin_after=RejoinAfter(
                unknown=self.local.heartbeat_timeout, unanswered=self.local.heartbeat_timeout
            ),
            stop=self._stop,
            beat_at_start=True,
        ).run()

    def _beat_sn(self, timeout: float) -> Beat:
        try:
            reply = self.peers.stub(self.sn_address).Heartbeat(
                signed_heartbeat(
                    self.key, self.chain_id, self._counter.next(), role="EN",
                    address=self.address, http_address=self.http_address, state=self.state,
                ),
                timeout=timeout,
            )
        except grpc.RpcError:
            return Beat.UNANSWERED
        return Beat.KNOWN if reply.known else Beat.UNKNOWN

    @property
    def chain_id(self) -> bytes:
        return self.trust.chain_id if self.trust is not None else b""

    def _rejoin(self) -> None:
        """Re-join through the entry, asking for another SN than the one that stopped answering."""
        old = self.sn_node_id
        log.warning("SN %s stopped answering; re-joining through the entry", old)
        try:
            self.join(avoid_sn=old, timeout=self.local.heartbeat_timeout * 3)
        except ChainReplaced as exc:  # shown in /status, not only logged
            self.heads.refuse_chain(str(exc))
            raise

    def _abort_if_stopping(self, *_: object) -> None:
        """Forward pre-hook: every batch of training or evaluation first checks the stop flag."""
        self._check_stop()

    def _check_stop(self) -> None:
        """Between the steps of a round: raise ShuttingDown once the node is stopping."""
        if self._stop.is_set():
            raise ShuttingDown("the edge node is stopping")

    def stop(self) -> None:
        """Stop accepting rounds; a running round stops at its next batch or mid-download."""
        self._stop.set()
        with self._downloads_lock:
            downloads = list(self._downloads)
        for call in downloads:
            call.cancel()

    def wait_idle(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s for round threads to finish; True when none is left running."""
        deadline = time.monotonic() + timeout
        for worker in list(self._workers):
            worker.join(max(0.0, deadline - time.monotonic()))
        return not any(w.is_alive() for w in self._workers)

    # ------------------------------------------------------------ rounds
    def _fetch_global(self, version: int, model_digest: str) -> dict:
        """Download the global model ``version`` from this EN's SN (cancelled by ``stop()``)."""
        calls: list[grpc.Future] = []

        def started(call: grpc.Future) -> None:
            calls.append(call)
            with self._downloads_lock:
                self._downloads.add(call)
            if self._stop.is_set():  # stop() ran before the call was registered
                call.cancel()

        stream = fetch_model(
            self.peers.channel(self.sn_address),
            pb.FetchModelRequest(version=version, digest=model_digest),
            timeout=120,
            started=started,
        )
        try:
            data = join_model_chunks(stream, self.max_bytes, model_digest or None)
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.CANCELLED and self._stop.is_set():
                raise ShuttingDown("the edge node is stopping") from exc
            raise
        finally:
            with self._downloads_lock:
                self._downloads.difference_update(calls)
        self._check_stop()
        return decode(data, max_bytes=self.max_bytes)

    def open_round(self, req: pb.OpenRoundRequest) -> pb.OpenRoundReply:
        """Accept a round (signed by the entry, for this EN's SN) and train it in the background.

        Raises ``RequestRefused`` for a request the entry did not sign, a replay or an older round.
        """
        if self._data is None:
            return pb.OpenRoundReply(ok=False, message="edge node is still starting")
        if self._stop.is_set():
            return pb.OpenRoundReply(ok=False, message="edge node is shutting down")
        self.requests.open_round(req, self.sn_node_id, self.node_id, heads=self.heads)
        worker = threading.Thread(target=self._train, args=(req,), name=f"en-round-{req.round}", daemon=True)
        self._workers = [w for w in self._workers if w.is_alive()] + [worker]
        worker.start()
        return pb.OpenRoundReply(ok=True, edges=1)

    def _train(self, req: pb.OpenRoundRequest) -> None:
        with self._lock:
            self.state = "training"
            try:
                t0 = time.monotonic()
                self._check_stop()
                client = self.client(req.algorithm)
                self._check_stop()
                self._last_algorithm = req.algorithm
                global_state = self._fetch_global(req.version, req.model_digest)
                client.set_shared({k: global_state[k] for k in client.shared_keys})
                t_fetched = time.monotonic()
                update, result = client.fit(req.round)
                t_trained = time.monotonic()
                if self._plan is not None:
                    shared = {k: global_state[k] for k in client.shared_keys}
                    update = self._plan.poison(req.round, self.partition_index, update, shared)
                if client.personal_keys:
                    client.save_personal(self._personal_path(req.algorithm))
                data = encode(update)
                d = digest(data)
                header = pb.UpdateHeader(
                    node_id=self.node_id,
                    round=req.round,
                    version=req.version,
                    samples=int(result.samples),
                    digest=d,
                    total_bytes=len(data),
                    train_loss=float(result.loss),
                    train_seconds=float(result.seconds),
                )
                header.signature = sign(
                    self.key, Domain.UPDATE, self.chain_id,
                    update_fields(
                        header.round, header.version, d, header.samples, header.train_loss,
                        header.train_seconds,
                    ),
                )
                reply = self.peers.stub(self.sn_address).SubmitUpdate(
                    update_parts(header, data, self.chunk_bytes), timeout=120
                )
                self.last_round = req.round
                self.last_version = req.version
                log.info(
                    "round %d: update submitted (%s; fetch %.2f s, train %.2f s, submit %.2f s)",
                    req.round, reply.message, t_fetched - t0, t_trained - t_fetched,
                    time.monotonic() - t_trained,
                )
            except ShuttingDown:
                log.info("round %d: training stopped because the edge node is shutting down", req.round)
            except grpc.RpcError as exc:
                log.warning("round %d: update refused: %s %s", req.round, exc.code().name, exc.details())
            except Exception:
                log.exception("round %d failed on this edge node", req.round)
            finally:
                self.state = "idle"

    def evaluate(self, req: pb.EvaluateRequest) -> pb.EvaluateReply:
        """Personal evaluation: the global shared state of ``version`` under this EN's head."""
        if self._data is None:
            return pb.EvaluateReply(failed=[pb.Rejection(node_id=self.node_id, reason="edge node is still starting")])
        self.requests.evaluate(req, self.sn_node_id)
        with self._lock:
            algorithm = req.algorithm or self._last_algorithm
            client = self.client(algorithm)
            global_state = self._fetch_global(req.version, req.model_digest)
            client.set_shared({k: global_state[k] for k in client.shared_keys})
            result = client.evaluate()
        self.last_accuracy = result.accuracy
        answer = pb.ClientEval(
            node_id=self.node_id,
            correct=int(result.correct),
            total=int(result.total),
            loss=float(result.loss),
            partition_index=self.partition_index,
        )
        # signed over the entry's request it answers: the entry checks it against this EN's key
        answer.signature = sign(
            self.key, Domain.EVALUATION, self.chain_id, evaluation_fields(answer, req)
        )
        return pb.EvaluateReply(clients=[answer])

    def status(self) -> NodeStatus:
        """The /status answer of an EN (``model_version``: the version it last trained from)."""
        return node_status(
            node_id=self.node_id,
            role="EN",
            entry=False,
            state=self.state,
            algorithm=self.settings.algorithm,
            round=self.last_round,
            model_version=self.last_version,
            ens=1,
            partition_index=self.partition_index,
            sn=self.sn_node_id,
            accuracy=self.last_accuracy,
            attack=self.attack,
            **self.heads.status(),
        )
