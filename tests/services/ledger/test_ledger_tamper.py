"""Every tamper with stored rows or blobs is found by verify at the exact height."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
import sqlalchemy as sa
from ledger_kit import Federation

from fedchain.services.ledger.store import Ledger
from fedchain.shared.chain.blocks import build_block, header_bytes, payload_text
from fedchain.shared.crypto import NodeKey

COLUMNS = [
    "height",
    "kind",
    "prev_hash",
    "hash",
    "timestamp_ms",
    "producer",
    "payload",
    "signature",
]


def read_row(ledger: Ledger, height: int) -> dict[str, Any]:
    with ledger.engine.connect() as conn:
        row = (
            conn.execute(sa.text("SELECT * FROM blocks WHERE height = :h"), {"h": height})
            .mappings()
            .one()
        )
    return dict(row)


def write_row(ledger: Ledger, height: int, values: dict[str, Any]) -> None:
    sets = ", ".join(f"{k} = :{k}" for k in values)
    with ledger.engine.begin() as conn:
        conn.execute(
            sa.text(f"UPDATE blocks SET {sets} WHERE height = :where_h"),
            {**values, "where_h": height},
        )


def flip(value: Any, position: int) -> Any:
    """The value with one byte flipped (integers: one byte of their 8-byte big-endian form)."""
    if isinstance(value, int):
        raw = bytearray(value.to_bytes(8, "big"))
        raw[position % 8] ^= 0x01
        return int.from_bytes(raw, "big")
    raw = bytearray(value if isinstance(value, (bytes, bytearray)) else value.encode("utf-8"))
    raw[position % len(raw)] ^= 0x01
    return bytes(raw) if isinstance(value, (bytes, bytearray)) else raw.decode("utf-8")


@pytest.fixture
def fed(ledger: Ledger) -> Federation:
    federation = Federation(ledger)
    federation.standard_chain()
    assert ledger.verify().ok
    return federation


def assert_bad_at(ledger: Ledger, height: int) -> str:
    report = ledger.verify()
    assert not report.ok, "tamper not detected"
    assert report.height == height, report.summary()
    assert report.checked == height and report.reason
    return report.reason


@pytest.mark.parametrize("column", COLUMNS)
@pytest.mark.parametrize("height", [0, 5, 9])
def test_flipping_one_byte_in_any_column_is_found_at_that_height(
    fed: Federation, column: str, height: int
) -> None:
    ledger = fed.ledger
    original = read_row(ledger, height)
    positions = [7] if column in ("height", "timestamp_ms") else [0, len(original[column]) // 2, -1]
    if column == "height":
        positions = [6]  # 5 -> 261: the row leaves its place, its height is then missing
    for pos in positions:
        write_row(ledger, height, {column: flip(original[column], pos)})
        where = height if column != "height" else original["height"] ^ 0x100
        assert_bad_at(ledger, height)
        write_row(ledger, where, {column: original[column]})
        assert ledger.verify().ok


def test_every_single_byte_of_a_row_is_covered(tmp_path: Any) -> None:
    """Exhaustive on SQLite: each byte of each column of one round block, flipped alone."""
    ledger = Ledger(f"sqlite:///{tmp_path / 'l.db'}", tmp_path / "blobs")
    try:
        Federation(ledger).standard_chain()
        original = read_row(ledger, 5)
        for column in ("kind", "prev_hash", "hash", "producer", "payload", "signature"):
            for pos in range(len(original[column])):
                write_row(ledger, 5, {column: flip(original[column], pos)})
                report = ledger.verify()
                assert (report.ok, report.height) == (False, 5), (column, pos)
            write_row(ledger, 5, {column: original[column]})
        for pos in range(8):
            write_row(ledger, 5, {"timestamp_ms": flip(original["timestamp_ms"], pos)})
            assert ledger.verify().height == 5
        write_row(ledger, 5, {"timestamp_ms": original["timestamp_ms"]})
        assert ledger.verify().ok
    finally:
        ledger.close()


def test_deleted_rows_are_found(fed: Federation) -> None:
    ledger = fed.ledger
    with ledger.engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM blocks WHERE height = 9"))
    assert "tip record" in assert_bad_at(ledger, 9)
    with ledger.engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM blocks WHERE height = 4"))
    assert "missing" in assert_bad_at(ledger, 4)


def test_swapped_rows_are_found_at_the_lower_height(fed: Federation) -> None:
    ledger = fed.ledger
    a, b = read_row(ledger, 4), read_row(ledger, 5)
    cols = [c for c in COLUMNS if c not in ("height", "prev_hash", "hash")]
    # unique columns (prev_hash, hash) cannot hold the same value twice: park one row's first
    write_row(ledger, 4, {"prev_hash": b"\x00" * 31 + b"\x01", "hash": b"\x00" * 31 + b"\x02"})
    write_row(ledger, 5, {c: a[c] for c in cols + ["prev_hash", "hash"]})
    write_row(ledger, 4, {c: b[c] for c in cols + ["prev_hash", "hash"]})
    assert_bad_at(ledger, 4)


@pytest.mark.parametrize("how", ["altered", "deleted"])
def test_blob_changes_are_found_at_the_first_block_naming_the_blob(
    fed: Federation, how: str
) -> None:
    ledger = fed.ledger
    digest = fed.blocks[5].payload.model_digest  # type: ignore[union-attr]  (also named by block 6)
    path = ledger.blobs.path(digest)
    if how == "altered":
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0x01
        path.write_bytes(bytes(data))
    else:
        path.unlink()
    expected = "altered" if how == "altered" else "missing"
    assert expected in assert_bad_at(ledger, 5)


def test_forged_signature_and_rewritten_block_by_an_outsider(fed: Federation) -> None:
    ledger = fed.ledger
    outsider = NodeKey.generate()
    row = read_row(ledger, 7)
    write_row(ledger, 7, {"signature": outsider.sign(bytes(row["hash"]))})
    assert "signature" in assert_bad_at(ledger, 7)
    write_row(ledger, 7, {"signature": row["signature"]})
    # an outsider rewrites block 7 consistently (own producer id, recomputed hash, own signature)
    block = fed.blocks[7]
    forged = build_block(block.kind, block.payload, fed.blocks[6], outsider, block.timestamp_ms)
    write_row(
        ledger, 7, {"producer": forged.producer, "hash": forged.hash, "signature": forged.signature}
    )
    assert "not an admitted node" in assert_bad_at(ledger, 7)


def test_replaced_key_is_found(fed: Federation) -> None:
    ledger = fed.ledger
    intruder = NodeKey.generate()
    block = fed.blocks[2]
    fields = block.payload.to_json()
    fields["public_key"] = intruder.public_hex
    write_row(ledger, 2, {"payload": payload_text(type(block.payload)(**fields))})
    assert_bad_at(ledger, 2)
    # even re-hashed and re-signed by the entry key, the node id no longer matches the key
    forged_payload = type(block.payload)(**fields)
    header = header_bytes(
        2, block.kind, block.prev_hash, block.timestamp_ms, block.producer, forged_payload
    )
    digest = hashlib.sha256(header).digest()
    write_row(ledger, 2, {"hash": digest, "signature": fed.entry.sign(digest)})
    assert "not the id of its key" in assert_bad_at(ledger, 2)


def test_tip_record_tamper_is_found(fed: Federation) -> None:
    ledger = fed.ledger
    with ledger.engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE ledger_meta SET value = :v WHERE name = 'tip'"), {"v": "9 " + "00" * 32}
        )
    assert "tip record" in assert_bad_at(ledger, 9)
