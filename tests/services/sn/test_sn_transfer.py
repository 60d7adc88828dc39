"""Models and updates larger than gRPC's 4 MB default travel in bounded chunks (ResNet-18)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import grpc
import pytest

from fedchain.services.sn.collector import RoundCollector
from fedchain.services.sn.edges import Edge
from fedchain.services.sn.servicer import SuperNodeServicer
from fedchain.services.sn.supernode import SuperNode
from fedchain.shared.config import load_settings
from fedchain.shared.crypto import NodeKey
from fedchain.shared.net.grpc_util import NetConfig, make_channel, make_server
from fedchain.shared.net.signing import update_fields
from fedchain.shared.net.statements import Domain, sign
from fedchain.shared.net.streams import add_node_servicer, join_model_chunks, update_parts
from fedchain.shared.node.peers import Peers
from fedchain.shared.rpc import node_pb2 as pb
from fedchain.shared.rpc import node_pb2_grpc
from fedchain.shared.tensors import decode, digest, encode
from tests.conftest import free_port


@pytest.fixture(scope="module")
def resnet_sn() -> Iterator[tuple[SuperNode, str, bytes]]:
    from fedchain.services.sn.model_ops import initial_state

    settings = load_settings(None, model="resnet18", dataset="cifar10", max_message_mb=128, chunk_kb=1024)
    port = free_port()
    net = NetConfig.from_settings(settings)
    sn = SuperNode(settings, NodeKey.generate(), Peers(net), address=f"127.0.0.1:{port}", http_address="")
    sn.configure(settings)
    data = encode(initial_state(settings))
    sn.remember_model(data)
    server = make_server(net, "127.0.0.1", port)
    add_node_servicer(SuperNodeServicer(sn, None), server)
    server.start()
    try:
        yield sn, f"127.0.0.1:{port}", data
    finally:
        server.stop(0)


def test_resnet18_model_streams_in_chunks(resnet_sn: tuple[SuperNode, str, bytes]) -> None:
    sn, address, data = resnet_sn
    assert len(data) > 4 * 1024 * 1024
    # a plain channel with gRPC's default 4 MB receive limit: chunks keep every message small
    with grpc.insecure_channel(address) as ch:
        stream = node_pb2_grpc.NodeStub(ch).FetchModel(pb.FetchModelRequest(version=0, digest=digest(data)), timeout=60)
        got = join_model_chunks(stream, 256 << 20)
    assert got == data


def test_resnet18_update_is_accepted_over_the_wire(resnet_sn: tuple[SuperNode, str, bytes]) -> None:
    sn, address, data = resnet_sn
    key = NodeKey.generate()
    sn.edges.assign(Edge(key.node_id, key.public_bytes, "127.0.0.1:1", "", 0))
    collector = RoundCollector(1, 0, "fedper", {key.node_id}, time.monotonic() + 60)
    assert sn.template is not None
    collector.reference = sn.template.reference(decode(data), "fedper")
    sn._collector = collector
    update = encode(collector.reference)
    assert len(update) > 4 * 1024 * 1024
    d = digest(update)
    header = pb.UpdateHeader(
        node_id=key.node_id, round=1, version=0, samples=50, digest=d,
        signature=sign(key, Domain.UPDATE, sn.chain_id, update_fields(1, 0, d, 50, 0.0, 0.0)),
        total_bytes=len(update),
    )
    net = NetConfig.from_settings(sn.settings)
    with make_channel(net, address) as ch:
        reply = node_pb2_grpc.NodeStub(ch).SubmitUpdate(update_parts(header, update, 1 << 20), timeout=60)
    assert reply.accepted
    assert set(collector.accepted) == {key.node_id}
    assert collector.accepted[key.node_id].samples == 50
