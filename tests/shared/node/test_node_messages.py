"""Entry requests, heartbeats and the chain learnt at join, checked at the function level:
forged, replayed, wrong chain id, wrong sender, stale."""

from __future__ import annotations

import time
from pathlib import Path

import grpc
import pytest

from fedchain.shared.crypto import NodeKey
from fedchain.shared.net.signing import (
    SignatureRefused,
    assign_edge_fields,
    evaluate_fields,
    open_round_fields,
)
from fedchain.shared.net.statements import Domain, sign
from fedchain.shared.node.entry_requests import EntryRequests, RequestRefused
from fedchain.shared.node.heartbeats import (
    HeartbeatCounter,
    HeartbeatRefused,
    ReplayGuard,
    check_heartbeat,
    signed_heartbeat,
)
from fedchain.shared.node.trust import EntryTrust, TrustRefused, TrustStore
from fedchain.shared.rpc import node_pb2 as pb

CHAIN = bytes(range(32))
ENTRY = NodeKey.generate()
SN = "n-" + "1" * 16
EN = "n-" + "2" * 16


def _requests(chain: bytes = CHAIN) -> EntryRequests:
    trust = EntryTrust(chain, ENTRY.public_bytes)
    return EntryRequests(lambda: trust)


def _open(round_no: int = 3, *, key: NodeKey = ENTRY, chain: bytes = CHAIN, sn: str = SN,
          issued_ms: int | None = None) -> pb.OpenRoundRequest:
    req = pb.OpenRoundRequest(
        round=round_no, version=round_no - 1, model_digest="ab" * 32, algorithm="fedper",
        timeout_s=30.0, participants=[EN], sn_node_id=sn,
        issued_ms=int(time.time() * 1000) if issued_ms is None else issued_ms,
    )
    req.signature = sign(key, Domain.OPEN_ROUND, chain, open_round_fields(req))
    return req


def _refusal(call: object, *args: object) -> RequestRefused:
    with pytest.raises(RequestRefused) as info:
        call(*args)  # type: ignore[operator]
    return info.value


def test_an_open_round_signed_by_the_entry_is_taken_once() -> None:
    checks = _requests()
    req = _open()
    checks.open_round(req, SN)
    replay = _refusal(checks.open_round, req, SN)
    assert replay.code == grpc.StatusCode.FAILED_PRECONDITION and "replay" in replay.reason
    older = _refusal(checks.open_round, _open(2), SN)
    assert "older" in older.reason
    checks.open_round(_open(3), SN)  # a retry of the same round, issued later, is the entry's


def test_open_round_forged_wrong_chain_wrong_sn_stale_and_tampered_are_refused() -> None:
    checks = _requests()
    forged = _refusal(checks.open_round, _open(key=NodeKey.generate()), SN)
    assert forged.code == grpc.StatusCode.PERMISSION_DENIED and "entry" in forged.reason
    other_chain = _refusal(checks.open_round, _open(chain=bytes(32)), SN)
    assert other_chain.code == grpc.StatusCode.PERMISSION_DENIED
    wrong_sn = _refusal(checks.open_round, _open(sn="n-" + "9" * 16), SN)
    assert wrong_sn.code == grpc.StatusCode.PERMISSION_DENIED and "super node" in wrong_sn.reason
    stale = _refusal(checks.open_round, _open(issued_ms=int(time.time() * 1000) - 3_600_000), SN)
    assert "stale" in stale.reason
    tampered = _open()
    tampered.participants.append("n-" + "3" * 16)
    assert _refusal(checks.open_round, tampered, SN).code == grpc.StatusCode.PERMISSION_DENIED


def test_an_en_takes_only_rounds_it_is_selected_for() -> None:
    checks = _requests()
    refusal = _refusal(checks.open_round, _open(), SN, "n-" + "4" * 16)
    assert "not among the participants" in refusal.reason
    checks.open_round(_open(4), SN, EN)


def test_a_node_that_has_not_joined_refuses_every_request() -> None:
    checks = EntryRequests(lambda: None)
    assert _refusal(checks.open_round, _open(), SN).code == grpc.StatusCode.FAILED_PRECONDITION


def test_evaluate_must_be_the_entrys_fresh_request_for_this_sn() -> None:
    checks = _requests()

    def evaluate(key: NodeKey = ENTRY, sn: str = SN, age_ms: int = 0) -> pb.EvaluateRequest:
        req = pb.EvaluateRequest(version=2, model_digest="cd" * 32, timeout_s=10.0, algorithm="fedper",
                                 sn_node_id=sn, issued_ms=int(time.time() * 1000) - age_ms)
        req.signature = sign(key, Domain.EVALUATE, CHAIN, evaluate_fields(req))
        return req

    checks.evaluate(evaluate(), SN)
    assert _refusal(checks.evaluate, evaluate(key=NodeKey.generate()), SN).code == (
        grpc.StatusCode.PERMISSION_DENIED
    )
    assert "super node" in _refusal(checks.evaluate, evaluate(sn=EN), SN).reason
    assert "stale" in _refusal(checks.evaluate, evaluate(age_ms=3_600_000), SN).reason


def test_an_assignment_needs_the_entrys_signature_and_the_ens_own_key() -> None:
    checks = _requests()
    en = NodeKey.generate()

    def info(node_id: str, key: NodeKey, signer: NodeKey = ENTRY, sn: str = SN) -> pb.EdgeInfo:
        i = pb.EdgeInfo(node_id=node_id, public_key=key.public_bytes, address="127.0.0.1:7001",
                        partition_index=1, sn_node_id=sn, partition_size=120)
        i.signature = sign(signer, Domain.ASSIGN_EDGE, CHAIN, assign_edge_fields(i))
        return i

    checks.assignment(info(en.node_id, en), SN)
    attacker = NodeKey.generate()
    forged = _refusal(checks.assignment, info(en.node_id, attacker, signer=attacker), SN)
    assert forged.code == grpc.StatusCode.PERMISSION_DENIED
    other_key = _refusal(checks.assignment, info(en.node_id, attacker), SN)  # even the entry's
    assert "not the node id of its key" in other_key.reason
    assert "super node" in _refusal(checks.assignment, info(en.node_id, en, sn=EN), SN).reason
    tampered = info(en.node_id, en)
    tampered.partition_size = 2**62
    assert _refusal(checks.assignment, tampered, SN).code == grpc.StatusCode.PERMISSION_DENIED


def test_heartbeats_forged_replayed_stale_or_of_another_chain_are_refused() -> None:
    key = NodeKey.generate()
    guard = ReplayGuard()
    counter = HeartbeatCounter()

    def beat(signer: NodeKey = key, chain: bytes = CHAIN, at: int | None = None) -> pb.HeartbeatRequest:
        req = signed_heartbeat(signer, chain, counter.next() if at is None else at, role="EN",
                               address="127.0.0.1:7001", http_address="", state="idle")
        req.node_id = key.node_id
        return req

    first = beat()
    check_heartbeat(first, key.public_bytes, CHAIN, guard)
    with pytest.raises(HeartbeatRefused, match="replayed"):
        check_heartbeat(first, key.public_bytes, CHAIN, guard)
    with pytest.raises(SignatureRefused):
        check_heartbeat(beat(signer=NodeKey.generate()), key.public_bytes, CHAIN, guard)
    with pytest.raises(SignatureRefused):
        check_heartbeat(beat(chain=bytes(32)), key.public_bytes, CHAIN, guard)
    with pytest.raises(HeartbeatRefused, match="stale"):
        check_heartbeat(beat(at=int(time.time() * 1000) - 3_600_000), key.public_bytes, CHAIN, guard)
    moved = beat()
    moved.address = "127.0.0.1:9"  # a replay with another address
    with pytest.raises(SignatureRefused):
        check_heartbeat(moved, key.public_bytes, CHAIN, guard)
    check_heartbeat(beat(), key.public_bytes, CHAIN, guard)  # the forgeries locked nothing out


def test_a_forged_beat_with_a_high_counter_does_not_lock_out_the_sender() -> None:
    key = NodeKey.generate()
    guard = ReplayGuard()
    forged = signed_heartbeat(NodeKey.generate(), CHAIN, int(time.time() * 1000) + 50_000, role="EN",
                              address="127.0.0.1:1", http_address="", state="idle")
    forged.node_id = key.node_id
    with pytest.raises(SignatureRefused):
        check_heartbeat(forged, key.public_bytes, CHAIN, guard)
    real = signed_heartbeat(key, CHAIN, int(time.time() * 1000), role="EN", address="127.0.0.1:1",
                            http_address="", state="idle")
    check_heartbeat(real, key.public_bytes, CHAIN, guard)


def test_the_chain_learnt_at_join_is_kept_and_another_entry_is_refused(tmp_path: Path) -> None:
    store = TrustStore(tmp_path)
    store.adopt(CHAIN, ENTRY.public_bytes, ENTRY.node_id)
    again = TrustStore(tmp_path)  # a restarted node
    assert again.trust == EntryTrust(CHAIN, ENTRY.public_bytes)
    again.adopt(CHAIN, ENTRY.public_bytes)
    with pytest.raises(TrustRefused, match="another key"):
        again.adopt(CHAIN, NodeKey.generate().public_bytes)
    with pytest.raises(TrustRefused, match="another chain"):
        again.adopt(bytes(32), ENTRY.public_bytes)
    with pytest.raises(TrustRefused, match="carries"):
        TrustStore(None).adopt(CHAIN, ENTRY.public_bytes, "n-" + "0" * 16)
