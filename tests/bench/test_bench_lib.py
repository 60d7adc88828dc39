"""bench/lib: child processes are stopped with their descendants, results and charts are written."""

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

from lib import BenchError, charts, control, memory, results, stats

from fedchain.shared.processes import is_alive


def test_process_group_stops_children_and_grandchildren(tmp_path: Path) -> None:
    script = (
        "import subprocess, sys, time\n"
        "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'], start_new_session=True)\n"
        "print('started', flush=True)\n"
        "time.sleep(120)\n"
    )
    with control.ProcessGroup(tmp_path / "logs") as group:
        child = group.start("parent", [sys.executable, "-c", script])
        control.wait_until(lambda: "started" in child.tail(), 30, "the child to start")
        control.wait_until(lambda: len(group.pids()) == 2, 30, "the grandchild to appear")
        grandchild = group.pids()[1]
        assert is_alive(grandchild)
    assert child.popen.poll() is not None
    deadline = time.monotonic() + 10
    while is_alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not is_alive(grandchild), "a grandchild in its own session outlived stop"


def test_check_alive_names_the_dead_child_and_its_output(tmp_path: Path) -> None:
    with control.ProcessGroup(tmp_path / "logs") as group:
        child = group.start("broken", [sys.executable, "-c", "print('no dataset here'); raise SystemExit(3)"])
        child.popen.wait(timeout=30)
        assert group.any_exited()
        with pytest.raises(BenchError, match=r"broken exited with code 3; see .*\nno dataset here"):
            group.check_alive()


def test_wait_until_times_out_with_what_it_waited_for() -> None:
    with pytest.raises(BenchError, match="timed out after 0 s waiting for the moon"):
        control.wait_until(lambda: False, 0.3, "the moon", interval=0.05)


def test_memory_of_a_live_process_and_of_a_gone_one() -> None:
    mine = memory.memory_kib(os.getpid())
    assert mine["rss"] > 10_000  # a python with pytest holds more than 10 MiB
    assert 0 < mine["uss"] <= mine["pss"] <= mine["rss"]
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait(timeout=30)
    assert memory.memory_kib(proc.pid) == {"rss": 0, "pss": 0, "uss": 0}
    assert memory.mem_available_kib() > 0


def test_summary_and_json_output(tmp_path: Path) -> None:
    s = stats.summarize([3.0, 1.0, 2.0, 10.0])
    assert (s.n, s.median, s.minimum, s.maximum, s.mean) == (4, 2.5, 1.0, 10.0, 4.0)
    with pytest.raises(ValueError):
        stats.summarize([])
    path = results.write_json("demo", {"x": 1}, tmp_path)
    data = json.loads(path.read_text())
    assert data["benchmark"] == "demo" and data["x"] == 1 and data["machine"]["cpus"] == os.cpu_count()
    png = charts.bar_chart(tmp_path / "p.png", ["a", "b"], [1.0, 2.0], ylabel="s", title="t")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert results.fmt(float("nan")) == "n/a" and results.fmt(1234.5) == "1,234"
