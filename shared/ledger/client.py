"""``LedgerClient``: the ledger contract over gRPC, for nodes and the CLI.

A ledger that cannot be reached (or a closed client) raises ``LedgerUnavailable`` with the
address in the message; a refusal re-raises the server's error class (a ``LedgerRejected``
subclass, e.g. ``HeightConflict``) with the server's message. No gRPC error escapes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Self, TypeVar

import grpc

from fedchain.shared.chain.blocks import Block
from fedchain.shared.chain.treehead import TreeHead
from fedchain.shared.crypto import NodeKey
from fedchain.shared.digests import sha256_hex
from fedchain.shared.ledger.contract import MAX_HEIGHT, MAX_RANGE, Progress
from fedchain.shared.ledger.errors import (
    ERROR_CLASSES,
    InvalidBlock,
    InvalidTreeHead,
    LedgerCorrupt,
    LedgerError,
    LedgerRejected,
    LedgerUnavailable,
    NotFound,
    TooLarge,
)
from fedchain.shared.ledger.results import InclusionProof, VerifyReport
from fedchain.shared.ledger.uploads import UploadHeader
from fedchain.shared.ledger.wire import (
    ERROR_METADATA,
    block_from_proto,
    block_to_proto,
    head_from_proto,
    head_to_proto,
)
from fedchain.shared.limits import KIB, MIB, StreamLimits
from fedchain.shared.net.grpc_util import NetConfig, make_channel
from fedchain.shared.net.streams import StreamRefused, blob_chunks, join_blob_chunks
from fedchain.shared.rpc import ledger_pb2, ledger_pb2_grpc

T = TypeVar("T")

_BY_CODE: dict[grpc.StatusCode, type[LedgerError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: LedgerRejected,
    grpc.StatusCode.FAILED_PRECONDITION: LedgerRejected,
    grpc.StatusCode.ALREADY_EXISTS: LedgerRejected,
    grpc.StatusCode.PERMISSION_DENIED: LedgerRejected,
    grpc.StatusCode.UNAUTHENTICATED: LedgerRejected,
    grpc.StatusCode.OUT_OF_RANGE: LedgerRejected,
    grpc.StatusCode.RESOURCE_EXHAUSTED: TooLarge,
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.DATA_LOSS: LedgerCorrupt,
}
"""A status without the error-class metadata (raised by gRPC itself, or a proxy).

Any other code (UNAVAILABLE, DEADLINE_EXCEEDED, CANCELLED, UNKNOWN, INTERNAL, ...) means
the call may not have been carried out: ``LedgerUnavailable``.
"""


def _read(path: Path | None) -> bytes | None:
    return None if path is None else Path(path).read_bytes()


class LedgerClient:
    """gRPC client of a ledger at ``address`` (HOST:PORT); TLS when ``tls_ca`` is given.

    ``timeout`` bounds each call, ``verify_timeout`` the (long) verification of a chain.
    ``signer``: the entry's key, which signs blob uploads (the ledger refuses unsigned ones).
    """

    def __init__(
        self,
        address: str,
        *,
        timeout: float = 10,
        verify_timeout: float = 300,
        tls_ca: Path | None = None,
        tls_cert: Path | None = None,
        tls_key: Path | None = None,
        max_message_mb: int = 64,
        chunk_kb: int = 1024,
        signer: NodeKey | None = None,
    ) -> None:
        self.address = address
        self.signer = signer
        self.timeout = timeout
        self.verify_timeout = max(timeout, verify_timeout)
        self.chunk_bytes = chunk_kb * KIB
        self.max_bytes = max_message_mb * MIB
        net = NetConfig(self.max_bytes, _read(tls_cert), _read(tls_key), _read(tls_ca))
        self._channel = make_channel(net, address)
        self._stub = ledger_pb2_grpc.LedgerStub(self._channel)
        self._closed = False

    def close(self) -> None:
        """Close the channel; later calls raise LedgerUnavailable."""
        self._closed = True
        self._channel.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _error(self, err: grpc.RpcError) -> LedgerError:
        code = err.code() if isinstance(err, grpc.Call) else None
        details = err.details() if isinstance(err, grpc.Call) else str(err)
        name = ""
        if isinstance(err, grpc.Call):
            for key, value in err.trailing_metadata() or ():
                if key == ERROR_METADATA:
                    name = str(value)
        cls = None if code is None else ERROR_CLASSES.get(name) or _BY_CODE.get(code)
        if cls is None:
            status = code.name.lower() if code is not None else "no status"
            return LedgerUnavailable(
                f"ledger at {self.address} is unavailable ({status}): {details}"
            )
        assert code is not None
        return cls(details or f"ledger at {self.address} refused the request ({code.name})")

    def _check_open(self) -> None:
        if self._closed:
            raise LedgerUnavailable(f"the client of the ledger at {self.address} is closed")

    def _call(self, fn: Callable[[], T]) -> T:
        self._check_open()
        try:
            return fn()
        except grpc.RpcError as err:
            raise self._error(err) from None

    def tip(self) -> Block | None:
        """The last block, or None when the chain is empty."""
        reply = self._call(lambda: self._stub.Tip(ledger_pb2.TipRequest(), timeout=self.timeout))
        return None if reply.empty else block_from_proto(reply.block)

    def height(self) -> int:
        """Height of the tip (-1 when empty)."""
        tip = self.tip()
        return -1 if tip is None else tip.height

    def get(self, height: int) -> Block | None:
        """The block at ``height``, or None."""
        if not 0 <= height <= MAX_HEIGHT:
            self._check_open()
            return None
        request = ledger_pb2.GetBlockRequest(height=height)
        try:
            msg = self._call(lambda: self._stub.GetBlock(request, timeout=self.timeout))
        except NotFound:
            return None
        return block_from_proto(msg)

    def range(self, start: int, limit: int) -> list[Block]:
        """Up to ``limit`` (at most 1000) consecutive blocks from ``start``."""
        start = max(0, start)
        limit = min(limit, MAX_RANGE)
        if limit <= 0 or start > MAX_HEIGHT:
            self._check_open()
            return []
        request = ledger_pb2.RangeRequest(start=start, limit=limit)
        return self._call(
            lambda: [block_from_proto(m) for m in self._stub.Range(request, timeout=self.timeout)]
        )

    def append(self, block: Block) -> Block:
        """Append ``block`` (idempotent); returns the stored block."""
        if not isinstance(block, Block):
            raise InvalidBlock(f"append needs a Block, got {type(block).__name__}")
        message = block_to_proto(block)
        reply = self._call(lambda: self._stub.Append(message, timeout=self.timeout))
        return block_from_proto(reply.block)

    def put_blob(self, data: bytes, expected_digest: str | None = None) -> str:
        """Stream a safetensors blob to the ledger; returns its digest (checked by the server).

        The digest announced in the first chunk is ``expected_digest`` when given (the
        server refuses content that does not match it), else the content's own; the first
        chunk also carries the size and ``signer``'s signature over both.
        """
        announced = expected_digest or sha256_hex(data)
        header = (
            UploadHeader(announced, len(data), b"", b"")
            if self.signer is None
            else UploadHeader.signed(self.signer, announced, len(data))
        )

        def pieces() -> Iterator[ledger_pb2.BlobChunk]:
            """The codec's chunks, the first one carrying the signed upload header."""
            chunks = blob_chunks(data, self.chunk_bytes, announced)
            first = next(chunks)
            first.size, first.public_key, first.signature = header.size, header.public_key, header.signature
            yield first
            yield from chunks

        reply = self._call(lambda: self._stub.PutBlob(pieces(), timeout=self.timeout))
        return str(reply.digest)

    def get_blob(self, digest: str, max_bytes: int | None = None) -> bytes:
        """The blob's bytes; the digest is re-checked here too (LedgerCorrupt if it differs)."""

        limit = self.max_bytes if max_bytes is None else min(max_bytes, self.max_bytes)
        request = ledger_pb2.BlobRequest(digest=digest)

        def fetch() -> bytes:
            stream = self._stub.GetBlob(request, timeout=self.timeout)
            try:
                data, _ = join_blob_chunks(stream, StreamLimits.for_bytes(limit), digest)
            except StreamRefused as exc:
                stream.cancel()
                if exc.code == grpc.StatusCode.RESOURCE_EXHAUSTED:
                    raise TooLarge(f"blob {digest[:16]}… is larger than {limit} bytes") from None
                raise LedgerCorrupt(
                    f"blob received from {self.address} does not match digest {digest}: {exc}"
                ) from None
            return data

        return self._call(fetch)

    def has_blob(self, digest: str) -> bool:
        """True when the ledger stores the blob."""
        request = ledger_pb2.BlobRequest(digest=digest)
        reply = self._call(lambda: self._stub.HasBlob(request, timeout=self.timeout))
        return bool(reply.present)

    def verify(self, progress: Progress | None = None) -> VerifyReport:
        """Ask the ledger to verify its whole chain (bounded by ``verify_timeout``).

        ``progress`` is called once, with the number of blocks checked, when it is done.
        """
        reply = self._call(
            lambda: self._stub.Verify(ledger_pb2.VerifyRequest(), timeout=self.verify_timeout)
        )
        height = reply.height if reply.HasField("height") else None
        if progress is not None:
            progress(reply.checked)
        return VerifyReport(reply.ok, reply.checked, height, reply.reason or None)

    def inclusion_proof(self, height: int, update_digest: str) -> InclusionProof:
        """RFC 6962 proof that ``update_digest`` is in round block ``height``."""
        if not 0 <= height <= MAX_HEIGHT:
            self._check_open()
            raise NotFound(f"no block at height {height}")
        request = ledger_pb2.InclusionProofRequest(height=height, update_digest=update_digest)
        reply = self._call(lambda: self._stub.InclusionProof(request, timeout=self.timeout))
        return InclusionProof(
            reply.height,
            reply.index,
            reply.tree_size,
            reply.update_digest,
            list(reply.path),
            bytes(reply.root),
            reply.node_id,
            int(reply.samples),
        )

    def put_tree_head(self, head: TreeHead) -> TreeHead:
        """Give the ledger the entry's signed tree head; returns the stored head."""
        message = head_to_proto(head)
        reply = self._call(lambda: self._stub.PutTreeHead(message, timeout=self.timeout))
        return head_from_proto(reply)

    def tree_head(self) -> TreeHead | None:
        """The ledger's latest signed tree head, or None."""
        request = ledger_pb2.TreeHeadRequest()
        reply = self._call(lambda: self._stub.GetTreeHead(request, timeout=self.timeout))
        return None if reply.empty else head_from_proto(reply.head)

    def consistency(self, old_size: int, new_size: int) -> list[bytes]:
        """RFC 6962 consistency proof from ``old_size`` to ``new_size`` blocks."""
        if not 0 <= old_size <= new_size:
            self._check_open()
            raise InvalidTreeHead(
                f"a consistency proof goes from a smaller to a larger size, not {old_size} to "
                f"{new_size}"
            )
        if new_size > MAX_HEIGHT:
            self._check_open()
            raise NotFound(f"the ledger holds fewer than {new_size} blocks")
        request = ledger_pb2.ConsistencyRequest(from_size=old_size, to_size=new_size)
        reply = self._call(lambda: self._stub.Consistency(request, timeout=self.timeout))
        return [bytes(p) for p in reply.proof]
