"""Ledger errors. A ``LedgerRejected`` means the request was refused and nothing changed.

Each refusal class carries the gRPC status and HTTP status it travels as, so the
server and ``LedgerClient`` map them both ways (the client re-raises the same class).
"""

from __future__ import annotations


class LedgerError(Exception):
    """Base class of everything the ledger raises."""


class LedgerUnavailable(LedgerError):
    """The ledger service or its database cannot be reached (down, wrong address, timeout)."""

    grpc_code = "UNAVAILABLE"
    http_status = 503


class SchemaMismatch(LedgerError):
    """The database holds another schema version (or is not a fedchain ledger)."""


class LedgerCorrupt(LedgerError):
    """Stored data no longer matches its digest (a tampered or damaged blob)."""

    grpc_code = "DATA_LOSS"
    http_status = 500


class LedgerRejected(LedgerError):
    """A refused request: the chain and blob store are unchanged."""

    grpc_code = "INVALID_ARGUMENT"
    http_status = 400


class InvalidBlock(LedgerRejected):
    """Malformed block, wrong hash, bad signature or payload."""


class ProducerRejected(LedgerRejected):
    """The producer is unknown or its key was revoked."""

    grpc_code = "PERMISSION_DENIED"
    http_status = 403


class OutOfSequence(LedgerRejected):
    """The block does not extend the tip (wrong height or prev_hash)."""

    grpc_code = "FAILED_PRECONDITION"
    http_status = 409


class HeightConflict(LedgerRejected):
    """A different block already holds this height."""

    grpc_code = "ALREADY_EXISTS"
    http_status = 409


class MissingBlob(LedgerRejected):
    """The block names a model blob that is not stored (put the blob first)."""

    grpc_code = "FAILED_PRECONDITION"
    http_status = 409


class InvalidBlob(LedgerRejected):
    """Blob bytes that are not a safetensors file or do not match the announced digest."""


class TooLarge(LedgerRejected):
    """A block or blob over the size bound."""

    grpc_code = "RESOURCE_EXHAUSTED"
    http_status = 413


class QuotaExceeded(TooLarge):
    """Blobs no block references yet already fill the upload quota (run ``fedchain ledger gc``)."""


class UploadRefused(LedgerRejected):
    """A blob upload not signed by the entry (or whose header does not hold)."""

    grpc_code = "PERMISSION_DENIED"
    http_status = 403


class InvalidTreeHead(LedgerRejected):
    """A tree head whose signature, size or root does not match the ledger's chain."""


class NotFound(LedgerRejected):
    """No block at that height / no blob with that digest."""

    grpc_code = "NOT_FOUND"
    http_status = 404


ERROR_CLASSES: dict[str, type[LedgerError]] = {
    cls.__name__: cls
    for cls in (
        LedgerCorrupt,
        LedgerRejected,
        InvalidBlock,
        ProducerRejected,
        OutOfSequence,
        HeightConflict,
        MissingBlob,
        InvalidBlob,
        TooLarge,
        QuotaExceeded,
        UploadRefused,
        InvalidTreeHead,
        NotFound,
    )
}
