"""A robust aggregator on the SN side: the SN forwards its ENs' updates, unchanged, with a
manifest that signs the aggregator and each update's size; the entry checks each forwarded
update against the digest its EN signed before the rule may see it."""

from __future__ import annotations

import time

import grpc
import pytest
import torch

from fedchain.services.sn.collector import Accepted, RoundCollector
from fedchain.services.sn.entry.intake import AggregateIntake, ForwardedUpdate
from fedchain.services.sn.model_ops import ModelTemplate, initial_state
from fedchain.services.sn.registry import Registry
from fedchain.services.sn.supernode import SuperNode
from fedchain.services.sn.validation import Rejected
from fedchain.shared.config import load_settings
from fedchain.shared.crypto import NodeKey
from fedchain.shared.net.signing import check_signed, manifest_fields, update_fields
from fedchain.shared.net.statements import Domain, sign
from fedchain.shared.net.streams import aggregate_parts
from fedchain.shared.rpc import node_pb2 as pb
from fedchain.shared.tensors import decode, digest, encode
from tests.services.sn.test_sn_aggregation import _Entry, _Peers
from tests.services.sn.test_sn_messages import CHAIN, intake  # noqa: F401 (the fixture)

Intake = tuple[AggregateIntake, Registry, dict[str, NodeKey]]


def _submitted(aggregator: str, states: list[dict[str, torch.Tensor]]) -> tuple[SuperNode, pb.AggregateHeader, bytes]:
    settings = load_settings(None, dataset="mnist-sample", aggregator=aggregator)
    entry = _Entry()
    sn = SuperNode(settings, NodeKey.generate(), _Peers(settings, entry), address="127.0.0.1:1", http_address="")
    sn.configure(settings)
    collector = RoundCollector(
        1, 0, "fedper", {f"en-{i}" for i in range(len(states))}, time.monotonic() + 60,
        aggregator=aggregator,
    )
    for i, state in enumerate(states):
        data = encode(state)
        collector.accept(Accepted(f"en-{i}", state, 10 + i, digest(data), 0.5, data=data))
    sn._submit_aggregate(pb.OpenRoundRequest(round=1, version=0, algorithm="fedper"), collector, b"")
    ((header, data),) = entry.streams
    return sn, header, data


def test_an_sn_forwards_its_ens_updates_unchanged_under_a_robust_rule() -> None:
    states = [{"w": torch.full((4,), float(i))} for i in range(3)]
    sn, header, data = _submitted("krum:0", states)
    assert header.aggregator == "krum:0"
    assert data == b"".join(encode(s) for s in states)  # the EN bytes, one after the other
    assert [u.total_bytes for u in header.used] == [len(encode(s)) for s in states]
    assert [u.digest for u in header.used] == [digest(encode(s)) for s in states]
    assert header.samples == 10 + 11 + 12 and header.digest == digest(data)
    check_signed(sn.key.public_bytes, bytes(header.signature), Domain.MANIFEST, sn.chain_id,
                 sn.node_id, manifest_fields(header))
    header.aggregator = "mean"  # the aggregator is part of what the SN signed
    with pytest.raises(ValueError, match="bad signature"):
        check_signed(sn.key.public_bytes, bytes(header.signature), Domain.MANIFEST, sn.chain_id,
                     sn.node_id, manifest_fields(header))


def test_with_the_mean_an_sn_still_sends_partial_sums_and_says_mean() -> None:
    settings = load_settings(None, dataset="mnist-sample")
    keys = ModelTemplate(settings).shared_keys("fedper")
    start = initial_state(settings)
    states = [{k: start[k] + i for k in keys} for i in range(2)]
    _sn, header, data = _submitted("mean", states)
    assert header.aggregator == "mean"
    assert all(u.total_bytes == 0 for u in header.used)
    sums = decode(data)  # float64 weighted sums, not the updates
    assert all(t.dtype == torch.float64 for t in sums.values())
    assert torch.allclose(sums[keys[0]], 10 * start[keys[0]].double() + 11 * (start[keys[0]].double() + 1))


# ---- the entry's checks of a forwarding manifest ----
def _forwarding_round(take: AggregateIntake, sn_key: NodeKey, en: NodeKey) -> RoundCollector:
    collector = RoundCollector(1, 0, "fedper", {sn_key.node_id}, time.monotonic() + 60, aggregator="median")
    collector.reference = {"w": torch.zeros(4)}  # the shared tensors an EN update holds
    take.open(collector, {sn_key.node_id: [en.node_id]})
    return collector


def _forwarding_manifest(
    sn_key: NodeKey, en: NodeKey, update: bytes, data: bytes, aggregator: str = "median",
    size: int | None = None,
) -> pb.AggregateHeader:
    u = pb.UsedUpdate(node_id=en.node_id, digest=digest(update), samples=10, train_loss=0.5,
                      train_seconds=1.0, total_bytes=len(update) if size is None else size)
    u.signature = sign(en, Domain.UPDATE, CHAIN, update_fields(1, 0, u.digest, 10, 0.5, 1.0))
    h = pb.AggregateHeader(sn_node_id=sn_key.node_id, round=1, version=0, samples=10, used=[u],
                           total_bytes=len(data), digest=digest(data), aggregator=aggregator)
    h.signature = sign(sn_key, Domain.MANIFEST, CHAIN, manifest_fields(h))
    return h


def _refusal(take: AggregateIntake, h: pb.AggregateHeader, data: bytes) -> Rejected:
    with pytest.raises(Rejected) as info:
        take.submit(aggregate_parts(h, data, 1024))
    return info.value


def test_the_entry_takes_forwarded_updates_their_ens_signed(intake: Intake) -> None:  # noqa: F811
    take, _registry, keys = intake
    sn_key, en = keys["sn"], keys["en"]
    collector = _forwarding_round(take, sn_key, en)
    update = encode({"w": torch.arange(4.0)})
    assert take.submit(aggregate_parts(_forwarding_manifest(sn_key, en, update, update), update, 1024)).accepted
    (got,) = collector.accepted[sn_key.node_id].extra["updates"]  # type: ignore[misc]
    assert isinstance(got, ForwardedUpdate) and (got.node_id, got.samples) == (en.node_id, 10)
    assert torch.equal(got.state["w"], torch.arange(4.0))


def test_the_entry_refuses_forwarded_updates_that_do_not_hold(intake: Intake) -> None:  # noqa: F811
    take, _registry, keys = intake
    sn_key, en = keys["sn"], keys["en"]
    update = encode({"w": torch.arange(4.0)})
    forged = encode({"w": torch.full((4,), 1e6)})  # what an SN might swap in: not what the EN signed
    sums = encode({"w": torch.arange(4.0, dtype=torch.float64)})
    for h, data, words in (
        (_forwarding_manifest(sn_key, en, update, update, aggregator="mean"), update, "aggregator 'mean'"),
        (_forwarding_manifest(sn_key, en, update, forged), forged, "digest does not match"),
        (_forwarding_manifest(sn_key, en, update, update, size=len(update) - 1), update, "do not add up"),
        (_forwarding_manifest(sn_key, en, sums, sums), sums, "forwarded update of"),  # float64 sums
    ):
        collector = _forwarding_round(take, sn_key, en)
        refusal = _refusal(take, h, data)
        assert words in refusal.reason, (words, refusal.reason)
        assert refusal.code in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.FAILED_PRECONDITION)
        assert sn_key.node_id not in collector.accepted and collector.has_answered(sn_key.node_id)
