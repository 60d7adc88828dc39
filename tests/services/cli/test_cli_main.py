"""The `fedchain` command itself: --version, shell completion, one-line errors naming the command."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from fedchain import __version__

FEDCHAIN = [sys.executable, "-m", "fedchain.services.cli.main"]


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEDCHAIN_")}
    env["COLUMNS"] = "120"
    return subprocess.run([*FEDCHAIN, *args], capture_output=True, text=True, timeout=120, cwd=cwd, env=env)


def test_version_prints_the_package_version(tmp_path: Path) -> None:
    for flag in ("--version", "-V"):
        r = _run(flag, cwd=tmp_path)
        assert r.returncode == 0, r.stderr
        assert r.stdout.strip() == f"fedchain {__version__}"


def test_bash_completion_script_is_offered(tmp_path: Path) -> None:
    r = _run("--show-completion", "bash", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "_FEDCHAIN_COMPLETE" in r.stdout and "complete " in r.stdout


def test_help_shows_flags_as_flag_pairs_not_as_bool_values(tmp_path: Path) -> None:
    r = _run("simulate", "--help", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "<bool>" not in r.stdout
    assert "--download" in r.stdout and "--no-download" in r.stdout


def test_errors_are_one_line_naming_the_command(tmp_path: Path) -> None:
    bad_flag = _run("simulate", "--bogus", cwd=tmp_path)
    (tmp_path / "run.toml").write_text("rounds = 0\n")
    bad_file = _run("simulate", "--config", "run.toml", cwd=tmp_path)
    (tmp_path / ".env").write_text("FEDCHAIN_ROUND=3\n")
    bad_env = _run("simulate", cwd=tmp_path)
    for r, says in (
        (bad_flag, "fedchain simulate: No such option: --bogus"),
        (bad_file, "fedchain simulate: "),
        (bad_env, "fedchain simulate: .env: unknown setting FEDCHAIN_ROUND (did you mean FEDCHAIN_ROUNDS?)"),
    ):
        assert r.returncode == 2, r.stderr
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(says), r.stderr
    assert "run.toml" in bad_file.stderr and "rounds" in bad_file.stderr
