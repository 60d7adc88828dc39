"""Two-level aggregation as the nodes run it: SNs send float64 partial sums, the entry finishes.

The SN side runs ``SuperNode._submit_aggregate`` against a fake entry (the parts it streams
are captured); the entry side is its validation and ``ModelTemplate.finish``. Together they
must give the simulation's one-level ``Strategy.aggregate`` over the same updates.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import grpc
import pytest
import torch

from fedchain.services.sn.collector import Accepted, RoundCollector
from fedchain.services.sn.model_ops import ModelTemplate, initial_state
from fedchain.services.sn.supernode import SuperNode
from fedchain.services.sn.validation import Rejected, check_update, partial_max_bytes
from fedchain.shared.config import Settings, load_settings
from fedchain.shared.crypto import NodeKey
from fedchain.shared.net.grpc_util import NetConfig
from fedchain.shared.net.signing import check_signed, manifest_fields
from fedchain.shared.net.statements import Domain
from fedchain.shared.node.peers import Peers
from fedchain.shared.rpc import node_pb2 as pb
from fedchain.shared.tensors import digest, encode

State = dict[str, torch.Tensor]


@dataclass
class _Entry:
    """Stands in for the entry's gRPC stub: records each SubmitAggregate stream."""

    streams: list[tuple[pb.AggregateHeader, bytes]] = field(default_factory=list)

    def SubmitAggregate(self, parts: Iterator[pb.AggregatePart], timeout: float) -> pb.SubmitReply:
        items = list(parts)
        data = b"".join(p.data for p in items[1:])
        self.streams.append((items[0].header, data))
        return pb.SubmitReply(accepted=True, message="recorded")


class _Peers(Peers):
    def __init__(self, settings: Settings, entry: _Entry) -> None:
        super().__init__(NetConfig.from_settings(settings))
        self.entry = entry

    def stub(self, address: str) -> _Entry:  # type: ignore[override]
        return self.entry


def _updates(
    global_state: State, keys: list[str], weights: list[int], seed: int
) -> list[tuple[State, int]]:
    gen = torch.Generator().manual_seed(seed)
    out = []
    for w in weights:
        state = {
            k: global_state[k] + 0.1 * torch.randn(global_state[k].shape, generator=gen)
            for k in keys
        }
        out.append((state, w))
    return out


def _sn_partial(
    settings: Settings, updates: list[tuple[State, int]]
) -> tuple[SuperNode, pb.AggregateHeader, bytes]:
    entry = _Entry()
    sn = SuperNode(
        settings,
        NodeKey.generate(),
        _Peers(settings, entry),
        address="127.0.0.1:1",
        http_address="",
    )
    sn.configure(settings)
    collector = RoundCollector(
        1, 0, "fedper", {f"en-{i}" for i in range(len(updates))}, time.monotonic() + 60
    )
    for i, (state, samples) in enumerate(updates):
        collector.accept(Accepted(f"en-{i}", state, samples, digest(encode(state)), 0.5))
    req = pb.OpenRoundRequest(round=1, version=0, algorithm="fedper")
    sn._submit_aggregate(req, collector, b"")
    assert len(entry.streams) == 1
    header, data = entry.streams[0]
    return sn, header, data


def _entry_check(sn: SuperNode, header: pb.AggregateHeader, data: bytes, reference: State) -> State:
    check_signed(
        sn.key.public_bytes, bytes(header.signature), Domain.MANIFEST, sn.chain_id, sn.node_id,
        manifest_fields(header),
    )
    return check_update(
        round_no=header.round,
        version=header.version,
        expected_round=1,
        expected_version=0,
        claimed_digest=header.digest,
        data=data,
        reference=reference,
        max_bytes=partial_max_bytes(reference, 1 << 20),
    )


def test_sn_partials_finished_at_the_entry_equal_the_one_level_average() -> None:
    settings = load_settings(None, dataset="mnist-sample")
    template = ModelTemplate(settings)
    global_state = initial_state(settings)
    keys = template.shared_keys("fedper")
    updates = _updates(global_state, keys, [30, 50, 20], seed=3)
    sn_a, head_a, data_a = _sn_partial(settings, updates[:2])  # an SN with two ENs
    sn_b, head_b, data_b = _sn_partial(settings, updates[2:])  # an SN with one
    assert (head_a.samples, head_b.samples) == (80, 20)  # the weight of each partial
    reference = template.partial_reference(global_state, "fedper")
    sums_a = _entry_check(sn_a, head_a, data_a, reference)
    sums_b = _entry_check(sn_b, head_b, data_b, reference)
    assert all(t.dtype == torch.float64 for t in sums_a.values())
    assert torch.allclose(
        sums_a[keys[0]], 30 * updates[0][0][keys[0]].double() + 50 * updates[1][0][keys[0]].double()
    )
    network = template.finish(
        "fedper", 1, global_state, [(sums_a, head_a.samples), (sums_b, head_b.samples)]
    )
    one_level = template.strategy("fedper").aggregate(1, updates)
    assert set(network) == set(keys)
    for k in keys:
        assert network[k].dtype == global_state[k].dtype
        assert (network[k] - one_level[k]).abs().max().item() <= 1e-6


def test_entry_refuses_an_sn_aggregate_that_is_not_float64_sums() -> None:
    settings = load_settings(None, dataset="mnist-sample")
    template = ModelTemplate(settings)
    global_state = initial_state(settings)
    reference = template.partial_reference(global_state, "fedper")
    averaged = encode(template.reference(global_state, "fedper"))  # float32, as SNs sent before
    d = digest(averaged)
    with pytest.raises(Rejected) as info:
        check_update(
            round_no=1,
            version=0,
            expected_round=1,
            expected_version=0,
            claimed_digest=d,
            data=averaged,
            reference=reference,
            max_bytes=partial_max_bytes(reference, 1 << 20),
        )
    assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "expected torch.float64" in info.value.reason


def test_partial_limit_admits_float64_sums_of_a_model_within_the_limit() -> None:
    reference = {"w": torch.empty(1000, 1000, dtype=torch.float64, device="meta")}
    assert partial_max_bytes(reference, 64 << 20) == 64 << 20
    limit = partial_max_bytes(
        reference, 5_000_000
    )  # the float32 model (4 MB) fits 5 MB; 8 MB of sums
    sums = encode({"w": torch.zeros(1000, 1000, dtype=torch.float64)})
    assert len(sums) <= limit < 5_000_000 + len(sums)
