"""SQL schema of the chain (SQLAlchemy 2 Core): one table of blocks plus a meta table.

``blocks``: height primary key and unique ``prev_hash`` (no fork can be stored), unique
``hash``; the header columns, the payload's JSON text and the signature. Every column
feeds the hash or the signature check, so changing any of them is detected at its row.
``ledger_meta``: ``schema_version`` and ``tip`` (height and hash of the last block,
updated in the same transaction as each append, so a deleted last row is noticed).
``tree_heads``: the entry's signed tree heads by size (added beside schema version 1:
created on open when missing, so older ledgers gain it without a migration).
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import mysql

SCHEMA_VERSION = "1"

metadata = sa.MetaData()

_payload_type = sa.Text().with_variant(mysql.MEDIUMTEXT(), "mysql", "mariadb")

blocks = sa.Table(
    "blocks",
    metadata,
    sa.Column("height", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("prev_hash", sa.VARBINARY(32), nullable=False, unique=True),
    sa.Column("hash", sa.VARBINARY(32), nullable=False, unique=True),
    sa.Column("timestamp_ms", sa.BigInteger, nullable=False),
    sa.Column("producer", sa.String(128), nullable=False),
    sa.Column("payload", _payload_type, nullable=False),
    sa.Column("signature", sa.VARBINARY(64), nullable=False),
    mysql_engine="InnoDB",
    mysql_charset="utf8mb4",
    mariadb_engine="InnoDB",
    mariadb_charset="utf8mb4",
)

ledger_meta = sa.Table(
    "ledger_meta",
    metadata,
    sa.Column("name", sa.String(32), primary_key=True),
    sa.Column("value", sa.String(200), nullable=False),
    mysql_engine="InnoDB",
    mariadb_engine="InnoDB",
)

tree_heads = sa.Table(
    "tree_heads",
    metadata,
    sa.Column("size", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("chain_id", sa.VARBINARY(32), nullable=False),
    sa.Column("root", sa.VARBINARY(32), nullable=False),
    sa.Column("timestamp_ms", sa.BigInteger, nullable=False),
    sa.Column("signer", sa.String(128), nullable=False),
    sa.Column("signature", sa.VARBINARY(64), nullable=False),
    mysql_engine="InnoDB",
    mariadb_engine="InnoDB",
)

EMPTY_TIP = "-1 "


def tip_value(height: int, hash_hex: str) -> str:
    """The ``tip`` meta value: ``"<height> <hash hex>"``."""
    return f"{height} {hash_hex}"


def parse_tip(value: str) -> tuple[int, str]:
    """Height and hash hex from a ``tip`` meta value (-1 and "" when empty)."""
    height, _, hash_hex = value.partition(" ")
    return int(height), hash_hex
