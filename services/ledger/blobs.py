"""Content-addressed blob store on disk: model weights (safetensors) under their SHA-256.

Layout ``<root>/<first 2 hex>/<64 hex>``. Writes go to a temp file in ``<root>/tmp``,
are fsynced, renamed into place and the directory fsynced, so a crash leaves either no
blob or the whole blob. Every read re-checks the digest.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from fedchain.shared.digests import DIGEST_FORMAT, is_hex64, sha256_hex
from fedchain.shared.ledger.errors import InvalidBlob, LedgerCorrupt, NotFound, TooLarge
from fedchain.shared.safetensors_header import HeaderError, parse_header


def check_digest(digest: str) -> str:
    """Return ``digest`` if it is 64 lowercase hex characters, else raise InvalidBlob."""
    if not is_hex64(digest):
        raise InvalidBlob(f"blob digest must be {DIGEST_FORMAT}, got {str(digest)[:80]!r}")
    return digest


def check_safetensors(data: bytes) -> None:
    """Raise InvalidBlob unless ``data`` is laid out as a safetensors file.

    The shared header check (``fedchain.shared.safetensors_header``): length, a JSON
    object, each tensor's offsets inside the file; no tensor is decoded.
    """
    try:
        parse_header(data)
    except HeaderError as exc:
        raise InvalidBlob(f"blob is not a safetensors file ({exc})") from None


@dataclass(frozen=True)
class StoredBlob:
    """One blob file: its digest, length and modification time (seconds since the epoch)."""

    digest: str
    size: int
    mtime: float


class BlobStore:
    """Blobs on disk under their SHA-256; ``max_bytes`` bounds a single blob."""

    def __init__(self, root: Path, max_bytes: int) -> None:
        self.root = Path(root)
        self.max_bytes = max_bytes
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "tmp").mkdir(exist_ok=True)

    def path(self, digest: str) -> Path:
        """Where the blob with ``digest`` lives (whether or not it exists)."""
        check_digest(digest)
        return self.root / digest[:2] / digest

    def put(self, data: bytes, expected_digest: str | None = None) -> str:
        """Store ``data`` (a safetensors file) durably; return its hex SHA-256. Idempotent."""
        if len(data) > self.max_bytes:
            raise TooLarge(f"blob of {len(data)} bytes exceeds the limit of {self.max_bytes} bytes")
        check_safetensors(data)
        digest = sha256_hex(data)
        if expected_digest is not None and check_digest(expected_digest) != digest:
            raise InvalidBlob(
                f"blob content has digest {digest}, not the announced {expected_digest}"
            )
        target = self.path(digest)
        if self.problem(digest) is None:
            return digest
        target.parent.mkdir(exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.root / "tmp", prefix=digest[:16] + ".")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        dir_fd = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        return digest

    def get(self, digest: str, max_bytes: int | None = None) -> bytes:
        """The blob's bytes, re-checked against ``digest``. NotFound / LedgerCorrupt otherwise.

        TooLarge (without reading it) when the blob is longer than ``max_bytes``.
        """
        path = self.path(digest)
        try:
            size = path.stat().st_size
            if max_bytes is not None and size > max_bytes:
                raise TooLarge(f"blob {digest[:16]}… is larger than {max_bytes} bytes")
            data = path.read_bytes()
        except FileNotFoundError:
            raise NotFound(f"no blob with digest {digest}") from None
        actual = sha256_hex(data)
        if actual != digest:
            raise LedgerCorrupt(
                f"blob {digest} is corrupt on disk (its content hashes to {actual})"
            )
        return data

    def has(self, digest: str) -> bool:
        """True when a file for ``digest`` exists (content not re-hashed)."""
        return self.path(digest).is_file()

    def problem(self, digest: str) -> str | None:
        """None when the blob is stored intact; otherwise "missing" or what is wrong."""
        path = self.path(digest)
        h = hashlib.sha256()
        try:
            with path.open("rb") as fh:
                for piece in iter(lambda: fh.read(1 << 20), b""):
                    h.update(piece)
        except FileNotFoundError:
            return "missing from the blob store"
        if h.hexdigest() != digest:
            return f"altered in the blob store (its content hashes to {h.hexdigest()[:16]}…)"
        return None

    def stored(self) -> Iterator[StoredBlob]:
        """Every blob file in the store (names that are not digests are skipped)."""
        for shard in sorted(self.root.iterdir()):
            if len(shard.name) != 2 or not shard.is_dir():
                continue
            for entry in sorted(os.scandir(shard), key=lambda e: e.name):
                if is_hex64(entry.name) and entry.name[:2] == shard.name:
                    try:
                        st = entry.stat()
                    except FileNotFoundError:
                        continue  # removed meanwhile
                    yield StoredBlob(entry.name, st.st_size, st.st_mtime)

    def remove(self, digest: str) -> bool:
        """Delete the blob's file; False when it was not there."""
        try:
            self.path(digest).unlink()
        except FileNotFoundError:
            return False
        return True
