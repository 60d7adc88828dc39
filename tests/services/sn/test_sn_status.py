"""A plain SN's /status and OpenAPI: typed answers, and model_version is a model version."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from fedchain.services.sn.api import build_app
from fedchain.services.sn.status import RelayLog
from fedchain.services.sn.supernode import SuperNode
from fedchain.shared.config import Settings
from fedchain.shared.control_api import NodeStatus
from fedchain.shared.crypto import NodeKey
from fedchain.shared.net.grpc_util import NetConfig
from fedchain.shared.node.metrics import NodeMetrics
from fedchain.shared.node.peers import Peers


def _app(tmp_path: Path, relayed: RelayLog) -> TestClient:
    settings = Settings(state_dir=tmp_path, entry="127.0.0.1:1")
    sn = SuperNode(settings, NodeKey.generate(), Peers(NetConfig.from_settings(settings)),
                   address="127.0.0.1:2", http_address="127.0.0.1:3")
    sn.last_round = 5
    return TestClient(build_app(sn, None, NodeMetrics("SN"), "token", relayed))


def test_cut_off_sn_reports_the_version_it_relayed_not_its_round(tmp_path: Path) -> None:
    relayed = RelayLog()
    relayed.record(5, 4)  # round 5 was opened on model version 4
    answer = _app(tmp_path, relayed).get("/status")
    assert answer.status_code == 200
    status = NodeStatus.model_validate(answer.json())
    assert (status.round, status.model_version, status.entry, status.height) == (5, 4, False, -1)


def test_openapi_declares_the_answer_models(tmp_path: Path) -> None:
    schema = _app(tmp_path, RelayLog()).get("/openapi.json").json()

    def ref(path: str, method: str, code: str) -> str:
        content = schema["paths"][path][method]["responses"][code]["content"]["application/json"]
        return str(content["schema"])

    assert "NodeStatus" in ref("/status", "get", "200")
    assert "TrainStarted" in ref("/train", "post", "202")
    assert "RoundSummary" in ref("/rounds", "get", "200")
    assert "ErrorDetail" in ref("/train", "post", "401")
