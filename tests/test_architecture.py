"""The architecture rules in pyproject.toml's [tool.importlinter] hold: services meet only through
fedchain.shared and the wire (fedchain.services.cli, the composition root, wires them together)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def test_import_contracts_are_kept() -> None:
    assert LINT_IMPORTS.is_file(), f"{LINT_IMPORTS} is missing: install import-linter in this venv"
    run = subprocess.run(
        [str(LINT_IMPORTS), "--config", str(ROOT / "pyproject.toml"), "--no-cache"],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )
    report = run.stdout + run.stderr
    assert run.returncode == 0, f"an import contract is broken:\n{report}"
    assert "0 broken" in report, report
