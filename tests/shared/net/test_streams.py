"""The stream codec: what the writer sends, and one vector per malformed stream the reader refuses."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import grpc
import pytest

from fedchain.shared.digests import sha256_hex
from fedchain.shared.limits import MIN_CHUNK_BYTES, StreamLimits, max_chunks
from fedchain.shared.net.streams import (
    StreamRefused,
    aggregate_parts,
    blob_chunks,
    cut,
    join_blob_chunks,
    join_model_chunks,
    model_chunks,
    read_body,
    read_header,
    update_parts,
)
from fedchain.shared.rpc import ledger_pb2
from fedchain.shared.rpc import node_pb2 as pb

DATA = bytes(range(256)) * 1000  # 256,000 bytes
CHUNK = 64 * 1024
LIMITS = StreamLimits.for_bytes(1 << 20)
BAD = grpc.StatusCode.INVALID_ARGUMENT
BIG = grpc.StatusCode.RESOURCE_EXHAUSTED


def header(data: bytes = DATA, *, size: int | None = None, digest: str | None = None) -> pb.UpdateHeader:
    return pb.UpdateHeader(
        node_id="n", round=1, version=0, samples=1,
        digest=sha256_hex(data) if digest is None else digest,
        total_bytes=len(data) if size is None else size,
    )


def read_update(parts: list[pb.UpdatePart], limits: StreamLimits = LIMITS) -> bytes:
    stream = iter(parts)
    h = read_header(stream, "update").header
    return read_body(stream, limits, "update", size=h.total_bytes, digest=h.digest)


def refused(fn: Callable[[], object], code: grpc.StatusCode, fragment: str) -> None:
    with pytest.raises(StreamRefused, match=fragment) as info:
        fn()
    assert info.value.code == code


# ---------------------------------------------------------------- writer


def test_the_writer_cuts_one_buffer_into_bounded_slices() -> None:
    pieces = list(cut(DATA, CHUNK))
    assert all(isinstance(p, memoryview) and p.obj is DATA for p in pieces)
    assert [len(p) for p in pieces] == [CHUNK] * 3 + [len(DATA) - 3 * CHUNK]
    assert [len(p) for p in cut(b"", CHUNK)] == [0]
    with pytest.raises(ValueError, match="positive"):
        list(cut(DATA, 0))


def test_every_stream_round_trips_through_the_reader() -> None:
    assert join_model_chunks(model_chunks(DATA, CHUNK), LIMITS) == DATA
    assert join_model_chunks(model_chunks(b"", CHUNK), LIMITS) == b""
    assert read_update(list(update_parts(header(), DATA, CHUNK))) == DATA
    agg = pb.AggregateHeader(total_bytes=len(DATA), digest=sha256_hex(DATA))
    stream = aggregate_parts(agg, DATA, CHUNK)
    h = read_header(stream, "aggregate").header
    assert read_body(stream, LIMITS, "aggregate", size=h.total_bytes, digest=h.digest) == DATA
    empty = aggregate_parts(pb.AggregateHeader(), b"", CHUNK)
    h = read_header(empty, "aggregate").header
    assert read_body(empty, LIMITS, "aggregate", size=h.total_bytes, digest=h.digest) == b""
    d = sha256_hex(DATA)
    assert join_blob_chunks(blob_chunks(DATA, CHUNK, d), LIMITS, d) == (DATA, d)


def test_the_header_comes_first_and_once() -> None:
    chunks = list(model_chunks(DATA, CHUNK))
    assert (chunks[0].total_bytes, chunks[0].digest) == (len(DATA), sha256_hex(DATA))
    assert all(not c.digest and not c.total_bytes for c in chunks[1:])
    parts = list(update_parts(header(), DATA, CHUNK))
    assert parts[0].WhichOneof("part") == "header"
    assert {p.WhichOneof("part") for p in parts[1:]} == {"data"}


# ---------------------------------------------------------------- malformed streams


def data_parts(data: bytes = DATA) -> list[pb.UpdatePart]:
    return [pb.UpdatePart(data=bytes(p)) for p in cut(data, CHUNK)]


def test_no_header() -> None:
    refused(lambda: read_update([]), BAD, "must start with its header")
    refused(lambda: join_model_chunks(iter([]), LIMITS), BAD, "must start with its size and digest")
    refused(lambda: join_blob_chunks(iter([]), LIMITS), BAD, "at least one chunk")


def test_data_before_header() -> None:
    refused(lambda: read_update(data_parts() + [pb.UpdatePart(header=header())]), BAD, "must start with its header")
    chunks = list(model_chunks(DATA, CHUNK))
    headless = [pb.Chunk(data=chunks[0].data), *chunks[1:]]
    refused(lambda: join_model_chunks(headless, LIMITS), BAD, "must start with its size and digest")


def test_header_twice() -> None:
    twice = [pb.UpdatePart(header=header()), pb.UpdatePart(header=header()), *data_parts()]
    refused(lambda: read_update(twice), BAD, "only data may follow the update header")
    chunks = list(model_chunks(DATA, CHUNK))
    chunks[2].digest = chunks[0].digest
    refused(lambda: join_model_chunks(chunks, LIMITS), BAD, "announces its size and digest once")
    d = sha256_hex(DATA)
    blobs = list(blob_chunks(DATA, CHUNK, d))
    blobs[1].digest = d
    refused(lambda: join_blob_chunks(blobs, LIMITS, d), BAD, "announces its digest once")


def test_a_part_without_data_or_header_after_the_header() -> None:
    parts = [pb.UpdatePart(header=header()), pb.UpdatePart(), *data_parts()]
    refused(lambda: read_update(parts), BAD, "only data may follow")


def test_too_many_chunks() -> None:
    limits = StreamLimits(max_bytes=1 << 20, max_chunks=4)
    refused(lambda: read_update(list(update_parts(header(), DATA, 32 * 1024)), limits), BIG, "more than 4 data")


def test_an_empty_chunk_flood_ends_after_the_chunk_limit() -> None:
    sent = 0

    def flood() -> Iterator[pb.UpdatePart]:
        nonlocal sent
        yield pb.UpdatePart(header=header())
        while sent < 10 * LIMITS.max_chunks:  # a peer that would go on for ever
            sent += 1
            yield pb.UpdatePart(data=b"")

    def read() -> bytes:
        stream = flood()
        h = read_header(stream, "update").header
        return read_body(stream, LIMITS, "update", size=h.total_bytes, digest=h.digest)

    refused(read, BIG, "data messages")
    assert sent == LIMITS.max_chunks + 1


def test_too_many_bytes_declared_is_refused_before_any_body() -> None:
    taken = 0

    def parts() -> Iterator[pb.UpdatePart]:
        nonlocal taken
        yield pb.UpdatePart(header=header(size=2 << 20))
        for p in data_parts():
            taken += 1
            yield p

    refused(lambda: read_update([pb.UpdatePart(header=header(size=2 << 20))]), BIG, "exceeds the limit")
    stream = parts()
    h = read_header(stream, "update").header
    refused(lambda: read_body(stream, LIMITS, "update", size=h.total_bytes, digest=h.digest), BIG, "exceeds")
    assert taken == 0
    chunks = list(model_chunks(DATA, CHUNK))
    refused(lambda: join_model_chunks(chunks, 1000), BIG, "exceeds the limit of 1000")


def test_too_many_bytes_sent() -> None:
    small = StreamLimits.for_bytes(100_000)
    undeclared = [pb.UpdatePart(header=header(size=0, digest="")), *data_parts()]
    refused(lambda: read_update(undeclared, small), BAD, "more than the 0 bytes it declared")
    d = sha256_hex(DATA)
    refused(lambda: join_blob_chunks(blob_chunks(DATA, CHUNK, d), small, d), BIG, "exceeds the limit of 100000")
    more = [pb.UpdatePart(header=header(DATA[:1000])), *data_parts()]
    refused(lambda: read_update(more), BAD, "more than the 1000 bytes it declared")


def test_short_stream() -> None:
    parts = list(update_parts(header(), DATA, CHUNK))[:-1]
    refused(lambda: read_update(parts), BAD, f"ended after {3 * CHUNK} of {len(DATA)} bytes")
    chunks = list(model_chunks(DATA, CHUNK))[:-1]
    refused(lambda: join_model_chunks(chunks, LIMITS), BAD, "ended after")


def test_wrong_digest() -> None:
    other = sha256_hex(b"something else")
    refused(lambda: read_update(list(update_parts(header(digest=other), DATA, CHUNK))), BAD, "announced digest")
    refused(lambda: join_model_chunks(model_chunks(DATA, CHUNK, other), LIMITS), BAD, "announced digest")
    refused(lambda: join_model_chunks(model_chunks(DATA, CHUNK), LIMITS, other), BAD, "another digest")
    refused(lambda: join_blob_chunks(blob_chunks(DATA, CHUNK, other), LIMITS), BAD, "announced digest")
    refused(lambda: read_update([pb.UpdatePart(header=header(digest="")), *data_parts()]), BAD, "no digest")


def test_a_blob_upload_may_leave_the_digest_to_the_store() -> None:
    chunks = [ledger_pb2.BlobChunk(data=bytes(p)) for p in cut(DATA, CHUNK)]
    assert join_blob_chunks(chunks, LIMITS) == (DATA, None)
    wrong = list(blob_chunks(DATA, CHUNK, "0" * 64))
    assert join_blob_chunks(wrong, LIMITS, verify=False) == (DATA, "0" * 64)


def test_the_chunk_limit_follows_from_the_byte_limit_and_the_smallest_chunk() -> None:
    assert MIN_CHUNK_BYTES == 16 * 1024
    assert max_chunks(64 << 20) == 4097
    assert StreamLimits.for_bytes(64 << 20).max_chunks == 4097
