"""`fedchain init-env`: random secrets in a 0600 .env that fedchain and compose accept."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from fedchain.services.cli.init_env import ENTRY_KEY_FILE, ENTRY_KEY_VARIABLE, SECRETS, init_env
from fedchain.shared.config import ConfigError, Settings, load_settings, missing_tokens
from fedchain.shared.crypto import NodeKey
from tests.conftest import REPO


def values(path: Path) -> dict[str, str]:
    """The active KEY=value lines of an env file."""
    out = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            out[key] = value
    return out


def test_a_new_file_has_every_secret_random_and_is_private(tmp_path: Path) -> None:
    path = tmp_path / ".env"
    assert init_env(path) == list(SECRETS)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    first = values(path)
    public = first.pop(ENTRY_KEY_VARIABLE)
    assert set(first) == set(SECRETS)
    assert all(len(v) >= 40 for v in first.values())
    assert len(set(first.values())) == len(SECRETS)
    other = tmp_path / "other.env"
    init_env(other)
    assert not set(values(other).values()) & set(first.values())
    # the entry's signing key beside it, private, and its public key in the file
    key_file = tmp_path / ENTRY_KEY_FILE
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert NodeKey.load_or_create(key_file).public_hex == public
    assert values(other)[ENTRY_KEY_VARIABLE] == public  # one key per directory, kept
    text = path.read_text()
    for name in Settings.model_fields:  # every other setting documented, commented out
        assert f"FEDCHAIN_{name.upper()}=" in text, name


def test_fedchain_reads_the_written_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("FEDCHAIN_") and not name.startswith("FEDCHAIN_TEST_"):
            monkeypatch.delenv(name)
    init_env(tmp_path / ".env")
    monkeypatch.chdir(tmp_path)
    assert missing_tokens(load_settings(), "entry") == []


def test_an_existing_file_with_secrets_is_kept_without_force(tmp_path: Path) -> None:
    path = tmp_path / ".env"
    init_env(path)
    before = path.read_text()
    with pytest.raises(ConfigError, match="already sets FEDCHAIN_SN_JOIN_TOKEN.*pass --force"):
        init_env(path)
    assert path.read_text() == before


def test_force_replaces_the_secrets_and_keeps_every_other_line(tmp_path: Path) -> None:
    path = tmp_path / ".env"
    path.write_text("# my notes\nFEDCHAIN_ROUNDS=5\nFEDCHAIN_API_TOKEN=an-old-api-token-value\nOTHER=1\n")
    path.chmod(0o644)
    init_env(path, force=True)
    lines = path.read_text().splitlines()
    assert lines[:2] == ["# my notes", "FEDCHAIN_ROUNDS=5"] and "OTHER=1" in lines
    got = values(path)
    assert got["FEDCHAIN_API_TOKEN"] != "an-old-api-token-value"
    assert set(SECRETS) <= set(got)
    assert sum(line.startswith("FEDCHAIN_API_TOKEN=") for line in lines) == 1
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_the_repository_env_gets_its_secret_lines_filled(tmp_path: Path) -> None:
    """The documented .env of a checkout sets no secret: init-env fills it in place."""
    path = tmp_path / ".env"
    original = (REPO / ".env").read_text().splitlines()
    path.write_text("\n".join(original) + "\n")
    init_env(path)
    lines = path.read_text().splitlines()
    assert len(lines) == len(original)
    changed = [(a, b) for a, b in zip(original, lines, strict=True) if a != b]
    assert sorted(b.split("=")[0] for _, b in changed) == sorted([*SECRETS, ENTRY_KEY_VARIABLE])
    assert all(a == f"# {b.split('=')[0]}=" for a, b in changed)


def test_the_command_prints_no_secret_and_refuses_in_one_line(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "fedchain.services.cli.main", "init-env", "--path", str(tmp_path / "x.env")]
    first = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=60)
    assert first.returncode == 0, first.stderr
    assert "mode 0600" in first.stdout
    for secret in values(tmp_path / "x.env").values():
        assert secret not in first.stdout + first.stderr
    again = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=60)
    assert again.returncode == 2
    assert len(again.stderr.strip().splitlines()) == 1 and "--force" in again.stderr


def test_force_keeps_the_entry_key_a_chain_was_started_with(tmp_path: Path) -> None:
    path = tmp_path / ".env"
    init_env(path)
    before = values(path)
    init_env(path, force=True)
    after = values(path)
    assert after[ENTRY_KEY_VARIABLE] == before[ENTRY_KEY_VARIABLE]  # new tokens, same key
    assert after["FEDCHAIN_API_TOKEN"] != before["FEDCHAIN_API_TOKEN"]
    assert Settings(_env_file=None, ledger_entry_key=after[ENTRY_KEY_VARIABLE]).ledger_entry_key
