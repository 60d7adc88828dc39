"""In-memory fakes for running the entry in one process: a ledger that applies the real
chain rules, SN stubs that answer OpenRound by submitting an aggregate, a directory of them,
and a clock whose waits between retries take no time."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from fedchain.services.sn.entry import EntryRole
from fedchain.services.sn.entry.ports import Clock
from fedchain.services.sn.model_ops import ModelTemplate
from fedchain.shared.chain.blocks import Block
from fedchain.shared.chain.errors import ChainError
from fedchain.shared.chain.rules import ChainState, check_block
from fedchain.shared.chain.treehead import TreeHead
from fedchain.shared.crypto import NodeKey
from fedchain.shared.ledger.errors import InvalidBlock, LedgerRejected, NotFound
from fedchain.shared.net.signing import (
    evaluation_fields,
    join_message,
    manifest_fields,
    update_fields,
)
from fedchain.shared.net.statements import Domain, sign
from fedchain.shared.net.streams import aggregate_parts, update_parts
from fedchain.shared.rpc import node_pb2 as pb
from fedchain.shared.tensors import decode, digest, encode


@dataclass(frozen=True)
class FakeVerify:
    ok: bool
    checked: int
    height: int | None
    reason: str | None


class FakeLedger:
    """Blocks and blobs in memory; every append is checked by ``shared/chain/rules.py``.

    ``refuse_round_appends`` refuses that many round-block appends (nothing stored).
    """

    def __init__(self) -> None:
        self.blocks: list[Block] = []
        self.blobs: dict[str, bytes] = {}
        self.state = ChainState()
        self.refuse_round_appends = 0
        self.refused = 0
        self.heads: list[TreeHead] = []
        """The entry's signed tree heads, in the order it gave them."""
        self._lock = threading.Lock()

    def tip(self) -> Block | None:
        return self.blocks[-1] if self.blocks else None

    def get(self, height: int) -> Block:
        if not 0 <= height < len(self.blocks):
            raise NotFound(f"no block at height {height}")
        return self.blocks[height]

    def range(self, start: int, limit: int) -> list[Block]:
        return self.blocks[start : start + limit]

    def append(self, block: Block) -> Block:
        with self._lock:
            if str(block.kind) == "round" and self.refuse_round_appends > 0:
                self.refuse_round_appends -= 1
                self.refused += 1
                raise LedgerRejected("refused by the test ledger")
            try:
                check_block(block, self.state, self._blob_problem)
            except ChainError as exc:
                raise InvalidBlock(str(exc)) from None
            self.state.apply(block)
            self.blocks.append(block)
            return block

    def put_tree_head(self, head: TreeHead) -> TreeHead:
        self.heads.append(head)
        return head

    def _blob_problem(self, d: str) -> str | None:
        return None if d in self.blobs else "missing"

    def put_blob(self, data: bytes) -> str:
        d = digest(data)
        self.blobs[d] = data
        return d

    def get_blob(self, d: str) -> bytes:
        try:
            return self.blobs[d]
        except KeyError:
            raise NotFound(f"no blob {d[:16]}") from None

    def verify(self) -> FakeVerify:
        try:
            ChainState.replay(self.blocks, self._blob_problem)
        except ChainError as exc:
            return FakeVerify(False, 0, None, str(exc))
        return FakeVerify(True, len(self.blocks), len(self.blocks) - 1, None)

    def rounds(self) -> list[Block]:
        return [b for b in self.blocks if str(b.kind) == "round"]


@dataclass
class FakeSuperNode:
    """An SN answering the entry's RPCs in-process: OpenRound submits an aggregate at once.

    ``deliver`` limits how many of the round's ENs it reports as used (None: all);
    ``on_open`` runs before it submits (a test pauses training there).
    """

    key: NodeKey
    address: str
    template: ModelTemplate
    entry: EntryRole | None = None
    assigned: list[str] = field(default_factory=list)
    opened: list[pb.OpenRoundRequest] = field(default_factory=list)
    deliver: int | None = None
    on_open: Callable[[pb.OpenRoundRequest], object] | None = None
    en_keys: dict[str, NodeKey] = field(default_factory=dict)
    """The keys of its ENs: each used update carries its EN's own signature."""
    scale: dict[str, float] = field(default_factory=dict)
    """With a robust aggregator: ENs whose update's distance from the model is scaled (attackers)."""
    on_evaluate: Callable[[list[pb.ClientEval]], object] | None = None
    """Changes the ENs' evaluation answers before they go to the entry (a lying SN)."""
    hand_over: bool = True
    handed_over: list[str] = field(default_factory=list)
    """Digests of the updates it handed over with RetainUpdate."""
    """Send the entry the updates it asks to keep (``SubmitReply.retain``)."""
    noise: bool = False
    """Dishonest: add noise to its aggregate."""
    drop_one: bool = False
    """Dishonest: list every EN but leave the first one's update out of its aggregate."""

    @property
    def node_id(self) -> str:
        return self.key.node_id

    def AssignEdge(self, request: pb.EdgeInfo, timeout: float | None = None) -> pb.Ack:
        self.assigned.append(request.node_id)
        return pb.Ack(ok=True)

    def OpenRound(self, request: pb.OpenRoundRequest, timeout: float | None = None) -> pb.OpenRoundReply:
        assert self.entry is not None
        self.opened.append(request)
        if self.on_open is not None:
            self.on_open(request)
        ens = sorted(request.participants)[: self.deliver]
        global_state = decode(self.entry.model_bytes(request.version, request.model_digest))
        keys = self.template.shared_keys(request.algorithm)
        chain_id = self.entry.authority.chain_id
        forward = not self.template.decomposable(request.algorithm)
        used, states, blobs, pieces = [], [], {}, []
        for i, en in enumerate(ens):
            if forward:  # each EN's own update (distinct), forwarded as its bytes
                step = (0.01 * request.round + 0.002 * (i + 1)) * self.scale.get(en, 1.0)
                update = {k: (global_state[k] + step).to(global_state[k].dtype) for k in keys}
                samples = 10
            else:
                update = {k: global_state[k] + 0.01 * request.round + 0.001 * i for k in keys}
                samples = 10 + i
            blob = encode(update)
            pieces.append(blob)
            u = pb.UsedUpdate(
                node_id=en, digest=digest(blob), samples=samples, train_loss=0.5,
                train_seconds=1.0, total_bytes=len(blob) if forward else 0,
            )
            u.signature = sign(
                self.en_keys[en], Domain.UPDATE, chain_id,
                update_fields(request.round, request.version, u.digest, u.samples, 0.5, 1.0),
            )
            used.append(u)
            states.append((update, u.samples))
            blobs[u.digest] = (u, blob)
        if forward:
            data = b"".join(pieces)
        else:
            # what a real SN sends: the strategy's float64 weighted sums of its ENs' updates
            partial = self.template.partial(request.algorithm, request.round, states)
            sums = partial.sums
            if self.noise:  # a dishonest SN: its aggregate is not the sum of what it lists
                sums = {k: v + 1e-3 for k, v in sums.items()}
            if self.drop_one and len(states) > 1:  # lists every EN, sums all but the first
                sums = self.template.partial(request.algorithm, request.round, states[1:]).sums
            data = encode(sums)
        agg_digest = digest(data)
        header = pb.AggregateHeader(
            sn_node_id=self.node_id, round=request.round, version=request.version,
            samples=sum(u.samples for u in used), used=used,
            rejected=[pb.Rejection(node_id=en, reason="did not deliver")
                      for en in sorted(request.participants)[len(ens):]],
            total_bytes=len(data), digest=agg_digest,
            aggregator=str(self.template.settings.aggregator),
        )
        header.signature = sign(self.key, Domain.MANIFEST, chain_id, manifest_fields(header))
        reply = self.entry.submit_aggregate(aggregate_parts(header, data, 64 * 1024))
        for d in reply.retain if self.hand_over else []:
            u, blob = blobs[d]
            h = pb.UpdateHeader(
                node_id=u.node_id, round=request.round, version=request.version,
                samples=u.samples, digest=d, signature=u.signature, total_bytes=len(blob),
                train_loss=u.train_loss, train_seconds=u.train_seconds,
            )
            self.entry.retain_update(update_parts(h, blob, 64 * 1024))
            self.handed_over.append(d)
        return pb.OpenRoundReply(ok=True, edges=len(request.participants))

    def Evaluate(self, request: pb.EvaluateRequest, timeout: float | None = None) -> pb.EvaluateReply:
        assert self.entry is not None
        clients = []
        for i, en in enumerate(self.assigned):
            c = pb.ClientEval(node_id=en, sn=self.node_id, correct=8, total=10, loss=0.4, partition_index=i)
            if en in self.en_keys:  # each EN signs its own answer (the SN relays it)
                c.signature = sign(
                    self.en_keys[en], Domain.EVALUATION, self.entry.authority.chain_id,
                    evaluation_fields(c, request),
                )
            clients.append(c)
        if self.on_evaluate is not None:
            self.on_evaluate(clients)
        return pb.EvaluateReply(clients=clients)


class FakePeers:
    """The entry's peer directory: address -> fake SN."""

    def __init__(self) -> None:
        self.nodes: dict[str, FakeSuperNode] = {}

    def stub(self, address: str) -> FakeSuperNode:
        return self.nodes[address]

    def close(self) -> None:
        return None


class QuickClock(Clock):
    """Real time, except that the driver's pause between retries passes at once (and counts)."""

    def __init__(self) -> None:
        self.skipped = 0.0

    def monotonic(self) -> float:
        return time.monotonic() + self.skipped

    def wait(self, stop: threading.Event, seconds: float) -> bool:
        self.skipped += seconds
        return stop.is_set()


def join_request(key: NodeKey, role: str, address: str, token: str) -> pb.JoinRequest:
    ts = int(time.time() * 1000)
    http_address = address.replace(":7", ":9")
    return pb.JoinRequest(
        token=token, role=role, public_key=key.public_bytes, address=address,
        http_address=http_address, timestamp_ms=ts,
        signature=key.sign(join_message(role, key.public_bytes, address, ts, http_address)),
    )
