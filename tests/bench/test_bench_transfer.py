"""bench/transfer.py --quick: runs in seconds and writes consistent ratios."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_transfer_quick_writes_ratios(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / "transfer.py"), "--quick", "--results", str(tmp_path),
         "--plots", str(tmp_path)],
        capture_output=True, text=True, timeout=240, cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "fedchain/raw" in proc.stdout and "dec/copy" in proc.stdout
    data = json.loads((tmp_path / "transfer.json").read_text())
    assert (tmp_path / "transfer.png").stat().st_size > 1000
    for name, t in data["transport"].items():
        assert t["bytes"] > 1_000_000, name
        for path in ("fedchain_grpc", "bare_grpc", "raw_socket"):
            assert t[path]["gb_per_s"] > 0
        ratio = t["fedchain_grpc"]["gb_per_s"] / t["raw_socket"]["gb_per_s"]
        assert abs(ratio - t["ratio_fedchain_vs_raw"]) < 1e-9
    for name, c in data["codec"].items():
        assert c["ratio_encode_vs_clone"] > 0 and c["ratio_decode_vs_copy"] > 0, name
        expected = c["decode"]["seconds"]["min"] / c["bytes_copy"]["seconds"]["min"]
        assert abs(c["ratio_decode_vs_copy"] - expected) < 1e-9


def test_transfer_refuses_an_unknown_flag() -> None:
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "transfer.py"), "--fast"],
                          capture_output=True, text=True, timeout=60, cwd=REPO)
    assert proc.returncode == 2
    assert "unrecognized arguments: --fast" in proc.stderr
