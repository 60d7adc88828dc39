"""FetchModel's pre-serialized frames: protobuf's own wire form, read as views, over the wire too."""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent import futures

import grpc
import pytest

from fedchain.shared.digests import sha256_hex
from fedchain.shared.limits import StreamLimits
from fedchain.shared.net.streams import (
    BACKGROUND_HASH_BYTES,
    StreamRefused,
    add_node_servicer,
    fetch_model,
    join_model_chunks,
    model_chunks,
    model_frame,
    model_frames,
    parse_model_frame,
)
from fedchain.shared.rpc import node_pb2 as pb
from fedchain.shared.rpc import node_pb2_grpc
from tests.conftest import free_port

DATA = bytes(range(256)) * 1000
CHUNK = 64 * 1024
LIMITS = StreamLimits.for_bytes(64 << 20)


def test_frames_are_what_protobuf_writes_for_the_same_chunks() -> None:
    frames = list(model_frames(DATA, CHUNK))
    assert frames == [c.SerializeToString() for c in model_chunks(DATA, CHUNK)]
    assert model_frame(b"") == pb.Chunk().SerializeToString() == b""
    empty = list(model_frames(b"", CHUNK))
    assert empty == [c.SerializeToString() for c in model_chunks(b"", CHUNK)]


def test_a_frame_reads_back_as_protobuf_reads_it() -> None:
    big = pb.Chunk(data=b"x" * 300, total_bytes=(1 << 40) + 3, digest="d" * 64)
    parsed = parse_model_frame(big.SerializeToString())
    assert (bytes(parsed.data), parsed.total_bytes, parsed.digest) == (big.data, big.total_bytes, big.digest)
    negative = parse_model_frame(pb.Chunk(total_bytes=-5).SerializeToString())
    assert negative.total_bytes == -5
    # unknown fields of every wire type are skipped, a repeated field's last value wins
    extra = b"\x20\x07" + b"\x29" + bytes(8) + b"\x35" + bytes(4) + b"\x22\x02ab"
    twice = pb.Chunk(data=b"old").SerializeToString() + pb.Chunk(data=b"new").SerializeToString()
    got = parse_model_frame(extra + twice)
    assert bytes(got.data) == pb.Chunk.FromString(extra + twice).data == b"new"


def test_the_data_is_a_view_of_the_received_bytes() -> None:
    frame = model_frame(memoryview(DATA)[:CHUNK], len(DATA), sha256_hex(DATA))
    parsed = parse_model_frame(frame)
    assert isinstance(parsed.data, memoryview) and parsed.data.obj is frame


@pytest.mark.parametrize(
    ("frame", "fragment"),
    [
        (b"\x0a\x05abc", "cut short"),
        (b"\x0a", "malformed varint"),
        (b"\x10" + b"\xff" * 11, "malformed varint"),
        (b"\x29\x00", "cut short"),
        (b"\x0b", "wire type 3"),
        (b"\x02\x00", "numbered 0"),
        (b"\x1a\x02\xff\xfe", "not UTF-8"),
    ],
)
def test_a_malformed_frame_is_refused(frame: bytes, fragment: str) -> None:
    with pytest.raises(StreamRefused, match=fragment) as info:
        parse_model_frame(frame)
    assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT


def test_a_large_body_is_checked_against_its_digest() -> None:
    big = os.urandom(BACKGROUND_HASH_BYTES + 3 * CHUNK)  # hashed in the background
    frames = [parse_model_frame(f) for f in model_frames(big, CHUNK)]
    assert join_model_chunks(frames, LIMITS) == big
    flipped = big[:-1] + bytes([big[-1] ^ 1])
    tampered = [parse_model_frame(f) for f in model_frames(flipped, CHUNK, sha256_hex(big))]
    with pytest.raises(StreamRefused, match="announced digest"):
        join_model_chunks(tampered, LIMITS)


class _Model(node_pb2_grpc.NodeServicer):  # type: ignore[misc]
    def FetchModel(self, request: pb.FetchModelRequest, context: grpc.ServicerContext) -> Iterator[bytes]:
        if request.version != 1:
            context.abort(grpc.StatusCode.NOT_FOUND, "unknown model version")
        return model_frames(DATA, CHUNK)

    def Heartbeat(self, request: pb.HeartbeatRequest, context: grpc.ServicerContext) -> pb.HeartbeatReply:
        return pb.HeartbeatReply(known=True, entry_node_id="entry")


@pytest.fixture
def served() -> Iterator[grpc.Channel]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    add_node_servicer(_Model(), server)
    port = server.add_insecure_port(f"127.0.0.1:{free_port()}")
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield channel
    finally:
        server.stop(0)


def test_a_served_model_reads_through_frames_and_through_protobuf_stubs(served: grpc.Channel) -> None:
    request = pb.FetchModelRequest(version=1)
    assert join_model_chunks(fetch_model(served, request, timeout=10), LIMITS, sha256_hex(DATA)) == DATA
    stub = node_pb2_grpc.NodeStub(served)
    assert join_model_chunks(stub.FetchModel(request, timeout=10), LIMITS) == DATA
    # the other methods keep their protobuf handlers
    assert stub.Heartbeat(pb.HeartbeatRequest(), timeout=10).entry_node_id == "entry"
    with pytest.raises(grpc.RpcError) as info:
        join_model_chunks(fetch_model(served, pb.FetchModelRequest(version=2), timeout=10), LIMITS)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
