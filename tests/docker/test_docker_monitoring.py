"""The compose profile `monitoring` (Prometheus + Grafana) and its files: the compose
config validates and the dashboard asks only for metrics the nodes export.

No image can be pulled here: this checks the configuration, it does not start the services.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import yaml

from fedchain.shared.node.metrics import NodeMetrics
from tests.docker.test_docker_compose_config import clean_env

MONITORING = Path(__file__).resolve().parents[2] / "docker" / "monitoring"


def test_the_monitoring_profile_renders_prometheus_and_grafana_with_their_files(
    compose: list[str], repo: Path
) -> None:
    result = subprocess.run([*compose, "--profile", "monitoring", "config"], cwd=repo, env=clean_env(),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    services = yaml.safe_load(result.stdout)["services"]
    assert {"prometheus", "grafana"} <= set(services)
    mounted = " ".join(str(v) for v in services["prometheus"]["volumes"] + services["grafana"]["volumes"])
    for part in ("prometheus.yml", "grafana/provisioning", "grafana/dashboards"):
        assert part in mounted
    assert services["prometheus"]["profiles"] == services["grafana"]["profiles"] == ["monitoring"]


def test_prometheus_scrapes_every_node_kind() -> None:
    config = yaml.safe_load((MONITORING / "prometheus.yml").read_text())
    assert {job["job_name"] for job in config["scrape_configs"]} == {"entry", "sn", "en"}


def test_the_grafana_dashboard_uses_only_metrics_the_entry_exports() -> None:
    dash = json.loads((MONITORING / "grafana" / "dashboards" / "fedchain.json").read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    used = {m for e in exprs for m in re.findall(r"\bfedchain_[a-z_]+", e)}
    m = NodeMetrics("SN")
    m.track_rounds()
    for name in ("fedchain_last_round", "fedchain_chain_height", "fedchain_sns_alive", "fedchain_ens_alive",
                 "fedchain_model_version", "fedchain_edges_alive"):
        m.gauge(name, name, lambda: 0)
    m.updates.labels(outcome="accepted").inc()
    m.rejected.labels(reason="r").inc()
    m.record_append("round", 0.01)
    m.record_round({"seconds": 1.0}, 1, [])
    exported = {s.name for fam in m.registry.collect() for s in fam.samples} | {
        "fedchain_bytes_sent_total", "fedchain_bytes_received_total"}  # sample-less until traffic
    assert used - exported == set()
