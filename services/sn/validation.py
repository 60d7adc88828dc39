"""Checks an SN (or the M-SN) runs on every submitted update before it may be aggregated.

The same checks serve an EN's update at its SN (the ``reference`` is the shared part of
the round's model: ``Strategy.reference``) and an SN's partial aggregate at the entry (the
``reference`` is ``Strategy.partial_reference``: float64 sums with the shared shapes, so an
SN that sends anything but float64 partial sums is refused; its byte limit is
``partial_max_bytes``). Each failure raises ``Rejected`` carrying a gRPC status code and a
one-line reason; the reason is what the round block lists under ``rejected``.
"""

from __future__ import annotations

from collections.abc import Mapping

import grpc
import torch

from fedchain.shared.crypto import verify_signature
from fedchain.shared.net.signing import update_message
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


def check_update(
    *,
    node_id: str,
    public_key: bytes | None,
    round_no: int,
    version: int,
    expected_round: int,
    expected_version: int,
    claimed_digest: str,
    signature: bytes,
    data: bytes,
    reference: Mapping[str, torch.Tensor],
    max_bytes: int,
) -> dict[str, torch.Tensor]:
    """Validate one update; return its decoded tensors or raise Rejected."""
    if public_key is None:
        raise Rejected(grpc.StatusCode.PERMISSION_DENIED, f"unknown node {node_id}")
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
        message = update_message(claimed_digest, round_no, version)
    except ValueError:
        raise Rejected(grpc.StatusCode.INVALID_ARGUMENT, "update digest is not hex") from None
    if not verify_signature(public_key, signature, message):
        raise Rejected(grpc.StatusCode.PERMISSION_DENIED, "bad signature on update")
    try:
        return decode(data, expected=reference, require_finite=True, max_bytes=max_bytes)
    except TensorError as exc:
        raise Rejected(grpc.StatusCode.INVALID_ARGUMENT, str(exc)) from None
