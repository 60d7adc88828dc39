"""The issue-6 scenario against the real compose stack, run on the host by scripts/docker-ci.

``up -d --scale en=3``; through the console container ``train(rounds=2)``, ``eval()``,
``getSN()``, ``getModel()``; the chain verifies; one EN container is killed during a
round and the round still completes without it; graceful stop; ``down -v``.
With ``--tls`` the same scenario runs over docker-compose.tls.yml with certificates from
``fedchain certs --owner 10001`` (HTTPS to the entry, checked against the CA), plus: the
key files are readable by the containers' user, every EN's enrolled certificate names its
node id and the container address it advertises, and plain text to a TLS port (gRPC of
the entry, HTTP of the entry and the ledger) gets no answer.
The stack's secrets come as a user's would: ``fedchain init-env`` into a fresh folder (its
``.env`` is compose's --env-file, its ``fedchain-entry.key`` the entry's mounted key).
Every wait is bounded. Prints one line per step with its duration; exits 0 when all
held, 1 naming the failed step (the stack's recent logs are printed), 2 on bad usage.
Standard library plus fedchain's launcher (``fedchain.shared.processes``, for ports): run
it with the project's Python (scripts/docker-ci uses .venv/bin/python) or any python3 that
has psutil and httpx, from the checkout.

With ``--backup-restore``: every container is checked hardened (no capabilities, read-only,
no privilege gain, ENs bounded; an EN reaches neither the ledger nor the database), the
stack is backed up (``scripts/stack-backup``) after the fault, removed with its volumes
after the stop, restored into a fresh project (``scripts/stack-restore``), and that one
verifies at the old height and trains one more round.

Usage: python docker/ci/scenario.py [--image fedchain:latest] [--ens 3] [--tls] [--backup-restore] [--keep]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # the checkout's fedchain package, installed or not
    sys.path.insert(0, str(REPO))

from fedchain.shared.processes import fedchain_argv, free_port

CERTS = "/run/fedchain-certs"
"""Where docker-compose.tls.yml mounts the certificates in every container."""
IMAGE_UID = 10001
"""The image's user (Dockerfile), who must be able to read the certificates."""
ENTRY_KEY_FILE = "fedchain-entry.key"
"""The entry's signing key that ``fedchain init-env`` makes beside the ``.env``."""


class StepFailed(RuntimeError):
    """A scenario check did not hold; the message says which and what was seen."""


def compose_base() -> list[str]:
    """``docker compose`` (v2) if available, else ``docker-compose`` (v1)."""
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=30)
        if probe.returncode == 0:
            return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    raise StepFailed("neither `docker compose` nor `docker-compose` is installed")


class Stack:
    """One compose project of the repository's docker-compose.yml, with helpers for the checks."""

    def __init__(self, image: str, ens: int, tls: bool = False, restore: bool = False) -> None:
        self.restore = restore
        self.project = f"fcci{os.getpid()}"
        self.port = free_port()
        self.ens = ens
        self.tls = tls
        self.env_dir = make_env()
        dotenv = read_env(self.env_dir / ".env")
        self.api_token = dotenv["FEDCHAIN_API_TOKEN"]
        base = compose_base()
        self._base_len = len(base)
        self.compose = [*base, "-p", self.project, "--env-file", str(self.env_dir / ".env"),
                        "-f", str(REPO / "docker-compose.yml")]
        self.certs: Path | None = None
        self.context: ssl.SSLContext | None = None
        if tls:
            self.compose += ["-f", str(REPO / "docker-compose.tls.yml")]
            self.certs = make_certs()
            self.context = ssl.create_default_context(cafile=str(self.certs / "ca.pem"))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("FEDCHAIN_", "FC_"))}
        env.update(
            FC_IMAGE=image,
            FC_PUBLISH=f"127.0.0.1:{self.port}",
            FC_ENTRY_KEY_FILE=str(self.env_dir / ENTRY_KEY_FILE),  # beside the .env, as init-env made it
            FEDCHAIN_CLIENTS=str(ens),
            FEDCHAIN_LOCAL_EPOCHS="3",     # a round lasts long enough to kill an EN inside it
            FEDCHAIN_ROUND_TIMEOUT="120",
        )
        if self.certs is not None:
            env["FC_CERTS"] = str(self.certs)
        self.env = env
        self.base_url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        self.victim = "-"  # id of the EN container killed on purpose
        self.backup: Path | None = None
        self.backed_up = (0, 0)  # (height, round) of the chain when it was backed up

    def use_project(self, project: str) -> None:
        """Point every later compose command at the compose project ``project``."""
        i = self.compose.index("-p")
        self.compose[i + 1] = self.project = project

    def compose_options(self) -> list[str]:
        """The options after ``docker compose`` / ``docker-compose`` (project, env file, files)."""
        return self.compose[self._base_len:]

    # ---- processes ----
    def run(self, args: Sequence[str], timeout: float, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run a compose subcommand; raise StepFailed on a non-zero exit when ``check``."""
        try:
            result = subprocess.run([*self.compose, *args], cwd=REPO, env=self.env, capture_output=True,
                                    text=True, timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            raise StepFailed(f"`compose {' '.join(args)}` did not finish in {timeout:.0f} s") from exc
        if check and result.returncode != 0:
            tail = (result.stderr or result.stdout).strip().splitlines()[-5:]
            raise StepFailed(f"`compose {' '.join(args)}` exited {result.returncode}: {' | '.join(tail)}")
        return result

    def console(self, *commands: str, timeout: float = 600) -> list[dict[str, Any]]:
        """Run commands through the console container (one-shot, --json); return their results."""
        args = ["run", "--rm", "-T", "console"]
        for command in commands:
            args += ["-c", command]
        result = self.run([*args, "--json"], timeout=timeout, check=False)
        lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
        if result.returncode != 0 or len(lines) != len(commands) or not all(o.get("ok") for o in lines):
            raise StepFailed(f"console {commands} exited {result.returncode}: "
                             f"{result.stdout.strip()[-400:]} {result.stderr.strip()[-400:]}")
        return [o["result"] for o in lines]

    def exec_python(self, container: str, code: str, timeout: float = 60) -> str:
        """stdout of ``python -c CODE`` run in ``container`` as the image's user."""
        result = subprocess.run(["docker", "exec", container, "python", "-c", code],
                                capture_output=True, text=True, timeout=timeout)
        if result.returncode != 0:
            raise StepFailed(f"python in {container[:12]} exited {result.returncode}: "
                             f"{result.stderr.strip()[-600:]}")
        return result.stdout

    def health_code(self) -> str:
        """Python that prints this container's /health answer (over HTTPS with the CA when TLS)."""
        if not self.tls:
            return ("import urllib.request as u; "
                    "print(u.urlopen('http://127.0.0.1:9080/health').read().decode())")
        return ("import ssl, urllib.request as u; "
                f"c = ssl.create_default_context(cafile='{CERTS}/ca.pem'); "
                "print(u.urlopen('https://127.0.0.1:9080/health', context=c).read().decode())")

    def containers(self, service: str) -> list[str]:
        """Ids of the running containers of ``service``."""
        out = self.run(["ps", "-q", service], timeout=60).stdout.split()
        return [c for c in out if c]

    # ---- HTTP ----
    def http(self, method: str, path: str, body: dict[str, Any] | None = None, timeout: float = 30) -> Any:
        """JSON answer of the entry's control API (POSTs carry the bearer token)."""
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base_url + path, data=data, method=method)
        if method == "POST":
            req.add_header("Authorization", f"Bearer {self.api_token}")
            req.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(req, timeout=timeout, context=self.context) as response:  # noqa: S310
            return json.loads(response.read())

    def model_digest(self) -> str:
        """X-Model-Digest of GET /model (latest), as curl would see it."""
        with urllib.request.urlopen(self.base_url + "/model", timeout=60,  # noqa: S310
                                    context=self.context) as response:
            response.read()
            return str(response.headers["X-Model-Digest"]).lower()


def make_env() -> Path:
    """``fedchain init-env`` into a fresh folder (removed by :func:`main`), as a user would
    prepare a deployment: random tokens and passwords in its ``.env``, the entry's key
    ``fedchain-entry.key`` beside it and that key's public half in the ``.env``."""
    folder = Path(tempfile.mkdtemp(prefix="fcci-env-"))
    result = subprocess.run(fedchain_argv(["init-env", "--path", str(folder / ".env")]), cwd=folder,
                            capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        shutil.rmtree(folder, ignore_errors=True)
        raise StepFailed(f"fedchain init-env exited {result.returncode}: {result.stderr.strip()[-400:]}")
    key = folder / ENTRY_KEY_FILE
    if os.geteuid() != 0:  # not root: init-env could not chown it, let the container's user read it
        os.chmod(key, 0o644)
    return folder


def read_env(path: Path) -> dict[str, str]:
    """The active ``KEY=value`` lines of a ``.env``."""
    values: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        name, sep, value = line.strip().partition("=")
        if sep and name and not name.startswith("#"):
            values[name] = value
    return values


def make_certs() -> Path:
    """``fedchain certs --owner 10001`` into a fresh folder (removed by :func:`main`)."""
    out = Path(tempfile.mkdtemp(prefix="fcci-certs-")) / "certs"
    os.chmod(out.parent, 0o755)  # mkdtemp's 0700 would hide the folder from the image's user
    owner = ["--owner", str(IMAGE_UID)] if os.geteuid() == 0 else []
    result = subprocess.run(fedchain_argv(["certs", "--out", str(out), *owner]), cwd=REPO,
                            capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        raise StepFailed(f"fedchain certs exited {result.returncode}: {result.stderr.strip()[-400:]}")
    if not owner:  # not root: chown is impossible, let the container's user read the keys
        for key in out.glob("*.key"):
            os.chmod(key, 0o644)
    return out


ENROLLED = f"""
import glob, json, os, socket
from cryptography import x509
from fedchain.shared.crypto import NodeKey
from fedchain.shared.net.tls import node_id_of
host = socket.gethostname()
slot = next(p[:-5] for p in glob.glob('/var/lib/fedchain/en/slot-*.lock')
            if open(p).read().startswith(host + ' '))
cert = x509.load_pem_x509_certificate(open(slot + '/tls/node.pem', 'rb').read())
san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
print(json.dumps({{"ip": socket.gethostbyname(host), "key_id": NodeKey.load_or_create(slot + '/node.key').node_id,
                  "cert_id": node_id_of(cert), "ips": [str(i) for i in san.get_values_for_type(x509.IPAddress)],
                  "ca_key_readable": os.access('{CERTS}/ca.key', os.R_OK)}}))
"""
"""Python run in an EN container: its enrolled certificate, its key's id, its own address."""

PLAINTEXT = """
import http.client, json, urllib.request, grpc
from fedchain.shared.rpc import node_pb2, node_pb2_grpc
out = {}
with grpc.insecure_channel('msn:8080') as ch:
    try:
        node_pb2_grpc.NodeStub(ch).Heartbeat(node_pb2.HeartbeatRequest(node_id='x', role='SN'), timeout=10)
        out['grpc'] = 'answered'
    except grpc.RpcError as exc:
        out['grpc'] = exc.code().name
for name, url in (('msn_http', 'http://msn:9080/health'), ('ledger_http', 'http://ledger:8070/health')):
    try:
        urllib.request.urlopen(url, timeout=10).read()
        out[name] = 'answered'
    except (OSError, http.client.HTTPException) as exc:
        out[name] = type(exc).__name__
print(json.dumps(out))
"""
"""Python run in a container: plain text to the TLS ports of the entry and the ledger."""


def tls_checks(stack: Stack, step: Step) -> None:
    """The TLS overlay's own checks (the stack is up, the ENs have joined)."""
    def readable() -> None:
        msn = stack.containers("msn")[0]
        stack.exec_python(msn, f"[open('{CERTS}/' + n, 'rb').read() for n in "
                               "('ca.pem', 'ca.key', 'enroll.key', 'http.key')]")
    step("the image's user reads the certificates", readable)

    def enrolled() -> None:
        for container in stack.containers("en"):
            seen = json.loads(stack.exec_python(container, ENROLLED))
            if seen["cert_id"] != seen["key_id"] or seen["ip"] not in seen["ips"]:
                raise StepFailed(f"EN {container[:12]}: its certificate should name node {seen['key_id']} "
                                 f"and its address {seen['ip']}: {seen}")
            if seen["ca_key_readable"]:
                print(f"scenario: note: the CA key is mounted in EN {container[:12]} too", file=sys.stderr)
    step("each EN's certificate names its node and address", enrolled)

    def plaintext_refused() -> None:
        seen = json.loads(stack.exec_python(stack.containers("msn")[0], PLAINTEXT))
        if seen.get("grpc") != "UNAVAILABLE" or "answered" in seen.values():
            raise StepFailed(f"plain text to a TLS port was answered: {seen}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{stack.port}/health", timeout=10):  # noqa: S310
                raise StepFailed("the published API answered plain HTTP")
        except (OSError, http.client.HTTPException):
            pass
    step("plain text to a TLS port is refused", plaintext_refused)


REACH = """
import json, socket
out = {}
for name, host, port in (('msn', 'msn', 8080), ('ledger', 'ledger', 7070), ('mysql', 'mysql', 3306)):
    try:
        socket.create_connection((host, port), timeout=5).close()
        out[name] = 'reached'
    except OSError as exc:
        out[name] = type(exc).__name__
print(json.dumps(out))
"""
"""Python run in a container: which of the entry, the ledger and the database it can reach."""

HARDENED = ("{{json .HostConfig.CapDrop}} {{.HostConfig.ReadonlyRootfs}} {{json .HostConfig.SecurityOpt}} "
            "{{.HostConfig.Memory}}")


def hardening_checks(stack: Stack) -> None:
    """Every container runs without capabilities, read-only, without privilege gain; ENs
    are bounded; an EN reaches the entry but neither the ledger nor the database."""
    for service in ("mysql", "ledger", "msn", "sn", "en"):
        for container in stack.containers(service):
            seen = subprocess.run(["docker", "inspect", "-f", HARDENED, container], capture_output=True,
                                  text=True, timeout=60, check=True).stdout.split()
            cap_drop, read_only, security_opt, memory = json.loads(seen[0]), seen[1], json.loads(seen[2]), int(seen[3])
            if cap_drop != ["ALL"] or read_only != "true" or "no-new-privileges:true" not in security_opt:
                raise StepFailed(f"{service} {container[:12]} is not hardened: cap_drop {cap_drop}, "
                                 f"read-only {read_only}, security_opt {security_opt}")
            if service == "en" and memory <= 0:
                raise StepFailed(f"EN {container[:12]} has no memory limit")
    seen = json.loads(stack.exec_python(stack.containers("en")[0], REACH))
    if seen.get("msn") != "reached" or "reached" in (seen.get("ledger"), seen.get("mysql")):
        raise StepFailed(f"an EN should reach the entry only, not the ledger or the database: {seen}")
    seen = json.loads(stack.exec_python(stack.containers("msn")[0], REACH))
    if seen.get("ledger") != "reached" or seen.get("mysql") == "reached":
        raise StepFailed(f"the entry should reach the ledger, not the database: {seen}")


def backup(stack: Stack) -> None:
    """scripts/stack-backup of the running (idle) stack into a fresh folder."""
    wait_for("the entry to be idle", lambda: stack.http("GET", "/status").get("state") == "idle", timeout=120)
    status = stack.http("GET", "/status")
    stack.backed_up = (int(status["height"]), int(status["round"]))
    stack.backup = Path(tempfile.mkdtemp(prefix="fcci-backup-")) / "backup"
    result = subprocess.run([str(REPO / "scripts" / "stack-backup"), str(stack.backup), *stack.compose_options()],
                            cwd=REPO, env=stack.env, capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        raise StepFailed(f"stack-backup exited {result.returncode}: {result.stderr.strip()[-600:]}")
    names = {line.split()[-1] for line in (stack.backup / "SHA256SUMS").read_text().splitlines()}
    want = {"msn-state.tgz", "fedchain.sql", "ledger-state.tgz", "sn-state.tgz", "en-state.tgz",
            "fedchain-entry.key"}
    if not want <= names:
        raise StepFailed(f"the backup lacks {sorted(want - names)}")


def restore_and_train(stack: Stack) -> None:
    """The old stack removed with its volumes; the backup restored into a new project; it
    starts, its chain verifies at the old height, and it trains one more round."""
    assert stack.backup is not None
    height, round_no = stack.backed_up
    stack.run(["--profile", "console", "down", "-v", "--remove-orphans"], timeout=300)
    stack.use_project(f"{stack.project}r")
    result = subprocess.run([str(REPO / "scripts" / "stack-restore"), str(stack.backup), *stack.compose_options()],
                            cwd=REPO, env=stack.env, capture_output=True, text=True, timeout=900)
    if result.returncode != 0:
        raise StepFailed(f"stack-restore exited {result.returncode}: {result.stderr.strip()[-600:]}")
    stack.run(["up", "-d", "--no-build", "--scale", f"en={stack.ens}"], timeout=600)
    status = wait_for(f"{stack.ens} ENs back in /status", lambda: (
        s if (s := stack.http("GET", "/status")).get("ens") == stack.ens else None), timeout=300)
    if int(status["height"]) < height or int(status["round"]) != round_no:
        raise StepFailed(f"the restored chain is at height {status['height']} round {status['round']}, "
                         f"the backup's at height {height} round {round_no}")
    if not stack.http("GET", "/verify").get("ok"):
        raise StepFailed(f"the restored chain does not verify: {stack.http('GET', '/verify')}")
    stack.console("train(rounds=1)")
    after = stack.http("GET", "/status")
    if int(after.get("round", 0)) != round_no + 1 or not stack.http("GET", "/verify").get("ok"):
        raise StepFailed(f"the restored stack should train round {round_no + 1} and verify: {after}")
    print(f"scenario: restored at height {height}, trained round {round_no + 1}", file=sys.stderr)


Step = Callable[[str, Callable[[], Any]], Any]


def stepper(prefix: str, timings: dict[str, float]) -> Step:
    """``step(name, action)``: run ``action``, print its start and its duration, record it."""
    def step(name: str, action: Callable[[], Any]) -> Any:
        start = time.monotonic()
        print(f"{prefix}: {name} ...", file=sys.stderr, flush=True)
        value = action()
        timings[name] = round(time.monotonic() - start, 1)
        print(f"{prefix}: {name}: ok ({timings[name]} s)", file=sys.stderr, flush=True)
        return value
    return step


def summary(prefix: str, failed: str | None, timings: dict[str, float]) -> int:
    """Print the JSON summary line (what tests/docker reads) and the failure; the exit code."""
    print(json.dumps({"ok": failed is None, "failed": failed, "seconds": timings}))
    if failed:
        print(f"{prefix}: FAILED: {failed}", file=sys.stderr)
        return 1
    return 0


def wait_for(what: str, probe: Callable[[], Any], timeout: float, interval: float = 1.0) -> Any:
    """Call ``probe`` until it returns a truthy value (errors count as not yet); bounded by ``timeout``."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            value = probe()
        except (OSError, ValueError, KeyError) as exc:
            value, last = None, exc
        if value:
            return value
        time.sleep(interval)
    raise StepFailed(f"timed out after {timeout:.0f} s waiting for {what} (last error: {last})")


def scenario(stack: Stack, timings: dict[str, float]) -> None:
    """The checks, in order; each records its duration in ``timings``."""
    step = stepper("scenario", timings)
    step("up -d --scale en=N", lambda: stack.run(
        ["up", "-d", "--no-build", "--scale", f"en={stack.ens}"], timeout=600))
    step(f"{stack.ens} ENs joined", lambda: wait_for(
        f"{stack.ens} ENs in /status",
        lambda: stack.http("GET", "/status").get("ens") == stack.ens, timeout=240))
    step("hardened containers and separate networks", lambda: hardening_checks(stack))
    if stack.tls:
        tls_checks(stack, step)

    def train() -> None:
        [outcome] = stack.console("train(rounds=2)")
        status = stack.http("GET", "/status")
        if status.get("round", 0) < 2:
            raise StepFailed(f"train(rounds=2) returned but /status says round {status.get('round')}: {outcome}")
    step("console train(rounds=2)", train)

    def evaluate() -> None:
        [result] = stack.console("eval()")
        clients = result.get("clients", [])
        pooled = result.get("pooled", {})
        if len(clients) != stack.ens:
            raise StepFailed(f"eval() reported {len(clients)} ENs, expected {stack.ens}: {result}")
        if not 0.3 <= float(pooled.get("accuracy", 0)) <= 1.0:
            raise StepFailed(f"eval() pooled accuracy {pooled.get('accuracy')} is not above chance (10 classes)")
        print(f"scenario: pooled personal accuracy {pooled['accuracy']:.3f} over {pooled.get('total')} samples",
              file=sys.stderr)
    step("console eval()", evaluate)

    def get_sn() -> None:
        [sns] = stack.console("getSN()")
        if len(sns) < 2 or sum(int(s.get("ens", 0)) for s in sns) != stack.ens:
            raise StepFailed(f"getSN() should list the M-SN and the SN holding {stack.ens} ENs: {sns}")
        if not any(s.get("entry") for s in sns):
            raise StepFailed(f"getSN() lists no entry super node: {sns}")
    step("console getSN()", get_sn)

    def get_model() -> None:
        [model] = stack.console("getModel()")
        digest = stack.model_digest()
        if model.get("digest") != digest or int(model.get("bytes", 0)) <= 0:
            raise StepFailed(f"getModel() gave {model}, GET /model has digest {digest}")
    step("console getModel()", get_model)

    def verify() -> None:
        result = stack.http("GET", "/verify")
        if not result.get("ok"):
            raise StepFailed(f"/verify: {result}")
        stack.console("verify()")
    step("chain verifies", verify)

    def kill_en_mid_round() -> None:
        before = stack.http("GET", "/status")
        victim = stack.victim = stack.containers("en")[0]
        victim_id = json.loads(stack.exec_python(victim, stack.health_code()))["node_id"]
        stack.http("POST", "/train", {"rounds": 1})
        wait_for("the round to start", lambda: stack.http("GET", "/status").get("state") == "training",
                 timeout=30, interval=0.1)
        subprocess.run(["docker", "kill", victim], capture_output=True, timeout=60, check=True)
        target = int(before.get("round", 0)) + 1
        wait_for(f"round {target} to complete without the killed EN",
                 lambda: stack.http("GET", "/status").get("round", 0) >= target, timeout=300)
        last = [r for r in stack.http("GET", "/rounds") if r.get("round") == target]
        if not last:
            raise StepFailed(f"/rounds has no round {target}")
        participants = last[0].get("participants", [])
        if victim_id in participants or len(participants) != stack.ens - 1:
            raise StepFailed(f"round {target} should have the {stack.ens - 1} live ENs and not the killed "
                             f"{victim_id}: participants {participants}")
        print(f"scenario: round {target} completed with {len(participants)} of {stack.ens} ENs "
              f"(killed {victim_id[:12]})", file=sys.stderr)
        result = stack.http("GET", "/verify")
        if not result.get("ok"):
            raise StepFailed(f"/verify after the fault: {result}")
    step("kill an EN during a round", kill_en_mid_round)
    if stack.restore:
        step("backup (scripts/stack-backup)", lambda: backup(stack))

    def graceful_stop() -> None:
        start = time.monotonic()
        stack.run(["stop"], timeout=300)  # the file's stop_grace_period
        elapsed = time.monotonic() - start
        ids = subprocess.run(["docker", "ps", "-aq", "--filter", f"label=com.docker.compose.project={stack.project}"],
                             capture_output=True, text=True, timeout=60).stdout.split()
        states = subprocess.run(["docker", "inspect", "-f", "{{.Id}} {{.Name}} {{.State.ExitCode}}", *ids],
                                capture_output=True, text=True, timeout=60).stdout.splitlines()
        exits = {name.lstrip("/"): int(code) for cid, name, code in (line.split() for line in states)
                 if not cid.startswith(stack.victim)}
        print(f"scenario: stop took {elapsed:.1f} s; exit codes {exits}", file=sys.stderr)
        killed = sorted(name for name, code in exits.items() if code == 137)
        if killed:
            raise StepFailed(f"needed SIGKILL after the grace period (SIGTERM not handled): {killed}")
    step("graceful stop (SIGTERM)", graceful_stop)
    if stack.restore:
        step("restore into a fresh stack, verify, train a round", lambda: restore_and_train(stack))


def main(argv: list[str]) -> int:
    """Run the scenario; always tear the stack down unless --keep."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", default=os.environ.get("FC_IMAGE", "fedchain:latest"))
    parser.add_argument("--ens", type=int, default=3)
    parser.add_argument("--tls", action="store_true", help="over docker-compose.tls.yml (fedchain certs)")
    parser.add_argument("--keep", action="store_true", help="leave the stack up (debugging)")
    parser.add_argument("--backup-restore", action="store_true",
                        help="also back the stack up, restore it into a fresh one and train a round there")
    args = parser.parse_args(argv)
    if args.ens < 2:
        parser.error("--ens must be at least 2 (one is killed during a round)")
    timings: dict[str, float] = {}
    try:
        stack = Stack(args.image, args.ens, tls=args.tls, restore=args.backup_restore)
    except StepFailed as exc:
        print(f"scenario: {exc}", file=sys.stderr)
        return 1
    failed: str | None = None
    try:
        scenario(stack, timings)
    except (StepFailed, OSError, subprocess.SubprocessError, ValueError, KeyError) as exc:
        failed = f"{type(exc).__name__}: {exc}" if not isinstance(exc, StepFailed) else str(exc)
        logs = stack.run(["logs", "--no-color", "--tail", "40"], timeout=120, check=False)
        print(logs.stdout[-12000:], file=sys.stderr)
    finally:
        if not args.keep:
            start = time.monotonic()
            stack.run(["--profile", "console", "down", "-v", "--remove-orphans"],
                      timeout=300, check=False)
            timings["down -v"] = round(time.monotonic() - start, 1)
            if stack.certs is not None:
                shutil.rmtree(stack.certs.parent, ignore_errors=True)
            if stack.backup is not None:
                shutil.rmtree(stack.backup.parent, ignore_errors=True)
            shutil.rmtree(stack.env_dir, ignore_errors=True)
    return summary("scenario", failed, timings)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
