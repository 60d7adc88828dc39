"""docker-compose.yml and .env: valid, complete, scalable, and in step with shared/config.py."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from fedchain.shared.config import Settings, load_settings

# Settings that docker-compose.yml sets per service (or that are flags), not passed through.
PER_SERVICE = {"port", "http_port", "host", "advertise_host", "nt", "entry", "ledger",
               "state_dir", "db_url", "data_dir", "ledger_entry_key", "entry_key", "node_key",
               "tls_ca_key",  # the CA key: the entry only
               "attack"}  # an experiment for edge nodes: the en service only
FEDCHAIN_SERVICES = {"ledger", "msn", "sn", "en", "console"}
TOKENS = {"sn_join_token", "en_join_token", "api_token"}
# The tokens each service gets (and no other): an EN never sees the SN join token.
SERVICE_TOKENS = {"ledger": set(), "msn": TOKENS, "sn": {"sn_join_token", "api_token"},
                  "en": {"en_join_token"}, "console": {"api_token"}}
# What compose requires: a value for each, no built-in default (`fedchain init-env` writes them).
SECRETS = {"FEDCHAIN_SN_JOIN_TOKEN": "sn-join-" + "s" * 20, "FEDCHAIN_EN_JOIN_TOKEN": "en-join-" + "e" * 20,
           "FEDCHAIN_API_TOKEN": "api-token-" + "a" * 20, "FC_MYSQL_PASSWORD": "db-password-" + "p" * 16,
           "FC_MYSQL_ROOT_PASSWORD": "db-root-" + "r" * 16,
           "FEDCHAIN_LEDGER_ENTRY_KEY": "ab" * 32}
ENV_LINE = re.compile(r"^#?\s*([A-Z][A-Z0-9_]*)=(.*)$")


def clean_env(**extra: str) -> dict[str, str]:
    """The test process's environment without FEDCHAIN_*/FC_* settings, plus the secrets and
    ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FEDCHAIN_", "FC_"))}
    env.update(SECRETS)
    env.update(extra)
    return env


def rendered(compose: list[str], repo: Path, **env: str) -> dict[str, Any]:
    """`compose config` output (every profile) parsed, as a user's compose would see it."""
    result = subprocess.run(
        [*compose, "--profile", "console", "config"], cwd=repo, env=clean_env(**env),
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    data = yaml.safe_load(result.stdout)
    assert isinstance(data, dict)
    return data


def mount_target(volume: str | dict[str, Any]) -> str:
    """The container path of a volume entry (v1 renders `src:dst:mode`, v2 a mapping)."""
    if isinstance(volume, dict):
        return str(volume["target"])
    return volume.split(":")[1]


def published_port(port: str | dict[str, Any]) -> tuple[str, str, str]:
    """(host ip, host port, container port) of a port entry in either compose's rendering."""
    if isinstance(port, dict):
        return str(port.get("host_ip")), str(port.get("published")), str(port.get("target"))
    ip, host, container = port.split("/")[0].split(":")
    return ip, host, container


def env_file_keys(path: Path) -> tuple[dict[str, str], list[str]]:
    """(active KEY=value lines, every key documented, commented or not) of a .env file."""
    active: dict[str, str] = {}
    documented: list[str] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        m = ENV_LINE.match(line.strip())
        if not m:
            continue
        documented.append(m.group(1))
        if not line.lstrip().startswith("#"):
            active[m.group(1)] = m.group(2)
    return active, documented


def test_compose_config_is_valid(compose: list[str], repo: Path) -> None:
    result = subprocess.run([*compose, "config", "-q"], cwd=repo, env=clean_env(),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("missing", sorted(SECRETS))
def test_compose_refuses_to_start_without_a_secret(
    compose: list[str], repo: Path, tmp_path: Path, missing: str
) -> None:
    """No built-in token or password: a missing one stops compose, naming it and the fix."""
    empty = tmp_path / "empty.env"  # not the checkout's .env, which may hold secrets
    empty.write_text("")
    env = {k: v for k, v in clean_env().items() if k != missing}
    result = subprocess.run([*compose, "--env-file", str(empty), "config", "-q"], check=False, cwd=repo, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert f"set {missing}, e.g. with fedchain init-env" in result.stderr, result.stderr


def test_secrets_reach_only_the_services_that_need_them(compose: list[str], repo: Path) -> None:
    services = rendered(compose, repo)["services"]
    for name, tokens in SERVICE_TOKENS.items():
        environment = services[name]["environment"]
        for token in TOKENS:
            variable = f"FEDCHAIN_{token.upper()}"
            assert (environment.get(variable) == SECRETS[variable]) == (token in tokens), (name, variable)
    mysql = services["mysql"]["environment"]
    assert mysql["MARIADB_PASSWORD"] == SECRETS["FC_MYSQL_PASSWORD"]
    assert mysql["MARIADB_ROOT_PASSWORD"] == SECRETS["FC_MYSQL_ROOT_PASSWORD"]
    assert f":{SECRETS['FC_MYSQL_PASSWORD']}@mysql:" in services["ledger"]["environment"]["FEDCHAIN_DB_URL"]
    text = (repo / "docker-compose.yml").read_text()
    assert "fedchain-root" not in text and ":-fedchain}" not in text


def test_the_entry_key_reaches_the_ledger_the_entry_and_every_joining_node(
    compose: list[str], repo: Path
) -> None:
    """The ledger pins the entry's public key, msn signs with the mounted key file, SNs and
    ENs take only a join reply signed by that key."""
    services = rendered(compose, repo)["services"]
    public = SECRETS["FEDCHAIN_LEDGER_ENTRY_KEY"]
    assert services["ledger"]["environment"]["FEDCHAIN_LEDGER_ENTRY_KEY"] == public
    for name in ("sn", "en"):
        assert services[name]["environment"]["FEDCHAIN_ENTRY_KEY"] == public, name
    key_file = services["msn"]["environment"]["FEDCHAIN_NODE_KEY"]
    assert key_file in {mount_target(v) for v in services["msn"]["volumes"]}
    for name in ("console", "msn"):
        assert "FEDCHAIN_ENTRY_KEY" not in services[name]["environment"], name


def test_services_dependencies_and_volumes(compose: list[str], repo: Path) -> None:
    services = rendered(compose, repo)["services"]
    assert set(services) - {"prometheus", "grafana"} == {"mysql"} | FEDCHAIN_SERVICES  # + profile monitoring
    expected_deps = {"ledger": {"mysql"}, "msn": {"ledger"}, "sn": {"msn"}, "en": {"msn", "sn"},
                     "console": {"msn"}}
    for name, deps in expected_deps.items():
        depends = services[name]["depends_on"]
        assert set(depends) == deps, name
        assert all(d["condition"] == "service_healthy" for d in depends.values()), name
    def targets(name: str) -> set[str]:
        return {mount_target(v) for v in services[name].get("volumes", [])}
    assert "/var/lib/mysql" in targets("mysql")
    assert "/var/lib/fedchain/ledger" in targets("ledger")
    assert "/var/lib/fedchain/msn" in targets("msn")
    assert "/var/lib/fedchain/en" in targets("en")
    assert services["mysql"]["healthcheck"]["test"][0] in {"CMD", "CMD-SHELL"}
    assert "--max-allowed-packet=256M" in services["mysql"]["command"]
    assert "--innodb-flush-log-at-trx-commit=1" in services["mysql"]["command"]
    # graceful stop: an init process forwards SIGTERM, a bounded grace period
    for name in FEDCHAIN_SERVICES:
        assert services[name].get("init") is True, name


def test_edge_and_super_nodes_can_scale(compose: list[str], repo: Path) -> None:
    services = rendered(compose, repo)["services"]
    for name in ("en", "sn"):
        svc = services[name]
        assert "container_name" not in svc, f"{name}: a fixed name prevents --scale"
        assert not svc.get("ports"), f"{name}: a published host port prevents --scale"
        assert svc["environment"].get("FC_STATE_SLOTS_DIR"), f"{name}: replicas need their own state"
    assert services["console"]["profiles"] == ["console"]  # `up` leaves it out


def test_published_port_and_settings_come_from_the_shell(compose: list[str], repo: Path) -> None:
    services = rendered(compose, repo, FC_PUBLISH="127.0.0.1:19080", FEDCHAIN_ROUNDS="3",
                        FEDCHAIN_API_TOKEN="api-token-from-the-shell", FC_IMAGE="fedchain:test")["services"]
    assert published_port(services["msn"]["ports"][0]) == ("127.0.0.1", "19080", "9080")
    for name in FEDCHAIN_SERVICES:
        assert services[name]["environment"]["FEDCHAIN_ROUNDS"] == "3", name
        assert services[name]["image"] == "fedchain:test", name
    for name in ("msn", "sn", "console"):
        assert services[name]["environment"]["FEDCHAIN_API_TOKEN"] == "api-token-from-the-shell", name


def test_every_setting_reaches_the_containers(compose: list[str], repo: Path) -> None:
    """A new field in shared/config.py must be passed through (or set per service)."""
    services = rendered(compose, repo)["services"]
    fields = set(Settings.model_fields)
    for name in FEDCHAIN_SERVICES:
        keys = {k for k in services[name]["environment"] if k.startswith("FEDCHAIN_")}
        names = {k.removeprefix("FEDCHAIN_").lower() for k in keys}
        assert names <= fields, f"{name}: not settings: {sorted(names - fields)}"
        assert names & TOKENS == SERVICE_TOKENS[name], f"{name}: tokens"
        missing = fields - PER_SERVICE - TOKENS - names
        assert not missing, f"{name}: settings not passed to the container: {sorted(missing)}"


def test_env_file_documents_every_setting_and_nothing_else(repo: Path) -> None:
    active, documented_all = env_file_keys(repo / ".env")
    fields = {f"FEDCHAIN_{name.upper()}" for name in Settings.model_fields}
    database = {"FC_MYSQL_PASSWORD", "FC_MYSQL_ROOT_PASSWORD"}  # the compose file's secrets
    assert database <= set(documented_all)
    documented = [key for key in documented_all if key not in database]
    assert not {k: v for k, v in active.items() if k in SECRETS and v}, "a secret is built into .env"
    assert set(documented) == fields, (
        f"undocumented: {sorted(fields - set(documented))}, unknown: {sorted(set(documented) - fields)}"
    )
    assert len(documented) == len(set(documented)), "a setting is documented twice"
    assert set(active) <= fields  # anything else would make `fedchain` refuse to start here


def test_env_file_is_accepted_by_fedchain(repo: Path, monkeypatch: Any) -> None:
    """`fedchain` run from the repository root reads .env: it must load cleanly."""
    for key in list(os.environ):
        if key.startswith("FEDCHAIN_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(repo)
    settings = load_settings()
    assert settings.model_dump() == Settings(_env_file=None).model_dump()


def test_the_tls_overlay_puts_every_grpc_and_http_hop_on_tls(compose: list[str], repo: Path) -> None:
    overlay = [*compose, "-f", "docker-compose.yml", "-f", "docker-compose.tls.yml"]
    services = rendered(overlay, repo, FC_CERTS="/srv/certs")["services"]
    certs = "/run/fedchain-certs"
    for name in FEDCHAIN_SERVICES:
        assert certs in {mount_target(v) for v in services[name]["volumes"]}, name
        if name == "console":
            continue
        env = services[name]["environment"]
        assert env["FEDCHAIN_TLS_CA"] == f"{certs}/ca.pem", name
        assert (env["FEDCHAIN_HTTP_TLS_CERT"], env["FEDCHAIN_HTTP_TLS_KEY"]) == (
            f"{certs}/http.pem", f"{certs}/http.key"), name
        assert env["FEDCHAIN_TLS_CERT"] == f"{certs}/{'ledger' if name == 'ledger' else 'enroll'}.pem"
        assert ("FEDCHAIN_TLS_CA_KEY" in env) == (name == "msn"), name  # the CA key: the entry only
    console = services["console"]["entrypoint"]
    assert console[-4:] == ["--url", "https://msn:9080", "--ca", f"{certs}/ca.pem"]


def test_compose_keeps_the_last_20_rounds_of_updates_unless_told(
    compose: list[str], repo: Path
) -> None:
    default = rendered(compose, repo)["services"]
    told = rendered(compose, repo, FEDCHAIN_KEEP_UPDATES="all")["services"]
    for name in ("ledger", "msn"):  # the ledger prunes, the entry uploads
        assert default[name]["environment"]["FEDCHAIN_KEEP_UPDATES"] == "last:20", name
        assert told[name]["environment"]["FEDCHAIN_KEEP_UPDATES"] == "all", name


def test_every_service_runs_hardened(compose: list[str], repo: Path) -> None:
    """No capabilities (the database keeps the five its entry point needs), no privilege gain,
    a read-only root filesystem with only the state volumes and /tmp writable, bounded ENs."""
    services = rendered(compose, repo)["services"]
    for name in (*FEDCHAIN_SERVICES, "mysql"):
        s = services[name]
        assert s.get("cap_drop") == ["ALL"], name
        assert "no-new-privileges:true" in s.get("security_opt", []), name
        assert s.get("read_only") is True, name
        assert any(str(t).startswith("/tmp") for t in s.get("tmpfs", [])), name
    for name in FEDCHAIN_SERVICES:
        assert not services[name].get("cap_add"), name
    assert set(services["mysql"]["cap_add"]) == {"CHOWN", "DAC_OVERRIDE", "FOWNER", "KILL", "SETGID", "SETUID"}
    en = services["en"]
    assert en.get("mem_limit") and float(en.get("cpus", 0)) > 0 and en.get("pids_limit") == 512


def test_edge_nodes_reach_neither_the_ledger_nor_the_database(compose: list[str], repo: Path) -> None:
    """Three networks: ENs, SNs and the console on ``nodes``; only the entry also on
    ``chain`` (the ledger); only the ledger also on ``db`` (the database)."""
    data = rendered(compose, repo)
    nets = {name: set(s.get("networks", {})) for name, s in data["services"].items()}
    assert nets["en"] == nets["sn"] == nets["console"] == {"nodes"}
    assert nets["msn"] == {"nodes", "chain"}
    assert nets["ledger"] == {"chain", "db"}
    assert nets["mysql"] == {"db"}
    assert data["networks"]["chain"].get("internal") is True
    assert data["networks"]["db"].get("internal") is True
