"""gRPC over mutual TLS with certificates the test makes: a round runs; a plaintext peer is refused."""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from fedchain.shared.rpc import node_pb2 as pb
from fedchain.shared.rpc import node_pb2_grpc
from tests.network.harness import LocalNet


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_certs(folder: Path) -> dict[str, Path]:
    """A CA and one node certificate for 127.0.0.1/localhost signed by it (PEM files)."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder().subject_name(_name("fedchain test CA")).issuer_name(_name("fedchain test CA"))
        .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder().subject_name(_name("fedchain node")).issuer_name(ca.subject)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    paths = {"ca": folder / "ca.pem", "cert": folder / "node.pem", "key": folder / "node.key"}
    paths["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths["cert"].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths["key"].write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return paths


@pytest.fixture(scope="module")
def tls_net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalNet]:
    root = tmp_path_factory.mktemp("tls-net")
    certs = make_certs(root)
    n = LocalNet(
        root,
        FEDCHAIN_TLS_CERT=str(certs["cert"]), FEDCHAIN_TLS_KEY=str(certs["key"]), FEDCHAIN_TLS_CA=str(certs["ca"]),
    )
    try:
        n.wait_healthy(n.start_entry("--dataset", "mnist-sample", "--clients", "1", "--max-samples", "400"))
        n.start_en("en-0")  # no other SN: the entry hosts it
        n.wait_edges(1)
        yield n
    finally:
        n.close()


def test_round_over_mutual_tls(tls_net: LocalNet) -> None:
    rounds = tls_net.train(1)
    assert rounds[-1]["round"] == 1 and len(rounds[-1]["participants"]) == 1
    assert tls_net.get("/sn")[0]["entry"] and tls_net.get("/sn")[0]["ens"] == 1


def test_plaintext_peer_is_refused(tls_net: LocalNet) -> None:
    assert tls_net.entry is not None
    with grpc.insecure_channel(tls_net.entry.address) as ch:
        with pytest.raises(grpc.RpcError) as info:
            node_pb2_grpc.NodeStub(ch).Heartbeat(pb.HeartbeatRequest(node_id="x", role="SN"), timeout=5)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
