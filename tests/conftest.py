"""Shared fixtures: real MySQL when available, with CI turning a skip into a failure; ports.

Tests that need MySQL or Docker run for real in CI (``CI=true``); outside CI they skip
with a one-line reason.
"""

from __future__ import annotations

import os
import signal
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from fedchain.shared import processes

REPO = Path(__file__).resolve().parent.parent
DATASETS = Path(os.environ.get("FEDCHAIN_TEST_DATASETS", REPO.parent / "shared" / "datasets"))
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def need(condition: bool, reason: str) -> None:
    """Skip outside CI, fail inside CI, when a real dependency is missing."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"required in CI: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def datasets_dir() -> Path:
    need((DATASETS / "MNIST" / "raw").is_dir(), f"real datasets not found at {DATASETS}")
    return DATASETS


@pytest.fixture(scope="session")
def mysql_server_url() -> str:
    """Base URL of a MySQL/MariaDB server (FEDCHAIN_TEST_MYSQL_URL), without a database."""
    url = os.environ.get("FEDCHAIN_TEST_MYSQL_URL", "")
    need(bool(url), "FEDCHAIN_TEST_MYSQL_URL is not set (no MySQL server for this run)")
    return url.rstrip("/")


@pytest.fixture
def mysql_url(mysql_server_url: str) -> Iterator[str]:
    """A fresh, empty database on the test server; dropped afterwards."""
    import sqlalchemy as sa

    name = "fc_test_" + uuid.uuid4().hex[:12]
    engine = sa.create_engine(mysql_server_url + "/")
    with engine.begin() as conn:
        conn.execute(sa.text(f"CREATE DATABASE `{name}`"))
    try:
        yield f"{mysql_server_url}/{name}"
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS `{name}`"))
        engine.dispose()


free_port = processes.free_port
"""A TCP port free on 127.0.0.1 (the launcher's; tests import it from here)."""


def isolate_from_fedchain_env(monkeypatch: pytest.MonkeyPatch, workdir: Path) -> None:
    """Run a test as if in a fresh shell in ``workdir``: no ``FEDCHAIN_*`` settings from the
    caller's environment (the ``FEDCHAIN_TEST_*`` knobs stay) and no ``.env`` of the checkout."""
    for name in list(os.environ):
        if name.upper().startswith("FEDCHAIN_") and not name.upper().startswith("FEDCHAIN_TEST_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(workdir)


def ignore_sigint() -> None:
    """``preexec_fn`` that starts a child with SIGINT ignored, as a background job would:
    the child must restore the handler itself for Ctrl-C to reach it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
