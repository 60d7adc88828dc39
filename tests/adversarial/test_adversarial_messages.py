"""Message attacks of issue 11 "Why", each against a real multi-process network.

One network (entry, one SN, one real EN) serves every attack of a round: a test-driven EN
``victim`` on the real SN, a malicious SN ``evil-sn`` (with its own EN ``evil-en``) that the
round is opened to, an SN ``idle-sn`` it is not opened to, and outsiders with fresh keys.
Each attack is refused with a clear gRPC status; the round completes with the honest ENs
(the victim's real update counts) and ``/verify`` is ok.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import grpc
import pytest

from fedchain.shared.crypto import NodeKey
from fedchain.shared.net.signing import assign_edge_fields, open_round_fields
from fedchain.shared.net.statements import Domain, sign
from fedchain.shared.node.heartbeats import signed_heartbeat
from fedchain.shared.rpc import node_pb2 as pb
from fedchain.shared.rpc import node_pb2_grpc
from fedchain.shared.tensors import digest, encode
from tests.adversarial.attackers import FakeEdge, FakeSuper, refused
from tests.network.harness import EN_JOIN_TOKEN, SN_JOIN_TOKEN, LocalNet, Proc

OPEN_WAIT_S = 90


@dataclass
class Scene:
    net: LocalNet
    sn: Proc
    victim: FakeEdge
    evil_sn: FakeSuper
    evil_en: FakeEdge
    idle_sn: FakeSuper
    round_req: pb.OpenRoundRequest  # what sn-1 relayed to the victim
    evil_req: pb.OpenRoundRequest  # what the entry opened on evil-sn
    update: bytes  # a well-formed update for the victim


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scene]:
    net = LocalNet(tmp_path_factory.mktemp("adversarial-net"), FEDCHAIN_HEARTBEAT_TIMEOUT="30")
    fakes: list[FakeEdge | FakeSuper] = []
    try:
        entry = net.start_entry("--dataset", "mnist-sample", "--clients", "4", "--max-samples", "800",
                                "--quorum", "0.1", "--local-epochs", "1")
        net.wait_healthy(entry)
        sn = net.start_sn("sn-1")
        net.wait_for(lambda: net.get("/status")["sns"] == 2, "the SN to join")
        net.start_en("en-1")
        net.wait_edges(1)
        victim = FakeEdge(entry.address, EN_JOIN_TOKEN)  # least loaded plain SN: sn-1
        fakes.append(victim)
        evil_sn = FakeSuper(entry.address, SN_JOIN_TOKEN)
        fakes.append(evil_sn)
        evil_en = FakeEdge(entry.address, EN_JOIN_TOKEN)  # goes to evil-sn, the least loaded now
        fakes.append(evil_en)
        assert evil_en.reply.sn_node_id == evil_sn.node_id
        idle_sn = FakeSuper(entry.address, SN_JOIN_TOKEN, beat=False)  # joins after every EN
        fakes.append(idle_sn)
        net.wait_edges(3)
        r = net.post("/train", {"rounds": 1})
        assert r.status_code == 202, r.text
        round_req = victim.opened.get(timeout=OPEN_WAIT_S)
        evil_req = evil_sn.opened.get(timeout=OPEN_WAIT_S)
        from fedchain.shared.fl.models import build_model
        from fedchain.shared.fl.strategy import FedPer

        keys = FedPer(personal_layers=1).shared_keys(build_model("auto", "mnist-sample"))
        global_state = victim.global_model(round_req)
        update = encode({k: global_state[k].clone() for k in keys})
        yield Scene(net, sn, victim, evil_sn, evil_en, idle_sn, round_req, evil_req, update)
    finally:
        for f in fakes:
            f.close()
        net.close()


def _sn_stub(scene: Scene) -> node_pb2_grpc.NodeStub:
    return scene.victim.stub


def test_forged_assign_edge_and_2_62_samples_for_a_victim_are_refused(scene: Scene) -> None:
    attacker = NodeKey.generate()
    info = pb.EdgeInfo(
        node_id=scene.victim.node_id, public_key=attacker.public_bytes, address="127.0.0.1:1",
        partition_index=0, sn_node_id=scene.round_req.sn_node_id, partition_size=2**62,
    )
    info.signature = sign(attacker, Domain.ASSIGN_EDGE, scene.victim.chain_id, assign_edge_fields(info))
    err = refused(lambda: _sn_stub(scene).AssignEdge(info, timeout=10))
    assert err.code() in (grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.INVALID_ARGUMENT)
    assert "entry" in (err.details() or "")
    header = scene.victim.header(scene.round_req, scene.update, samples=2**62, signer=attacker)
    err = refused(lambda: scene.victim.submit(header, scene.update))
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED and "signature" in (err.details() or "")


def test_open_round_from_an_outsider_and_a_replayed_one_are_refused(scene: Scene) -> None:
    outsider = NodeKey.generate()
    fake = pb.OpenRoundRequest()
    fake.CopyFrom(scene.round_req)
    fake.round += 1
    fake.issued_ms += 1
    fake.signature = sign(outsider, Domain.OPEN_ROUND, scene.victim.chain_id, open_round_fields(fake))
    err = refused(lambda: _sn_stub(scene).OpenRound(fake, timeout=10))
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED and "entry" in (err.details() or "")
    err = refused(lambda: _sn_stub(scene).OpenRound(scene.round_req, timeout=10))
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION and "replay" in (err.details() or "")


def test_victim_named_header_with_garbage_signature_changes_nothing(scene: Scene) -> None:
    header = scene.victim.header(scene.round_req, scene.update)
    header.signature = b"\x00" * 64
    err = refused(lambda: scene.victim.submit(header, scene.update))
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED and "signature" in (err.details() or "")


def test_a_5000_character_node_id_and_a_nan_train_loss_are_refused(scene: Scene) -> None:
    long_id = scene.victim.header(scene.round_req, scene.update, node_id="n-" + "a" * 5000)
    err = refused(lambda: scene.victim.submit(long_id, scene.update))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "node id" in (err.details() or "")
    nan = scene.victim.header(scene.round_req, scene.update)
    nan.train_loss = math.nan  # signed over 0.5: no key can sign a NaN statement
    err = refused(lambda: scene.victim.submit(nan, scene.update))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "train_loss" in (err.details() or "")


def test_forged_heartbeats_neither_move_an_sn_nor_drop_or_redirect_its_ens(scene: Scene) -> None:
    net = scene.net
    before = {s["node_id"]: s for s in net.get("/sn")}
    sn_id = scene.round_req.sn_node_id
    attacker = NodeKey.generate()
    forged_sn = signed_heartbeat(
        attacker, scene.victim.chain_id, 10**13, role="SN", address="127.0.0.1:9",
        http_address="", state="idle", alive_edges=[],
    )
    forged_sn.node_id = sn_id
    with grpc.insecure_channel(net.entry.address) as ch:  # type: ignore[union-attr]
        err = refused(lambda: node_pb2_grpc.NodeStub(ch).Heartbeat(forged_sn, timeout=10))
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED
    forged_en = signed_heartbeat(
        attacker, scene.victim.chain_id, 10**13, role="EN", address="127.0.0.1:9",
        http_address="", state="idle",
    )
    forged_en.node_id = scene.victim.node_id
    err = refused(lambda: _sn_stub(scene).Heartbeat(forged_en, timeout=10))
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED
    replay = scene.victim.heartbeat()
    try:
        scene.victim.stub.Heartbeat(replay, timeout=10)
    except grpc.RpcError:
        pass  # its own beat thread may have sent a newer counter first: a replay either way
    err = refused(lambda: _sn_stub(scene).Heartbeat(replay, timeout=10))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "replay" in (err.details() or "")
    after = {s["node_id"]: s for s in net.get("/sn")}
    assert after[sn_id]["address"] == before[sn_id]["address"]


def test_aggregates_from_an_sn_not_in_the_round_and_an_empty_one_with_used_are_refused(
    scene: Scene,
) -> None:
    req = scene.evil_req
    used = [pb.UsedUpdate(node_id=scene.evil_en.node_id, digest=digest(b"x"), samples=10)]
    err = refused(lambda: scene.idle_sn.aggregate(req.round, req.version, used, b"\x00" * 16))
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED and "not opened" in (err.details() or "")
    err = refused(lambda: scene.evil_sn.aggregate(req.round, req.version, used))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "empty aggregate" in (err.details() or "")


def test_the_round_completes_with_the_honest_updates_and_verifies(scene: Scene) -> None:
    """Runs last in this module: the victim's own update still counts after every attack."""
    reply = scene.victim.submit(scene.victim.header(scene.round_req, scene.update), scene.update)
    assert reply.accepted
    net = scene.net
    net.wait_for(
        lambda: (s := net.get("/status"))["round"] >= 1 and s["state"] == "idle", "round 1", 150
    )
    block = next(b for b in net.get("/blocks", params={"from": 0, "limit": 100}) if b["kind"] == "round")
    p = block["payload"]
    ids = [row["node_id"] for row in p["participants"]]
    assert scene.victim.node_id in ids
    assert len(ids) == 2  # en-1 and the victim
    reasons = {d["node_id"]: d["reason"] for d in p["decisions"] if d["action"] == "rejected"}
    assert scene.victim.node_id not in reasons
    assert scene.evil_en.node_id in reasons and "empty aggregate" in reasons[scene.evil_en.node_id]
    assert p["metrics"]["samples"] < 10_000  # no 2^62 weight got in
    assert net.get("/verify")["ok"]
    assert all(proc.popen.poll() is None for proc in net.procs)
