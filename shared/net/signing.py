"""What each control message signs: its statement fields, and one sign/check pair per message.

Every signed message is a ``shared.net.statements`` statement: its own domain tag, the chain
id (the genesis block hash), the sender's node id and the named, typed fields below. The
sender and the receiver both build the fields with the same function here, so a field the
receiver acts on cannot be left out of what was signed. ``docs/protocol.md`` lists them.

``check_*`` raise ``SignatureRefused`` (a ``ValueError``) with a one-line reason.
"""

from __future__ import annotations

from collections.abc import Sequence

from fedchain.shared.crypto import node_id_for
from fedchain.shared.net.statements import (
    Domain,
    SignatureRefused,
    StatementValue,
    check,
    statement,
)
from fedchain.shared.rpc import node_pb2 as pb

Fields = Sequence[tuple[str, StatementValue]]
NO_CHAIN = b""
"""The chain id of a join request: the joining node does not know the chain yet."""

__all__ = [
    "SignatureRefused",
    "assign_edge_fields",
    "check_signed",
    "evaluate_fields",
    "evaluation_fields",
    "heartbeat_fields",
    "join_message",
    "join_reply_fields",
    "manifest_fields",
    "open_round_fields",
    "update_fields",
]


def check_signed(
    public_key: bytes, signature: bytes, domain: Domain, chain_id: bytes, sender: str, fields: Fields
) -> None:
    """``statements.check``, with a statement that cannot be built (a NaN field) refused too."""
    try:
        check(public_key, signature, domain, chain_id, sender, fields)
    except SignatureRefused:
        raise
    except (ValueError, TypeError) as exc:
        raise SignatureRefused(f"{domain.name.lower()} cannot be checked: {exc}") from None


# ---- join (no chain id yet: the reply tells the node the chain) ----
def join_message(
    role: str,
    public_key: bytes,
    address: str,
    timestamp_ms: int,
    http_address: str = "",
    avoid_sn: str = "",
) -> bytes:
    """The bytes a joining node signs to prove it holds the key it presents."""
    fields: Fields = [
        ("role", role),
        ("public_key", public_key),
        ("address", address),
        ("http_address", http_address),
        ("timestamp_ms", timestamp_ms),
        ("avoid_sn", avoid_sn),
    ]
    return statement(Domain.JOIN, NO_CHAIN, node_id_for(public_key), fields)


def join_reply_fields(reply: pb.JoinReply, request_timestamp_ms: int) -> Fields:
    """What the entry signs in its join reply (chain id: the reply's own ``chain_id``, sender:
    the entry): every field the joiner acts on, bound to the joiner's request by its timestamp
    (an old reply replayed to a new request does not hold)."""
    return [
        ("node_id", reply.node_id),
        ("entry_public_key", bytes(reply.entry_public_key)),
        ("entry_http_address", reply.entry_http_address),
        ("sn_node_id", reply.sn_node_id),
        ("sn_address", reply.sn_address),
        ("partition_index", int(reply.partition_index)),
        ("partition_size", int(reply.partition_size)),
        ("config_json", reply.config_json),
        ("height", int(reply.height)),
        ("request_timestamp_ms", int(request_timestamp_ms)),
    ]


# ---- entry -> SN (-> EN) ----
def assign_edge_fields(info: pb.EdgeInfo) -> Fields:
    return [
        ("node_id", info.node_id),
        ("public_key", bytes(info.public_key)),
        ("address", info.address),
        ("http_address", info.http_address),
        ("partition_index", int(info.partition_index)),
        ("sn_node_id", info.sn_node_id),
        ("partition_size", int(info.partition_size)),
    ]


def open_round_fields(req: pb.OpenRoundRequest) -> Fields:
    return [
        ("round", int(req.round)),
        ("version", int(req.version)),
        ("model_digest", req.model_digest),
        ("algorithm", req.algorithm),
        ("timeout_s", float(req.timeout_s)),
        ("participants", list(req.participants)),
        ("sn_node_id", req.sn_node_id),
        ("issued_ms", int(req.issued_ms)),
        # the entry's latest signed tree head (its chain id is the statement's)
        ("head_size", int(req.head.size)),
        ("head_root", bytes(req.head.root)),
        ("head_timestamp_ms", int(req.head.timestamp_ms)),
        ("head_signature", bytes(req.head.signature)),
    ]


def evaluate_fields(req: pb.EvaluateRequest) -> Fields:
    return [
        ("version", int(req.version)),
        ("model_digest", req.model_digest),
        ("timeout_s", float(req.timeout_s)),
        ("algorithm", req.algorithm),
        ("sn_node_id", req.sn_node_id),
        ("issued_ms", int(req.issued_ms)),
    ]


def evaluation_fields(answer: pb.ClientEval, req: pb.EvaluateRequest) -> Fields:
    """What an EN signs about its evaluation answer to ``req`` (the entry's signed request, so
    an answer is never valid for another version or another request); ``sn`` is not covered:
    the SNs on the way set it."""
    return [
        ("version", int(req.version)),
        ("model_digest", req.model_digest),
        ("issued_ms", int(req.issued_ms)),
        ("partition_index", int(answer.partition_index)),
        ("correct", int(answer.correct)),
        ("total", int(answer.total)),
        ("loss", float(answer.loss)),
    ]


# ---- heartbeats (EN -> SN, SN -> entry) ----
def heartbeat_fields(req: pb.HeartbeatRequest) -> Fields:
    return [
        ("role", req.role),
        ("address", req.address),
        ("http_address", req.http_address),
        ("alive_edges", list(req.alive_edges)),
        ("state", req.state),
        ("counter", int(req.counter)),
    ]


# ---- evidence: EN update header, SN manifest ----
def update_fields(
    round_no: int,
    version: int,
    update_digest: str,
    samples: int,
    train_loss: float,
    train_seconds: float,
) -> Fields:
    """What an EN signs about its update (its SN relays the signature to the entry)."""
    return [
        ("round", int(round_no)),
        ("version", int(version)),
        ("digest", update_digest),
        ("samples", int(samples)),
        ("train_loss", float(train_loss)),
        ("train_seconds", float(train_seconds)),
    ]


def header_update_fields(h: pb.UpdateHeader) -> Fields:
    return update_fields(h.round, h.version, h.digest, h.samples, h.train_loss, h.train_seconds)


def used_update_fields(round_no: int, version: int, u: pb.UsedUpdate) -> Fields:
    return update_fields(round_no, version, u.digest, u.samples, u.train_loss, u.train_seconds)


def manifest_fields(h: pb.AggregateHeader) -> Fields:
    """What an SN signs about its aggregate: every EN header it used, what it rejected, the
    aggregator it applied, the sum (mean) or the forwarded updates' sizes (any other rule)."""
    return [
        ("round", int(h.round)),
        ("version", int(h.version)),
        ("digest", h.digest),
        ("weight", int(h.samples)),
        ("total_bytes", int(h.total_bytes)),
        ("used", [(u.node_id, u.digest) for u in h.used]),
        ("used_samples", [str(int(u.samples)) for u in h.used]),
        ("used_signatures", [bytes(u.signature) for u in h.used]),
        ("rejected", [(r.node_id, r.reason) for r in h.rejected]),
        ("aggregator", h.aggregator),
        ("used_bytes", [str(int(u.total_bytes)) for u in h.used]),
    ]
