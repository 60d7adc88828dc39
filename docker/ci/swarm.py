"""The stack on Docker Swarm (one node), run on the host by ``scripts/docker-ci --swarm``.

``docker swarm init`` on this engine if it is not in a swarm (left again at the end); the
stack file made from docker-compose.yml by ``docker/swarm/make_stack.py``; ``docker stack
deploy`` with local images (``--resolve-image never``: no registry); every service
converges; the ENs join; a round trains through the console (a container on the stack's
attachable ``nodes`` network); the chain verifies; ``docker service scale <stack>_en=3``
adds an EN that joins and trains in the next round; ``docker stack rm`` removes every
service, network and secret, and the stack's volumes are removed after it.
The secrets come from ``fedchain init-env`` as in the compose scenario; nothing is
published on the host (every check goes through the stack's own network). Every wait is
bounded. Prints one line per step with its duration and a JSON summary; exits 0 when all
held, 1 naming the failed step (the services' recent logs are printed).

Usage: python docker/ci/swarm.py [--image fedchain:latest] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from scenario import REPO, StepFailed, make_env, read_env, stepper, summary, wait_for

STATUS = "import urllib.request as u; print(u.urlopen('http://127.0.0.1:9080{path}', timeout=20).read().decode())"
START_ENS = 2
SCALED_ENS = 3


def docker(args: Sequence[str], timeout: float, env: dict[str, str] | None = None,
           check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run ``docker ARGS``; StepFailed on a non-zero exit when ``check``."""
    try:
        result = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired as exc:
        raise StepFailed(f"`docker {' '.join(args[:3])}` did not finish in {timeout:.0f} s") from exc
    if check and result.returncode != 0:
        raise StepFailed(f"`docker {' '.join(args[:3])}` exited {result.returncode}: "
                         f"{(result.stderr or result.stdout).strip()[-500:]}")
    return result


class SwarmStack:
    """One stack deployed from the generated stack file."""

    def __init__(self, image: str) -> None:
        self.name = f"fcsw{os.getpid()}"
        self.image = image
        self.env_dir = make_env()
        dotenv = read_env(self.env_dir / ".env")
        self.api_token = dotenv["FEDCHAIN_API_TOKEN"]
        env = {k: v for k, v in os.environ.items() if not k.startswith(("FEDCHAIN_", "FC_"))}
        env.update(dotenv)  # docker stack deploy has no --env-file: the .env is its environment
        env.update(
            FC_IMAGE=image,
            FC_ENTRY_KEY_FILE=str(self.env_dir / "fedchain-entry.key"),
            FEDCHAIN_CLIENTS=str(SCALED_ENS),
            FEDCHAIN_LOCAL_EPOCHS="1",
            FEDCHAIN_ROUND_TIMEOUT="120",
        )
        self.env = env
        self.stack_file = self.env_dir / "fedchain-stack.yml"
        self.initialised_swarm = False

    def services(self) -> dict[str, str]:
        """``service name -> replicas`` (e.g. ``2/2``) of this stack."""
        out = docker(["service", "ls", "--filter", f"label=com.docker.stack.namespace={self.name}",
                      "--format", "{{.Name}} {{.Replicas}}"], timeout=60).stdout
        return dict(line.split(maxsplit=1) for line in out.splitlines() if line.strip())

    def converged(self, want: dict[str, int]) -> bool:
        seen = self.services()
        return all(seen.get(f"{self.name}_{s}", "").split(" ")[0] == f"{n}/{n}" for s, n in want.items())

    def container(self, service: str) -> str:
        """A running container of ``service`` (on this single node)."""
        out = docker(["ps", "-q", "--filter", f"label=com.docker.swarm.service.name={self.name}_{service}"],
                     timeout=60).stdout.split()
        if not out:
            raise StepFailed(f"no running container of {self.name}_{service}")
        return out[0]

    def api(self, path: str) -> Any:
        """JSON answer of the entry's control API, read inside the msn container."""
        out = docker(["exec", self.container("msn"), "python", "-c", STATUS.format(path=path)], timeout=60).stdout
        return json.loads(out)

    def console(self, *commands: str, timeout: float = 600) -> list[Any]:
        """Commands through a console container on the stack's ``nodes`` network (--json)."""
        args = ["run", "--rm", "--network", f"{self.name}_nodes", "-e", f"FEDCHAIN_API_TOKEN={self.api_token}",
                "--cap-drop", "ALL", "--entrypoint", "fedchain", self.image,
                "console", "--ip", "msn", "--port", "9080"]
        for command in commands:
            args += ["-c", command]
        result = docker([*args, "--json"], timeout=timeout, check=False)
        lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
        if result.returncode != 0 or len(lines) != len(commands) or not all(o.get("ok") for o in lines):
            raise StepFailed(f"console {commands} exited {result.returncode}: "
                             f"{result.stdout.strip()[-400:]} {result.stderr.strip()[-400:]}")
        return [o["result"] for o in lines]

    def logs(self) -> str:
        parts = []
        for service in ("mysql", "ledger", "msn", "sn", "en"):
            result = docker(["service", "logs", "--no-task-ids", "--tail", "30", f"{self.name}_{service}"],
                            timeout=60, check=False)
            parts.append(f"--- {service}\n{result.stdout[-3000:]}{result.stderr[-1000:]}")
        return "\n".join(parts)


def scenario(stack: SwarmStack, timings: dict[str, float]) -> None:
    """The checks, in order; each records its duration in ``timings``."""
    step = stepper("swarm", timings)
    def init() -> None:
        state = docker(["info", "-f", "{{.Swarm.LocalNodeState}}"], timeout=60).stdout.strip()
        if state != "active":
            docker(["swarm", "init", "--advertise-addr", "127.0.0.1"], timeout=120)
            stack.initialised_swarm = True
    step("a single-node swarm", init)

    def make_file() -> None:
        made = subprocess.run([sys.executable, str(REPO / "docker" / "swarm" / "make_stack.py"),
                               "--ens", str(START_ENS), "--publish", "0"],
                              capture_output=True, text=True, timeout=120, env=stack.env)
        if made.returncode != 0:
            raise StepFailed(f"make_stack.py exited {made.returncode}: {made.stderr.strip()[-400:]}")
        stack.stack_file.write_text(made.stdout, encoding="utf-8")
    step("stack file from docker-compose.yml", make_file)

    step("docker stack deploy", lambda: docker(
        ["stack", "deploy", "--resolve-image", "never", "-c", str(stack.stack_file), stack.name],
        timeout=300, env=stack.env))
    want = {"mysql": 1, "ledger": 1, "msn": 1, "sn": 1, "en": START_ENS}
    step("services converge", lambda: wait_for(
        f"every service of {stack.name} at its replicas", lambda: stack.converged(want), timeout=600, interval=3))
    step(f"{START_ENS} ENs joined", lambda: wait_for(
        f"{START_ENS} ENs in /status", lambda: stack.api("/status").get("ens") == START_ENS, timeout=300,
        interval=2))

    def train(ens: int) -> Callable[[], None]:
        def run() -> None:
            before = int(stack.api("/status").get("round", 0))
            stack.console("train(rounds=1)")
            rounds = [r for r in stack.api("/rounds") if int(r.get("round", 0)) == before + 1]
            if not rounds or len(rounds[0].get("participants", [])) != ens:
                raise StepFailed(f"round {before + 1} should have {ens} participants: {rounds}")
            if not stack.api("/verify").get("ok"):
                raise StepFailed(f"the chain does not verify: {stack.api('/verify')}")
        return run
    step("console train(rounds=1), chain verifies", train(START_ENS))

    step(f"docker service scale en={SCALED_ENS}", lambda: docker(
        ["service", "scale", "--detach", f"{stack.name}_en={SCALED_ENS}"], timeout=120))
    step(f"{SCALED_ENS} ENs joined", lambda: wait_for(
        f"{SCALED_ENS} ENs in /status", lambda: stack.api("/status").get("ens") == SCALED_ENS, timeout=300,
        interval=2))
    step("the next round trains with the new EN", train(SCALED_ENS))

    def remove() -> None:
        docker(["stack", "rm", stack.name], timeout=120)
        wait_for("the stack's containers and networks to go", lambda: not docker(
            ["ps", "-aq", "--filter", f"label=com.docker.stack.namespace={stack.name}"], timeout=60).stdout.strip()
            and not docker(["network", "ls", "-q", "--filter", f"label=com.docker.stack.namespace={stack.name}"],
                           timeout=60).stdout.strip(), timeout=180, interval=2)
        left = docker(["service", "ls", "-q", "--filter", f"label=com.docker.stack.namespace={stack.name}"],
                      timeout=60).stdout.strip()
        secrets = docker(["secret", "ls", "-q", "--filter", f"label=com.docker.stack.namespace={stack.name}"],
                         timeout=60).stdout.strip()
        if left or secrets:
            raise StepFailed(f"docker stack rm left services {left!r} or secrets {secrets!r}")
    step("docker stack rm", remove)


def remove_volumes(name: str) -> None:
    """The stack's named volumes (``docker stack rm`` keeps them), once nothing uses them."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        volumes = docker(["volume", "ls", "-q", "--filter", f"label=com.docker.stack.namespace={name}"],
                         timeout=60, check=False).stdout.split()
        if not volumes:
            return
        docker(["volume", "rm", *volumes], timeout=120, check=False)
        time.sleep(2)


def main(argv: list[str]) -> int:
    """Run the scenario; always remove the stack (and leave a swarm it made) unless --keep."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", default=os.environ.get("FC_IMAGE", "fedchain:latest"))
    parser.add_argument("--keep", action="store_true", help="leave the stack up (debugging)")
    args = parser.parse_args(argv)
    timings: dict[str, float] = {}
    try:
        stack = SwarmStack(args.image)
    except StepFailed as exc:
        print(f"swarm: {exc}", file=sys.stderr)
        return 1
    failed: str | None = None
    try:
        scenario(stack, timings)
    except (StepFailed, OSError, subprocess.SubprocessError, ValueError, KeyError) as exc:
        failed = f"{type(exc).__name__}: {exc}" if not isinstance(exc, StepFailed) else str(exc)
        print(stack.logs()[-15000:], file=sys.stderr)
    finally:
        if not args.keep:
            docker(["stack", "rm", stack.name], timeout=120, check=False)
            remove_volumes(stack.name)
            if stack.initialised_swarm:
                docker(["swarm", "leave", "--force"], timeout=120, check=False)
            shutil.rmtree(stack.env_dir, ignore_errors=True)
    return summary("swarm", failed, timings)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
