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
from ledger_kit import Federation

from fedchain.services.ledger.store import Ledger
from fedchain.shared.ledger.client import LedgerClient
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
        and "cannot listen" in result.stderr
        and "Traceback" not in result.stderr
    )
