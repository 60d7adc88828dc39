"""A private MariaDB server for one test: its own datadir under tmp_path and its own free port.

The fault suite restarts this server, never the shared one at FEDCHAIN_TEST_MYSQL_URL that
other tests use. It runs with ``--skip-grant-tables`` (root over TCP, no password) and
listens on 127.0.0.1 only.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from tests.conftest import free_port

MARIADBD = Path("/usr/sbin/mariadbd")
INSTALL_DB = shutil.which("mariadb-install-db") or "/usr/bin/mariadb-install-db"


def available() -> bool:
    """True when this machine can run a private MariaDB (binaries present, running as root)."""
    return MARIADBD.is_file() and Path(INSTALL_DB).is_file() and os.geteuid() == 0


def _open_path_for_mysql(path: Path) -> None:
    """Let the mysql user traverse every parent of ``path`` (pytest makes its temp root 0700)."""
    for parent in [path, *path.parents]:
        if parent == Path("/"):
            break
        mode = parent.stat().st_mode
        if not mode & 0o001:
            os.chmod(parent, mode | 0o001)


class PrivateMariaDB:
    """One mariadbd process on a free port with a datadir under ``root``; start/stop/restart it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.datadir = root / "data"
        self.port = free_port()
        self.log = root / "mariadbd.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """SQLAlchemy URL of the server (no database)."""
        return f"mysql+pymysql://root@127.0.0.1:{self.port}"

    def install(self) -> None:
        """Create the system tables in a fresh datadir owned by mysql."""
        self.datadir.mkdir(parents=True)
        shutil.chown(self.datadir, "mysql", "mysql")
        shutil.chown(self.root, "mysql", "mysql")
        _open_path_for_mysql(self.root)
        done = subprocess.run(
            [INSTALL_DB, "--user=mysql", f"--datadir={self.datadir}", "--skip-test-db",
             "--auth-root-authentication-method=normal"],
            capture_output=True, text=True, timeout=120,
        )
        if done.returncode != 0:
            raise RuntimeError(f"mariadb-install-db failed: {done.stderr[-2000:]}")

    def start(self, timeout: float = 60) -> None:
        """Start mariadbd and wait (bounded) until it accepts connections."""
        assert self.proc is None or self.proc.poll() is not None, "already running"
        with open(self.log, "ab") as fh:
            self.proc = subprocess.Popen(
                [str(MARIADBD), "--no-defaults", "--user=mysql", f"--datadir={self.datadir}",
                 f"--port={self.port}", "--bind-address=127.0.0.1", f"--socket={self.root / 'mysqld.sock'}",
                 f"--pid-file={self.root / 'mysqld.pid'}", "--skip-grant-tables", "--skip-log-bin",
                 "--innodb-buffer-pool-size=16M", "--max-allowed-packet=64M"],
                stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )
        self.wait_ready(timeout)

    def wait_ready(self, timeout: float) -> None:
        """Poll until a connection succeeds (raises after ``timeout`` seconds)."""
        import pymysql

        deadline = time.monotonic() + timeout
        while True:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"mariadbd exited with {self.proc.returncode}: {self.log.read_text()[-2000:]}")
            try:
                pymysql.connect(host="127.0.0.1", port=self.port, user="root", connect_timeout=2).close()
                return
            except pymysql.err.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def create_database(self, name: str) -> str:
        """Create database ``name``; returns its URL."""
        import pymysql

        conn = pymysql.connect(host="127.0.0.1", port=self.port, user="root", connect_timeout=5)
        try:
            with conn.cursor() as cur:
                cur.execute(f"CREATE DATABASE `{name}`")
        finally:
            conn.close()
        return f"{self.url}/{name}"

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> None:
        """Stop the server (SIGTERM: clean shutdown; SIGKILL: crash) and wait for it."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def restart(self, sig: int = signal.SIGTERM, down_for: float = 0.0) -> None:
        """Stop the server, stay down ``down_for`` seconds, start it again on the same port and datadir."""
        self.stop(sig)
        time.sleep(down_for)
        self.start()
