"""`fedchain node` refuses bad flags with one line and exit code 2, before starting anything."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

ENTRY_TOKENS = {"FEDCHAIN_SN_JOIN_TOKEN": "test-sn-join-token-cli", "FEDCHAIN_EN_JOIN_TOKEN": "test-en-join-token-cli",
                "FEDCHAIN_API_TOKEN": "test-api-token-of-cli"}


def _node(*args: str, cwd: Path, **tokens: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEDCHAIN_")}
    return subprocess.run(
        [sys.executable, "-m", "fedchain.services.cli.main", "node", *args],
        capture_output=True, text=True, timeout=120, env={**env, **tokens, "PYTHONPATH": str(REPO)}, cwd=cwd,
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "--nt SN or --nt EN is required"),
        (("--nt", "SN"), "a super node needs --entry HOST:PORT, or -z to be the entry"),
        (("--nt", "EN", "-z"), "-z (entry) is only valid with --nt SN"),
        (("--nt", "EN", "--entry", "nowhere"), "--entry must be HOST:PORT, got 'nowhere'"),
        (("--nt", "SN", "-z", "--tls-cert", "missing.pem"), "TLS certificate file missing.pem does not exist"),
        (("--nt", "XX",), "invalid value for '--nt'"),
        (("--nt", "SN", "-z", "--port", "9000", "--http-port", "9000"), "--http-port must differ from --port"),
    ],
)
def test_bad_flags_exit_2_with_one_line(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    r = _node(*args, "--state-dir", str(tmp_path / "state"), cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("fedchain node: ") and message in lines[0], r.stderr
    assert not (tmp_path / "state").exists()  # nothing was created


def test_busy_port_is_refused(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        busy = s.getsockname()[1]
        r = _node("--nt", "SN", "-z", "--port", str(busy), "--state-dir", str(tmp_path / "s"), cwd=tmp_path,
                  **ENTRY_TOKENS)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        f"fedchain node: --port {busy}: 127.0.0.1:{busy} is already in use (another node running?)"
    ]
