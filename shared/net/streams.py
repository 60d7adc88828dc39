"""The stream codec: every chunked gRPC method writes and reads through here.

A stream is a header, then data in bounded chunks. The writer cuts one buffer into
``memoryview`` slices (the only copy is the ``bytes`` protobuf needs for each message).
The reader takes the header first and checks the size it declares against the byte limit
before it keeps any body; after the header only data may come (a second header, or
anything else, is refused); the body is joined once at the end; a byte limit and a
chunk-count limit bound it (a flood of empty chunks ends too); the declared size and the
announced SHA-256 are checked. Every refusal is a ``StreamRefused`` carrying the gRPC
status it maps to.

Wire forms (``proto/node.proto``, ``proto/ledger.proto``):

* ``FetchModel`` (``Chunk``): the first chunk carries ``total_bytes`` and ``digest`` (the
  header) and the first data; later chunks carry data only. The server writes each
  ``Chunk``'s protobuf wire form itself (``model_frames``: one copy of each slice, no
  protobuf message) on a method handler without serializer (``add_node_servicer``), and a
  reader parses the frames into views of the received bytes (``fetch_model``,
  ``parse_model_frame``): same wire format, so protobuf stubs read it too.
* ``SubmitUpdate`` / ``SubmitAggregate`` (``UpdatePart`` / ``AggregatePart``): a ``header``
  part (``total_bytes``, ``digest``), then ``data`` parts.
* ``PutBlob`` / ``GetBlob`` (``BlobChunk``): the first chunk carries the ``digest`` (the
  header; optional on ``PutBlob``) and the first data; later chunks carry data only.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, NamedTuple, Protocol, TypeVar

import grpc

from fedchain.shared.digests import digest_of
from fedchain.shared.limits import StreamLimits
from fedchain.shared.net.traffic import TRAFFIC
from fedchain.shared.rpc import ledger_pb2, node_pb2_grpc
from fedchain.shared.rpc import node_pb2 as pb
from fedchain.shared.tensors import TensorError

NODE_SERVICE = pb.DESCRIPTOR.services_by_name["Node"].full_name
FETCH_MODEL = f"/{NODE_SERVICE}/FetchModel"
"""The full gRPC method name of ``Node.FetchModel``."""


class StreamRefused(TensorError):
    """A malformed or oversized stream; ``code`` is the gRPC status it is answered with."""

    def __init__(self, code: grpc.StatusCode, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def _bad(reason: str) -> StreamRefused:
    return StreamRefused(grpc.StatusCode.INVALID_ARGUMENT, reason)


def _too_big(reason: str) -> StreamRefused:
    return StreamRefused(grpc.StatusCode.RESOURCE_EXHAUSTED, reason)


# ---------------------------------------------------------------- writing


def cut(data: bytes, chunk_bytes: int, what: str = "data") -> Iterator[memoryview]:
    """``data`` as ``memoryview`` slices of at most ``chunk_bytes`` (one, empty, for no data);
    each slice is counted as sent for ``what`` when it is taken (``traffic.TRAFFIC``)."""
    if chunk_bytes <= 0:
        raise ValueError("chunk size must be positive")
    view = memoryview(data)
    if not data:
        yield view
        return
    for start in range(0, len(view), chunk_bytes):
        piece = view[start : start + chunk_bytes]
        TRAFFIC.sent(what, len(piece))
        yield piece


def model_chunks(data: bytes, chunk_bytes: int, digest: str | None = None) -> Iterator[pb.Chunk]:
    """``FetchModel``'s stream: size and digest with the first data, then data.

    ``digest`` is the model's known digest; without it, the digest is the buffer's,
    computed once per buffer (``digest_of``), not once per fetch.
    """
    announced = digest or digest_of(data)
    pieces = cut(data, chunk_bytes, "model")
    yield pb.Chunk(data=bytes(next(pieces)), total_bytes=len(data), digest=announced)
    for piece in pieces:
        yield pb.Chunk(data=bytes(piece))


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


# ``Chunk``'s field tags: (field number << 3) | wire type (0 varint, 2 length-delimited)
_DATA_TAG, _TOTAL_TAG, _DIGEST_TAG = b"\x0a", b"\x10", b"\x1a"


def model_frame(piece: bytes | memoryview, total_bytes: int = 0, digest: str = "") -> bytes:
    """One ``Chunk``'s protobuf wire form (as ``Chunk.SerializeToString`` writes it), one copy."""
    if total_bytes < 0:
        raise ValueError("a model stream's size cannot be negative")
    parts: list[bytes | memoryview] = []
    if len(piece):
        parts += [_DATA_TAG, _varint(len(piece)), piece]
    if total_bytes:
        parts += [_TOTAL_TAG, _varint(total_bytes)]
    if digest:
        text = digest.encode()
        parts += [_DIGEST_TAG, _varint(len(text)), text]
    return b"".join(parts)


def model_frames(data: bytes, chunk_bytes: int, digest: str | None = None) -> Iterator[bytes]:
    """``model_chunks`` as wire-form frames: what ``FetchModel`` sends (``add_node_servicer``)."""
    announced = digest or digest_of(data)
    pieces = cut(data, chunk_bytes, "model")
    yield model_frame(next(pieces), len(data), announced)
    for piece in pieces:
        yield model_frame(piece)


def add_node_servicer(servicer: node_pb2_grpc.NodeServicer, server: grpc.Server) -> None:
    """Register ``servicer`` as the ``Node`` service, its ``FetchModel`` yielding wire frames.

    Every method keeps its generated protobuf handler except ``FetchModel``, whose replies
    are already serialized (``model_frames``) and go out as they are.
    """
    handlers = _generated_handlers(servicer)
    fetch = handlers["FetchModel"]
    handlers["FetchModel"] = grpc.unary_stream_rpc_method_handler(
        servicer.FetchModel, request_deserializer=fetch.request_deserializer
    )
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(NODE_SERVICE, handlers),))
    server.add_registered_method_handlers(NODE_SERVICE, handlers)


class _Recorder:
    """Stands in for a server to take the handler table the generated code registers."""

    def __init__(self) -> None:
        self.handlers: dict[str, grpc.RpcMethodHandler] = {}

    def add_generic_rpc_handlers(self, handlers: object) -> None:
        """The generic handler repeats the registered table: nothing to keep."""

    def add_registered_method_handlers(
        self, service: str, handlers: dict[str, grpc.RpcMethodHandler]
    ) -> None:
        self.handlers.update(handlers)


def _generated_handlers(servicer: node_pb2_grpc.NodeServicer) -> dict[str, grpc.RpcMethodHandler]:
    recorder = _Recorder()
    node_pb2_grpc.add_NodeServicer_to_server(servicer, recorder)
    if "FetchModel" not in recorder.handlers:
        raise RuntimeError("the generated Node service registers no FetchModel handler")
    return recorder.handlers


def update_parts(header: pb.UpdateHeader, data: bytes, chunk_bytes: int) -> Iterator[pb.UpdatePart]:
    """``SubmitUpdate``'s stream: the header, then the update bytes in chunks."""
    yield pb.UpdatePart(header=header)
    if data:
        for piece in cut(data, chunk_bytes, "update"):
            yield pb.UpdatePart(data=bytes(piece))


def aggregate_parts(
    header: pb.AggregateHeader, data: bytes, chunk_bytes: int
) -> Iterator[pb.AggregatePart]:
    """``SubmitAggregate``'s stream: the header, then the bytes (none for an empty aggregate)."""
    yield pb.AggregatePart(header=header)
    if data:
        for piece in cut(data, chunk_bytes, "aggregate"):
            yield pb.AggregatePart(data=bytes(piece))


def blob_chunks(data: bytes, chunk_bytes: int, digest: str) -> Iterator[ledger_pb2.BlobChunk]:
    """``PutBlob`` / ``GetBlob``'s stream: the digest with the first data, then data."""
    pieces = cut(data, chunk_bytes, "blob")
    yield ledger_pb2.BlobChunk(data=bytes(next(pieces)), digest=digest)
    for piece in pieces:
        yield ledger_pb2.BlobChunk(data=bytes(piece))


# ---------------------------------------------------------------- reading

BACKGROUND_HASH_BYTES = 4 << 20
"""Bodies declared at least this large are hashed on ``_HASHER`` while the rest arrives."""
_HASHER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="stream-hash")
"""One thread, so a body's pieces are hashed in order (hashlib lets go of the GIL)."""


class BodyReader:
    """Collects one stream's body under ``limits``; ``finish`` joins and checks it.

    ``size`` is the declared body size (None: not declared), ``digest`` the announced
    hex SHA-256 (empty: none announced, allowed only for an empty body; None: not
    checked here). ``what`` names the stream in refusals ("model", "update", ...).
    """

    def __init__(
        self, limits: StreamLimits, what: str, *, size: int | None, digest: str | None
    ) -> None:
        if size is not None and size < 0:
            raise _bad(f"{what} stream declares a negative size ({size})")
        if size is not None and size > limits.max_bytes:
            raise _too_big(f"{what} of {size} bytes exceeds the limit of {limits.max_bytes}")
        if digest == "" and size:
            raise _bad(f"{what} stream declares {size} bytes but no digest")
        self.limits = limits
        self.what = what
        self.size = size
        self.digest = digest or None
        self._pieces: list[bytes | memoryview] = []
        self._bytes = 0
        self._hash = hashlib.sha256() if self.digest is not None else None
        self._background = size is not None and size >= BACKGROUND_HASH_BYTES
        self._hashed: Future[None] | None = None

    def add(self, piece: bytes | memoryview) -> None:
        """Take one data message (checked against both limits before it is kept)."""
        if len(self._pieces) >= self.limits.max_chunks:
            raise _too_big(
                f"{self.what} stream has more than {self.limits.max_chunks} data messages"
            )
        total = self._bytes + len(piece)
        bound = self.limits.max_bytes if self.size is None else min(self.size, self.limits.max_bytes)
        if total > bound:
            if self.size is not None and total <= self.limits.max_bytes:
                raise _bad(f"{self.what} stream sends more than the {self.size} bytes it declared")
            raise _too_big(f"{self.what} stream exceeds the limit of {self.limits.max_bytes} bytes")
        self._pieces.append(piece)
        self._bytes = total
        TRAFFIC.received(self.what, len(piece))
        if self._hash is None:
            return
        if self._background:
            self._hashed = _HASHER.submit(self._hash.update, piece)
        else:
            self._hash.update(piece)

    def finish(self) -> bytes:
        """The body, joined once; refused when short or when it does not match its digest."""
        if self.size is not None and self._bytes != self.size:
            raise _bad(f"{self.what} stream ended after {self._bytes} of {self.size} bytes")
        if self._hashed is not None:
            self._hashed.result()  # the last piece's hash, so every piece's
        if self._hash is not None and self._hash.hexdigest() != self.digest:
            raise _bad(f"{self.what} stream does not match its announced digest")
        if len(self._pieces) == 1 and isinstance(self._pieces[0], bytes):
            return self._pieces[0]
        return b"".join(self._pieces)


class _OneOf(Protocol):
    data: bytes

    def WhichOneof(self, group: str) -> str | None: ...


Part = TypeVar("Part", bound=_OneOf)


def read_header(parts: Iterator[Part], what: str) -> Part:
    """The first part of an update/aggregate stream, which must be its header."""
    first = next(parts, None)
    if first is None or first.WhichOneof("part") != "header":
        raise _bad(f"an {what} stream must start with its header")
    return first


def read_body(
    parts: Iterable[Part],
    limits: StreamLimits,
    what: str,
    *,
    size: int,
    digest: str | None,
) -> bytes:
    """The data parts after an update/aggregate header: only data, bounded, checked, joined."""
    body = BodyReader(limits, what, size=size, digest=digest)
    for part in parts:
        if part.WhichOneof("part") != "data":
            raise _bad(f"only data may follow the {what} header")
        body.add(part.data)
    return body.finish()


class ModelChunk(NamedTuple):
    """A parsed ``Chunk`` frame; ``data`` is a view into the received bytes."""

    data: memoryview
    total_bytes: int
    digest: str


def _read_varint(frame: memoryview, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if at >= len(frame) or shift > 63:
            raise _bad("a model stream frame has a malformed varint")
        byte = frame[at]
        at += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, at
        shift += 7


def parse_model_frame(raw: bytes) -> ModelChunk:
    """A ``Chunk``'s wire form read as protobuf does (last value wins, unknown fields skipped),
    with its data as a view, not a copy; ``StreamRefused`` for a malformed frame."""
    frame = memoryview(raw)
    data, total, digest = frame[:0], 0, ""
    at = 0
    while at < len(frame):
        key, at = _read_varint(frame, at)
        field, wire = key >> 3, key & 7
        if field == 0:
            raise _bad("a model stream frame has a field numbered 0")
        if wire == 0:
            value, at = _read_varint(frame, at)
            if field == 2:
                total = value - (1 << 64) if value >= 1 << 63 else value
        elif wire == 2:
            size, at = _read_varint(frame, at)
            if at + size > len(frame):
                raise _bad("a model stream frame is cut short")
            if field == 1:
                data = frame[at : at + size]
            elif field == 3:
                try:
                    digest = str(frame[at : at + size], "utf-8")
                except UnicodeDecodeError:
                    raise _bad("a model stream frame has a digest that is not UTF-8") from None
            at += size
        elif wire in (1, 5):
            at += 8 if wire == 1 else 4
            if at > len(frame):
                raise _bad("a model stream frame is cut short")
        else:
            raise _bad(f"a model stream frame has an unsupported wire type {wire}")
    return ModelChunk(data, total, digest)


def fetch_model(
    channel: grpc.Channel,
    request: pb.FetchModelRequest,
    *,
    timeout: float,
    started: Callable[[grpc.Future], None] | None = None,
) -> Iterator[ModelChunk]:
    """Call ``FetchModel`` on ``channel``: its frames parsed into views (for ``join_model_chunks``).

    ``started``, when given, receives the call as soon as it is made: a caller that must be
    able to stop mid-download (a node shutting down) keeps it and ``cancel()``s it, which
    ends the stream with ``grpc.StatusCode.CANCELLED``.
    """
    method: Callable[..., Any] = channel.unary_stream(
        FETCH_MODEL,
        request_serializer=pb.FetchModelRequest.SerializeToString,
        response_deserializer=None,
        _registered_method=True,
    )
    call = method(request, timeout=timeout)
    if started is not None:
        started(call)
    for raw in call:
        yield parse_model_frame(raw)


class _ModelPart(Protocol):
    @property
    def data(self) -> bytes | memoryview: ...
    @property
    def total_bytes(self) -> int: ...
    @property
    def digest(self) -> str: ...


def join_model_chunks(
    stream: Iterable[_ModelPart], max_bytes: int | StreamLimits, digest: str | None = None
) -> bytes:
    """Read a ``FetchModel`` stream; ``digest``, when given, is what the model must hash to."""
    limits = max_bytes if isinstance(max_bytes, StreamLimits) else StreamLimits.for_bytes(max_bytes)
    parts = iter(stream)
    first = next(parts, None)
    if first is None or not first.digest:
        raise _bad("a model stream must start with its size and digest")
    if digest and first.digest != digest:
        raise _bad("the model stream announces another digest than the one asked for")
    body = BodyReader(limits, "model", size=int(first.total_bytes), digest=first.digest)
    body.add(first.data)
    for msg in parts:
        if msg.digest or msg.total_bytes:
            raise _bad("a model stream announces its size and digest once, in its first chunk")
        body.add(msg.data)
    return body.finish()


def join_blob_chunks(
    stream: Iterable[ledger_pb2.BlobChunk],
    limits: StreamLimits,
    digest: str | None = None,
    *,
    verify: bool = True,
) -> tuple[bytes, str | None]:
    """Read a ``PutBlob`` / ``GetBlob`` stream; returns the body and the announced digest.

    ``digest``, when given, is the one asked for (``GetBlob``): the stream must announce
    it. With ``verify`` the body is checked against it (or against the announced digest);
    ``PutBlob`` passes ``verify=False`` because the store hashes what it keeps anyway.
    """
    parts = iter(stream)
    first = next(parts, None)
    if first is None:
        raise _bad("a blob stream must send at least one chunk")
    announced = first.digest or None
    if digest is not None and announced != digest:
        raise _bad("the blob stream does not announce the digest asked for")
    expected = (digest or announced) if verify else None
    body = BodyReader(limits, "blob", size=None, digest=expected)
    body.add(first.data)
    for msg in parts:
        if msg.digest:
            raise _bad("a blob stream announces its digest once, in its first chunk")
        body.add(msg.data)
    return body.finish(), announced
