"""The ledger's gRPC servicer (``proto/ledger.proto``) over a ``Ledger``.

Ledger errors become gRPC statuses with the error's message as details and the error
class name in the trailing metadata ``ERROR_METADATA`` (``fedchain.shared.ledger.wire``;
``LedgerClient`` re-raises it).
"""

from __future__ import annotations

import functools
import itertools
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import grpc

from fedchain.services.ledger.blobs import check_digest
from fedchain.services.ledger.metrics import LedgerMetrics
from fedchain.services.ledger.store import Ledger
from fedchain.shared.chain.payloads import BlockKind
from fedchain.shared.ledger.contract import MAX_RANGE
from fedchain.shared.ledger.errors import InvalidBlob, LedgerError, NotFound, TooLarge
from fedchain.shared.ledger.retention import KEEP_ALL, KeepUpdates
from fedchain.shared.ledger.uploads import UploadHeader
from fedchain.shared.ledger.wire import (
    ERROR_METADATA,
    block_from_proto,
    block_to_proto,
    head_from_proto,
    head_to_proto,
)
from fedchain.shared.limits import StreamLimits
from fedchain.shared.net.streams import StreamRefused, blob_chunks, join_blob_chunks
from fedchain.shared.rpc import ledger_pb2, ledger_pb2_grpc

F = TypeVar("F", bound=Callable[..., Any])

log = logging.getLogger("fedchain.ledger")


def _abort(context: grpc.ServicerContext, exc: LedgerError, metrics: LedgerMetrics) -> None:
    code = getattr(exc, "grpc_code", "UNAVAILABLE")
    metrics.rejections.labels(type(exc).__name__).inc()
    context.set_trailing_metadata(((ERROR_METADATA, type(exc).__name__),))
    context.abort(getattr(grpc.StatusCode, code), str(exc))


def _unary(method: F) -> F:
    @functools.wraps(method)
    def wrapper(self: LedgerServicer, request: Any, context: grpc.ServicerContext) -> Any:
        try:
            return method(self, request, context)
        except LedgerError as exc:
            _abort(context, exc, self.metrics)

    return wrapper  # type: ignore[return-value]


def _streaming(method: F) -> F:
    @functools.wraps(method)
    def wrapper(self: LedgerServicer, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        try:
            yield from method(self, request, context)
        except LedgerError as exc:
            _abort(context, exc, self.metrics)

    return wrapper  # type: ignore[return-value]


class LedgerServicer(ledger_pb2_grpc.LedgerServicer):
    """Serves one Ledger; blobs stream in chunks of ``chunk_bytes``."""

    def __init__(
        self,
        ledger: Ledger,
        metrics: LedgerMetrics,
        chunk_bytes: int,
        keep_updates: KeepUpdates = KEEP_ALL,
    ) -> None:
        self.ledger = ledger
        self.metrics = metrics
        self.chunk_bytes = chunk_bytes
        self.keep_updates = keep_updates
        """After each new round block, update blobs of older rounds than this keeps go."""

    @_unary
    def Append(
        self, request: ledger_pb2.Block, context: grpc.ServicerContext
    ) -> ledger_pb2.AppendReply:
        block = block_from_proto(request)
        before = self.ledger.height()
        stored = self.ledger.append(block)
        if stored.height > before:
            self.metrics.appends.inc()
            if stored.kind == BlockKind.ROUND:
                self._prune_updates()
        self.metrics.height.set(max(stored.height, before))
        return ledger_pb2.AppendReply(block=block_to_proto(stored))

    def _prune_updates(self) -> None:
        """Retention ``last:N``: remove the update blobs of rounds it no longer keeps."""
        if self.keep_updates.rounds is None:
            return
        try:
            removed = self.ledger.prune_updates(self.keep_updates)
        except LedgerError as exc:  # the block is stored; the next round block retries
            log.warning("could not remove expired update blobs: %s", exc)
            return
        if removed:
            log.info("removed %d update blobs (keep_updates %s)", len(removed), self.keep_updates)

    @_unary
    def Tip(
        self, request: ledger_pb2.TipRequest, context: grpc.ServicerContext
    ) -> ledger_pb2.TipReply:
        tip = self.ledger.tip()
        if tip is None:
            return ledger_pb2.TipReply(empty=True)
        return ledger_pb2.TipReply(empty=False, block=block_to_proto(tip))

    @_unary
    def GetBlock(
        self, request: ledger_pb2.GetBlockRequest, context: grpc.ServicerContext
    ) -> ledger_pb2.Block:
        block = self.ledger.get(request.height)
        if block is None:
            raise NotFound(f"no block at height {request.height}")
        return block_to_proto(block)

    @_streaming
    def Range(
        self, request: ledger_pb2.RangeRequest, context: grpc.ServicerContext
    ) -> Iterator[ledger_pb2.Block]:
        limit = request.limit or 100
        for block in self.ledger.range(request.start, min(limit, MAX_RANGE)):
            yield block_to_proto(block)

    def admit_upload(self, first: ledger_pb2.BlobChunk) -> UploadHeader:
        """Check the upload header of a PutBlob's first chunk, before any body is accepted.

        The digest is well formed, the announced size is within the blob bound and the
        upload quota, and the header is signed by the entry (``Ledger.upload_key``).
        Raises InvalidBlob, TooLarge / QuotaExceeded or UploadRefused.
        """
        header = UploadHeader(
            check_digest(first.digest),
            int(first.size),
            bytes(first.public_key),
            bytes(first.signature),
        )
        header.check(self.ledger.upload_key())
        limit = self.ledger.blobs.max_bytes
        if header.size > limit:
            raise TooLarge(f"blob of {header.size} bytes exceeds the limit of {limit} bytes")
        if not self.ledger.has_blob(header.digest):
            self.ledger.check_quota(header.size)
        return header

    @_unary
    def PutBlob(
        self, request_iterator: Iterator[ledger_pb2.BlobChunk], context: grpc.ServicerContext
    ) -> ledger_pb2.PutBlobReply:
        request_iterator = iter(request_iterator)
        first = next(request_iterator, None)
        if first is None:
            raise InvalidBlob("blob upload carried no chunk (the first chunk is the header)")
        header = self.admit_upload(first)  # signature, size and quota: before any body is kept
        # no byte past the size the header announced (admit_upload bounded it)
        limits = StreamLimits.for_bytes(header.size)
        try:
            data, announced = join_blob_chunks(itertools.chain([first], request_iterator), limits, verify=False)
        except StreamRefused as exc:
            if exc.code == grpc.StatusCode.RESOURCE_EXHAUSTED:
                raise TooLarge(f"blob upload exceeds its announced {header.size} bytes") from None
            raise InvalidBlob(exc.reason) from None
        if len(data) != header.size:
            raise InvalidBlob(f"blob upload announced {header.size} bytes but sent {len(data)}")
        expected = header.digest if announced is None else check_digest(announced)
        digest = self.ledger.put_blob(data, expected)
        self.metrics.blob_bytes.inc(len(data))
        return ledger_pb2.PutBlobReply(digest=digest, size=len(data))

    @_streaming
    def GetBlob(
        self, request: ledger_pb2.BlobRequest, context: grpc.ServicerContext
    ) -> Iterator[ledger_pb2.BlobChunk]:
        data = self.ledger.get_blob(check_digest(request.digest))
        yield from blob_chunks(data, self.chunk_bytes, request.digest)

    @_unary
    def HasBlob(
        self, request: ledger_pb2.BlobRequest, context: grpc.ServicerContext
    ) -> ledger_pb2.HasBlobReply:
        return ledger_pb2.HasBlobReply(present=self.ledger.has_blob(request.digest))

    @_unary
    def Verify(
        self, request: ledger_pb2.VerifyRequest, context: grpc.ServicerContext
    ) -> ledger_pb2.VerifyReply:
        start = time.perf_counter()
        report = self.ledger.verify()
        self.metrics.verify_seconds.observe(time.perf_counter() - start)
        if not report.ok:
            self.metrics.verify_failures.inc()
        reply = ledger_pb2.VerifyReply(
            ok=report.ok, checked=report.checked, reason=report.reason or ""
        )
        if report.height is not None:
            reply.height = report.height
        return reply

    @_unary
    def InclusionProof(
        self, request: ledger_pb2.InclusionProofRequest, context: grpc.ServicerContext
    ) -> ledger_pb2.InclusionProofReply:
        proof = self.ledger.inclusion_proof(request.height, request.update_digest)
        return ledger_pb2.InclusionProofReply(
            height=proof.height,
            index=proof.index,
            tree_size=proof.tree_size,
            update_digest=proof.update_digest,
            path=proof.path,
            root=proof.root,
            node_id=proof.node_id,
            samples=proof.samples,
        )

    @_unary
    def PutTreeHead(
        self, request: ledger_pb2.TreeHead, context: grpc.ServicerContext
    ) -> ledger_pb2.TreeHead:
        return head_to_proto(self.ledger.put_tree_head(head_from_proto(request)))

    @_unary
    def GetTreeHead(
        self, request: ledger_pb2.TreeHeadRequest, context: grpc.ServicerContext
    ) -> ledger_pb2.TreeHeadReply:
        head = self.ledger.tree_head()
        if head is None:
            return ledger_pb2.TreeHeadReply(empty=True)
        return ledger_pb2.TreeHeadReply(empty=False, head=head_to_proto(head))

    @_unary
    def Consistency(
        self, request: ledger_pb2.ConsistencyRequest, context: grpc.ServicerContext
    ) -> ledger_pb2.ConsistencyReply:
        proof = self.ledger.consistency(request.from_size, request.to_size)
        return ledger_pb2.ConsistencyReply(
            from_size=request.from_size, to_size=request.to_size, proof=proof
        )
