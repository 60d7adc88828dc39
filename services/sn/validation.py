"""Checks an SN (or the M-SN) runs on every submitted update before it may be aggregated.

The same checks serve an EN's update at its SN (the ``reference`` is the shared part of
the round's model: ``Strategy.reference``) and an SN's partial aggregate at the entry (the
``reference`` is ``Strategy.partial_reference``: float64 sums with the shared shapes, so an
SN that sends anything but float64 partial sums is refused; its byte limit is
``partial_max_bytes``). Each failure raises ``Rejected`` carrying a gRPC status code and a
one-line reason; the reason is what the round block lists under ``rejected``.

An EN's update header is checked in two steps. ``check_update_header`` runs before anything
about the sender is recorded: the header's fields are well-formed, the sender is an EN
assigned here, and its signature (``shared/net/signing.py`` ``update_fields``) holds; a
header that fails here changes nothing (so a header naming a victim with a garbage
signature does not mark the victim answered). ``check_update_claims`` then checks what the
EN claims (selected for this round, samples within its partition); a failure there is the
EN's own and is listed as rejected.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Protocol

import grpc
import torch

from fedchain.shared.net.ingress import (
    MAX_LOSS,
    MAX_SECONDS,
    IngressRefused,
    check_digest,
    check_finite,
    check_node_id,
    check_samples,
)
from fedchain.shared.net.signing import SignatureRefused, check_signed, header_update_fields
from fedchain.shared.net.statements import Domain
from fedchain.shared.rpc import node_pb2 as pb
from fedchain.shared.tensors import TensorError, decode, digest


class Rejected(Exception):
    """An update refused with a gRPC status code and a reason a person can act on."""

    def __init__(self, code: grpc.StatusCode, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


PARTIAL_HEADER_BYTES_PER_TENSOR = 256
"""Room in a safetensors header for one tensor's name, dtype, shape and offsets."""


def partial_max_bytes(reference: Mapping[str, torch.Tensor], max_bytes: int) -> int:
    """The byte limit of an SN's partial aggregate matching ``reference`` (float64 sums).

    Float64 sums take 8 bytes per element, twice a float32 model: a model that fits
    ``max_bytes`` must not have its partials refused, so the limit is the larger of
    ``max_bytes`` and the exact size of the sums plus room for their header.
    """
    elements = sum(t.numel() for t in reference.values())
    header = 1024 + PARTIAL_HEADER_BYTES_PER_TENSOR * len(reference)
    return max(max_bytes, 8 * elements + header)


class KnownEdge(Protocol):
    """An EN as its SN holds it (``services/sn/edges.py`` ``Edge``)."""

    @property
    def node_id(self) -> str: ...

    @property
    def public_key(self) -> bytes: ...

    @property
    def partition_size(self) -> int: ...


class OpenRound(Protocol):
    """What the header checks need of the round's collector."""

    @property
    def round(self) -> int: ...

    @property
    def expected(self) -> set[str]: ...

    def has_answered(self, node_id: str) -> bool: ...


def check_update_header(
    h: pb.UpdateHeader,
    lookup: Callable[[str], KnownEdge | None],
    chain_id: bytes,
    collector: OpenRound,
) -> KnownEdge:
    """The EN that signed ``h`` (checked before anything is recorded), or raise Rejected."""
    try:
        check_node_id(h.node_id)
        check_digest(h.digest, "update digest")
        check_finite(h.train_loss, "train_loss", 0.0, MAX_LOSS)
        check_finite(h.train_seconds, "train_seconds", 0.0, MAX_SECONDS)
    except IngressRefused as exc:
        raise Rejected(grpc.StatusCode.INVALID_ARGUMENT, str(exc)) from None
    edge = lookup(h.node_id)
    if edge is None:
        raise Rejected(grpc.StatusCode.PERMISSION_DENIED, f"unknown node {h.node_id}")
    try:
        check_signed(
            edge.public_key, bytes(h.signature), Domain.UPDATE, chain_id, h.node_id,
            header_update_fields(h),
        )
    except SignatureRefused:
        raise Rejected(
            grpc.StatusCode.PERMISSION_DENIED, f"bad signature on update from {h.node_id}"
        ) from None
    if collector.has_answered(h.node_id):
        raise Rejected(
            grpc.StatusCode.ALREADY_EXISTS, f"{h.node_id} already answered round {collector.round}"
        )
    return edge


def check_update_claims(h: pb.UpdateHeader, edge: KnownEdge, collector: OpenRound) -> None:
    """What a signed header claims: selected for the round, samples within the partition."""
    if h.node_id not in collector.expected:
        raise Rejected(
            grpc.StatusCode.FAILED_PRECONDITION,
            f"{h.node_id} was not selected for round {collector.round}",
        )
    try:
        check_samples(int(h.samples), edge.partition_size)
    except IngressRefused as exc:
        raise Rejected(grpc.StatusCode.INVALID_ARGUMENT, str(exc)) from None


def check_update(
    *,
    round_no: int,
    version: int,
    expected_round: int,
    expected_version: int,
    claimed_digest: str,
    data: bytes,
    reference: Mapping[str, torch.Tensor],
    max_bytes: int,
) -> dict[str, torch.Tensor]:
    """Validate an update's (or a partial aggregate's) bytes; return its tensors or raise Rejected.

    The signature over ``claimed_digest`` is checked before, by the message's own check.
    """
    if round_no != expected_round or version != expected_version:
        raise Rejected(
            grpc.StatusCode.FAILED_PRECONDITION,
            f"update is for round {round_no} version {version}, "
            f"but round {expected_round} on version {expected_version} is open",
        )
    if len(data) > max_bytes:
        raise Rejected(
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            f"update of {len(data)} bytes exceeds the limit of {max_bytes}",
        )
    actual = digest(data)
    if actual != claimed_digest:
        raise Rejected(grpc.StatusCode.INVALID_ARGUMENT, "update digest does not match its bytes")
    try:
        return decode(data, expected=reference, require_finite=True, max_bytes=max_bytes)
    except TensorError as exc:
        raise Rejected(grpc.StatusCode.INVALID_ARGUMENT, str(exc)) from None
