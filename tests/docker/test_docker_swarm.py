"""The Docker Swarm stack file made from docker-compose.yml, checked without an engine. The
real deployment (``scripts/docker-ci --swarm``) is ``tests/docker/test_docker_stack.py::
test_swarm_stack_scenario``, beside the compose scenarios so that the stacks run one after
another."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO

sys.path.insert(0, str(REPO / "docker" / "swarm"))

from make_stack import KEY_TARGET, SECRET, StackError, main, make_stack  # noqa: E402


def compose_file() -> dict[str, Any]:
    data = yaml.safe_load((REPO / "docker-compose.yml").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def test_the_stack_file_keeps_what_swarm_runs_and_drops_what_it_cannot() -> None:
    stack = make_stack(compose_file(), ens=4, publish=19080, constraints=["node.role==manager"])
    services = stack["services"]

    assert stack["version"] == "3.8"
    assert set(services) == {"mysql", "ledger", "msn", "sn", "en"}  # no console, no monitoring
    for name, s in services.items():
        assert not {"build", "depends_on", "restart", "profiles", "mem_limit", "cpus"} & set(s), name
        assert s["cap_drop"] == ["ALL"] and s["read_only"] is True, name
        assert any(isinstance(v, dict) and v["type"] == "tmpfs" and v["target"] == "/tmp"
                   for v in s["volumes"]), name
        assert s["deploy"]["restart_policy"]["condition"] == "any", name
        assert s["deploy"]["endpoint_mode"] == "dnsrr", name  # no IPVS needed
    assert services["en"]["deploy"]["replicas"] == 4
    assert services["en"]["deploy"]["resources"]["limits"]["memory"]
    assert services["en"]["networks"] == ["nodes"]
    for name in ("mysql", "ledger", "msn"):
        assert services[name]["deploy"]["placement"]["constraints"] == ["node.role==manager"]
    assert "placement" not in services["en"]["deploy"]
    # the entry's key travels as a Swarm secret, readable by the image's user only
    msn = services["msn"]
    assert msn["secrets"] == [{"source": SECRET, "target": Path(KEY_TARGET).name, "uid": "10001",
                               "gid": "10001", "mode": 0o400}]
    assert not any(KEY_TARGET in str(v) for v in msn["volumes"])
    assert stack["secrets"][SECRET]["file"].startswith("${FC_ENTRY_KEY_FILE")
    assert msn["ports"] == [{"target": 9080, "published": 19080, "protocol": "tcp", "mode": "host"}]
    # pass-through settings stay the deploying shell's; required secrets stay required
    assert msn["environment"]["FEDCHAIN_LR"] == "${FEDCHAIN_LR:-}"
    assert msn["environment"]["FEDCHAIN_API_TOKEN"] == "${FEDCHAIN_API_TOKEN}"
    assert {"FEDCHAIN_API_TOKEN", "FEDCHAIN_LEDGER_ENTRY_KEY", "FC_MYSQL_PASSWORD"} <= set(
        stack["x-fedchain-required"]
    )
    assert ":?" not in yaml.safe_dump(stack)  # docker stack deploy 20.10 misreads compose's form
    nets = stack["networks"]
    assert all(n["driver"] == "overlay" for n in nets.values())
    assert nets["nodes"]["attachable"] is True and nets["db"]["internal"] is True


def test_a_missing_secret_stops_the_stack_file_with_its_name(monkeypatch: Any, capsys: Any) -> None:
    for name in make_stack(compose_file())["x-fedchain-required"]:
        monkeypatch.setenv(name, "set-" + "x" * 20)
    monkeypatch.delenv("FEDCHAIN_EN_JOIN_TOKEN")

    assert main([]) == 2
    err = capsys.readouterr().err
    assert "set FEDCHAIN_EN_JOIN_TOKEN" in err and "FEDCHAIN_API_TOKEN" not in err
    monkeypatch.setenv("FEDCHAIN_EN_JOIN_TOKEN", "set-" + "x" * 20)
    assert main([]) == 0
    assert "${FEDCHAIN_EN_JOIN_TOKEN}" in capsys.readouterr().out


def test_no_published_port_and_a_bad_compose_file_are_handled(tmp_path: Path, capsys: Any) -> None:
    assert "ports" not in make_stack(compose_file(), publish=0)["services"]["msn"]
    with pytest.raises(StackError, match="no services"):
        make_stack({})
    bad = tmp_path / "compose.yml"
    bad.write_text("services: [1, 2\n", encoding="utf-8")
    assert main(["--compose", str(bad)]) == 2
    assert "make_stack:" in capsys.readouterr().err
