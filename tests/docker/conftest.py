"""Fixtures for the container tests: the repository's Docker files and a compose command."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO, need


def compose_command() -> list[str] | None:
    """``docker compose`` (v2) when it works, else ``docker-compose`` (v1), else None."""
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=30)
        if probe.returncode == 0:
            return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return None


@pytest.fixture(scope="session")
def compose() -> list[str]:
    """The compose command; config validation needs no engine, only the tool."""
    cmd = compose_command()
    need(cmd is not None, "neither `docker compose` nor `docker-compose` is installed")
    assert cmd is not None
    return cmd


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO
