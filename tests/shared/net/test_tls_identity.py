"""Mutual TLS bound to node ids: a real gRPC server on 127.0.0.1 refuses a message signed as
another node than the caller's certificate names; enrollment issues a certificate for the
joining key only."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from fedchain.services.cli.certs import make_certs
from fedchain.shared import processes
from fedchain.shared.crypto import NodeKey, node_id_for
from fedchain.shared.net.grpc_util import NetConfig, make_channel, make_server
from fedchain.shared.net.tls import (
    CertificateIssuer,
    NodeTls,
    TlsPair,
    TlsRefused,
    cert_pem,
    key_pem,
    new_key,
    node_tls,
    peer_node_id,
)
from fedchain.shared.rpc import node_pb2 as pb
from fedchain.shared.rpc import node_pb2_grpc

MB = 1 << 20


class Recorder(node_pb2_grpc.NodeServicer):
    """Answers every call it is reached with, and remembers who reached it."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def Join(self, request: pb.JoinRequest, context: grpc.ServicerContext) -> pb.JoinReply:
        self.seen.append("Join")
        return pb.JoinReply(node_id=node_id_for(bytes(request.public_key)))

    def Heartbeat(self, request: pb.HeartbeatRequest, context: grpc.ServicerContext) -> pb.HeartbeatReply:
        self.seen.append(f"Heartbeat {request.node_id}")
        return pb.HeartbeatReply(known=True)

    def OpenRound(self, request: pb.OpenRoundRequest, context: grpc.ServicerContext) -> pb.OpenRoundReply:
        self.seen.append("OpenRound")
        return pb.OpenRoundReply()

    def SubmitUpdate(self, request_iterator: Iterator[pb.UpdatePart], context: grpc.ServicerContext) -> pb.SubmitReply:
        parts = list(request_iterator)
        self.seen.append(f"SubmitUpdate {parts[0].header.node_id} {len(parts)}")
        return pb.SubmitReply(accepted=True)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("certs")
    make_certs(out, ("localhost", "127.0.0.1"))
    return out


def node_cert(pki: Path, node: NodeKey) -> TlsPair:
    """A certificate bearing ``node``'s id, issued by the deployment's CA."""
    issuer = CertificateIssuer.load(pki / "ca.pem", pki / "ca.key")
    key = new_key()
    return TlsPair(key_pem(key), cert_pem(issuer.for_node(key.public_key(), node.node_id, ["127.0.0.1"])))


free_port = processes.free_port


@pytest.fixture
def server(pki: Path, tmp_path: Path) -> Iterator[tuple[str, Recorder]]:
    """An entry-like node server (its own certificate from the CA key), mutual TLS."""
    issuer = CertificateIssuer.load(pki / "ca.pem", pki / "ca.key")
    ca = (pki / "ca.pem").read_bytes()
    identity = node_tls(
        ca, None, node_key=NodeKey.generate(), state_dir=tmp_path / "srv", hosts=("127.0.0.1",),
        issuer=issuer,
    )
    port = free_port()
    srv = make_server(NetConfig(MB, tls_ca=ca, identity=identity), "127.0.0.1", port, workers=4)
    recorder = Recorder()
    node_pb2_grpc.add_NodeServicer_to_server(recorder, srv)
    srv.start()
    try:
        yield f"127.0.0.1:{port}", recorder
    finally:
        srv.stop(0)


def stub(address: str, ca: bytes, pair: TlsPair | None) -> tuple[grpc.Channel, node_pb2_grpc.NodeStub]:
    net = NetConfig(MB, tls_ca=ca, tls_cert=None if pair is None else pair.cert,
                    tls_key=None if pair is None else pair.key)
    channel = make_channel(net, address)
    return channel, node_pb2_grpc.NodeStub(channel)


def refused(call: object) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        call()  # type: ignore[operator]
    return info.value


def test_heartbeat_signed_as_another_node_is_refused_before_the_handler(
    pki: Path, server: tuple[str, Recorder]
) -> None:
    address, recorder = server
    a, b = NodeKey.generate(), NodeKey.generate()
    channel, node = stub(address, (pki / "ca.pem").read_bytes(), node_cert(pki, a))
    with channel:
        err = refused(lambda: node.Heartbeat(pb.HeartbeatRequest(node_id=b.node_id, role="EN"), timeout=10))
        assert err.code() == grpc.StatusCode.PERMISSION_DENIED
        assert b.node_id in err.details() and a.node_id in err.details()
        assert recorder.seen == []  # nothing reached the servicer
        assert node.Heartbeat(pb.HeartbeatRequest(node_id=a.node_id, role="EN"), timeout=10).known
    assert recorder.seen == [f"Heartbeat {a.node_id}"]


def test_update_stream_is_checked_on_its_header(pki: Path, server: tuple[str, Recorder]) -> None:
    address, recorder = server
    a, b = NodeKey.generate(), NodeKey.generate()

    def parts(sender: str) -> Iterator[pb.UpdatePart]:
        yield pb.UpdatePart(header=pb.UpdateHeader(node_id=sender, round=1))
        yield pb.UpdatePart(data=b"x" * 10)

    channel, node = stub(address, (pki / "ca.pem").read_bytes(), node_cert(pki, a))
    with channel:
        err = refused(lambda: node.SubmitUpdate(parts(b.node_id), timeout=10))
        assert err.code() == grpc.StatusCode.PERMISSION_DENIED
        assert node.SubmitUpdate(parts(a.node_id), timeout=10).accepted
    assert recorder.seen == [f"SubmitUpdate {a.node_id} 2"]


def test_enroll_certificate_opens_join_only(pki: Path, server: tuple[str, Recorder]) -> None:
    address, recorder = server
    enroll = TlsPair((pki / "enroll.key").read_bytes(), (pki / "enroll.pem").read_bytes())
    assert peer_node_id(enroll.cert) is None
    a = NodeKey.generate()
    channel, node = stub(address, (pki / "ca.pem").read_bytes(), enroll)
    with channel:
        err = refused(lambda: node.OpenRound(pb.OpenRoundRequest(round=1), timeout=10))
        assert err.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "node certificate" in err.details()
        err = refused(lambda: node.Heartbeat(pb.HeartbeatRequest(node_id=a.node_id), timeout=10))
        assert err.code() == grpc.StatusCode.PERMISSION_DENIED
        assert node.Join(pb.JoinRequest(public_key=a.public_bytes), timeout=10).node_id == a.node_id
    assert recorder.seen == ["Join"]


def test_join_under_a_node_certificate_must_be_for_that_node(
    pki: Path, server: tuple[str, Recorder]
) -> None:
    address, recorder = server
    a, b = NodeKey.generate(), NodeKey.generate()
    channel, node = stub(address, (pki / "ca.pem").read_bytes(), node_cert(pki, a))
    with channel:
        err = refused(lambda: node.Join(pb.JoinRequest(public_key=b.public_bytes), timeout=10))
        assert err.code() == grpc.StatusCode.PERMISSION_DENIED
    assert recorder.seen == []


def test_no_client_certificate_and_plain_text_are_refused(pki: Path, server: tuple[str, Recorder]) -> None:
    address, recorder = server
    channel, node = stub(address, (pki / "ca.pem").read_bytes(), None)
    with channel:
        err = refused(lambda: node.OpenRound(pb.OpenRoundRequest(round=1), timeout=5))
        assert err.code() == grpc.StatusCode.UNAVAILABLE
    with grpc.insecure_channel(address) as plain:
        err = refused(lambda: node_pb2_grpc.NodeStub(plain).Join(pb.JoinRequest(), timeout=5))
        assert err.code() == grpc.StatusCode.UNAVAILABLE
    assert recorder.seen == []


def test_a_certificate_of_another_ca_is_refused(pki: Path, server: tuple[str, Recorder], tmp_path: Path) -> None:
    address, recorder = server
    make_certs(tmp_path / "other", ("127.0.0.1",))
    other = CertificateIssuer.load(tmp_path / "other" / "ca.pem", tmp_path / "other" / "ca.key")
    a = NodeKey.generate()
    key = new_key()
    forged = TlsPair(key_pem(key), cert_pem(other.for_node(key.public_key(), a.node_id, ["127.0.0.1"])))
    channel, node = stub(address, (pki / "ca.pem").read_bytes(), forged)
    with channel:
        err = refused(lambda: node.Heartbeat(pb.HeartbeatRequest(node_id=a.node_id), timeout=5))
        assert err.code() == grpc.StatusCode.UNAVAILABLE
    assert recorder.seen == []


# ---------------------------------------------------------------- enrollment at join
def enrolling(pki: Path, folder: Path, key: NodeKey) -> NodeTls:
    enroll = TlsPair((pki / "enroll.key").read_bytes(), (pki / "enroll.pem").read_bytes())
    return node_tls((pki / "ca.pem").read_bytes(), enroll, node_key=key, state_dir=folder, hosts=())


def test_enrollment_gives_the_joining_node_a_certificate_with_its_id(pki: Path, tmp_path: Path) -> None:
    key = NodeKey.generate()
    tls = enrolling(pki, tmp_path, key)
    changes: list[int] = []
    tls.on_change(lambda: changes.append(tls.version))
    assert not tls.enrolled
    req = pb.JoinRequest(public_key=key.public_bytes, address="en-7:8080", http_address="en-7:9080")
    tls.attach_csr(req)
    issuer = CertificateIssuer.load(pki / "ca.pem", pki / "ca.key")
    reply = pb.JoinReply(tls_certificate=issuer.for_join(req))
    tls.accept(reply)
    assert tls.enrolled and tls.node_id == key.node_id and changes == [1]
    assert (tmp_path / "tls" / "node-tls.key").stat().st_mode & 0o777 == 0o600
    # a restart presents the saved certificate at once
    again = enrolling(pki, tmp_path, key)
    assert again.enrolled


def test_a_csr_not_bound_to_the_joining_key_is_refused(pki: Path, tmp_path: Path) -> None:
    key, other = NodeKey.generate(), NodeKey.generate()
    req = pb.JoinRequest(public_key=key.public_bytes, address="en-7:8080")
    enrolling(pki, tmp_path / "o", other).attach_csr(req)  # signed by another node's key
    issuer = CertificateIssuer.load(pki / "ca.pem", pki / "ca.key")
    with pytest.raises(TlsRefused, match="not signed by the joining node"):
        issuer.for_join(req)


def test_a_certificate_for_another_node_is_not_taken(pki: Path, tmp_path: Path) -> None:
    key, other = NodeKey.generate(), NodeKey.generate()
    tls = enrolling(pki, tmp_path, key)
    req = pb.JoinRequest(public_key=other.public_bytes, address="en-7:8080")
    enrolling(pki, tmp_path / "o", other).attach_csr(req)
    issuer = CertificateIssuer.load(pki / "ca.pem", pki / "ca.key")
    with pytest.raises(TlsRefused, match="another node"):
        tls.accept(pb.JoinReply(tls_certificate=issuer.for_join(req)))
    assert not tls.enrolled
    with pytest.raises(TlsRefused, match="issued no TLS certificate"):
        tls.accept(pb.JoinReply())
