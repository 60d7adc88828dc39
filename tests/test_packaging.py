"""The distribution installs one top-level package, ``fedchain`` (no generic ``shared`` or
``services`` in a user's environment), and the package is complete when installed."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_the_wheel_holds_one_top_level_package(tmp_path: Path) -> None:
    build = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(REPO),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert build.returncode == 0, build.stdout + build.stderr
    (wheel,) = tmp_path.glob("fedchain-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names}
    assert {t for t in top if not t.endswith(".dist-info")} == {"fedchain"}, sorted(top)
    # the parts the links map in are really inside, with the generated stubs
    for module in (
        "fedchain/shared/fl/strategy.py",
        "fedchain/services/cli/main.py",
        "fedchain/shared/rpc/node_pb2.py",
        "fedchain/shared/chain/rules.py",
        "fedchain/services/sn/dashboard/static/index.html",  # package data: the dashboard's page
        "fedchain/services/sn/dashboard/static/dashboard.js",
    ):
        assert module in names, module
    assert not any(n.startswith(("fedchain/tests/", "tests/", "bench/")) for n in names)


def test_installed_command_and_module_agree() -> None:
    """``python -m fedchain`` is the ``fedchain`` command, importable from anywhere."""
    r = subprocess.run(
        [sys.executable, "-m", "fedchain", "--help"], capture_output=True, text=True, timeout=60, cwd="/", check=False
    )
    assert r.returncode == 0, r.stderr
    assert "simulate" in r.stdout and "node" in r.stdout
    probe = subprocess.run(
        [
            sys.executable,
            "-c",
            "import fedchain, sys; import fedchain.shared.fl.seed_api; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('shared', 'services')))",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd="/",
        check=False,
    )
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.strip() == "[]", "importing fedchain loaded a bare shared/services module"
