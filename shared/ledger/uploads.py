"""Who may upload a blob: the upload header the first chunk of ``PutBlob`` carries.

The header names the blob's digest and size and the uploader's Ed25519 key, and carries
that key's signature over ``upload_statement`` (domain tag ``UPLOAD_DOMAIN``, then digest
and size, written by the canonical encoder). The ledger checks it before it accepts any
body: the key must be the entry's (the key genesis names, or the one it handed authority
to; before genesis, the key the ledger was started with by ``--entry-key``), so nobody
else can make the ledger store bytes. A replayed header can only store again the very
bytes the entry uploaded, and those still count against the upload quota.
"""

from __future__ import annotations

from dataclasses import dataclass

from fedchain.shared.chain.encoding import CanonicalWriter
from fedchain.shared.crypto import PUBLIC_KEY_BYTES, NodeKey, node_id_for, verify_signature
from fedchain.shared.ledger.errors import UploadRefused

UPLOAD_DOMAIN = "fedchain/blob-upload/v1"


def upload_statement(digest: str, size: int, public_key: bytes) -> bytes:
    """The canonical bytes an uploader signs for a blob of ``size`` bytes with ``digest``."""
    w = CanonicalWriter()
    w.text(UPLOAD_DOMAIN)
    w.text(digest)
    w.u64(size)
    w.raw(public_key)
    return w.getvalue()


@dataclass(frozen=True)
class UploadHeader:
    """What the first ``PutBlob`` chunk announces about the upload."""

    digest: str
    size: int
    public_key: bytes
    signature: bytes

    @classmethod
    def signed(cls, key: NodeKey, digest: str, size: int) -> UploadHeader:
        """The header ``key`` sends for a blob of ``size`` bytes with ``digest``."""
        public = key.public_bytes
        return cls(digest, size, public, key.sign(upload_statement(digest, size, public)))

    def check(self, entry_key: bytes | None) -> None:
        """Raise UploadRefused unless the header is signed by ``entry_key``.

        ``entry_key`` None (no genesis yet and no ``--entry-key``): any key whose own
        signature holds is accepted; the upload still counts against the quota.
        """
        if not self.signature or not self.public_key:
            raise UploadRefused("blob upload is not signed: only the entry may upload blobs")
        if len(self.public_key) != PUBLIC_KEY_BYTES:
            raise UploadRefused(f"blob upload key must be {PUBLIC_KEY_BYTES} bytes")
        if entry_key is not None and self.public_key != entry_key:
            raise UploadRefused(
                f"blob upload signed by {node_id_for(self.public_key)}, not by the entry "
                f"{node_id_for(entry_key)}: only the entry may upload blobs"
            )
        statement = upload_statement(self.digest, self.size, self.public_key)
        if not verify_signature(self.public_key, self.signature, statement):
            raise UploadRefused("blob upload signature does not verify over its digest and size")
