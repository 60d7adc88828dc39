"""``LedgerClient``: the ``Ledger`` methods over gRPC, for nodes and the CLI.

A ledger that cannot be reached raises ``LedgerUnavailable`` (with the address in the
message); a refusal re-raises the server's error class (a ``LedgerRejected`` subclass,
e.g. ``HeightConflict``) with the server's message.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import grpc

from fedchain.services.ledger.convert import block_from_proto, block_to_proto
from fedchain.services.ledger.grpc_service import ERROR_METADATA
from fedchain.services.ledger.store import InclusionProof, VerifyReport
from fedchain.shared.chain.blocks import Block
from fedchain.shared.ledger.errors import (
    ERROR_CLASSES,
    LedgerError,
    LedgerRejected,
    LedgerUnavailable,
    NotFound,
)
from fedchain.shared.net.grpc_util import NetConfig, make_channel
from fedchain.shared.rpc import ledger_pb2, ledger_pb2_grpc

T = TypeVar("T")
_UNAVAILABLE = {
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.CANCELLED,
}


def _read(path: Path | None) -> bytes | None:
    return None if path is None else Path(path).read_bytes()


class LedgerClient:
    """gRPC client of a ledger at ``address`` (HOST:PORT); TLS when ``tls_ca`` is given."""

    def __init__(
        self,
        address: str,
        *,
        timeout: float = 10,
        tls_ca: Path | None = None,
        tls_cert: Path | None = None,
        tls_key: Path | None = None,
        max_message_mb: int = 64,
        chunk_kb: int = 1024,
    ) -> None:
        self.address = address
        self.timeout = timeout
        self.chunk_bytes = chunk_kb * 1024
        net = NetConfig(
            max_message_mb * 1024 * 1024, _read(tls_cert), _read(tls_key), _read(tls_ca)
        )
        self._channel = make_channel(net, address)
        self._stub = ledger_pb2_grpc.LedgerStub(self._channel)

    def close(self) -> None:
        """Close the channel."""
        self._channel.close()

    def __enter__(self) -> LedgerClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _error(self, err: grpc.RpcError) -> LedgerError:
        code = err.code() if isinstance(err, grpc.Call) else None
        details = err.details() if isinstance(err, grpc.Call) else str(err)
        if code is None or code in _UNAVAILABLE:
            status = code.name.lower() if code is not None else "no status"
            return LedgerUnavailable(
                f"ledger at {self.address} is unavailable ({status}): {details}"
            )
        name = ""
        if isinstance(err, grpc.Call):
            for key, value in err.trailing_metadata() or ():
                if key == ERROR_METADATA:
                    name = str(value)
        cls = ERROR_CLASSES.get(name, LedgerRejected)
        return cls(details or f"ledger at {self.address} refused the request ({code.name})")

    def _call(self, fn: Callable[[], T]) -> T:
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
        try:
            msg = self._call(
                lambda: self._stub.GetBlock(
                    ledger_pb2.GetBlockRequest(height=height), timeout=self.timeout
                )
            )
        except NotFound:
            return None
        return block_from_proto(msg)

    def range(self, start: int, limit: int) -> list[Block]:
        """Up to ``limit`` (at most 1000) consecutive blocks from ``start``."""
        request = ledger_pb2.RangeRequest(start=start, limit=max(1, min(limit, 1000)))
        return self._call(
            lambda: [block_from_proto(m) for m in self._stub.Range(request, timeout=self.timeout)]
        )

    def append(self, block: Block) -> Block:
        """Append ``block`` (idempotent); returns the stored block."""
        reply = self._call(lambda: self._stub.Append(block_to_proto(block), timeout=self.timeout))
        return block_from_proto(reply.block)

    def put_blob(self, data: bytes) -> str:
        """Stream a safetensors blob to the ledger; returns its digest (checked by the server)."""
        digest = hashlib.sha256(data).hexdigest()

        def pieces() -> Iterator[ledger_pb2.BlobChunk]:
            view = memoryview(data)
            yield ledger_pb2.BlobChunk(data=bytes(view[: self.chunk_bytes]), digest=digest)
            for start in range(self.chunk_bytes, len(data), self.chunk_bytes):
                yield ledger_pb2.BlobChunk(data=bytes(view[start : start + self.chunk_bytes]))

        reply = self._call(lambda: self._stub.PutBlob(pieces(), timeout=self.timeout))
        return str(reply.digest)

    def get_blob(self, digest: str, max_bytes: int | None = None) -> bytes:
        """The blob's bytes; the digest is re-checked here too (LedgerRejected if it differs)."""

        def fetch() -> bytes:
            buf = bytearray()
            for chunk in self._stub.GetBlob(
                ledger_pb2.BlobRequest(digest=digest), timeout=self.timeout
            ):
                buf.extend(chunk.data)
                if max_bytes is not None and len(buf) > max_bytes:
                    raise LedgerRejected(f"blob {digest[:16]}… is larger than {max_bytes} bytes")
            return bytes(buf)

        data = self._call(fetch)
        if hashlib.sha256(data).hexdigest() != digest:
            raise LedgerRejected(
                f"blob received from {self.address} does not match digest {digest}"
            )
        return data

    def has_blob(self, digest: str) -> bool:
        """True when the ledger stores the blob."""
        reply = self._call(
            lambda: self._stub.HasBlob(ledger_pb2.BlobRequest(digest=digest), timeout=self.timeout)
        )
        return bool(reply.present)

    def verify(self, timeout: float | None = None) -> VerifyReport:
        """Ask the ledger to verify its whole chain (allow a longer ``timeout`` for long chains)."""
        reply = self._call(
            lambda: self._stub.Verify(
                ledger_pb2.VerifyRequest(), timeout=timeout or max(self.timeout, 300)
            )
        )
        height = reply.height if reply.HasField("height") else None
        return VerifyReport(reply.ok, reply.checked, height, reply.reason or None)

    def inclusion_proof(self, height: int, update_digest: str) -> InclusionProof:
        """RFC 6962 proof that ``update_digest`` is in round block ``height`` (check with ``.verify()``)."""
        request = ledger_pb2.InclusionProofRequest(height=height, update_digest=update_digest)
        reply: Any = self._call(lambda: self._stub.InclusionProof(request, timeout=self.timeout))
        return InclusionProof(
            reply.height,
            reply.index,
            reply.tree_size,
            reply.update_digest,
            list(reply.path),
            bytes(reply.root),
        )
