"""TLS certificates that name their node: making them, enrolling nodes, checking peers.

A fedchain deployment has one CA (``fedchain certs`` makes it). Each SN and EN certificate
carries the node's id as a SAN URI ``urn:fedchain:node:<node_id>``, where ``node_id =
node_id_for(signing public key)``; gRPC servers refuse a signed message (join, heartbeat,
update header, SN manifest) whose sender differs from the id in the caller's certificate.

How a node gets its certificate (enrollment at join): the node keeps a P-256 TLS key of its
own (``state_dir/tls/node-tls.key``) and sends a CSR for it with its join request, together
with an Ed25519 signature by its *signing* key over the CSR (domain ``fedchain/tls-csr/v1``).
The entry, which holds the CA key, checks both and answers with a certificate bearing the
node id of the join's public key; the node switches to it at once (its channels are
re-dialled, its server presents it from the next handshake). Until then the node presents
the shared *enroll* certificate (no node id), which opens only ``Join``. The entry issues
its own certificate at start-up.

Why not the Ed25519 signing key as TLS key: gRPC's BoringSSL refuses Ed25519 leaf keys in
the handshake (``NO_COMMON_SIGNATURE_ALGORITHMS``), and gRPC Python cannot ask for an
optional client certificate (``require_client_auth=False`` does not request one), hence the
shared enroll certificate for the first join.
"""

from __future__ import annotations

import datetime
import functools
import ipaddress
import itertools
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from fedchain.shared.crypto import NodeKey, node_id_for, verify_signature
from fedchain.shared.net.statements import Domain, statement
from fedchain.shared.rpc import node_pb2 as pb

NODE_URI_PREFIX = "urn:fedchain:node:"
"""SAN URI prefix of a node certificate; the node id follows."""
ENROLL_URI = "urn:fedchain:enroll"
"""SAN URI of the shared enroll certificate: it opens ``Join`` only."""
CERT_DAYS = 365
"""Validity of the certificates the entry issues at join."""
CA_DAYS = 3650
NODE_SERVICE = "/fedchain.node.Node/"
JOIN_ONLY = frozenset({"Join"})
PEM = serialization.Encoding.PEM


class TlsRefused(ValueError):
    """A certificate, CSR or enrollment that does not hold (the message says why)."""


# ------------------------------------------------------------------ certificate making
def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name[:64])])


def new_key() -> ec.EllipticCurvePrivateKey:
    """A fresh P-256 TLS key (what gRPC's BoringSSL accepts in a handshake)."""
    return ec.generate_private_key(ec.SECP256R1())


def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(PEM)


def host_names(hosts: Iterable[str]) -> list[x509.GeneralName]:
    """SAN entries for host names and IP addresses (duplicates dropped, order kept)."""
    out: list[x509.GeneralName] = []
    for host in dict.fromkeys(h.strip("[]") for h in hosts if h):
        try:
            out.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            out.append(x509.DNSName(host))
    return out


def tls_hosts(*addresses: str) -> tuple[str, ...]:
    """The host names a node's certificate names: those of its addresses, and loopback."""
    hosts = [a.rpartition(":")[0] for a in addresses if a]
    return tuple(dict.fromkeys([*hosts, "localhost", "127.0.0.1"]))


def make_ca(common_name: str = "fedchain CA", days: int = CA_DAYS) -> tuple[
    ec.EllipticCurvePrivateKey, x509.Certificate
]:
    """A self-signed CA (P-256 key, SHA-256) that may sign leaf certificates only."""
    key = new_key()
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, key_cert_sign=True, crl_sign=True,
                content_commitment=False, key_encipherment=False, data_encipherment=False,
                key_agreement=False, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def issue(
    ca_key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    public_key: ec.EllipticCurvePublicKey,
    *,
    common_name: str,
    hosts: Sequence[str] = (),
    uris: Sequence[str] = (),
    days: int = CERT_DAYS,
) -> x509.Certificate:
    """A leaf certificate for ``public_key``: server and client auth, SANs ``hosts`` + ``uris``."""
    now = datetime.datetime.now(datetime.UTC)
    names = [*host_names(hosts), *(x509.UniformResourceIdentifier(u) for u in uris)]
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(ca_cert.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
            critical=False,
        )
    )
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(ca_key, hashes.SHA256())


def node_uri(node_id: str) -> str:
    return NODE_URI_PREFIX + node_id


def _uris(cert: x509.Certificate) -> list[str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return [str(u) for u in san.get_values_for_type(x509.UniformResourceIdentifier)]


def node_id_of(cert: x509.Certificate) -> str | None:
    """The node id a certificate carries (its one ``urn:fedchain:node:`` URI), or None."""
    ids = [u[len(NODE_URI_PREFIX):] for u in _uris(cert) if u.startswith(NODE_URI_PREFIX)]
    return ids[0] if len(ids) == 1 else None


@functools.lru_cache(maxsize=1024)
def peer_node_id(pem: bytes) -> str | None:
    """The node id in a PEM certificate (cached: a peer presents the same one on every call)."""
    try:
        return node_id_of(x509.load_pem_x509_certificate(pem))
    except ValueError:
        return None


def signed_by(cert: x509.Certificate, ca_cert: x509.Certificate) -> bool:
    """True when ``cert`` was issued by ``ca_cert``'s key."""
    try:
        cert.verify_directly_issued_by(ca_cert)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` with mode 0600 (atomically: a temp file, then a rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def load_or_create_key(path: Path) -> ec.EllipticCurvePrivateKey:
    """The P-256 key at ``path``; made (mode 0600) when there is none."""
    if path.is_file():
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise TlsRefused(f"TLS key {path} is not an EC key")
        return key
    key = new_key()
    write_private(path, key_pem(key))
    return key


# ------------------------------------------------------------------ the CSR binding
def csr_statement(node_id: str, csr_der: bytes) -> bytes:
    """What a joining node signs (with its signing key) to ask for a certificate for a CSR."""
    return statement(Domain.TLS_CSR, b"", node_id, [("csr", csr_der)])


class CertificateIssuer:
    """The entry's CA: issues each joining node a certificate bearing its node id."""

    def __init__(self, ca_key: ec.EllipticCurvePrivateKey, ca_cert: x509.Certificate) -> None:
        self.ca_key = ca_key
        self.ca_cert = ca_cert

    @classmethod
    def load(cls, ca_cert_path: Path, ca_key_path: Path) -> CertificateIssuer:
        """The CA from its PEM files (raises TlsRefused when they do not belong together)."""
        ca_cert = x509.load_pem_x509_certificate(Path(ca_cert_path).read_bytes())
        key = serialization.load_pem_private_key(Path(ca_key_path).read_bytes(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise TlsRefused(f"CA key {ca_key_path} is not an EC key")
        if key.public_key().public_numbers() != ca_cert.public_key().public_numbers():  # type: ignore[union-attr]
            raise TlsRefused(f"CA key {ca_key_path} does not belong to {ca_cert_path}")
        return cls(key, ca_cert)

    def for_node(
        self, public_key: ec.EllipticCurvePublicKey, node_id: str, hosts: Sequence[str]
    ) -> x509.Certificate:
        return issue(
            self.ca_key, self.ca_cert, public_key, common_name=node_id, hosts=hosts,
            uris=[node_uri(node_id)],
        )

    def for_join(self, req: pb.JoinRequest) -> bytes:
        """The PEM certificate for a join request's CSR; b"" when it carries none.

        Call after the join's own signature was checked: the CSR must be signed by its key
        and bound to the join's signing key by ``tls_csr_signature``.
        """
        if not req.tls_csr:
            return b""
        public_key = bytes(req.public_key)
        node_id = node_id_for(public_key)
        csr_der = bytes(req.tls_csr)
        if not verify_signature(public_key, bytes(req.tls_csr_signature), csr_statement(node_id, csr_der)):
            raise TlsRefused("the CSR is not signed by the joining node's key")
        try:
            csr = x509.load_der_x509_csr(csr_der)
        except ValueError as exc:
            raise TlsRefused(f"the CSR is not a DER certificate request: {exc}") from None
        key = csr.public_key()
        if not csr.is_signature_valid or not isinstance(key, ec.EllipticCurvePublicKey):
            raise TlsRefused("the CSR must be an EC key's, signed by that key")
        hosts = [a.rpartition(":")[0] for a in (req.address, req.http_address) if a]
        return cert_pem(self.for_node(key, node_id, hosts))


# ------------------------------------------------------------------ a node's TLS identity
@dataclass(frozen=True)
class TlsPair:
    key: bytes
    cert: bytes


class NodeTls:
    """The certificate a node presents, with the CA; replaced once the entry enrolls the node.

    Channels are made with ``pair()`` at dial time; servers fetch it at every handshake;
    ``on_change`` callbacks (``Peers``) drop channels dialled with the old certificate.
    """

    def __init__(
        self, ca: bytes, pair: TlsPair, *, node_key: NodeKey | None = None, folder: Path | None = None
    ) -> None:
        self.ca = ca
        self._pair = pair
        self.node_key = node_key
        self.folder = folder
        self._lock = threading.Lock()
        self._listeners: list[Callable[[], None]] = []
        self.version = 0

    def pair(self) -> TlsPair:
        with self._lock:
            return self._pair

    @property
    def node_id(self) -> str | None:
        return peer_node_id(self.pair().cert)

    @property
    def enrolled(self) -> bool:
        return self.node_key is not None and self.node_id == self.node_key.node_id

    def on_change(self, callback: Callable[[], None]) -> None:
        with self._lock:
            self._listeners.append(callback)

    def install(self, pair: TlsPair) -> None:
        """Present ``pair`` from now on (kept in the state dir when there is one)."""
        if self.folder is not None:
            write_private(self.folder / "node.pem", pair.cert)
        with self._lock:
            self._pair = pair
            self.version += 1
            listeners = list(self._listeners)
        for callback in listeners:
            callback()

    # ---- enrollment (SNs and ENs)
    def _tls_key(self) -> ec.EllipticCurvePrivateKey:
        assert self.folder is not None
        return load_or_create_key(self.folder / "node-tls.key")

    def attach_csr(self, req: pb.JoinRequest) -> None:
        """Add a CSR for this node's TLS key, bound to its signing key, to a join request."""
        if self.node_key is None or self.folder is None:
            return
        csr = (
            x509.CertificateSigningRequestBuilder()
            .subject_name(_name(self.node_key.node_id))
            .sign(self._tls_key(), hashes.SHA256())
        )
        der = csr.public_bytes(serialization.Encoding.DER)
        req.tls_csr = der
        req.tls_csr_signature = self.node_key.sign(csr_statement(self.node_key.node_id, der))

    def accept(self, reply: pb.JoinReply) -> None:
        """Switch to the certificate in a join reply; raise TlsRefused when it is not ours."""
        if self.node_key is None or self.folder is None:
            return
        if not reply.tls_certificate:
            if self.enrolled:
                return
            raise TlsRefused(
                "the entry issued no TLS certificate: start it with --tls-ca-key (the CA key "
                "from fedchain certs)"
            )
        cert = x509.load_pem_x509_certificate(bytes(reply.tls_certificate))
        ca = x509.load_pem_x509_certificate(self.ca)
        key = self._tls_key()
        if not signed_by(cert, ca):
            raise TlsRefused("the entry's certificate for this node is not signed by --tls-ca")
        if node_id_of(cert) != self.node_key.node_id:
            raise TlsRefused("the entry's certificate names another node")
        if cert.public_key().public_numbers() != key.public_key().public_numbers():  # type: ignore[union-attr]
            raise TlsRefused("the entry's certificate is for another TLS key")
        self.install(TlsPair(key_pem(key), bytes(reply.tls_certificate)))


def node_tls(
    ca: bytes,
    bootstrap: TlsPair | None,
    *,
    node_key: NodeKey,
    state_dir: Path,
    hosts: Sequence[str],
    issuer: CertificateIssuer | None = None,
) -> NodeTls:
    """The TLS identity a node starts with.

    Its own certificate from an earlier enrollment when it still names this node and chains
    to ``ca``; else, with an ``issuer`` (the entry), one it issues itself; else the
    ``bootstrap`` (enroll) certificate, to be replaced at join.
    """
    folder = Path(state_dir) / "tls"
    ca_cert = x509.load_pem_x509_certificate(ca)
    own = folder / "node.pem"
    key_file = folder / "node-tls.key"
    if own.is_file() and key_file.is_file():
        cert = x509.load_pem_x509_certificate(own.read_bytes())
        fresh = cert.not_valid_after_utc > datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=1)
        if fresh and signed_by(cert, ca_cert) and node_id_of(cert) == node_key.node_id and issuer is None:
            return NodeTls(ca, TlsPair(key_file.read_bytes(), own.read_bytes()), node_key=node_key, folder=folder)
    if issuer is not None:
        key = load_or_create_key(key_file)
        cert = issuer.for_node(key.public_key(), node_key.node_id, hosts)
        tls = NodeTls(ca, TlsPair(key_pem(key), cert_pem(cert)), node_key=node_key, folder=folder)
        write_private(own, cert_pem(cert))
        return tls
    if bootstrap is None:
        raise TlsRefused(
            "--tls-ca needs --tls-cert/--tls-key (the enroll certificate from fedchain certs) "
            "or, on the entry, --tls-ca-key"
        )
    return NodeTls(ca, bootstrap, node_key=node_key, folder=folder)


# ------------------------------------------------------------------ the server-side check
def _join_sender(req: Any) -> str:
    return node_id_for(bytes(req.public_key))


def _heartbeat_sender(req: Any) -> str:
    return str(req.node_id)


def _update_sender(part: Any) -> str | None:
    return str(part.header.node_id) if part.HasField("header") else None


def _aggregate_sender(part: Any) -> str | None:
    return str(part.header.sn_node_id) if part.HasField("header") else None


SENDERS: dict[str, Callable[[Any], str | None]] = {
    "Join": _join_sender,
    "Heartbeat": _heartbeat_sender,
    "SubmitUpdate": _update_sender,
    "SubmitAggregate": _aggregate_sender,
}
"""Node methods whose (first) message names its signer: the id must be the certificate's."""


def caller_certificate(context: grpc.ServicerContext) -> bytes | None:
    """The PEM certificate the caller presented (None over plain TCP or without one)."""
    certs = context.auth_context().get("x509_pem_cert")
    return bytes(certs[0]) if certs else None


def refusal(method: str, cert_id: str | None, sender: str | None) -> str | None:
    """Why a call is refused (None: it may go on) — the rule, apart from gRPC."""
    if cert_id is None and method not in JOIN_ONLY:
        return (
            f"{method} needs a node certificate (urn:fedchain:node:<node id>); this one opens "
            "Join only"
        )
    if cert_id is not None and sender is not None and sender != cert_id:
        return f"{method} is signed as {sender[:40]!r}, but the TLS certificate is {cert_id}'s"
    return None


class PeerIdentityCheck(grpc.ServerInterceptor):  # type: ignore[misc]
    """Refuses, before the handler runs, a Node call whose signer is not the caller's certificate.

    ``PERMISSION_DENIED`` for a message signed as another node than the TLS certificate names
    and for any Node method but ``Join`` under a certificate without a node id. Calls to
    other services (the ledger) only need a certificate of the CA, which TLS checked.
    """

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = continuation(handler_call_details)
        full = str(handler_call_details.method)
        if handler is None or not full.startswith(NODE_SERVICE):
            return handler
        method = full[len(NODE_SERVICE):]
        sender_of = SENDERS.get(method)

        def check(context: grpc.ServicerContext, first: Any) -> None:
            pem = caller_certificate(context)
            cert_id = peer_node_id(pem) if pem is not None else None
            sender = sender_of(first) if sender_of is not None and first is not None else None
            reason = refusal(method, cert_id, sender)
            if reason is not None:
                context.abort(grpc.StatusCode.PERMISSION_DENIED, reason)

        kind = (handler.request_streaming, handler.response_streaming)
        if kind == (False, False):
            inner = handler.unary_unary

            def unary(request: Any, context: grpc.ServicerContext) -> Any:
                check(context, request)
                return inner(request, context)

            return grpc.unary_unary_rpc_method_handler(
                unary, request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if kind == (False, True):
            inner_stream = handler.unary_stream

            def streamed(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
                check(context, request)
                yield from inner_stream(request, context)

            return grpc.unary_stream_rpc_method_handler(
                streamed, request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if kind == (True, False):
            inner_in = handler.stream_unary

            def upload(requests: Iterator[Any], context: grpc.ServicerContext) -> Any:
                parts = iter(requests)
                first = next(parts, None)
                check(context, first)
                rest = parts if first is None else itertools.chain([first], parts)
                return inner_in(rest, context)

            return grpc.stream_unary_rpc_method_handler(
                upload, request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return handler  # no bidirectional methods in fedchain's services
