"""Write the Docker Swarm stack file of fedchain from docker-compose.yml (one source of truth).

``docker stack deploy`` reads the Compose v3 format, which lacks what docker-compose.yml
uses for a single machine. This turns the compose file into a stack file:

* services with a ``profiles`` entry (the console, Prometheus, Grafana) are left out: run
  the console with ``docker run --rm -it --network <stack>_nodes ...`` (see ``--help``);
* ``build``, ``depends_on`` (Swarm has no start-up order: nodes retry joining, the ledger
  retries its database, and the restart policy covers the rest) and ``restart`` (becomes
  ``deploy.restart_policy``) are dropped;
* ``cpus`` / ``mem_limit`` become ``deploy.resources.limits``; ``pids_limit`` and
  ``security_opt`` have no Swarm equivalent and are dropped (``cap_drop``, ``read_only`` and
  the tmpfs mounts stay);
* the entry's key file becomes a Swarm secret (``fedchain-entry-key``, from
  ``FC_ENTRY_KEY_FILE``), mounted where the compose file mounts it, readable by uid 10001 only;
* the published port becomes a host-mode port (Swarm has no host IP: it listens on every
  interface of the node running ``msn``; ``--publish`` picks the port, ``0`` publishes none);
* a pass-through setting (a name without a value) becomes ``${NAME:-}``: the deploying
  shell's value, or empty, which fedchain treats as unset;
* the image's health probe gets more patience (Swarm replaces an unhealthy task, compose
  only marks it; a 4 s timeout killed the ledger in a loop on a loaded host);
* every service resolves by DNS round robin (``endpoint_mode: dnsrr``: a name gives the
  tasks' own addresses). Swarm's default virtual IPs need IPVS in the kernel, which some
  hosts lack (the CI machine: "No route to host"); each fedchain service but the ENs runs
  one replica and nothing dials the ENs by name, so nothing is lost (``--endpoint-mode vip``
  restores the default);
* every network is an overlay network (``nodes`` attachable, for the console and for
  checks); ``--ens`` sets the number of EN replicas to start with
  (``docker service scale <stack>_en=N`` changes it later);
* ``--constraint`` adds a placement constraint to ``mysql``, ``ledger`` and ``msn``, which
  must stay with their (node-local) volumes on a multi-machine swarm.

The ``${...}`` placeholders are kept: ``docker stack deploy`` fills them from its own
environment (it has no ``--env-file``; export the ``.env`` first). Compose's required
``${NAME:?message}`` becomes ``${NAME}`` (docker stack deploy 20.10 misreads the message),
the names are listed in ``x-fedchain-required``, and the file is written only when each is
set in this environment (``--no-env-check`` skips that).

Usage::

    python docker/swarm/make_stack.py [--ens 2] [--publish 9080] [--constraint node.role==manager] \\
        > fedchain-stack.yml
    set -a; . ./.env; set +a
    docker stack deploy --resolve-image never -c fedchain-stack.yml fedchain
"""

from __future__ import annotations

import argparse
import copy
import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
KEY_TARGET = "/run/secrets/fedchain-entry.key"
SECRET = "fedchain-entry-key"
STATEFUL = ("mysql", "ledger", "msn")
"""Services whose volumes hold the federation's state: one replica, kept in place."""
DROPPED = ("build", "depends_on", "restart", "profiles", "cpus", "mem_limit", "pids_limit",
           "security_opt", "container_name", "stdin_open", "tty")
SWARM_HEALTHCHECK = {"interval": "10s", "timeout": "15s", "retries": 6, "start_period": "180s"}
"""The image's health probe, with the patience a loaded host needs (Swarm acts on it)."""
RESTART = {"unless-stopped": "any", "always": "any", "on-failure": "on-failure", "no": "none"}


class StackError(ValueError):
    """The compose file holds something this converter does not know how to carry over."""


def _tmpfs_mounts(entries: list[str]) -> list[dict[str, Any]]:
    """``/tmp:size=256m,mode=1777`` entries as Swarm tmpfs mounts (size in bytes)."""
    mounts = []
    for entry in entries:
        target, _, options = str(entry).partition(":")
        mount: dict[str, Any] = {"type": "tmpfs", "target": target}
        for option in filter(None, options.split(",")):
            name, _, value = option.partition("=")
            if name == "size":
                mount.setdefault("tmpfs", {})["size"] = _bytes(value)
        mounts.append(mount)
    return mounts


def _bytes(text: str) -> int:
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
    text = text.strip().lower()
    if text[-1:] in units:
        return int(float(text[:-1]) * units[text[-1]])
    return int(text)


def _port(entry: Any, publish: int) -> dict[str, Any]:
    """``HOST_IP:HOST_PORT:CONTAINER`` as a host-mode port on ``publish``."""
    target = int(str(entry).rsplit(":", 1)[-1].split("/")[0])
    return {"target": target, "published": publish, "protocol": "tcp", "mode": "host"}


def convert_service(
    name: str, service: dict[str, Any], *, ens: int, publish: int, constraints: list[str],
    endpoint_mode: str = "dnsrr",
) -> dict[str, Any]:
    """One compose service as a stack service."""
    out = {k: copy.deepcopy(v) for k, v in service.items() if k not in DROPPED and k != "tmpfs"}
    deploy: dict[str, Any] = {
        "replicas": ens if name == "en" else 1,
        "endpoint_mode": endpoint_mode,
        "restart_policy": {"condition": RESTART.get(str(service.get("restart", "no")), "any"),
                           "delay": "5s"},
    }
    limits = {}
    if "cpus" in service:
        limits["cpus"] = str(service["cpus"])
    if "mem_limit" in service:
        limits["memory"] = str(service["mem_limit"])
    if limits:
        deploy["resources"] = {"limits": limits}
    if name in STATEFUL and constraints:
        deploy["placement"] = {"constraints": list(constraints)}
    out["deploy"] = deploy
    if "healthcheck" not in service and name != "mysql":
        # Swarm replaces an unhealthy task (compose only marks it): the image's 4 s probe
        # timeout is too tight for a loaded host, where the ledger then never settles
        out["healthcheck"] = dict(SWARM_HEALTHCHECK)
    env = out.get("environment")
    if isinstance(env, dict):  # a pass-through (no value): from the deploying shell, or empty
        out["environment"] = {k: f"${{{k}:-}}" if v is None else v for k, v in env.items()}
    volumes = []
    for volume in service.get("volumes", []):
        text = str(volume)
        if f":{KEY_TARGET}" in text:
            out["secrets"] = [{"source": SECRET, "target": Path(KEY_TARGET).name,
                               "uid": "10001", "gid": "10001", "mode": 0o400}]
            continue
        volumes.append(volume)
    volumes += _tmpfs_mounts(service.get("tmpfs", []))
    if volumes:
        out["volumes"] = volumes
    if "ports" in service:
        ports = [_port(p, publish) for p in service["ports"]] if publish else []
        if ports:
            out["ports"] = ports
        else:
            del out["ports"]
    for key in ("command", "entrypoint", "image"):
        if key in out and not isinstance(out[key], (str, list)):
            raise StackError(f"service {name}: {key} must be a string or a list")
    return out


REQUIRED = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*):?\?[^}]*\}")
"""``${NAME:?message}``: compose's required variable, which docker stack deploy (20.10)
misreads (a ``-`` in the message becomes a default); written ``${NAME}`` and listed in
``x-fedchain-required`` instead, and checked by ``main`` before the file is written."""


def _required(value: Any, names: set[str]) -> Any:
    """``value`` with every ``${NAME:?message}`` made ``${NAME}`` (the names into ``names``)."""
    if isinstance(value, str):
        def plain(m: re.Match[str]) -> str:
            names.add(m.group(1))
            return "${" + m.group(1) + "}"
        return REQUIRED.sub(plain, value)
    if isinstance(value, list):
        return [_required(v, names) for v in value]
    if isinstance(value, dict):
        return {k: _required(v, names) for k, v in value.items()}
    return value


def make_stack(
    compose: dict[str, Any], *, ens: int = 2, publish: int = 9080, constraints: list[str] | None = None,
    endpoint_mode: str = "dnsrr",
) -> dict[str, Any]:
    """The stack file (as a dict) for the parsed ``compose`` file."""
    services = compose.get("services")
    if not isinstance(services, dict):
        raise StackError("the compose file has no services")
    out_services = {
        name: convert_service(name, s, ens=ens, publish=publish, constraints=constraints or [],
                              endpoint_mode=endpoint_mode)
        for name, s in services.items()
        if not s.get("profiles")
    }
    networks = {}
    for name, spec in (compose.get("networks") or {}).items():
        spec = dict(spec or {})
        spec["driver"] = "overlay"
        if name == "nodes":
            spec["attachable"] = True
        networks[name] = spec
    used = {n for s in out_services.values() for n in s.get("networks", [])}
    stack: dict[str, Any] = {
        "version": "3.8",
        "services": out_services,
        "networks": {n: spec for n, spec in networks.items() if n in used},
        "volumes": {
            v: spec for v, spec in (compose.get("volumes") or {}).items()
            if any(str(m).split(":")[0] == v for s in out_services.values() for m in s.get("volumes", []))
        },
    }
    if any("secrets" in s for s in out_services.values()):
        stack["secrets"] = {SECRET: {"file": "${FC_ENTRY_KEY_FILE:-./fedchain-entry.key}"}}
    names: set[str] = set()
    stack = _required(stack, names)
    stack["x-fedchain-required"] = sorted(names)
    return stack


def missing_variables(stack: dict[str, Any], environ: Mapping[str, str]) -> list[str]:
    """The required variables (``x-fedchain-required``) unset or empty in ``environ``."""
    return [n for n in stack.get("x-fedchain-required", []) if not environ.get(n)]


def main(argv: list[str] | None = None) -> int:
    """Print the stack file for docker-compose.yml (or ``--compose``)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--compose", type=Path, default=REPO / "docker-compose.yml")
    p.add_argument("--ens", type=int, default=2, help="EN replicas to start with")
    p.add_argument("--publish", type=int, default=9080, help="host port of the entry's API (0: none)")
    p.add_argument("--constraint", action="append", default=[],
                   help="placement constraint for mysql, ledger and msn (e.g. node.hostname==db1)")
    p.add_argument("--endpoint-mode", choices=("dnsrr", "vip"), default="dnsrr",
                   help="how service names resolve (default dnsrr: to the tasks' own addresses)")
    p.add_argument("--no-env-check", action="store_true",
                   help="write the file even when a required variable is not set here")
    args = p.parse_args(argv)
    if not 0 <= args.ens <= 1000 or not 0 <= args.publish <= 65535:
        p.error("--ens must be 0..1000 and --publish 0..65535")
    try:
        compose = yaml.safe_load(args.compose.read_text(encoding="utf-8"))
        stack = make_stack(compose, ens=args.ens, publish=args.publish, constraints=args.constraint,
                           endpoint_mode=args.endpoint_mode)
    except (OSError, yaml.YAMLError, StackError) as exc:
        print(f"make_stack: {exc}", file=sys.stderr)
        return 2
    missing = [] if args.no_env_check else missing_variables(stack, os.environ)
    if missing:
        print(f"make_stack: set {', '.join(missing)} (e.g. with fedchain init-env, then export the .env): "
              "docker stack deploy would run without them", file=sys.stderr)
        return 2
    sys.stdout.write("# generated by docker/swarm/make_stack.py from docker-compose.yml: do not edit\n")
    yaml.safe_dump(stack, sys.stdout, sort_keys=False, default_flow_style=False, width=120)
    return 0


if __name__ == "__main__":
    sys.exit(main())
