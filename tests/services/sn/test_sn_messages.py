"""An SN's and the entry's checks of signed messages, at the function level: a forged or
malformed message is refused before anything about its sender is recorded."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
import torch

from fedchain.services.sn.collector import RoundCollector
from fedchain.services.sn.edges import Edge
from fedchain.services.sn.entry.authority import EntryAuthority
from fedchain.services.sn.entry.intake import AggregateIntake
from fedchain.services.sn.registry import Registry
from fedchain.services.sn.supernode import SuperNode
from fedchain.services.sn.validation import Rejected
from fedchain.shared.config import Settings
from fedchain.shared.crypto import NodeKey
from fedchain.shared.net.grpc_util import NetConfig
from fedchain.shared.net.signing import assign_edge_fields, manifest_fields, update_fields
from fedchain.shared.net.statements import Domain, sign
from fedchain.shared.net.streams import aggregate_parts, update_parts
from fedchain.shared.node.peers import Peers
from fedchain.shared.node.trust import EntryTrust
from fedchain.shared.rpc import node_pb2 as pb
from fedchain.shared.tensors import digest, encode

CHAIN = bytes(range(32))
ENTRY = NodeKey.generate()
REFERENCE = {"w": torch.zeros(4)}


@pytest.fixture
def sn() -> Iterator[SuperNode]:
    settings = Settings(dataset="mnist-sample")
    node = SuperNode(settings, NodeKey.generate(), Peers(NetConfig.from_settings(settings)),
                     address="127.0.0.1:1", http_address="")
    node.trust = EntryTrust(CHAIN, ENTRY.public_bytes)
    yield node
    node.peers.close()


def _open(node: SuperNode, en: NodeKey, size: int = 100) -> RoundCollector:
    node.edges.assign(Edge(en.node_id, en.public_bytes, "127.0.0.1:2", "", 0, partition_size=size))
    collector = RoundCollector(1, 0, "fedper", {en.node_id}, time.monotonic() + 60)
    collector.reference = REFERENCE
    node._collector = collector
    return collector


def _header(signer: NodeKey, data: bytes, *, node_id: str | None = None, samples: int = 10,
            loss: float = 0.5) -> pb.UpdateHeader:
    d = digest(data)
    h = pb.UpdateHeader(node_id=node_id or signer.node_id, round=1, version=0, samples=samples,
                        digest=d, total_bytes=len(data), train_loss=loss, train_seconds=1.0)
    h.signature = sign(signer, Domain.UPDATE, CHAIN, update_fields(1, 0, d, samples, 0.5, 1.0))
    return h


def _submit(node: SuperNode, h: pb.UpdateHeader, data: bytes) -> Rejected:
    with pytest.raises(Rejected) as info:
        node.submit_update(update_parts(h, data, 1024))
    return info.value


def test_a_header_naming_a_victim_with_a_garbage_signature_changes_nothing(sn: SuperNode) -> None:
    victim = NodeKey.generate()
    collector = _open(sn, victim)
    data = encode({"w": torch.ones(4)})
    forged = _header(NodeKey.generate(), data, node_id=victim.node_id)
    rej = _submit(sn, forged, data)
    assert rej.code == grpc.StatusCode.PERMISSION_DENIED and "signature" in rej.reason
    assert not collector.has_answered(victim.node_id) and collector.rejected == []
    assert sn.submit_update(update_parts(_header(victim, data), data, 1024)).accepted
    assert collector.accepted[victim.node_id].signature == _header(victim, data).signature


def test_malformed_headers_are_refused_unrecorded(sn: SuperNode) -> None:
    en = NodeKey.generate()
    collector = _open(sn, en)
    data = encode({"w": torch.ones(4)})
    long_id = _submit(sn, _header(en, data, node_id="n-" + "a" * 5000), data)
    assert long_id.code == grpc.StatusCode.INVALID_ARGUMENT and "node id" in long_id.reason
    nan = _submit(sn, _header(en, data, loss=math.nan), data)
    assert nan.code == grpc.StatusCode.INVALID_ARGUMENT and "train_loss" in nan.reason
    assert collector.rejected == [] and not collector.has_answered(en.node_id)


def test_a_sample_count_beyond_the_assigned_partition_is_rejected_and_listed(sn: SuperNode) -> None:
    en = NodeKey.generate()
    collector = _open(sn, en, size=50)
    data = encode({"w": torch.ones(4)})
    rej = _submit(sn, _header(en, data, samples=2**62), data)
    assert rej.code == grpc.StatusCode.INVALID_ARGUMENT and "partition" in rej.reason
    assert [n for n, _ in collector.rejected] == [en.node_id]


def test_an_assignment_not_signed_by_the_entry_does_not_set_a_key(sn: SuperNode) -> None:
    victim, attacker = NodeKey.generate(), NodeKey.generate()
    info = pb.EdgeInfo(node_id=victim.node_id, public_key=attacker.public_bytes, address="127.0.0.1:3",
                       partition_index=0, sn_node_id=sn.node_id, partition_size=2**62)
    info.signature = sign(attacker, Domain.ASSIGN_EDGE, CHAIN, assign_edge_fields(info))
    with pytest.raises(Rejected):
        sn.assign_edge(info)
    assert sn.edges.get(victim.node_id) is None
    good = pb.EdgeInfo(node_id=victim.node_id, public_key=victim.public_bytes, address="127.0.0.1:3",
                       partition_index=0, sn_node_id=sn.node_id, partition_size=40)
    good.signature = sign(ENTRY, Domain.ASSIGN_EDGE, CHAIN, assign_edge_fields(good))
    sn.sync_edges([info, good])  # a heartbeat reply: the unsigned entry is skipped
    edge = sn.edges.get(victim.node_id)
    assert edge is not None and edge.public_key == victim.public_bytes and edge.partition_size == 40


def test_an_outsiders_open_round_does_not_supersede_the_real_one(sn: SuperNode) -> None:
    sn.configure(sn.settings)
    collector = _open(sn, NodeKey.generate())
    req = pb.OpenRoundRequest(round=2, version=1, algorithm="fedper", timeout_s=5.0,
                              sn_node_id=sn.node_id, issued_ms=int(time.time() * 1000))
    outsider = NodeKey.generate()
    from fedchain.shared.net.signing import open_round_fields

    req.signature = sign(outsider, Domain.OPEN_ROUND, CHAIN, open_round_fields(req))
    with pytest.raises(Rejected) as info:
        sn.open_round(req)
    assert info.value.code == grpc.StatusCode.PERMISSION_DENIED
    assert not collector.superseded and sn._collector is collector


# ---- the entry's intake of SN manifests ----
@pytest.fixture
def intake() -> tuple[AggregateIntake, Registry, dict[str, NodeKey]]:
    registry = Registry(None, 60.0)
    keys = {name: NodeKey.generate() for name in ("sn", "other-sn", "en", "foreign-en")}
    registry.admit_sn(keys["sn"].node_id, keys["sn"].public_hex, "127.0.0.1:1", "")
    registry.admit_sn(keys["other-sn"].node_id, keys["other-sn"].public_hex, "127.0.0.1:2", "")
    for en, parent, other in (("en", "sn", "other-sn"), ("foreign-en", "other-sn", "sn")):
        member, _ = registry.admit_en(
            keys[en].node_id, keys[en].public_hex, "127.0.0.1:3", "", 2, avoid_sn=keys[other].node_id
        )
        assert member.parent_sn == keys[parent].node_id
    authority = EntryAuthority(ENTRY, Settings(dataset="mnist-sample"), sizes=lambda _s: [50, 50])
    authority.bind(CHAIN)
    return AggregateIntake(registry, 1 << 20, authority), registry, keys


def _manifest(sn_key: NodeKey, used: list[pb.UsedUpdate], data: bytes) -> pb.AggregateHeader:
    h = pb.AggregateHeader(sn_node_id=sn_key.node_id, round=1, version=0,
                           samples=sum(u.samples for u in used) if data else 0, used=used,
                           total_bytes=len(data), digest=digest(data) if data else "",
                           aggregator="mean")
    h.signature = sign(sn_key, Domain.MANIFEST, CHAIN, manifest_fields(h))
    return h


def _used(en: NodeKey, samples: int = 10, signer: NodeKey | None = None) -> pb.UsedUpdate:
    u = pb.UsedUpdate(node_id=en.node_id, digest="ab" * 32, samples=samples, train_loss=0.5,
                      train_seconds=1.0)
    u.signature = sign(signer or en, Domain.UPDATE, CHAIN, update_fields(1, 0, u.digest, samples, 0.5, 1.0))
    return u


def _opened(intake: AggregateIntake, sn_key: NodeKey, en: NodeKey) -> RoundCollector:
    collector = RoundCollector(1, 0, "fedper", {sn_key.node_id}, time.monotonic() + 60)
    collector.reference = {"w": torch.zeros(4, dtype=torch.float64)}
    intake.open(collector, {sn_key.node_id: [en.node_id]})
    return collector


def _refused(intake: AggregateIntake, h: pb.AggregateHeader, data: bytes) -> Rejected:
    with pytest.raises(Rejected) as info:
        intake.submit(aggregate_parts(h, data, 1024))
    return info.value


def test_the_entry_takes_a_manifest_whose_en_signatures_hold(intake) -> None:  # type: ignore[no-untyped-def]
    take, _registry, keys = intake
    sn_key, en = keys["sn"], keys["en"]
    collector = _opened(take, sn_key, en)
    data = encode({"w": torch.ones(4, dtype=torch.float64) * 10})
    assert take.submit(aggregate_parts(_manifest(sn_key, [_used(en)], data), data, 1024)).accepted
    assert sn_key.node_id in collector.accepted


def test_manifests_that_do_not_hold_are_refused(intake) -> None:  # type: ignore[no-untyped-def]
    take, _registry, keys = intake
    sn_key, en = keys["sn"], keys["en"]
    data = encode({"w": torch.ones(4, dtype=torch.float64) * 10})
    collector = _opened(take, sn_key, en)
    not_opened = _refused(take, _manifest(keys["other-sn"], [], b""), b"")
    assert not_opened.code == grpc.StatusCode.PERMISSION_DENIED and "not opened" in not_opened.reason
    garbage = _manifest(sn_key, [_used(en)], data)
    garbage.signature = b"\x00" * 64
    assert "manifest" in _refused(take, garbage, data).reason
    assert not collector.has_answered(sn_key.node_id)  # nothing recorded for a forged manifest
    forged_en = _refused(take, _manifest(sn_key, [_used(en, signer=sn_key)], data), data)
    assert "not signed by" in forged_en.reason
    for bad, words in (
        (_manifest(sn_key, [_used(en)], b""), "empty aggregate"),
        (_manifest(sn_key, [_used(keys["foreign-en"])], data), "not an edge node"),
        (_manifest(sn_key, [_used(en, samples=2**62)], data), "partition"),
    ):
        collector = _opened(take, sn_key, en)
        payload = b"" if "empty" in words else data
        assert words in _refused(take, bad, payload).reason, words
        assert collector.has_answered(sn_key.node_id)  # a signed manifest's fault is the SN's


# ---- the signed tree head of an OpenRound ----
def test_a_plain_sn_refuses_a_round_on_a_chain_that_went_backwards(tmp_path: Path) -> None:
    import hashlib

    from fedchain.services.sn.status import RelayLog, sn_status
    from fedchain.shared.chain.treehead import head_for
    from fedchain.shared.ledger.wire import head_to_proto
    from fedchain.shared.net.signing import open_round_fields

    blocks = [hashlib.sha256(bytes([i])).digest() for i in range(8)]
    settings = Settings(dataset="mnist-sample", state_dir=tmp_path, entry="127.0.0.1:1")
    node = SuperNode(settings, NodeKey.generate(), Peers(NetConfig.from_settings(settings)),
                     address="127.0.0.1:2", http_address="")
    node.trust = EntryTrust(blocks[0], ENTRY.public_bytes)
    node.configure(settings)
    assert node.heads is not None
    node.heads.accept(head_for(blocks[0], blocks, 1).signed(ENTRY), node.trust)  # seen: 8 blocks
    req = pb.OpenRoundRequest(round=4, version=3, algorithm="fedper", timeout_s=5.0,
                              sn_node_id=node.node_id, issued_ms=int(time.time() * 1000))
    req.head.CopyFrom(head_to_proto(head_for(blocks[0], blocks[:5], 2).signed(ENTRY)))
    req.signature = sign(ENTRY, Domain.OPEN_ROUND, blocks[0], open_round_fields(req))
    with pytest.raises(Rejected) as info:
        node.open_round(req)
    assert info.value.code == grpc.StatusCode.FAILED_PRECONDITION
    assert "the chain went backwards: 5 blocks now, 8 seen before" in info.value.reason
    status = sn_status(node, RelayLog(), None)
    assert status.head_size == 8 and status.chain_error is not None and "went backwards" in status.chain_error
    assert node._collector is None  # nothing relayed to its ENs
    node.peers.close()


def test_the_entrys_own_sn_part_keeps_no_heads() -> None:
    settings = Settings(dataset="mnist-sample")
    key = NodeKey.generate()
    own = SuperNode(settings, key, Peers(NetConfig.from_settings(settings)), address="127.0.0.1:1",
                    http_address="", entry_node_id=key.node_id)
    assert own.heads is None
    own.peers.close()
