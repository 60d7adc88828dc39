"""The ledger: a tamper-evident chain in SQL (SQLite or MySQL) plus the blob store.

``Ledger.append`` checks a block against the chain's rules and the stored tip inside
one write transaction that holds the tip lock (``SELECT … FOR UPDATE`` on MySQL,
``BEGIN IMMEDIATE`` on SQLite), so concurrent appenders from any number of processes
serialise; the primary key and unique ``prev_hash`` are the last guard against forks.
Appends within one process are group-committed: the blocks waiting while a transaction
commits go into the next one together (each block checked against every chain rule in
arrival order, as if appended one by one), so they share one durable commit (one fsync).
Re-sending a stored block returns it (idempotent); a different block at a taken
height is a ``HeightConflict``. ``verify`` recomputes everything from the raw rows.

The ledger also keeps the RFC 6962 tree over the block hashes (leaves in height order,
computed from the rows and cached), stores the entry's signed tree heads after checking
them against that tree (``put_tree_head``) and serves consistency proofs. Blobs no block
references yet are bounded by ``blob_quota_bytes`` (tallied as they come:
``quota.UploadQuota``); ``unreferenced_blobs`` and
``remove_blobs`` are what ``fedchain ledger gc`` runs.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import json
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

from fedchain.services.ledger import schema
from fedchain.services.ledger.blobs import BlobStore, StoredBlob, check_digest
from fedchain.services.ledger.quota import UploadQuota
from fedchain.shared.chain import merkle
from fedchain.shared.chain.blocks import Block, payload_text
from fedchain.shared.chain.errors import (
    BlobMissing,
    BlockInvalid,
    ChainError,
    NotNextBlock,
    ProducerNotAdmitted,
)
from fedchain.shared.chain.payloads import (
    GenesisPayload,
    RoundPayload,
    parse_kind,
    payload_from_json,
)
from fedchain.shared.chain.rules import ChainState, check_block
from fedchain.shared.chain.treehead import TreeHead, TreeHeadInvalid
from fedchain.shared.config import ConfigError, Settings
from fedchain.shared.ledger import audit
from fedchain.shared.ledger.contract import MAX_HEIGHT, MAX_RANGE
from fedchain.shared.ledger.errors import (
    HeightConflict,
    InvalidBlock,
    InvalidTreeHead,
    LedgerCorrupt,
    LedgerError,
    LedgerRejected,
    LedgerUnavailable,
    MissingBlob,
    NotFound,
    OutOfSequence,
    ProducerRejected,
    SchemaMismatch,
    TooLarge,
)
from fedchain.shared.ledger.results import InclusionProof, VerifyReport
from fedchain.shared.ledger.retention import KeepUpdates, expired_updates
from fedchain.shared.limits import message_bytes

DEFAULT_MAX_BLOCK_BYTES = 1024 * 1024
DEFAULT_MAX_BLOB_BYTES = 64 * 1024 * 1024
DEFAULT_BLOB_QUOTA_BYTES = 1024 * 1024 * 1024
"""Bytes of blobs no block references yet that the store accepts (then QuotaExceeded)."""
_BATCH = 500
GROUP_COMMIT_BLOCKS = 256
"""Most blocks one append transaction takes (the rest wait for the next)."""
COMMITTER_IDLE_S = 2.0
"""A ledger's committer thread ends after this long without appends (and restarts on one)."""


def default_db_url(state_dir: Path) -> str:
    """The embedded default: a SQLite file ``ledger.db`` inside ``state_dir``."""
    return f"sqlite:///{(Path(state_dir) / 'ledger.db').resolve()}"


def open_ledger(
    settings: Settings,
    *,
    entry_key: bytes | None = None,
    blob_quota_bytes: int = DEFAULT_BLOB_QUOTA_BYTES,
) -> Ledger:
    """The Ledger the settings describe (``db_url`` or SQLite in ``state_dir``; blobs in state_dir/blobs).

    ``entry_key``: the entry's public key, pinned before genesis (see ``Ledger``).
    """
    state_dir = Path(settings.state_dir)
    url = settings.db_url or default_db_url(state_dir)
    return Ledger(
        url,
        state_dir / "blobs",
        max_blob_bytes=message_bytes(settings),
        entry_key=entry_key,
        blob_quota_bytes=blob_quota_bytes,
    )


def referenced_digests(payload_json: str) -> set[str]:
    """Blob digests a stored payload names (model weights; a round's update digests, with
    the updates a robust rule set aside).

    Read loosely from the JSON text: this only decides what ``gc`` keeps, the chain's
    rules are checked elsewhere.
    """
    try:
        data = json.loads(payload_json)
    except (json.JSONDecodeError, TypeError):
        return set()
    if not isinstance(data, dict):
        return set()
    out = set()
    model = data.get("model_digest")
    if isinstance(model, str):
        out.add(model)
    rows = data.get("participants")
    rows = list(rows) if isinstance(rows, list) else []
    manifests = data.get("manifests")
    for m in manifests if isinstance(manifests, list) else []:
        aside = m.get("set_aside") if isinstance(m, dict) else None
        rows += aside if isinstance(aside, list) else []  # rejected by a robust rule, kept too
    for row in rows:
        digest = row.get("update_digest") if isinstance(row, dict) else None
        if isinstance(digest, str):
            out.add(digest)
    return out


class _TreeIndex:
    """Block hashes in height order and the blob digests the blocks name (cached)."""

    def __init__(self) -> None:
        self.leaves: list[bytes] = []
        self.referenced: set[str] = set()


def redact(url: str) -> str:
    """``url`` with its password hidden, for messages."""
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return url


def _make_engine(url: str, timeout: float) -> Engine:
    try:
        parsed = sa.engine.make_url(url)
    except sa.exc.ArgumentError:
        raise ConfigError(
            f"--db-url {url!r} is not a database URL (sqlite:///FILE or mysql+pymysql://…)"
        ) from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(parsed, connect_args={"timeout": timeout})

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # transactions are begun explicitly below
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=FULL")
            cur.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
            cur.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Connection) -> None:
            write = conn.get_execution_options().get("fedchain_write", False)
            conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

        return engine
    if backend in ("mysql", "mariadb"):
        if not parsed.database:
            raise ConfigError(
                f"--db-url {redact(url)} names no database: add /DBNAME after the host "
                "(e.g. mysql+pymysql://USER:PASSWORD@HOST:3306/fedchain)"
            )
        return sa.create_engine(
            parsed,
            pool_pre_ping=True,
            pool_recycle=3600,
            isolation_level="READ COMMITTED",
            connect_args={
                "connect_timeout": max(1, int(timeout)),
                "read_timeout": max(1, int(timeout)),
                "write_timeout": max(1, int(timeout)),
            },
        )
    raise ConfigError(f"--db-url must be SQLite or MySQL/MariaDB, got a {backend} URL")


def _row_block(row: Any) -> Block:
    """Rebuild a Block from a stored row, raising ChainError if a column cannot be read."""
    kind = parse_kind(row.kind)
    try:
        data = json.loads(row.payload)
    except (json.JSONDecodeError, UnicodeDecodeError, TypeError):
        raise BlockInvalid("payload column is not valid JSON") from None
    payload = payload_from_json(kind, data)
    if payload_text(payload) != row.payload:
        raise BlockInvalid("payload column is not in its canonical stored form")
    return Block(
        height=int(row.height),
        kind=kind,
        prev_hash=bytes(row.prev_hash),
        timestamp_ms=int(row.timestamp_ms),
        producer=row.producer,
        payload=payload,
        hash=bytes(row.hash),
        signature=bytes(row.signature),
    )


F = TypeVar("F", bound=Callable[..., Any])


def _contract_errors(method: F) -> F:
    """Keep a method to the ledger contract's errors.

    A closed store, a database failure (lost or refused connection, lock timeout, any
    SQLAlchemy error) or a disk failure of the blob store becomes LedgerUnavailable
    with a one-line message; ledger errors pass through.
    """

    @functools.wraps(method)
    def wrapper(self: Ledger, *args: Any, **kwargs: Any) -> Any:
        if self.closed:
            raise LedgerUnavailable(f"the ledger store on {redact(self.db_url)} is closed")
        try:
            return method(self, *args, **kwargs)
        except sa.exc.SQLAlchemyError as exc:
            detail = str(getattr(exc, "orig", None) or exc).splitlines()[0]
            raise LedgerUnavailable(
                f"ledger database {redact(self.db_url)} is unavailable: {detail}"
            ) from None
        except OSError as exc:
            raise LedgerUnavailable(
                f"ledger blob store {self.blobs.root} failed: {exc.strerror or exc}"
            ) from None

    return wrapper  # type: ignore[return-value]

class GroupCommit:
    """Appends queued for the next transaction, written by one committer thread.

    ``submit`` queues a block and returns a future for its outcome (the stored block or
    the ledger error it was refused with). The committer takes every queued block (at
    most ``max_blocks``) into one call of ``commit``, which returns one outcome per block,
    and resolves their futures once that call (a durable commit) returns. Queue order is
    submission order, so one writer may submit block h+1 before h is committed.
    """

    def __init__(
        self,
        commit: Callable[[list[Block]], list[Block | LedgerError]],
        *,
        max_blocks: int = GROUP_COMMIT_BLOCKS,
        idle_s: float = COMMITTER_IDLE_S,
    ) -> None:
        self._commit = commit
        self.max_blocks = max_blocks
        self.idle_s = idle_s
        self._cond = threading.Condition()
        self._queue: deque[tuple[Block, Future[Block]]] = deque()
        self._running = False

    def submit(self, block: Block) -> Future[Block]:
        """Queue ``block`` for the next transaction."""
        future: Future[Block] = Future()
        with self._cond:
            self._queue.append((block, future))
            if self._running:
                self._cond.notify()
            else:
                self._running = True
                threading.Thread(target=self._run, name="ledger-commit", daemon=True).start()
        return future

    def _take(self) -> list[tuple[Block, Future[Block]]]:
        with self._cond:
            if not self._queue:
                self._cond.wait(self.idle_s)
            if not self._queue:
                self._running = False
                return []
            count = min(len(self._queue), self.max_blocks)
            return [self._queue.popleft() for _ in range(count)]

    def _run(self) -> None:
        while batch := self._take():
            settled = False
            try:
                try:
                    outcomes = self._commit([block for block, _ in batch])
                except LedgerError as exc:
                    outcomes = [exc] * len(batch)
                for (_, future), outcome in zip(batch, outcomes, strict=True):
                    if isinstance(outcome, Block):
                        future.set_result(outcome)
                    else:
                        future.set_exception(outcome)
                settled = True
            finally:
                if not settled:  # an unexpected error ends this thread: no waiter hangs on it
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(LedgerUnavailable("the ledger's committer failed"))
                    with self._cond:
                        self._running = False
                        if self._queue:  # a new committer takes over what is still queued
                            self._running = True
                            threading.Thread(
                                target=self._run, name="ledger-commit", daemon=True
                            ).start()


_REFUSALS: list[tuple[type[ChainError], type[LedgerRejected]]] = [
    (NotNextBlock, OutOfSequence),
    (ProducerNotAdmitted, ProducerRejected),
    (BlobMissing, MissingBlob),
    (ChainError, InvalidBlock),
]


class Ledger:
    """Chain in SQL at ``db_url`` and blobs under ``blob_dir``; safe for threads and processes.

    ``create=False`` refuses (SchemaMismatch) a database that holds no ledger yet instead
    of creating the tables, for read-only uses such as ``fedchain verify``. A write that
    cannot start within ``write_timeout`` seconds raises LedgerUnavailable.
    """

    def __init__(
        self,
        db_url: str,
        blob_dir: Path,
        *,
        max_block_bytes: int = DEFAULT_MAX_BLOCK_BYTES,
        max_blob_bytes: int = DEFAULT_MAX_BLOB_BYTES,
        create: bool = True,
        write_timeout: float = 60.0,
        entry_key: bytes | None = None,
        blob_quota_bytes: int = DEFAULT_BLOB_QUOTA_BYTES,
    ) -> None:
        self.db_url = db_url
        self.entry_key = entry_key
        """The entry's key pinned before genesis (``fedchain ledger --entry-key``), or None."""
        self.blob_quota_bytes = blob_quota_bytes
        self.closed = False
        self.write_timeout = write_timeout
        self.create = create
        self.max_block_bytes = max_block_bytes
        self.engine = _make_engine(db_url, write_timeout)
        self._lock_fd: int | None = None
        database = self.engine.url.database
        if self.engine.dialect.name == "sqlite" and database and database != ":memory:":
            # writers from other processes queue on a kernel lock instead of SQLite's sleep-and-retry
            self._lock_fd = os.open(f"{database}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        self.blobs = BlobStore(Path(blob_dir), max_blob_bytes)
        self._commits = GroupCommit(self._append_batch)
        self._state = ChainState()
        self._index = _TreeIndex()
        self._index_lock = threading.Lock()
        self.quota = UploadQuota(
            blob_quota_bytes,
            self._referenced,
            lambda: ((b.digest, b.size) for b in self.blobs.stored()),
        )
        """The bytes of blobs no block references yet (tallied, not scanned per upload)."""
        self._has_heads = False
        try:
            self._init_schema()
        except SchemaMismatch:
            self.close()
            raise
        except sa.exc.OperationalError as exc:
            self.close()
            raise LedgerUnavailable(
                f"cannot open ledger database {redact(db_url)}: {str(exc.orig).splitlines()[0]}"
            ) from None
        except sa.exc.DatabaseError as exc:
            # e.g. SQLite's "file is not a database": the operator pointed us at the wrong file
            self.close()
            raise SchemaMismatch(
                f"{redact(db_url)} is not a fedchain ledger database: {str(exc.orig).splitlines()[0]}"
            ) from None

    # ---------------------------------------------------------------- schema
    def _init_schema(self) -> None:
        inspector = sa.inspect(self.engine)
        tables = set(inspector.get_table_names())
        if "ledger_meta" not in tables:
            if "blocks" in tables:
                raise SchemaMismatch(
                    f"database {redact(self.db_url)} has a 'blocks' table but no ledger_meta: not a fedchain ledger"
                )
            if not self.create:
                raise SchemaMismatch(f"database {redact(self.db_url)} holds no fedchain ledger")
            for _ in range(3):  # another process may be creating it at the same moment
                try:
                    schema.metadata.create_all(self.engine, checkfirst=True)
                    with self._write() as conn:
                        for name, value in (
                            ("schema_version", schema.SCHEMA_VERSION),
                            ("tip", schema.EMPTY_TIP),
                        ):
                            if (
                                conn.execute(
                                    sa.select(schema.ledger_meta.c.value).where(
                                        schema.ledger_meta.c.name == name
                                    )
                                ).first()
                                is None
                            ):
                                conn.execute(
                                    sa.insert(schema.ledger_meta).values(name=name, value=value)
                                )
                    break
                except (sa.exc.IntegrityError, sa.exc.OperationalError, sa.exc.ProgrammingError):
                    continue
        with self.engine.connect() as conn:
            version = conn.execute(
                sa.select(schema.ledger_meta.c.value).where(
                    schema.ledger_meta.c.name == "schema_version"
                )
            ).scalar()
        if version != schema.SCHEMA_VERSION:
            raise SchemaMismatch(
                f"database {redact(self.db_url)} has ledger schema version {version!r}; "
                f"this fedchain needs version {schema.SCHEMA_VERSION!r}"
            )
        if self.create:
            try:
                schema.tree_heads.create(self.engine, checkfirst=True)
            except (sa.exc.OperationalError, sa.exc.ProgrammingError):
                pass  # another process created it at the same moment
        self._has_heads = "tree_heads" in sa.inspect(self.engine).get_table_names()

    def _take_file_lock(self) -> None:
        """Wait (bounded by ``write_timeout``) for the SQLite writers' file lock."""
        assert self._lock_fd is not None
        deadline = time.monotonic() + self.write_timeout
        pause = 0.0005
        while True:
            try:
                fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise LedgerUnavailable(
                        f"ledger database {redact(self.db_url)} is busy: another writer held it for "
                        f"{self.write_timeout:g} s"
                    ) from None
                time.sleep(pause)
                pause = min(pause * 2, 0.005)

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        if self._lock_fd is not None:
            self._take_file_lock()
        try:
            with self.engine.connect() as conn:
                conn.execution_options(fedchain_write=True)
                with conn.begin():
                    yield conn
        finally:
            if self._lock_fd is not None:
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def close(self) -> None:
        """Release database connections; afterwards every method raises LedgerUnavailable."""
        self.closed = True
        self.engine.dispose()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    # ---------------------------------------------------------------- reads
    @staticmethod
    def _read_tip(conn: Connection, lock: bool = False) -> tuple[int, str]:
        query = sa.select(schema.ledger_meta.c.value).where(schema.ledger_meta.c.name == "tip")
        if lock:
            query = query.with_for_update()
        value = conn.execute(query).scalar()
        if value is None:
            raise LedgerCorrupt("the ledger_meta table has no tip record")
        return schema.parse_tip(value)

    def _load(self, conn: Connection, height: int) -> Block | None:
        row = conn.execute(sa.select(schema.blocks).where(schema.blocks.c.height == height)).first()
        if row is None:
            return None
        try:
            return _row_block(row)
        except ChainError as exc:
            raise LedgerCorrupt(f"stored block at height {height} is unreadable: {exc}") from None

    @_contract_errors
    def tip(self) -> Block | None:
        """The last block, or None when the chain is empty."""
        with self.engine.connect() as conn:
            height, _ = self._read_tip(conn)
            return None if height < 0 else self._load(conn, height)

    @_contract_errors
    def height(self) -> int:
        """Height of the tip (-1 when empty)."""
        with self.engine.connect() as conn:
            return self._read_tip(conn)[0]

    @_contract_errors
    def get(self, height: int) -> Block | None:
        """The block at ``height``, or None."""
        if not 0 <= height <= MAX_HEIGHT:
            return None
        with self.engine.connect() as conn:
            return self._load(conn, height)

    @_contract_errors
    def range(self, start: int, limit: int) -> list[Block]:
        """Up to ``limit`` (at most 1000) consecutive blocks from height ``start``."""
        limit = max(0, min(limit, MAX_RANGE))
        if start > MAX_HEIGHT:
            return []
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(schema.blocks)
                .where(schema.blocks.c.height >= start)
                .order_by(schema.blocks.c.height)
                .limit(limit)
            ).all()
        out = []
        for row in rows:
            try:
                out.append(_row_block(row))
            except ChainError as exc:
                raise LedgerCorrupt(
                    f"stored block at height {row.height} is unreadable: {exc}"
                ) from None
        return out

    # ---------------------------------------------------------------- blobs
    @_contract_errors
    def put_blob(self, data: bytes, expected_digest: str | None = None) -> str:
        """Store a safetensors blob; returns its hex SHA-256 (idempotent).

        QuotaExceeded when the blobs no block references yet would then exceed
        ``blob_quota_bytes``.
        """
        known = expected_digest or hashlib.sha256(data).hexdigest()
        if self.blobs.has(known):
            return self.blobs.put(data, expected_digest)
        self.quota.reserve(known, len(data))
        try:
            digest = self.blobs.put(data, expected_digest)
        except BaseException:
            self.quota.forget([known])
            raise
        self.quota.stored(known)
        return digest

    @_contract_errors
    def check_quota(self, size: int) -> None:
        """Raise QuotaExceeded unless a new blob of ``size`` bytes fits in the upload quota."""
        self.quota.check(size)

    def _referenced(self) -> set[str]:
        with self.engine.connect() as conn:
            return self._refresh_index(conn).referenced

    @_contract_errors
    def unreferenced_blobs(self, older_than_s: float = 0.0) -> list[StoredBlob]:
        """Stored blobs no block names, last modified more than ``older_than_s`` seconds ago."""
        with self.engine.connect() as conn:
            referenced = set(self._refresh_index(conn).referenced)
        cutoff = time.time() - older_than_s
        return [
            b
            for b in self.blobs.stored()
            if b.digest not in referenced and (older_than_s <= 0 or b.mtime < cutoff)
        ]

    @_contract_errors
    def remove_blobs(self, digests: list[str]) -> list[str]:
        """Delete the named blobs that no block references (re-checked); returns those removed."""
        with self.engine.connect() as conn:
            referenced = set(self._refresh_index(conn).referenced)
        removed = [d for d in digests if d not in referenced and self.blobs.remove(d)]
        self.quota.forget(removed)
        return removed

    @_contract_errors
    def expired_update_blobs(self, policy: KeepUpdates) -> list[StoredBlob]:
        """Stored update blobs of rounds older than ``policy`` keeps (never a model any block
        names, never an update of a retained round: ``retention.expired_updates``)."""
        if policy.rounds is None:
            return []
        expired = expired_updates(self._all_blocks(), policy)
        return [b for b in self.blobs.stored() if b.digest in expired]

    @_contract_errors
    def prune_updates(self, policy: KeepUpdates) -> list[str]:
        """Delete the update blobs ``policy`` no longer keeps; returns the digests removed."""
        if policy.rounds is None:
            return []
        expired = expired_updates(self._all_blocks(), policy)
        removed = [d for d in sorted(expired) if self.blobs.remove(d)]
        self.quota.forget(removed)
        return removed

    def _all_blocks(self) -> Iterator[Block]:
        start = 0
        while True:
            batch = self.range(start, MAX_RANGE)
            if not batch:
                return
            yield from batch
            start = batch[-1].height + 1

    @_contract_errors
    def upload_key(self) -> bytes | None:
        """The key a remote blob upload must be signed with.

        The chain's current authority (the genesis key, or the key it handed over to);
        before genesis the pinned ``entry_key``; None before genesis without one.
        """
        with self.engine.connect() as conn:
            tip_height, tip_hash = self._read_tip(conn)
            if tip_height < 0:
                return self.entry_key
            state = self._state_for(conn, tip_height, tip_hash)
        self._state = state  # replayed once, not on every upload (``_state_for`` re-checks it)
        return state.authority_key

    @_contract_errors
    def get_blob(self, digest: str, max_bytes: int | None = None) -> bytes:
        """The blob's bytes, digest re-checked (NotFound, LedgerCorrupt, TooLarge)."""
        return self.blobs.get(digest, max_bytes)

    @_contract_errors
    def has_blob(self, digest: str) -> bool:
        """True when the blob is stored."""
        return self.blobs.has(digest)

    # ---------------------------------------------------------------- append
    @_contract_errors
    def append(self, block: Block) -> Block:
        """Append ``block`` after the tip; returns the stored block.

        Idempotent: the same block again returns the stored one. Refusals raise a
        LedgerRejected subclass and leave the chain unchanged.
        """
        if not isinstance(block, Block):
            raise InvalidBlock(f"append needs a Block, got {type(block).__name__}")
        size = len(block.header()) + len(payload_text(block.payload))
        if size > self.max_block_bytes:
            raise TooLarge(
                f"block of {size} bytes exceeds the limit of {self.max_block_bytes} bytes"
            )
        settled = self._settled(block)
        if settled is not None:
            return settled
        future = self.submit(block)
        try:
            return future.result(timeout=6 * self.write_timeout)
        except FutureTimeout:
            raise LedgerUnavailable(
                f"append did not commit within {6 * self.write_timeout:g} s; retry"
            ) from None

    def _settled(self, block: Block) -> Block | None:
        """The stored block at a height the chain already holds (HeightConflict if it differs).

        Read without the write lock: a stored height never changes, so a writer that lost
        the race for it learns so without queueing for a transaction.
        """
        with self.engine.connect() as conn:
            tip_height, _ = self._read_tip(conn)
            if block.height > tip_height:
                return None
            existing = self._load(conn, block.height)
        if existing is not None and existing.hash == block.hash:
            return existing
        held = existing.hash.hex()[:16] if existing is not None else "?"
        raise HeightConflict(
            f"height {block.height} already holds block {held}…, not {block.hash.hex()[:16]}…"
        )

    def submit(self, block: Block) -> Future[Block]:
        """Queue ``block`` for the next group commit; its future holds what ``append`` returns.

        Blocks are checked in submission order, so a writer may submit a run of blocks
        (each built on the one before) and wait for their futures: they share commits.
        """
        if self.closed:
            raise LedgerUnavailable(f"the ledger store on {redact(self.db_url)} is closed")
        return self._commits.submit(block)

    @_contract_errors
    def _append_batch(self, blocks: list[Block]) -> list[Block | LedgerError]:
        for _ in range(5):
            try:
                return self._append_batch_once(blocks)
            except sa.exc.IntegrityError:
                continue  # lost a race the tip lock should have prevented: re-read and decide
        raise LedgerUnavailable("append kept colliding with concurrent writers; retry")

    def _state_for(self, conn: Connection, tip_height: int, tip_hash: str) -> ChainState:
        state = self._state
        if state.height > tip_height or (
            state.height == tip_height and state.tip_hash.hex() != tip_hash
        ):
            state = ChainState()
        if state.height < tip_height:
            state = state.copy()
            rows = conn.execute(
                sa.select(schema.blocks)
                .where(schema.blocks.c.height > state.height, schema.blocks.c.height <= tip_height)
                .order_by(schema.blocks.c.height)
            )
            for row in rows:
                try:
                    state.apply(_row_block(row))
                except ChainError as exc:
                    raise LedgerCorrupt(
                        f"stored block at height {row.height} is unreadable: {exc}"
                    ) from None
        return state

    def _append_batch_once(self, blocks: list[Block]) -> list[Block | LedgerError]:
        """One transaction: each block placed (or refused) in order, one tip update, one commit."""
        outcomes: list[Block | LedgerError] = []
        placed: dict[int, Block] = {}
        with self._write() as conn:
            tip_height, tip_hash = self._read_tip(conn, lock=True)
            state = self._state_for(conn, tip_height, tip_hash).copy()
            for block in blocks:
                try:
                    outcomes.append(self._place(conn, block, state, placed))
                except LedgerRejected as exc:
                    outcomes.append(exc)
            if placed:
                conn.execute(
                    sa.insert(schema.blocks),
                    [
                        {
                            "height": b.height,
                            "kind": str(b.kind),
                            "prev_hash": b.prev_hash,
                            "hash": b.hash,
                            "timestamp_ms": b.timestamp_ms,
                            "producer": b.producer,
                            "payload": payload_text(b.payload),
                            "signature": b.signature,
                        }
                        for b in placed.values()
                    ],
                )
                conn.execute(
                    sa.update(schema.ledger_meta)
                    .where(schema.ledger_meta.c.name == "tip")
                    .values(value=schema.tip_value(state.height, state.tip_hash.hex()))
                )
        if placed:
            self._state = state
        return outcomes

    def _place(
        self, conn: Connection, block: Block, state: ChainState, placed: dict[int, Block]
    ) -> Block:
        """``block`` after ``state`` (applied to it), the stored one again, or a refusal."""
        if block.height < state.next_height:
            existing = placed.get(block.height) or self._load(conn, block.height)
            if existing is not None and existing.hash == block.hash:
                return existing
            held = existing.hash.hex()[:16] if existing is not None else "?"
            raise HeightConflict(
                f"height {block.height} already holds block {held}…, not {block.hash.hex()[:16]}…"
            )

        def blob_problem(digest: str) -> str | None:
            if self.blobs.has(digest):
                return None
            return "not in the blob store (put the blob before appending the block)"

        try:
            check_block(block, state, blob_problem)
            self._check_pinned_genesis(block)
        except ChainError as exc:
            for chain_cls, refusal in _REFUSALS:
                if isinstance(exc, chain_cls):
                    raise refusal(f"block {block.height} refused: {exc}") from None
            raise
        state.apply(block)
        placed[block.height] = block
        return block

    def _check_pinned_genesis(self, block: Block) -> None:
        p = block.payload
        if (
            self.entry_key is not None
            and isinstance(p, GenesisPayload)
            and bytes.fromhex(p.entry_public_key) != self.entry_key
        ):
            raise ProducerNotAdmitted(
                f"genesis names the entry key {p.entry_public_key[:16]}…, but this ledger "
                f"was started for the entry key {self.entry_key.hex()[:16]}… (--entry-key)"
            )

    # ---------------------------------------------------------------- tree heads
    def _refresh_index(self, conn: Connection) -> _TreeIndex:
        """The cached leaves brought up to the tip (rebuilt when the stored chain changed)."""
        with self._index_lock:
            tip_height, tip_hash = self._read_tip(conn)
            size = tip_height + 1
            index = self._index
            if len(index.leaves) > size or (
                size and len(index.leaves) == size and index.leaves[-1].hex() != tip_hash
            ):
                index = _TreeIndex()
            if len(index.leaves) < size:
                rows = conn.execute(
                    sa.select(schema.blocks.c.height, schema.blocks.c.hash, schema.blocks.c.payload)
                    .where(
                        schema.blocks.c.height >= len(index.leaves),
                        schema.blocks.c.height <= tip_height,
                    )
                    .order_by(schema.blocks.c.height)
                )
                for row in rows:
                    if row.height != len(index.leaves):
                        raise LedgerCorrupt(f"block {len(index.leaves)} is missing from the ledger")
                    index.leaves.append(bytes(row.hash))
                    index.referenced |= referenced_digests(row.payload)
                if len(index.leaves) != size or (size and index.leaves[-1].hex() != tip_hash):
                    self._index = _TreeIndex()
                    raise LedgerCorrupt(
                        f"the ledger's blocks do not reach its tip record (height {tip_height})"
                    )
            self._index = index
            return index

    def _leaves(self) -> list[bytes]:
        with self.engine.connect() as conn:
            return list(self._refresh_index(conn).leaves)

    @_contract_errors
    def put_tree_head(self, head: TreeHead) -> TreeHead:
        """Store the entry's signed tree head after checking it against the chain."""
        if not isinstance(head, TreeHead):
            raise InvalidTreeHead(f"put_tree_head needs a TreeHead, got {type(head).__name__}")
        with self._write() as conn:
            tip_height, tip_hash = self._read_tip(conn, lock=True)
            leaves = list(self._refresh_index(conn).leaves)
            if not leaves:
                raise InvalidTreeHead("the chain is empty: there is nothing for a head to sign")
            if head.chain_id != leaves[0]:
                raise InvalidTreeHead(
                    f"tree head is for chain {head.chain_id.hex()[:16]}…, not this ledger's "
                    f"chain {leaves[0].hex()[:16]}…"
                )
            if head.size > len(leaves):
                raise InvalidTreeHead(
                    f"tree head names {head.size} blocks; the ledger holds {len(leaves)}"
                )
            if head.size == 0 or merkle.root(leaves[: head.size]) != head.root:
                raise InvalidTreeHead(
                    f"tree head root is not the root of the ledger's first {head.size} blocks"
                )
            state = self._state_for(conn, tip_height, tip_hash)
            try:
                head.check_signature(state.authority_key)
            except TreeHeadInvalid as exc:
                raise InvalidTreeHead(str(exc)) from None
            latest = self._latest_head(conn)
            if latest is not None and head.size < latest.size:
                raise InvalidTreeHead(
                    f"tree head of {head.size} blocks is older than the stored head of "
                    f"{latest.size} blocks"
                )
            if latest is not None and head.size == latest.size:
                return latest
            conn.execute(
                sa.insert(schema.tree_heads).values(
                    size=head.size,
                    chain_id=head.chain_id,
                    root=head.root,
                    timestamp_ms=head.timestamp_ms,
                    signer=head.signer,
                    signature=head.signature,
                )
            )
        return head

    def _latest_head(self, conn: Connection) -> TreeHead | None:
        if not self._has_heads:
            return None
        row = conn.execute(
            sa.select(schema.tree_heads).order_by(schema.tree_heads.c.size.desc()).limit(1)
        ).first()
        if row is None:
            return None
        return TreeHead(
            bytes(row.chain_id),
            int(row.size),
            bytes(row.root),
            int(row.timestamp_ms),
            row.signer,
            bytes(row.signature),
        )

    @_contract_errors
    def tree_head(self) -> TreeHead | None:
        """The latest signed tree head stored, or None."""
        with self.engine.connect() as conn:
            return self._latest_head(conn)

    @_contract_errors
    def consistency(self, old_size: int, new_size: int) -> list[bytes]:
        """RFC 6962 consistency proof from ``old_size`` to ``new_size`` blocks."""
        if not 0 <= old_size <= new_size:
            raise InvalidTreeHead(
                f"a consistency proof goes from a smaller to a larger size, not {old_size} to "
                f"{new_size}"
            )
        leaves = self._leaves()
        if new_size > len(leaves):
            raise NotFound(f"the ledger holds {len(leaves)} blocks, not {new_size}")
        return merkle.consistency_proof(leaves[:new_size], old_size)

    # ---------------------------------------------------------------- proofs
    @_contract_errors
    def inclusion_proof(self, height: int, update_digest: str) -> InclusionProof:
        """Proof that ``update_digest`` is among the update digests of round block ``height``."""
        check_digest(update_digest)
        block = self.get(height)
        if block is None:
            raise NotFound(f"no block at height {height}")
        if not isinstance(block.payload, RoundPayload):
            raise InvalidBlock(f"block {height} is a {block.kind} block, not a round block")
        digests = block.payload.update_digests
        if update_digest not in digests:
            raise NotFound(f"update {update_digest[:16]}… is not in round block {height}")
        index = digests.index(update_digest)
        row = block.payload.participants[index]
        leaves = [p.leaf() for p in block.payload.participants]
        return InclusionProof(
            height,
            index,
            len(leaves),
            update_digest,
            merkle.inclusion_proof(leaves, index),
            bytes.fromhex(block.payload.merkle_root),
            row.node_id,
            row.samples,
        )

    # ---------------------------------------------------------------- verify
    @_contract_errors
    def verify(self, progress: Callable[[int], None] | None = None) -> VerifyReport:
        """Recompute every hash, link, signature, Merkle root and blob digest from the rows.

        Stops at the first bad height. Blocks appended while verifying are not checked.
        """
        with self.engine.connect() as conn:
            try:
                tip_height, tip_hash = self._read_tip(conn)
            except LedgerCorrupt as exc:
                return VerifyReport(False, 0, None, str(exc))
        blob_results: dict[str, str | None] = {}

        def blob_problem(digest: str) -> str | None:
            if digest not in blob_results:
                blob_results[digest] = self.blobs.problem(digest)
            return blob_results[digest]

        state = ChainState()
        checked = 0
        expected = 0

        def bad(height: int | None, reason: str) -> VerifyReport:
            return VerifyReport(False, checked, height, reason)

        while expected <= tip_height:
            with self.engine.connect() as conn:
                rows = conn.execute(
                    sa.select(schema.blocks)
                    .where(schema.blocks.c.height >= expected, schema.blocks.c.height <= tip_height)
                    .order_by(schema.blocks.c.height)
                    .limit(_BATCH)
                ).all()
            if not rows:
                break
            for row in rows:
                if row.height != expected:
                    return bad(
                        expected,
                        f"block is missing (the next stored block is at height {row.height})",
                    )
                try:
                    block = _row_block(row)
                    check_block(block, state, blob_problem)
                except ChainError as exc:
                    return bad(expected, str(exc))
                state.apply(block)
                checked += 1
                expected += 1
            if progress is not None:
                progress(checked)
        if state.height < tip_height:
            return bad(
                state.height + 1,
                f"block is missing (the ledger's tip record says the chain reaches height {tip_height})",
            )
        if tip_height >= 0 and state.tip_hash.hex() != tip_hash:
            checked -= 1  # the tip itself does not hold
            return bad(tip_height, "block hash differs from the ledger's tip record")
        report = VerifyReport(True, checked, None if tip_height < 0 else tip_height, None)
        with self.engine.connect() as conn:
            stored = self._latest_head(conn)
        if stored is None:
            return report
        return audit.audit_heads(audit.collect(self), report, stored, audit.Anchors())
