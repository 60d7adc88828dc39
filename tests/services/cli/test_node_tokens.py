"""`fedchain node` refuses to start without the tokens its role needs, before anything binds."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import free_port

SN = "sn-token-" + "s" * 20
EN = "en-token-" + "e" * 20
API = "api-token-" + "a" * 20


def fedchain_node(tmp_path: Path, *args: str, **tokens: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEDCHAIN_") or k.startswith("FEDCHAIN_TEST_")}
    env.update(tokens)
    port = free_port()
    cmd = [sys.executable, "-m", "fedchain.services.cli.main", "node", "--port", str(port),
           "--http-port", str(free_port()), "--state-dir", str(tmp_path / "state"), *args]
    return subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=60, env=env, cwd=tmp_path)


def assert_refused(result: subprocess.CompletedProcess[str], tmp_path: Path, *fragments: str) -> None:
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0]
    assert not (tmp_path / "state").exists(), "the node got as far as making its state"


@pytest.mark.parametrize(
    ("args", "tokens", "missing"),
    [
        (["--nt", "SN", "-z"], {}, "FEDCHAIN_SN_JOIN_TOKEN, FEDCHAIN_EN_JOIN_TOKEN, FEDCHAIN_API_TOKEN"),
        (["--nt", "SN", "-z"], {"FEDCHAIN_SN_JOIN_TOKEN": SN, "FEDCHAIN_API_TOKEN": API}, "FEDCHAIN_EN_JOIN_TOKEN"),
        (["--nt", "SN", "--entry", "127.0.0.1:1"], {"FEDCHAIN_EN_JOIN_TOKEN": EN},
         "FEDCHAIN_SN_JOIN_TOKEN, FEDCHAIN_API_TOKEN"),
        (["--nt", "EN", "--entry", "127.0.0.1:1"], {"FEDCHAIN_SN_JOIN_TOKEN": SN}, "FEDCHAIN_EN_JOIN_TOKEN"),
    ],
)
def test_a_node_on_a_public_address_needs_its_tokens(
    tmp_path: Path, args: list[str], tokens: dict[str, str], missing: str
) -> None:
    result = fedchain_node(tmp_path, "--host", "0.0.0.0", *args, **tokens)
    assert_refused(result, tmp_path, "listens on 0.0.0.0 (not loopback)", f"needs {missing} set",
                   "fedchain init-env")


def test_a_loopback_node_started_by_hand_needs_them_too(tmp_path: Path) -> None:
    result = fedchain_node(tmp_path, "--host", "127.0.0.1", "--nt", "EN", "--entry", "127.0.0.1:1")
    assert_refused(result, tmp_path, "edge node needs FEDCHAIN_EN_JOIN_TOKEN set, on loopback too", "fedchain up")


def test_a_token_is_not_echoed_when_refused(tmp_path: Path) -> None:
    result = fedchain_node(tmp_path, "--host", "0.0.0.0", "--nt", "EN", "--entry", "127.0.0.1:1",
                           FEDCHAIN_EN_JOIN_TOKEN="too-short-1")
    assert result.returncode == 2
    assert "too-short-1" not in result.stderr and "at least 16 characters" in result.stderr
