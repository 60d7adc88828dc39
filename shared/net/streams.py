"""Chunked streaming of safetensors bytes over gRPC (bounded chunks, bounded totals)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from fedchain.shared.rpc import node_pb2 as pb
from fedchain.shared.tensors import TensorError, chunks, digest


def model_chunks(data: bytes, chunk_bytes: int) -> Iterator[pb.Chunk]:
    """Stream ``data`` as Chunk messages; the first one carries the size and digest."""
    first = True
    for piece in chunks(data, chunk_bytes):
        if first:
            yield pb.Chunk(data=piece, total_bytes=len(data), digest=digest(data))
            first = False
        else:
            yield pb.Chunk(data=piece)


def join_model_chunks(stream: Iterable[pb.Chunk], max_bytes: int) -> bytes:
    """Reassemble a Chunk stream, checking the announced size bound and the digest."""
    buf = bytearray()
    expected_total = -1
    expected_digest = ""
    for i, msg in enumerate(stream):
        if i == 0:
            expected_total = int(msg.total_bytes)
            expected_digest = msg.digest
            if expected_total > max_bytes:
                raise TensorError(f"model of {expected_total} bytes exceeds the limit of {max_bytes}")
        if len(buf) + len(msg.data) > max_bytes:
            raise TensorError(f"model stream exceeds the limit of {max_bytes} bytes")
        buf.extend(msg.data)
    data = bytes(buf)
    if expected_total >= 0 and len(data) != expected_total:
        raise TensorError(f"model stream ended after {len(data)} of {expected_total} bytes")
    if expected_digest and digest(data) != expected_digest:
        raise TensorError("model stream does not match its announced digest")
    return data


def update_parts(header: pb.UpdateHeader, data: bytes, chunk_bytes: int) -> Iterator[pb.UpdatePart]:
    """Header first, then the update bytes in chunks."""
    yield pb.UpdatePart(header=header)
    for piece in chunks(data, chunk_bytes):
        yield pb.UpdatePart(data=piece)


def aggregate_parts(
    header: pb.AggregateHeader, data: bytes, chunk_bytes: int
) -> Iterator[pb.AggregatePart]:
    """Header first, then the aggregate bytes in chunks (none when there is no aggregate)."""
    yield pb.AggregatePart(header=header)
    if data:
        for piece in chunks(data, chunk_bytes):
            yield pb.AggregatePart(data=piece)
