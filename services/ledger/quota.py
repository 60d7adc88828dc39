"""The upload quota: bytes of blobs that no block references yet, counted as they come.

A ledger bounds what an uploader can park in its blob store before a block names it
(``blob_quota_bytes``). Scanning the store for every upload costs a ``stat`` per blob
ever kept — thousands per upload once every round's EN updates are retained — so the
pending blobs are tallied instead: a blob is counted from the moment its upload is
admitted (two concurrent uploads cannot both take the last free bytes) and stops
counting once a block references it or it is removed.

The tally only ever over-counts (a blob removed behind the ledger's back, say by
``fedchain ledger gc`` from another process): before refusing an upload it is rebuilt
from the store itself, so a refusal is always the store's truth.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Set

from fedchain.shared.ledger.errors import QuotaExceeded

Referenced = Callable[[], Set[str]]
"""The digests the chain's blocks reference (cached by the ledger, cheap to ask)."""
Stored = Callable[[], Iterable[tuple[str, int]]]
"""Every stored blob as ``(digest, size)`` (a scan of the store)."""


class UploadQuota:
    """Bytes of unreferenced blobs, at most ``limit``; safe for threads."""

    def __init__(self, limit: int, referenced: Referenced, stored: Stored) -> None:
        self.limit = limit
        self._referenced = referenced
        self._stored = stored
        self._lock = threading.Lock()
        self._pending: dict[str, int] | None = None
        """digest -> size of each blob counted; None until the first upload (then scanned)."""
        self._uploading: dict[str, int] = {}
        """Reserved blobs not in the store yet: a scan of the store cannot see them."""

    def pending_bytes(self) -> int:
        """Bytes the tally holds against the quota now (referenced blobs dropped first)."""
        referenced = self._referenced()
        with self._lock:
            return sum(self._current(referenced).values())

    def check(self, size: int) -> None:
        """Raise QuotaExceeded unless a new blob of ``size`` bytes would fit (nothing counted)."""
        referenced = self._referenced()
        with self._lock:
            self._admit(size, referenced)

    def reserve(self, digest: str, size: int) -> None:
        """Count the blob ``digest`` of ``size`` bytes from now on, or raise QuotaExceeded."""
        referenced = self._referenced()
        with self._lock:
            pending = self._current(referenced)
            if digest in pending or digest in referenced:
                return
            self._admit(size, referenced)
            self._current(referenced)[digest] = size
            self._uploading[digest] = size

    def stored(self, digest: str) -> None:
        """The reserved blob ``digest`` is in the store now (a scan sees it from here on)."""
        with self._lock:
            self._uploading.pop(digest, None)

    def forget(self, digests: Iterable[str]) -> None:
        """Stop counting ``digests`` (removed from the store, or their upload failed)."""
        with self._lock:
            for d in digests:
                self._uploading.pop(d, None)
                if self._pending is not None:
                    self._pending.pop(d, None)

    def _current(self, referenced: Set[str]) -> dict[str, int]:
        if self._pending is None:
            self._pending = self._scan(referenced)
        else:
            for d in [d for d in self._pending if d in referenced]:
                del self._pending[d]
        return self._pending

    def _scan(self, referenced: Set[str]) -> dict[str, int]:
        found = {d: size for d, size in self._stored() if d not in referenced}
        return {**found, **self._uploading}

    def _admit(self, size: int, referenced: Set[str]) -> None:
        if sum(self._current(referenced).values()) + size <= self.limit:
            return
        self._pending = self._scan(referenced)  # the store's truth before any refusal
        pending = sum(self._pending.values())
        if pending + size > self.limit:
            raise QuotaExceeded(
                f"blob of {size} bytes refused: {pending} bytes of blobs no block references "
                f"already fill the upload quota of {self.limit} bytes "
                "(run `fedchain ledger gc`)"
            )
