"""`fedchain ledger` and `fedchain verify` as a user runs them."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from ledger_kit import Federation, truncate

from fedchain.services.ledger.server import LedgerService
from fedchain.services.ledger.store import Ledger
from fedchain.shared.chain.blocks import build_block
from fedchain.shared.config import Settings
from fedchain.shared.ledger.client import LedgerClient
from fedchain.shared.ledger.results import VerifyReport
from tests.conftest import free_port

REPO = Path(__file__).resolve().parents[3]


def fedchain(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fedchain.services.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )


@pytest.fixture
def running_ledger(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], str, Path]]:
    state, port, http_port = tmp_path / "state", free_port(), free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "fedchain.services.cli.main",
            "ledger",
            "--state-dir",
            str(state),
            "--port",
            str(port),
            "--http-port",
            str(http_port),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()  # the listening line (or EOF if it failed)
    assert (
        f"gRPC on 127.0.0.1:{port}" in line and f"HTTP on http://127.0.0.1:{http_port}" in line
    ), line + (proc.stderr.read() if proc.stderr else "")
    try:
        yield proc, f"127.0.0.1:{port}", state
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


def test_ledger_serves_verifies_and_stops_cleanly_on_sigterm(running_ledger: tuple) -> None:  # type: ignore[type-arg]
    proc, address, state = running_ledger
    with LedgerClient(address) as client:
        Federation(client).standard_chain()  # type: ignore[arg-type]
    ok = fedchain("verify", "--ledger", address)
    assert ok.returncode == 0 and ok.stdout.strip() == "ok: 10 blocks verified (heights 0..9)", (
        ok.stderr
    )
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "ledger: stopping" in out and "Traceback" not in err
    # the same chain, verified from its files
    local = fedchain("verify", "--state-dir", str(state))
    assert local.returncode == 0 and "10 blocks verified" in local.stdout
    down = fedchain("verify", "--ledger", address)
    assert down.returncode == 3 and "unavailable" in down.stderr and "Traceback" not in down.stderr


def test_verify_names_the_first_bad_height(tmp_path: Path) -> None:
    state = tmp_path / "state"
    ledger = Ledger(f"sqlite:///{state / 'ledger.db'}", state / "blobs")
    Federation(ledger).standard_chain()
    ledger.close()
    assert fedchain("verify", "--state-dir", str(state)).returncode == 0
    with sqlite3.connect(state / "ledger.db") as conn:
        conn.execute("UPDATE blocks SET timestamp_ms = timestamp_ms + 1 WHERE height = 6")
    bad = fedchain("verify", "--state-dir", str(state))
    assert bad.returncode == 1
    assert bad.stdout.startswith("FAILED at height 6: hash does not match"), bad.stdout
    same = fedchain(
        "verify", "--db-url", f"sqlite:///{state / 'ledger.db'}", "--blobs", str(state / "blobs")
    )
    assert same.returncode == 1 and "height 6" in same.stdout


def test_verify_against_mysql_by_url(mysql_url: str, tmp_path: Path) -> None:
    ledger = Ledger(mysql_url, tmp_path / "blobs")
    Federation(ledger).standard_chain()
    ledger.close()
    ok = fedchain("verify", "--db-url", mysql_url, "--blobs", str(tmp_path / "blobs"))
    assert ok.returncode == 0 and "10 blocks verified" in ok.stdout, ok.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["verify", "--ledger", "127.0.0.1:1", "--state-dir", "x"], "cannot be combined"),
        (["verify", "--ledger", "no-port-here"], "HOST:PORT"),
        (["verify", "--blobs", "x"], "--blobs goes with --db-url"),
        (["verify", "--state-dir", "/nonexistent/fedchain"], "no ledger in /nonexistent/fedchain"),
        (["verify", "--db-url", "::not a url::", "--blobs", "/tmp"], "not a database URL"),
        (
            ["verify", "--db-url", "postgresql://u@127.0.0.1/x", "--blobs", "/tmp"],
            "SQLite or MySQL",
        ),
        (["ledger", "--port", "70000"], "port"),
        (["ledger", "--entry-key", "abc"], "--entry-key must be 64 hex"),
        (["verify", "--genesis", "zz"], "--genesis must be 64 hex"),
        (["verify", "--head", "/nonexistent/head.json"], "neither HEIGHT:HASH nor a tree head"),
        (["verify", "--head", "3:beef"], "the hash in --head HEIGHT:HASH"),
    ],
)
def test_bad_flags_exit_2_with_one_line(args: list[str], message: str, tmp_path: Path) -> None:
    result = fedchain(*args)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert message in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_port_in_use_is_a_clear_error(running_ledger: tuple, tmp_path: Path) -> None:  # type: ignore[type-arg]
    _, address, _ = running_ledger
    port = address.rsplit(":", 1)[1]
    result = fedchain(
        "ledger",
        "--state-dir",
        str(tmp_path / "other"),
        "--port",
        port,
        "--http-port",
        str(free_port()),
        timeout=60,
    )
    assert (
        result.returncode == 2
        and f"--port {port}: 127.0.0.1:{port} is already in use" in result.stderr
        and "Traceback" not in result.stderr
    )


def test_verify_holds_the_chain_to_the_head_and_genesis_it_is_given(tmp_path: Path) -> None:
    state = tmp_path / "state"
    ledger = Ledger(f"sqlite:///{state / 'ledger.db'}", state / "blobs")
    fed = Federation(ledger)
    fed.standard_chain()
    head = fed.sign_head()
    head.save(tmp_path / "tree_head.json")  # what the entry keeps in its state dir
    genesis, tip = fed.blocks[0].hash.hex(), f"9:{fed.blocks[9].hash.hex()}"
    anchors = ["--head", str(tmp_path / "tree_head.json"), "--genesis", genesis]
    ok = fedchain("verify", "--state-dir", str(state), *anchors, "--entry-key", fed.entry.public_hex)
    assert ok.returncode == 0 and "10 blocks verified" in ok.stdout, ok.stdout + ok.stderr
    truncate(ledger.engine, keep=7)  # blocks 7..9 and the ledger's head deleted, tip rewritten
    ledger.close()
    assert fedchain("verify", "--state-dir", str(state)).returncode == 0  # nothing to hold it to
    for head_arg in (str(tmp_path / "tree_head.json"), tip):
        bad = fedchain("verify", "--state-dir", str(state), "--head", head_arg)
        assert bad.returncode == 1, bad.stdout + bad.stderr
        assert bad.stdout.startswith("FAILED at height 7: blocks 7..9 are missing"), bad.stdout
    other = fedchain("verify", "--state-dir", str(state), "--genesis", "ab" * 32)
    assert other.returncode == 1 and "FAILED at height 0" in other.stdout
    assert "the chain was replaced" in other.stdout


def test_verify_reports_a_block_an_admitted_en_wrote_into_the_database(tmp_path: Path) -> None:
    state = tmp_path / "state"
    ledger = Ledger(f"sqlite:///{state / 'ledger.db'}", state / "blobs")
    fed = Federation(ledger)
    fed.standard_chain()
    ledger.close()
    block, en = fed.blocks[8], fed.ens[0]
    forged = build_block(block.kind, block.payload, fed.blocks[7], en, block.timestamp_ms)
    with sqlite3.connect(state / "ledger.db") as conn:
        conn.execute(
            "UPDATE blocks SET producer = ?, hash = ?, signature = ? WHERE height = 8",
            (forged.producer, forged.hash, forged.signature),
        )
    bad = fedchain("verify", "--state-dir", str(state))
    assert bad.returncode == 1
    assert bad.stdout.startswith(f"FAILED at height 8: producer {en.node_id} is an admitted EN")


def test_verify_ledger_checks_on_this_side_not_the_ledgers_verdict(tmp_path: Path) -> None:
    store = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}", tmp_path / "blobs")
    fed = Federation(store)
    fed.standard_chain()
    fed.sign_head()
    store.verify = lambda progress=None: VerifyReport(True, 10, 9, None)  # type: ignore[method-assign]
    service = LedgerService(
        Settings(state_dir=tmp_path / "s", port=free_port(), http_port=free_port()), ledger=store
    )
    service.start()
    try:
        ok = fedchain("verify", "--ledger", service.grpc_address)
        assert ok.returncode == 0 and "10 blocks verified" in ok.stdout, ok.stdout + ok.stderr
        path = store.blobs.path(fed.blocks[4].payload.model_digest)  # type: ignore[union-attr]
        raw = bytearray(path.read_bytes())
        raw[-1] ^= 1
        path.write_bytes(bytes(raw))
        bad = fedchain("verify", "--ledger", service.grpc_address)
        assert bad.returncode == 1 and bad.stdout.startswith("FAILED at height 4"), bad.stdout
        assert "altered" in bad.stdout
    finally:
        service.stop()
