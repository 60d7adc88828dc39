"""What nodes sign: byte strings with a domain tag, so a signature cannot be reused elsewhere."""

from __future__ import annotations

import struct


def update_message(digest_hex: str, round_no: int, version: int) -> bytes:
    """Bytes an EN (or SN, for its aggregate) signs: tag, update digest, round and model version."""
    return b"fedchain-update\x00" + bytes.fromhex(digest_hex) + struct.pack(">qq", round_no, version)


def join_message(role: str, public_key: bytes, address: str, timestamp_ms: int) -> bytes:
    """Bytes a joining node signs to prove it holds the key it presents."""
    addr = address.encode("utf-8")
    return (
        b"fedchain-join\x00"
        + role.encode("ascii")
        + b"\x00"
        + public_key
        + struct.pack(">I", len(addr))
        + addr
        + struct.pack(">q", timestamp_ms)
    )
