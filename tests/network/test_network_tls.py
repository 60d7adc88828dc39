"""Mutual TLS with `fedchain certs`: each node is enrolled at join with a certificate bearing
its node id, a round runs, the chain verifies; plain text and a cert for another node are refused."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from cryptography import x509

from fedchain.services.cli.certs import make_certs
from fedchain.shared.crypto import NodeKey
from fedchain.shared.net.tls import node_id_of
from fedchain.shared.rpc import node_pb2 as pb
from fedchain.shared.rpc import node_pb2_grpc
from tests.network.harness import LocalNet


@pytest.fixture(scope="module")
def tls_net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalNet, Path]]:
    root = tmp_path_factory.mktemp("tls-net")
    certs = root / "certs"
    make_certs(certs, ("localhost", "127.0.0.1"))
    n = LocalNet(
        root,
        FEDCHAIN_TLS_CA=str(certs / "ca.pem"),
        FEDCHAIN_TLS_CERT=str(certs / "enroll.pem"), FEDCHAIN_TLS_KEY=str(certs / "enroll.key"),
    )
    try:
        n.wait_healthy(n.start_entry(
            "--dataset", "mnist-sample", "--clients", "2", "--max-samples", "400",
            "--tls-ca-key", str(certs / "ca.key"),
        ))
        n.start_sn("sn-1")
        n.start_en("en-0")
        n.start_en("en-1")
        n.wait_edges(2)
        yield n, root
    finally:
        n.close()


def test_round_over_mutual_tls_with_enrolled_certificates(tls_net: tuple[LocalNet, Path]) -> None:
    net, root = tls_net
    rounds = net.train(1)
    assert rounds[-1]["round"] == 1 and len(rounds[-1]["participants"]) == 2
    enrolled = sorted(root.rglob("tls/node.pem"))
    assert len(enrolled) == 4  # the entry, the SN, two ENs
    for pem in enrolled:  # each certificate names the node whose state dir holds it
        cert_id = node_id_of(x509.load_pem_x509_certificate(pem.read_bytes()))
        assert cert_id == NodeKey.load_or_create(pem.parent.parent / "node.key").node_id
    assert net.get("/verify")["ok"]


def test_plaintext_peer_is_refused(tls_net: tuple[LocalNet, Path]) -> None:
    net, _ = tls_net
    assert net.entry is not None
    with grpc.insecure_channel(net.entry.address) as ch:
        with pytest.raises(grpc.RpcError) as info:
            node_pb2_grpc.NodeStub(ch).Heartbeat(pb.HeartbeatRequest(node_id="x", role="SN"), timeout=5)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
