"""Helpers shared by the performance benchmarks in bench/.

What lives here: where results go (JSON under bench/results, PNG under bench/plots), a
table printer, a bar-chart writer, summary statistics, child-process handling that never
leaves a process behind (each child and every descendant is stopped by pid), RSS from
/proc, the MNIST CNN and a small MNIST partition writer used by both fedchain and Flower
runs so that they train the very same net on the very same bytes.
"""

from __future__ import annotations

import gzip
import json
import os
import platform
import signal
import statistics
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
RESULTS_DIR = BENCH / "results"
PLOTS_DIR = BENCH / "plots"
DATASETS = Path(os.environ.get("FEDCHAIN_TEST_DATASETS", REPO.parent / "shared" / "datasets"))
FLOWER_APP = BENCH / "flower" / "app"


class BenchError(RuntimeError):
    """A benchmark could not run; the message says what is missing or what failed."""


# ---------------------------------------------------------------- results and output


def machine_info() -> dict[str, Any]:
    """What the numbers were measured on."""
    info: dict[str, Any] = {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "utc": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "loadavg_1_5_15": [round(x, 2) for x in os.getloadavg()],
    }
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
    except ImportError:
        pass
    return info


def write_json(name: str, data: Mapping[str, Any], results_dir: Path = RESULTS_DIR) -> Path:
    """Write ``data`` plus machine info to ``<results_dir>/<name>.json`` (atomically)."""
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / f"{name}.json"
    payload = {"benchmark": name, "machine": machine_info(), **data}
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def print_table(title: str, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Print a plain aligned table (readable in a log file and a terminal alike)."""
    cells = [[_fmt(c) for c in row] for row in rows]
    widths = [len(h) for h in header]
    for row in cells:
        for i, c in enumerate(row):
            widths[i] = max(widths[i], len(c))
    line = "  ".join("-" * w for w in widths)
    print(f"\n{title}")
    print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=False)))
    print(line)
    for row in cells:
        print("  ".join(c.rjust(w) if _numeric(c) else c.ljust(w) for c, w in zip(row, widths, strict=False)))
    print()


def _numeric(text: str) -> bool:
    try:
        float(text.rstrip("x%").replace(",", ""))
    except ValueError:
        return False
    return True


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        if value != value:  # NaN
            return "n/a"
        if abs(value) >= 100:
            return f"{value:,.0f}"
        if abs(value) >= 1:
            return f"{value:.2f}"
        return f"{value:.4f}"
    return str(value)


def bar_chart(
    path: Path,
    labels: Sequence[str],
    values: Sequence[float],
    *,
    ylabel: str,
    title: str,
    errors: Sequence[float] | None = None,
    log: bool = False,
) -> Path:
    """Save a labelled bar chart as PNG (matplotlib, no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(max(4.0, 1.3 * len(labels) + 2), 3.6), dpi=110)
    bars = ax.bar(list(labels), list(values), yerr=list(errors) if errors else None, capsize=4,
                  color=["#3b6ea8", "#e08a2c", "#5a9e4b", "#a8483b", "#7b5ea8", "#8c8c8c"][: len(labels)])
    for bar, value in zip(bars, values, strict=False):
        ax.annotate(_fmt(float(value)), (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                    ha="center", va="bottom", fontsize=8)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    if log:
        ax.set_yscale("log")
    ax.tick_params(axis="x", labelsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def grouped_bar_chart(
    path: Path,
    groups: Sequence[str],
    series: Mapping[str, Sequence[float]],
    *,
    ylabel: str,
    title: str,
) -> Path:
    """Save bars grouped by ``groups``, one colour per named series, as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    width = 0.8 / max(1, len(series))
    fig, ax = plt.subplots(figsize=(max(4.5, 1.6 * len(groups) + 2), 3.6), dpi=110)
    for i, (name, values) in enumerate(series.items()):
        xs = [g + (i - (len(series) - 1) / 2) * width for g in range(len(groups))]
        bars = ax.bar(xs, list(values), width=width, label=name)
        for bar, value in zip(bars, values, strict=True):
            ax.annotate(_fmt(float(value)), (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                        ha="center", va="bottom", fontsize=7)
    ax.set_xticks(range(len(groups)), list(groups))
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def line_chart(
    path: Path,
    series: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    *,
    xlabel: str,
    ylabel: str,
    title: str,
    log: bool = False,
) -> Path:
    """Save one line per named (x, y) series as PNG (``log``: logarithmic y axis)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(5.5, 3.6), dpi=110)
    for name, (xs, ys) in series.items():
        ax.plot(list(xs), list(ys), marker="o", label=name)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    if log:
        ax.set_yscale("log")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


@dataclass(frozen=True)
class Summary:
    """Summary statistics of repeated measurements (seconds or any unit)."""

    n: int
    mean: float
    median: float
    stdev: float
    minimum: float
    maximum: float

    def as_dict(self) -> dict[str, float | int]:
        return {"n": self.n, "mean": self.mean, "median": self.median, "stdev": self.stdev,
                "min": self.minimum, "max": self.maximum}


def summarize(values: Sequence[float]) -> Summary:
    """Mean, median, sample stdev (0 for one value), min and max of ``values``."""
    if not values:
        raise ValueError("no measurements to summarize")
    vals = [float(v) for v in values]
    return Summary(len(vals), statistics.fmean(vals), statistics.median(vals),
                   statistics.stdev(vals) if len(vals) > 1 else 0.0, min(vals), max(vals))


def time_repeated(fn: Callable[[], Any], repeats: int, *, warmup: int = 1) -> list[float]:
    """Wall seconds of ``repeats`` calls of ``fn`` after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def exit_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit(143) so ``with`` blocks stop the children they started."""

    def _raise(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, _raise)


def wait_until(predicate: Callable[[], bool], timeout: float, what: str, interval: float = 0.2) -> None:
    """Poll ``predicate`` until it is true; raise BenchError naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise BenchError(f"timed out after {timeout:.0f} s waiting for {what}")


# ---------------------------------------------------------------- processes


def children_of(pid: int) -> list[int]:
    """Direct children of ``pid`` (from /proc/<pid>/task/*/children)."""
    out: list[int] = []
    task_dir = Path(f"/proc/{pid}/task")
    try:
        tasks = list(task_dir.iterdir())
    except OSError:
        return out
    for task in tasks:
        try:
            out.extend(int(p) for p in (task / "children").read_text().split())
        except OSError:
            continue
    return out


def descendants(pid: int) -> list[int]:
    """Every live descendant of ``pid``, parents before children."""
    seen: list[int] = []
    frontier = [pid]
    while frontier and len(seen) < 10_000:
        nxt: list[int] = []
        for p in frontier:
            for c in children_of(p):
                if c not in seen:
                    seen.append(c)
                    nxt.append(c)
        frontier = nxt
    return seen


def rss_kib(pid: int) -> int:
    """Resident set size of ``pid`` in KiB (VmRSS in /proc/<pid>/status); 0 if it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return 0
    return 0


def pid_alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


@dataclass
class ProcessGroup:
    """Child processes started by a benchmark, stopped together (descendants included).

    Each child's output goes to a log file in ``log_dir``; ``stop_all`` sends SIGTERM to
    every child and every descendant (by pid, deepest first), waits, then SIGKILLs what is
    left. Use it as a context manager so an error or Ctrl-C never leaves a process behind.
    """

    log_dir: Path
    procs: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)
    _logs: list[IO[bytes]] = field(default_factory=list)

    def start(self, name: str, argv: Sequence[str], env: Mapping[str, str] | None = None,
              cwd: Path | None = None) -> subprocess.Popen[bytes]:
        """Start ``argv`` with stdout+stderr to ``<log_dir>/<name>.log``."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_dir / f"{name}.log", "wb")  # noqa: SIM115 - closed in stop_all
        self._logs.append(log)
        proc = subprocess.Popen(list(argv), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=dict(env) if env is not None else None, cwd=cwd)
        self.procs.append((name, proc))
        return proc

    def log_tail(self, name: str, lines: int = 15) -> str:
        """The last ``lines`` lines of a child's log (for error messages)."""
        path = self.log_dir / f"{name}.log"
        try:
            text = path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def check_alive(self) -> None:
        """Raise BenchError naming the first child that has exited."""
        for name, proc in self.procs:
            if proc.poll() is not None:
                raise BenchError(f"{name} exited with code {proc.returncode}:\n{self.log_tail(name)}")

    def all_pids(self) -> list[int]:
        """Pids of the live children and all their descendants."""
        pids: list[int] = []
        for _name, proc in self.procs:
            if proc.poll() is None:
                pids.append(proc.pid)
                pids.extend(descendants(proc.pid))
        return pids

    def stop_all(self, grace: float = 10.0) -> None:
        """SIGTERM every child and descendant, wait up to ``grace`` s, SIGKILL the rest."""
        targets: list[int] = []
        for _name, proc in self.procs:
            if proc.poll() is None:
                targets.extend(reversed(descendants(proc.pid)))
                targets.append(proc.pid)
        for pid in targets:
            _signal(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and any(pid_alive(p) for p in targets):
            for _name, proc in self.procs:
                proc.poll()
            time.sleep(0.1)
        for pid in targets:
            if pid_alive(pid):
                _signal(pid, signal.SIGKILL)
        for _name, proc in self.procs:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        for log in self._logs:
            log.close()
        self._logs.clear()

    def __enter__(self) -> ProcessGroup:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all()


def _signal(pid: int, sig: signal.Signals) -> None:
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def fedchain_cmd() -> list[str]:
    """argv prefix that runs the ``fedchain`` CLI of this checkout with this interpreter."""
    return [sys.executable, "-c", "from fedchain.services.cli.main import main; main()"]


# ---------------------------------------------------------------- model and data


def build_mnist_cnn() -> Any:
    """fedchain's MNIST CNN (``fedchain.shared.fl.models``) when its FL core is there, else the
    identical definition shipped with the Flower app (conv32-pool-conv64-pool-FC512-FC10)."""
    try:
        from fedchain.shared.fl.models import build_model  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        if str(FLOWER_APP) not in sys.path:
            sys.path.insert(0, str(FLOWER_APP))
        from fcbench.task import MnistCNN  # type: ignore[import-not-found,unused-ignore]

        return MnistCNN()
    return build_model("mnist-cnn", "mnist")


def read_idx_gz(path: Path) -> Any:
    """A gzipped uint8 IDX file as a numpy array."""
    import numpy as np

    with gzip.open(path, "rb") as fh:
        data = fh.read()
    _zero, dtype_code, ndim = struct.unpack(">HBB", data[:4])
    if dtype_code != 0x08:
        raise BenchError(f"{path}: only uint8 IDX files are supported")
    shape = struct.unpack(">" + "I" * ndim, data[4 : 4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def require_mnist(datasets_dir: Path) -> Path:
    """The MNIST raw folder, or a BenchError saying where it was looked for."""
    raw = datasets_dir / "MNIST" / "raw"
    if not (raw / "train-images-idx3-ubyte.gz").is_file():
        raise BenchError(f"MNIST not found in {raw} (set --datasets or FEDCHAIN_TEST_DATASETS)")
    return raw


# ---------------------------------------------------------------- a fedchain network on this machine


def fl_flags(settings: Any) -> list[str]:
    """``fedchain node`` flags that carry the learning settings to the entry."""
    return ["--algorithm", settings.algorithm, "--dataset", settings.dataset, "--data-dir", str(settings.data_dir),
            "--model", settings.model, "--clients", str(settings.clients), "--local-epochs", str(settings.local_epochs),
            "--batch-size", str(settings.batch_size), "--lr", str(settings.lr), "--seed", str(settings.seed),
            *(["--max-samples", str(settings.max_samples)] if settings.max_samples else [])]


@dataclass
class FedchainNetwork:
    """An entry SN (embedded ledger, SQLite), extra SNs and ENs as ``fedchain node`` processes.

    Every node is its own process of this interpreter on 127.0.0.1 with free ports and its
    own state folder under ``root``; ``roles`` maps each pid to "entry", "SN" or "EN".
    Settings the node CLI has no flag for (eval) go through the environment (``no_eval_env``).
    """

    root: Path
    settings: Any
    env: Mapping[str, str] | None = None
    group: ProcessGroup = field(init=False)
    roles: dict[int, str] = field(default_factory=dict)
    entry_port: int = 0
    http_port: int = 0
    _count: int = 0

    def __post_init__(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.group = ProcessGroup(self.root / "logs")
        self.env = with_node_tokens(self.env)

    @property
    def base_url(self) -> str:
        """The entry's control API."""
        return f"http://127.0.0.1:{self.http_port}"

    def _node(self, name: str, role: str, extra: Sequence[str]) -> int:
        port, http = free_port(), free_port()
        argv = [*fedchain_cmd(), "node", "--port", str(port), "--http-port", str(http),
                "--state-dir", str(self.root / name), "--data-dir", str(self.settings.data_dir), *extra]
        proc = self.group.start(name, argv, env=self.env, cwd=self.root)
        self.roles[proc.pid] = role
        if role == "entry":
            self.entry_port, self.http_port = port, http
        return proc.pid

    def start_entry(self, timeout: float = 120) -> None:
        """Start the entry SN and wait until its control API answers."""
        self._node("entry", "entry", ["--nt", "SN", "-z", *fl_flags(self.settings)])
        wait_until(lambda: self.status(check=True) is not None, timeout, "the fedchain entry SN's control API")

    def add_sn(self) -> int:
        """Start one more (non-entry) SN."""
        self._count += 1
        return self._node(f"sn-{self._count}", "SN", ["--nt", "SN", "--entry", f"127.0.0.1:{self.entry_port}"])

    def add_en(self) -> int:
        """Start one more EN."""
        self._count += 1
        return self._node(f"en-{self._count}", "EN", ["--nt", "EN", "--entry", f"127.0.0.1:{self.entry_port}"])

    def status(self, check: bool = False) -> dict[str, Any] | None:
        """The entry's /status, or None while it does not answer."""
        import httpx

        if check:
            self.group.check_alive()
        try:
            resp = httpx.get(self.base_url + "/status", timeout=5)
            return resp.json() if resp.status_code == 200 else None
        except (httpx.HTTPError, ValueError):
            return None

    def wait_members(self, ens: int, sns: int, timeout: float) -> None:
        """Wait until the entry counts ``ens`` ENs and ``sns`` SNs (itself included)."""

        def counted() -> bool:
            st = self.status(check=True)
            return st is not None and int(st.get("ens", 0)) >= ens and int(st.get("sns", 0)) >= sns

        wait_until(counted, timeout, f"{ens} ENs and {sns} SNs to join the fedchain network", interval=0.3)

    def api(self, method: str, path: str, **kwargs: Any) -> Any:
        """Call the entry's control API (with the nodes' FEDCHAIN_API_TOKEN)."""
        import httpx

        token = (self.env or {}).get("FEDCHAIN_API_TOKEN", "")
        resp = httpx.request(method, self.base_url + path, headers={"Authorization": f"Bearer {token}"},
                             timeout=60, **kwargs)
        if resp.status_code >= 400:
            raise BenchError(f"{method} {path} answered {resp.status_code}: {resp.text[:300]}")
        return resp.json()

    def train(self, rounds: int, timeout: float, on_round: Callable[[int, float], None] | None = None) -> float:
        """POST /train, poll /status until ``rounds`` more rounds are done; returns wall seconds.

        ``on_round(round, seconds_since_start)`` is called as each completed round is seen.
        """
        t0 = time.perf_counter()
        started = self.api("POST", "/train", json={"rounds": rounds, "algorithm": self.settings.algorithm})
        target = int(started["target_round"])
        seen = int(started["start_round"]) - 1

        def done() -> bool:
            nonlocal seen
            st = self.status(check=True) or {}
            if st.get("error"):
                raise BenchError(f"fedchain training failed: {st['error']}")
            current = int(st.get("round", seen))
            while seen < current:
                seen += 1
                if on_round is not None:
                    on_round(seen, time.perf_counter() - t0)
            return current >= target

        wait_until(done, timeout, f"fedchain to finish round {target}", interval=0.05)
        return time.perf_counter() - t0

    def pids(self, role: str) -> list[int]:
        """Live pids of one role ("entry", "SN" or "EN")."""
        return [p for p, r in self.roles.items() if r == role and pid_alive(p)]

    def stop(self) -> None:
        """Stop every node (SIGTERM, then SIGKILL after the grace period)."""
        self.group.stop_all(grace=15)

    def __enter__(self) -> FedchainNetwork:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def memory_kib(pid: int) -> dict[str, int]:
    """RSS, PSS and USS (private clean + dirty) of ``pid`` in KiB from /proc/<pid>/smaps_rollup."""
    out = {"rss": rss_kib(pid), "pss": 0, "uss": 0}
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return out
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[1].isdigit():
            if parts[0] == "Pss:":
                out["pss"] = int(parts[1])
            elif parts[0] in ("Private_Clean:", "Private_Dirty:"):
                out["uss"] += int(parts[1])
    return out


def mem_available_kib() -> int:
    """MemAvailable of this machine in KiB."""
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1])
    raise BenchError("/proc/meminfo has no MemAvailable line")


@dataclass
class UpNetwork:
    """A network started by ``fedchain up --keep`` (ledger, entry M-SN, SNs, ENs as processes).

    ``start`` runs ``fedchain up`` with the given flags until it has trained its rounds,
    verified the chain and returned (its children stay up); ``children`` then maps the
    recorded process names (ledger, entry, sn-i, en-i) to pids; ``stop`` runs
    ``fedchain down`` and SIGKILLs any recorded pid still alive afterwards.
    """

    state_dir: Path
    env: Mapping[str, str] | None = None
    http_port: int = 0
    children: dict[str, int] = field(default_factory=dict)
    output: str = ""

    @property
    def base_url(self) -> str:
        """The entry's control API."""
        return f"http://127.0.0.1:{self.http_port}"

    def start(self, ens: int, sns: int, rounds: int, fl: Sequence[str], timeout: float) -> float:
        """Run ``fedchain up --keep``; return its wall seconds. Raises BenchError if it fails."""
        self.http_port = free_port()
        argv = [*fedchain_cmd(), "up", "--ens", str(ens), "--sns", str(sns), "--rounds", str(rounds),
                "--state-dir", str(self.state_dir), "--port", str(free_port()), "--http-port", str(self.http_port),
                "--keep", *fl]
        t0 = time.perf_counter()
        try:
            proc = subprocess.run(argv, env=dict(self.env) if self.env is not None else None, cwd=REPO,
                                  capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired as exc:
            self._record_children()
            self.stop()
            raise BenchError(f"fedchain up did not finish within {timeout:.0f} s") from exc
        finally:
            self._record_children()
        seconds = time.perf_counter() - t0
        self.output = proc.stdout + proc.stderr
        if proc.returncode != 0:
            self.stop()
            raise BenchError(f"fedchain up failed (exit {proc.returncode}): {self.output.strip()[-800:]}")
        return seconds

    def _record_children(self) -> None:
        path = self.state_dir / "network.json"
        if path.is_file():
            try:
                rows = json.loads(path.read_text(encoding="utf-8"))
                self.children.update({str(r["name"]): int(r["pid"]) for r in rows})
            except (ValueError, KeyError, TypeError):
                pass

    def pids(self, prefix: str) -> list[int]:
        """Live pids whose recorded name starts with ``prefix`` (e.g. "en-", "sn-", "entry")."""
        return [p for n, p in self.children.items() if n.startswith(prefix) and pid_alive(p)]

    def get(self, path: str) -> Any:
        """GET a control-API path of the entry, as JSON."""
        import httpx

        resp = httpx.get(self.base_url + path, timeout=60)
        if resp.status_code >= 400:
            raise BenchError(f"GET {path} answered {resp.status_code}: {resp.text[:300]}")
        return resp.json()

    def stop(self) -> None:
        """``fedchain down``, then SIGKILL whatever recorded process is still alive."""
        if self.state_dir.is_dir():
            subprocess.run([*fedchain_cmd(), "down", "--state-dir", str(self.state_dir)], cwd=REPO,
                           capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
                           env=dict(self.env) if self.env is not None else None)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(pid_alive(p) for p in self.children.values()):
            time.sleep(0.2)
        for pid in self.children.values():
            if pid_alive(pid):
                _signal(pid, signal.SIGKILL)

    def __enter__(self) -> UpNetwork:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def up_fl_flags(settings: Any) -> list[str]:
    """``fedchain up`` flags carrying the learning settings (up has no --clients: it is --ens)."""
    flags = fl_flags(settings)
    i = flags.index("--clients")
    return flags[:i] + flags[i + 2 :]


NODE_TOKENS = ("FEDCHAIN_SN_JOIN_TOKEN", "FEDCHAIN_EN_JOIN_TOKEN", "FEDCHAIN_API_TOKEN")


def with_node_tokens(env: Mapping[str, str] | None) -> dict[str, str]:
    """``env`` (default: this process's) with a random value for each node token it lacks."""
    import secrets

    out = dict(os.environ if env is None else env)
    for name in NODE_TOKENS:
        if not out.get(name):
            out[name] = secrets.token_urlsafe(32)
    return out


def no_eval_env() -> dict[str, str]:
    """Environment for node processes: no evaluation rounds, one torch thread each."""
    return {**os.environ, "FEDCHAIN_EVAL": "false", "FEDCHAIN_LOCAL_EVAL": "false", "OMP_NUM_THREADS": "1",
            "FEDCHAIN_TORCH_THREADS": "1", "PYTHONUNBUFFERED": "1"}
