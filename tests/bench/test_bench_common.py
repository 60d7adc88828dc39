"""bench/common.py: child processes are stopped with their descendants, results are written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

import common  # noqa: E402


def test_process_group_stops_children_and_grandchildren(tmp_path: Path) -> None:
    script = (
        "import subprocess, sys, time\n"
        "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'], start_new_session=True)\n"
        "print('started', flush=True)\n"
        "time.sleep(120)\n"
    )
    with common.ProcessGroup(tmp_path / "logs") as group:
        proc = group.start("parent", [sys.executable, "-c", script])
        common.wait_until(lambda: "started" in group.log_tail("parent"), 30, "the child to start")
        common.wait_until(lambda: len(common.descendants(proc.pid)) == 1, 30, "the grandchild to appear")
        grandchild = common.descendants(proc.pid)[0]
        assert common.pid_alive(grandchild)
    assert proc.poll() is not None
    deadline = time.monotonic() + 10
    while common.pid_alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not common.pid_alive(grandchild), "a grandchild in its own session outlived stop_all"


def test_check_alive_names_the_dead_child_and_its_output(tmp_path: Path) -> None:
    with common.ProcessGroup(tmp_path / "logs") as group:
        proc = group.start("broken", [sys.executable, "-c", "print('no dataset here'); raise SystemExit(3)"])
        proc.wait(timeout=30)
        with pytest.raises(common.BenchError, match=r"broken exited with code 3:\nno dataset here"):
            group.check_alive()


def test_wait_until_times_out_with_what_it_waited_for() -> None:
    with pytest.raises(common.BenchError, match="timed out after 0 s waiting for the moon"):
        common.wait_until(lambda: False, 0.3, "the moon", interval=0.05)


def test_memory_of_a_live_process_and_of_a_gone_one() -> None:
    mine = common.memory_kib(os.getpid())
    assert mine["rss"] > 10_000  # a python with pytest holds more than 10 MiB
    assert 0 < mine["uss"] <= mine["pss"] <= mine["rss"]
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait(timeout=30)
    assert common.memory_kib(proc.pid) == {"rss": 0, "pss": 0, "uss": 0}
    assert common.mem_available_kib() > 0


def test_summary_and_json_output(tmp_path: Path) -> None:
    s = common.summarize([3.0, 1.0, 2.0, 10.0])
    assert (s.n, s.median, s.minimum, s.maximum, s.mean) == (4, 2.5, 1.0, 10.0, 4.0)
    with pytest.raises(ValueError):
        common.summarize([])
    path = common.write_json("demo", {"x": 1}, tmp_path)
    data = json.loads(path.read_text())
    assert data["benchmark"] == "demo" and data["x"] == 1 and data["machine"]["cpus"] == os.cpu_count()
    png = common.bar_chart(tmp_path / "p.png", ["a", "b"], [1.0, 2.0], ylabel="s", title="t")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
