"""The compose stack started for real (issue 6): scripts/docker-ci end to end.

Builds the base-image stand-ins and the fedchain image offline (cached after the first
run), then `up -d --scale en=3`, every container hardened and an EN reaching neither the
ledger nor the database, console train(rounds=2)/eval()/getSN()/getModel(), the chain
verifies, an EN container killed during a round does not stop the round, a backup
(scripts/stack-backup), every service stops on SIGTERM, the stack removed and restored into
a fresh one (scripts/stack-restore) that verifies and trains a round, `down -v`; then the
same over docker-compose.tls.yml (HTTPS to the entry, enrolled certificates, plain text
refused). Needs a Docker engine: skips outside CI without one,
fails in CI (.ci/run starts one with scripts/docker-engine).
"""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from tests.conftest import REPO, need


def engine_answers() -> bool:
    """True when a Docker engine answers `docker info`."""
    if shutil.which("docker") is None:
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=30).returncode == 0
    except subprocess.TimeoutExpired:
        return False


PLAIN_STEPS = ("hardened containers and separate networks", "console train(rounds=2)", "console eval()",
               "console getSN()", "console getModel()", "chain verifies", "kill an EN during a round",
               "graceful stop (SIGTERM)", "down -v")
BACKUP_STEPS = ("backup (scripts/stack-backup)", "restore into a fresh stack, verify, train a round")
TLS_STEPS = ("the image's user reads the certificates", "each EN's certificate names its node and address",
             "plain text to a TLS port is refused")


def run_scenario(*flags: str) -> dict[str, object]:
    """scripts/docker-ci with ``flags``; the summary line it prints, once it exited 0."""
    need(engine_answers(), "no Docker engine answers `docker info` (start one: scripts/docker-engine)")
    result = subprocess.run([str(REPO / "scripts" / "docker-ci"), *flags], cwd=REPO, capture_output=True,
                            text=True, timeout=2300)
    summary_lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    detail = (result.stderr[-6000:] + result.stdout[-2000:]).strip()
    assert result.returncode == 0, detail
    assert summary_lines, detail
    summary: dict[str, object] = json.loads(summary_lines[-1])
    assert summary["ok"] is True and summary["failed"] is None
    return summary


@pytest.mark.docker
@pytest.mark.slow
@pytest.mark.timeout(2400)
def test_compose_stack_scenario() -> None:
    summary = run_scenario("--backup-restore")
    for step in (*PLAIN_STEPS, *BACKUP_STEPS):
        assert step in summary["seconds"], f"step {step!r} did not run: {summary}"  # type: ignore[operator]


@pytest.mark.docker
@pytest.mark.slow
@pytest.mark.timeout(2400)
def test_compose_tls_stack_scenario() -> None:
    """The same scenario over docker-compose.tls.yml: mutual TLS on gRPC, HTTPS everywhere."""
    summary = run_scenario("--tls")
    for step in (*PLAIN_STEPS, *TLS_STEPS):
        assert step in summary["seconds"], f"step {step!r} did not run: {summary}"  # type: ignore[operator]


SWARM_STEPS = ("a single-node swarm", "stack file from docker-compose.yml", "docker stack deploy",
               "services converge", "2 ENs joined", "console train(rounds=1), chain verifies",
               "docker service scale en=3", "3 ENs joined", "the next round trains with the new EN",
               "docker stack rm")


@pytest.mark.docker
@pytest.mark.slow
@pytest.mark.timeout(2400)
def test_swarm_stack_scenario() -> None:
    """The same stack on a single-node Docker Swarm (docker/ci/swarm.py): deploy with local
    images, services converge, a round through the console, the chain verifies,
    ``docker service scale <stack>_en=3`` adds an EN that trains in the next round,
    ``docker stack rm`` cleans up. In this module so that no two stacks run at once: side
    by side on 2 cores they starved each other's nodes."""
    summary = run_scenario("--swarm")
    for step in SWARM_STEPS:
        assert step in summary["seconds"], f"step {step!r} did not run: {summary}"  # type: ignore[operator]
