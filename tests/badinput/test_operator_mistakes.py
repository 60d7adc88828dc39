"""Operator mistakes from the operations issue: each is one fedchain line on stderr, exit 2,
no traceback, and nothing created (a ledger file, a blob folder, a key)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from fedchain.services.ledger.store import Ledger
from tests.badinput.test_cli_bad_config import assert_refused, run_cli
from tests.conftest import free_port

TOKENS = {
    "FEDCHAIN_SN_JOIN_TOKEN": "s" * 32,
    "FEDCHAIN_EN_JOIN_TOKEN": "e" * 32,
    "FEDCHAIN_API_TOKEN": "a" * 32,
}


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port something listens on for the length of the test."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


def test_verify_on_a_file_that_is_not_sqlite(tmp_path: Path) -> None:
    (tmp_path / "ledger.db").write_bytes(b"this is not a database\n" * 50)
    (tmp_path / "blobs").mkdir()
    assert_refused(run_cli(["verify", "--state-dir", str(tmp_path)], tmp_path), "not a fedchain ledger")


def test_verify_with_a_mysql_url_naming_no_database(tmp_path: Path) -> None:
    # exactly what scripts/mysql-up prints: a server URL without /DBNAME
    (tmp_path / "blobs").mkdir()
    url = "mysql+pymysql://fedchain:secret-password@127.0.0.1:9"
    done = run_cli(["verify", "--db-url", url, "--blobs", str(tmp_path / "blobs")], tmp_path)
    assert_refused(done, "names no database")
    assert "secret-password" not in done.stderr, "the password was printed"


def test_a_binary_dotenv_names_the_file(tmp_path: Path) -> None:
    (tmp_path / ".env").write_bytes(b"\xff\xfe\x00\x01FEDCHAIN_ROUNDS=3\n")
    assert_refused(run_cli(["simulate", "--rounds", "1"], tmp_path), ".env is not a UTF-8 text file")


def test_verify_finds_the_ledger_in_an_up_state_dir(tmp_path: Path) -> None:
    # `fedchain up --state-dir D` keeps the ledger in D/ledger/; verify --state-dir D finds it
    Ledger(f"sqlite:///{tmp_path / 'ledger' / 'ledger.db'}", tmp_path / "ledger" / "blobs").close()
    (tmp_path / "entry").mkdir()
    done = run_cli(["verify", "--state-dir", str(tmp_path)], tmp_path)
    assert "no ledger" not in done.stderr, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("which", ["--port", "--http-port"])
def test_ledger_on_a_taken_port_creates_nothing(tmp_path: Path, taken_port: int, which: str) -> None:
    state = tmp_path / "state"
    ports = {"--port": str(free_port()), "--http-port": str(free_port())}
    ports[which] = str(taken_port)
    args = ["ledger", "--state-dir", str(state), *(x for kv in ports.items() for x in kv)]
    done = run_cli(args, tmp_path)
    assert_refused(done, f"{which} {taken_port}")
    assert "add_port" not in done.stderr and "E1" not in done.stderr, "gRPC's C-core line leaked"
    assert not state.exists() or not any(state.iterdir()), f"left behind: {list(state.iterdir())}"


@pytest.mark.parametrize("role", ["SN", "EN"])
def test_node_on_a_taken_port_is_one_line(tmp_path: Path, taken_port: int, role: str) -> None:
    where = ["-z"] if role == "SN" else ["--entry", "127.0.0.1:9"]
    args = ["node", "--nt", role, *where, "--state-dir", str(tmp_path / "n"), "--port", str(taken_port)]
    done = run_cli(args, tmp_path, extra_env=TOKENS)
    assert_refused(done, f"--port {taken_port}")
    assert "add_port" not in done.stderr, "gRPC's C-core line leaked"
    assert not (tmp_path / "n" / "node.key").exists(), "a key was written for a node that never started"
