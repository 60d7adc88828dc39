"""The entry's admissions in one process (fake ledger with the real chain rules, fake SN):
caps, the join rate limit, signed join replies, dead members leaving the chain and coming
back, and evaluation answers that must be signed by their EN."""

from __future__ import annotations

import time

import grpc
import pytest

from fedchain.services.sn.entry.admissions import HEARTBEAT_TIMEOUT_REASON
from fedchain.services.sn.validation import Rejected
from fedchain.shared.chain.membership import members_at_height
from fedchain.shared.chain.payloads import NodeJoinedPayload, NodeLeftPayload
from fedchain.shared.config import token_value
from fedchain.shared.crypto import NodeKey
from fedchain.shared.net.signing import check_signed, evaluation_fields, join_reply_fields
from fedchain.shared.net.statements import Domain, sign
from fedchain.shared.node.admission import JoinRateLimiter
from fedchain.shared.rpc import node_pb2 as pb
from tests.services.sn.entry.entry_fakes import join_request
from tests.services.sn.entry.test_entry_rounds import Federation
from tests.services.sn.entry.test_entry_rounds import fed as _federation  # noqa: F401 (fixture)


@pytest.fixture
def fed(_federation: Federation) -> Federation:  # noqa: F811 (the imported fixture)
    """The federation of the rounds tests: an entry, one SN, four ENs."""
    return _federation


def en_join(f: Federation, key: NodeKey, port: int, source: str = "") -> pb.JoinReply:
    req = join_request(key, "EN", f"127.0.0.1:7{port}", token_value(f.settings, "en_join_token"))
    reply = f.entry.join(req, source)
    check_signed(  # what the joiner checks: the entry signed every field, bound to this request
        f.key.public_bytes, bytes(reply.signature), Domain.JOIN_REPLY, bytes(reply.chain_id),
        f.key.node_id, join_reply_fields(reply, req.timestamp_ms),
    )
    return reply


def later(f: Federation, seconds: float) -> None:
    """Move the registry's clock on by ``seconds`` (liveness is measured on it)."""
    base = f.entry.registry.clock
    f.entry.registry.clock = lambda: base() + seconds


def test_a_silent_edge_node_leaves_the_chain_and_a_replacement_takes_its_partition(
    fed: Federation,
) -> None:
    dead, *alive = fed.ens
    partition = fed.entry.registry.get(dead).partition_index  # type: ignore[union-attr]
    newcomer = NodeKey.generate()
    with pytest.raises(Rejected, match="federation is full") as full:
        en_join(fed, newcomer, 150)
    assert full.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED

    later(fed, fed.settings.heartbeat_timeout + 1)
    fed.ens = alive
    fed.beat()  # the SN is alive, and hears from every EN but one
    assert fed.entry.admissions.expire() == [dead]

    left = fed.ledger.blocks[-1]
    assert left.payload == NodeLeftPayload(node_id=dead, reason=HEARTBEAT_TIMEOUT_REASON)
    assert fed.entry.admissions.expire() == []  # once
    assert fed.entry.registry.get(dead) is None

    reply = en_join(fed, newcomer, 151)
    assert reply.partition_index == partition  # the freed partition
    joined = fed.ledger.blocks[-1].payload
    assert isinstance(joined, NodeJoinedPayload) and joined.node_id == newcomer.node_id
    members = members_at_height(fed.ledger.blocks, len(fed.ledger.blocks) - 1)
    assert dead not in members and newcomer.node_id in members
    assert fed.ledger.verify().ok


def test_a_departed_node_coming_back_with_its_key_joins_the_chain_again(fed: Federation) -> None:
    dead = fed.ens[0]
    key = fed.sn.en_keys[dead]
    partition = fed.entry.registry.get(dead).partition_index  # type: ignore[union-attr]
    later(fed, fed.settings.heartbeat_timeout + 1)
    fed.ens = fed.ens[1:]
    fed.beat()
    fed.entry.admissions.expire()

    reply = en_join(fed, key, 160)
    assert reply.partition_index == partition  # still free: its own partition again
    kinds = [(str(b.kind), getattr(b.payload, "node_id", "")) for b in fed.ledger.blocks[-2:]]
    assert kinds == [("node_left", dead), ("node_joined", dead)]
    assert fed.ledger.verify().ok


def test_a_silent_super_node_leaves_and_rejoins(fed: Federation) -> None:
    later(fed, fed.settings.heartbeat_timeout + 1)
    gone = set(fed.entry.admissions.expire())
    assert fed.sn.node_id in gone and set(fed.ens) <= gone
    reply = fed.entry.heartbeat(pb.HeartbeatRequest(node_id=fed.sn.node_id, role="SN"))
    assert not reply.known  # it re-joins
    fed.entry.join(join_request(
        fed.sn.key, "SN", fed.sn.address, token_value(fed.settings, "sn_join_token")
    ))
    last = fed.ledger.blocks[-1].payload
    assert isinstance(last, NodeJoinedPayload) and last.node_id == fed.sn.node_id
    assert fed.ledger.verify().ok


def test_super_nodes_beyond_max_sns_are_refused(fed: Federation) -> None:
    fed.settings.max_sns = 1
    other = NodeKey.generate()
    with pytest.raises(Rejected, match=r"its 1 super nodes already \(max_sns\)") as refused:
        fed.entry.join(join_request(
            other, "SN", "127.0.0.1:7300", token_value(fed.settings, "sn_join_token")
        ))
    assert refused.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert all(getattr(b.payload, "node_id", "") != other.node_id for b in fed.ledger.blocks)


def test_joins_from_one_address_are_rate_limited(fed: Federation) -> None:
    fed.entry.admissions.limiter = JoinRateLimiter(rate=0.01, burst=2)
    height = len(fed.ledger.blocks)
    key = fed.sn.en_keys[fed.ens[0]]  # a known EN: its joins change nothing on the chain
    en_join(fed, key, 100, source="10.9.9.9")
    en_join(fed, key, 100, source="10.9.9.9")
    with pytest.raises(Rejected, match="too many join requests from 10.9.9.9") as refused:
        en_join(fed, key, 100, source="10.9.9.9")
    assert refused.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    en_join(fed, key, 100, source="10.9.9.10")  # another address is not held back
    assert len(fed.ledger.blocks) == height


def test_unsigned_or_missigned_evaluation_answers_are_refused_and_counted(fed: Federation) -> None:
    version = fed.entry.model.ref
    honest = fed.entry.evaluation.round_metrics(version.version, version.digest, "fedper")
    assert honest["evaluated"] == 4 and honest["accuracy"] == pytest.approx(0.8)
    stranger = NodeKey.generate()

    def lie(answers: list[pb.ClientEval]) -> None:
        answers[0].ClearField("signature")  # unsigned
        answers[1].correct = 10  # altered after the EN signed it
        answers[2].signature = sign(  # signed by another key than the EN's
            stranger, Domain.EVALUATION, fed.entry.authority.chain_id,
            evaluation_fields(answers[2], pb.EvaluateRequest()),
        )
        answers[3].correct, answers[3].total = 10, 10  # figures inflated by the SN

    fed.sn.on_evaluate = lie
    before = fed.entry.evaluation.refused
    reply = fed.entry.evaluation.evaluate_all(version.version, version.digest, "fedper")
    reasons = {f.node_id: f.reason for f in reply.failed}
    assert "not signed by the edge node" in reasons[fed.sn.assigned[0]]
    assert "bad signature on evaluation" in reasons[fed.sn.assigned[1]]
    assert "refused" in reasons[fed.sn.assigned[2]]
    assert fed.entry.evaluation.refused - before == 4  # the 4th was altered too: refused
    metrics = fed.entry.evaluation.round_metrics(version.version, version.digest, "fedper")
    assert metrics == {}  # nothing a lying SN sent reached the metrics
    fed.sn.on_evaluate = None
    assert fed.entry.evaluation.round_metrics(version.version, version.digest, "fedper") == honest


def test_the_join_reply_names_what_the_joiner_acts_on(fed: Federation) -> None:
    key = fed.sn.en_keys[fed.ens[1]]
    reply = en_join(fed, key, 101)
    assert reply.sn_node_id == fed.sn.node_id and reply.partition_size > 0
    reply.sn_address = "evil:1"  # a relay changing where the EN goes is caught by the joiner
    with pytest.raises(ValueError, match="bad signature on join_reply"):
        check_signed(
            fed.key.public_bytes, bytes(reply.signature), Domain.JOIN_REPLY,
            bytes(reply.chain_id), fed.key.node_id, join_reply_fields(reply, int(time.time())),
        )


def test_an_edge_node_that_leaves_mid_round_still_counts_in_the_round_it_trained_for(
    fed: Federation,
) -> None:
    dead = fed.ens[0]
    done: list[str] = []

    def dies_after_its_update(_req: pb.OpenRoundRequest) -> None:
        if not done:  # its update is in; then its heartbeats stop for longer than the timeout
            later(fed, fed.settings.heartbeat_timeout + 1)
            fed.ens = fed.ens[1:]
            fed.beat()
            done.extend(fed.entry.admissions.expire())

    fed.sn.on_open = dies_after_its_update
    fed.train(1)

    assert done == []  # not while the round it trained for runs
    (first,) = fed.round_payloads()
    assert dead in first.participant_ids and len(first.participants) == 4  # the SN is not refused
    assert fed.entry.admissions.expire() == [dead]  # after the round block
    kinds = [str(b.kind) for b in fed.ledger.blocks[-2:]]
    assert kinds == ["round", "node_left"]
    assert fed.ledger.verify().ok
