"""`fedchain ledger` (run the ledger service), `fedchain ledger gc` (remove blobs no block
references) and `fedchain verify` (audit a chain).

Exit codes of ``verify``: 0 the chain verifies, 1 it does not (the first bad height
and why are printed), 2 bad flags or configuration, 3 the ledger cannot be reached.
``verify --ledger`` replays the chain on this side from the blocks and blobs the ledger
serves; ``--genesis`` / ``--entry-key`` / ``--head`` hold it to what the auditor knew.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from fedchain.services.cli.errors import fail
from fedchain.shared.config import ConfigError, load_settings

if TYPE_CHECKING:
    from fedchain.services.ledger.store import Ledger
    from fedchain.shared.ledger.audit import Anchors
    from fedchain.shared.ledger.client import LedgerClient
    from fedchain.shared.ledger.contract import LedgerContract
    from fedchain.shared.ledger.deep import RoundCheck
    from fedchain.shared.ledger.results import VerifyReport

DEFAULT_GC_AGE_S = 600.0


def _fail(message: str, code: int) -> None:
    fail(message, code)


def _hex_key(text: str | None, flag: str) -> bytes | None:
    if text is None:
        return None
    from fedchain.shared.ledger.audit import parse_hash

    try:
        return parse_hash(text, flag)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def register(app: typer.Typer) -> None:
    """Add ``ledger`` (with ``ledger gc``) and ``verify`` to the app."""
    ledger_app = typer.Typer(
        invoke_without_command=True,
        help="Run the ledger: gRPC and HTTP (/docs) until SIGTERM or Ctrl-C; `gc` removes "
        "blobs no block references.",
    )
    app.add_typer(ledger_app, name="ledger")

    @ledger_app.callback()
    def ledger_command(
        ctx: typer.Context,
        state_dir: Path | None = typer.Option(
            None, "--state-dir", help="chain (SQLite) and blobs live here"
        ),
        db_url: str | None = typer.Option(
            None, "--db-url", help="SQLAlchemy URL, e.g. mysql+pymysql://u:p@host/db"
        ),
        port: int | None = typer.Option(None, "--port", help="gRPC port"),
        http_port: int | None = typer.Option(
            None, "--http-port", help="HTTP port (default port+1000)"
        ),
        host: str | None = typer.Option(None, "--host", help="address to bind"),
        entry_key: str | None = typer.Option(
            None,
            "--entry-key",
            envvar="FEDCHAIN_LEDGER_ENTRY_KEY",
            help="the entry's public key (hex): only it may upload blobs and write genesis "
            "(without it the first genesis pins the key)",
        ),
        blob_quota_mb: int = typer.Option(
            1024, "--blob-quota-mb", min=1, help="MB of blobs no block references yet"
        ),
        config: Path | None = typer.Option(
            None, "--config", help="config file (JSON, YAML or TOML)"
        ),
    ) -> None:
        """Run the ledger: gRPC and HTTP (/docs) until SIGTERM or Ctrl-C."""
        if ctx.invoked_subcommand is not None:
            return
        settings = load_settings(
            config, state_dir=state_dir, db_url=db_url, port=port, http_port=http_port, host=host
        )
        from fedchain.services.ledger.server import serve
        from fedchain.shared.ledger.errors import LedgerError

        try:
            serve(
                settings,
                announce=lambda line: print(line, flush=True),
                # the flag, else FEDCHAIN_LEDGER_ENTRY_KEY (environment, .env or --config)
                entry_key=_hex_key(entry_key or settings.ledger_entry_key, "--entry-key"),
                blob_quota_bytes=blob_quota_mb * 1024 * 1024,
            )
        except LedgerError as exc:
            _fail(str(exc), 2)

    @ledger_app.command("gc")
    def gc_command(
        state_dir: Path | None = typer.Option(
            None, "--state-dir", help="the ledger kept in this folder"
        ),
        db_url: str | None = typer.Option(None, "--db-url", help="the chain in this database"),
        blobs: Path | None = typer.Option(None, "--blobs", help="blob folder (with --db-url)"),
        older_than: float = typer.Option(
            DEFAULT_GC_AGE_S,
            "--older-than",
            min=0,
            help="seconds: keep younger blobs (an upload whose block is on its way)",
        ),
        yes: bool = typer.Option(False, "--yes", help="delete them (default: only list them)"),
        keep_updates: str | None = typer.Option(
            None,
            "--keep-updates",
            help="all, none or last:N: also remove the update blobs of older rounds "
            "(default: FEDCHAIN_KEEP_UPDATES, else all)",
        ),
        config: Path | None = typer.Option(
            None, "--config", help="config file (JSON, YAML or TOML)"
        ),
    ) -> None:
        """List (or with --yes delete) blobs that no block references, and update blobs of
        rounds older than --keep-updates keeps."""
        from fedchain.shared.ledger.errors import LedgerError, LedgerUnavailable

        if blobs is not None and db_url is None:
            _fail("--blobs goes with --db-url (with --state-dir the blobs are in DIR/blobs)", 2)
        settings = load_settings(
            config, state_dir=state_dir, db_url=db_url, keep_updates=keep_updates
        )
        policy = settings.keep_updates_policy
        try:
            store = _open_store(settings.state_dir, settings.db_url, blobs)
            try:
                expired = store.expired_update_blobs(policy)
                if expired or policy.rounds is not None:
                    verb = "removing" if yes else "would remove"
                    print(
                        f"gc: {verb} {len(expired)} update blobs "
                        f"({sum(b.size for b in expired)} bytes) of rounds older than "
                        f"keep-updates {policy} keeps"
                    )
                    for b in expired:
                        print(f"  {b.digest}  {b.size} bytes")
                    if yes:
                        print(f"gc: removed {len(store.prune_updates(policy))} update blobs")
                found = store.unreferenced_blobs(older_than)
                total = sum(b.size for b in found)
                verb = "removing" if yes else "would remove"
                print(
                    f"gc: {verb} {len(found)} blobs ({total} bytes) that no block references"
                    f" (older than {older_than:g} s) from {store.blobs.root}"
                )
                for b in found:
                    print(f"  {b.digest}  {b.size} bytes")
                if yes:
                    removed = store.remove_blobs([b.digest for b in found])
                    print(f"gc: removed {len(removed)} blobs")
                elif found:
                    print("gc: dry run; add --yes to delete them")
            finally:
                store.close()
        except LedgerUnavailable as exc:
            _fail(str(exc), 3)
        except LedgerError as exc:
            _fail(str(exc), 2)

    @app.command("verify")
    def verify_command(
        state_dir: Path | None = typer.Option(
            None, "--state-dir", help="verify the ledger kept in this folder"
        ),
        db_url: str | None = typer.Option(
            None, "--db-url", help="verify the chain in this database"
        ),
        blobs: Path | None = typer.Option(None, "--blobs", help="blob folder (with --db-url)"),
        ledger: str | None = typer.Option(
            None, "--ledger", help="HOST:PORT: check a running ledger's blocks and blobs here"
        ),
        genesis: str | None = typer.Option(
            None, "--genesis", help="hash (hex) the genesis block must have"
        ),
        entry_key: str | None = typer.Option(
            None, "--entry-key", help="public key (hex) genesis must name as the entry"
        ),
        head: str | None = typer.Option(
            None,
            "--head",
            help="FILE (a signed tree head, e.g. the entry's tree_head.json) or HEIGHT:HASH "
            "the chain must extend",
        ),
        config: Path | None = typer.Option(
            None, "--config", help="config file (JSON, YAML or TOML)"
        ),
        proof: Path | None = typer.Option(
            None, "--proof", help="check this round inclusion proof file offline, nothing else"
        ),
        round_no: int | None = typer.Option(
            None, "--round", min=1, help="with --node and --api: fetch and check that proof"
        ),
        node: str | None = typer.Option(None, "--node", help="EN node id (with --round)"),
        api: str | None = typer.Option(
            None, "--api", help="HOST:PORT of the entry's (or an SN's) HTTP API (with --round)"
        ),
        deep: bool = typer.Option(
            False,
            "--deep",
            help="also recompute each SN's aggregate and the global model of every round from "
            "the retained updates, bit for bit",
        ),
        require_all: bool = typer.Option(
            False, "--require-all", help="with --deep: a round whose updates were not retained fails"
        ),
    ) -> None:
        """Recompute every hash, link, signature, Merkle root and blob digest of the chain.

        With ``--proof FILE`` (or ``--round R --node ID --api HOST:PORT``) check one EN's
        inclusion proof instead: its leaf, audit path, block hashes, entry and EN signatures.
        With ``--deep`` recompute every round from its retained updates too (``--require-all``:
        a round whose updates were not retained fails).
        """
        from fedchain.shared.ledger.errors import LedgerError, LedgerUnavailable

        if proof is not None or round_no is not None or node is not None:
            _verify_proof(proof, round_no, node, api, genesis)

        if ledger is not None and (state_dir or db_url or blobs):
            _fail("--ledger cannot be combined with --state-dir, --db-url or --blobs", 2)
        if blobs is not None and db_url is None:
            _fail("--blobs goes with --db-url (with --state-dir the blobs are in DIR/blobs)", 2)
        if require_all and not deep:
            _fail("--require-all goes with --deep", 2)
        anchors = _anchors(genesis, entry_key, head)
        deep_check = _deep_check(require_all) if deep else None
        settings = load_settings(config, state_dir=state_dir, db_url=db_url)
        try:
            if ledger is not None:
                from fedchain.shared.ledger.client import LedgerClient
                from fedchain.shared.net.grpc_util import parse_address

                parse_address(ledger, "--ledger")
                with LedgerClient(
                    ledger,
                    tls_ca=settings.tls_ca,
                    tls_cert=settings.tls_cert,
                    tls_key=settings.tls_key,
                    max_message_mb=settings.max_message_mb,
                ) as client:
                    report = _verify_remote(client, anchors)
                    print(report.summary())
                    deep_ok = report.ok and (deep_check is None or deep_check(client))
            else:
                store = _open_store(settings.state_dir, settings.db_url, blobs)
                try:
                    report = verify_store(store, anchors)
                    print(report.summary())
                    deep_ok = report.ok and (deep_check is None or deep_check(store))
                finally:
                    store.close()
        except LedgerUnavailable as exc:
            _fail(str(exc), 3)
        except LedgerError as exc:
            _fail(str(exc), 2)
        raise typer.Exit(0 if deep_ok else 1)


def _verify_proof(
    path: Path | None, round_no: int | None, node: str | None, api: str | None, genesis: str | None
) -> None:
    from fedchain.services.cli.proof_check import (
        ProofFetchFailed,
        fetch_proof,
        proof_verdict,
        read_proof,
    )

    if path is not None and (round_no is not None or node is not None or api is not None):
        _fail("--proof FILE and --round/--node/--api are two ways to give one proof; use one", 2)
    if path is None and (round_no is None or node is None or api is None):
        _fail("--round, --node and --api go together (or give --proof FILE)", 2)
    try:
        if path is not None:
            data = read_proof(path)
        else:
            assert round_no is not None and node is not None and api is not None
            data = fetch_proof(api, round_no, node)
    except ProofFetchFailed as exc:
        _fail(str(exc), exc.code)
    ok, line = proof_verdict(data, _hex_key(genesis, "--genesis"))
    print(line)
    raise typer.Exit(0 if ok else 1)


def _deep_check(require_all: bool) -> Callable[[LedgerContract], bool]:
    """``--deep``: recompute every round (``shared/ledger/deep.py``) and print what it found."""

    def check(ledger: LedgerContract) -> bool:
        from fedchain.shared.ledger.deep import MISMATCH, verify_deep

        def show(c: RoundCheck) -> None:
            if c.status == MISMATCH or sys.stderr.isatty():
                detail = f" ({c.detail})" if c.detail else ""
                print(f"deep: height {c.height} round {c.round}: {c.status}{detail}",
                      file=sys.stderr, flush=True)

        report = verify_deep(ledger, require_all=require_all, progress=show)
        print(report.summary())
        return report.ok

    return check


def _anchors(genesis: str | None, entry_key: str | None, head: str | None) -> Anchors:
    from fedchain.shared.ledger.audit import Anchors, parse_head

    try:
        parsed_head = None if head is None else parse_head(head)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    return Anchors(
        genesis=_hex_key(genesis, "--genesis"),
        entry_key=_hex_key(entry_key, "--entry-key"),
        head=parsed_head,
        head_source=f"the head {head}",
    )


def _progress() -> Callable[[int], None]:
    last = [0]

    def progress(checked: int) -> None:
        if sys.stderr.isatty() and checked - last[0] >= 5000:
            last[0] = checked
            print(f"verify: {checked} blocks checked…", file=sys.stderr, flush=True)

    return progress


def _verify_remote(client: LedgerClient, anchors: Anchors) -> VerifyReport:
    """Replay the chain from what the ledger serves; never print the ledger's own verdict."""
    from fedchain.shared.ledger import audit

    report, facts = audit.replay(client, _progress())
    return audit.audit_heads(facts, report, client.tree_head(), anchors)


def _open_store(state_dir: Path, db_url: str | None, blobs: Path | None) -> Ledger:
    from fedchain.services.ledger.store import Ledger, default_db_url

    state_dir = ledger_folder(Path(state_dir), has_db_url=db_url is not None)
    if db_url is None:
        if not (state_dir / "ledger.db").is_file():
            raise ConfigError(
                f"no ledger in {state_dir} (expected {state_dir / 'ledger.db'}, "
                f"or {state_dir / 'ledger' / 'ledger.db'} for a `fedchain up` state dir)"
            )
        db_url = default_db_url(state_dir)
    blob_dir = blobs if blobs is not None else Path(state_dir) / "blobs"
    if not Path(blob_dir).is_dir():
        raise ConfigError(f"blob folder {blob_dir} does not exist")
    return Ledger(db_url, blob_dir, create=False)


def ledger_folder(state_dir: Path, *, has_db_url: bool) -> Path:
    """The folder holding the ledger's files: ``state_dir`` itself, or its ``ledger/``
    when ``state_dir`` is the one `fedchain up` used (entry/, sn*/, en*/, ledger/)."""
    own = (state_dir / "blobs").is_dir() if has_db_url else (state_dir / "ledger.db").is_file()
    nested = state_dir / "ledger"
    if not own and ((nested / "ledger.db").is_file() or (has_db_url and (nested / "blobs").is_dir())):
        return nested
    return state_dir


def verify_store(ledger: Ledger, anchors: Anchors) -> VerifyReport:
    """The store's own row-level check (and its latest head), then the auditor's anchors."""
    from fedchain.shared.ledger import audit

    report = ledger.verify(_progress())
    if not report.ok:
        return report
    return audit.audit_heads(audit.collect(ledger), report, None, anchors)

