"""GET /rounds/{r} and GET /rounds/{r}/proof/{node_id} on the entry, and `fedchain verify
--proof` on what they serve."""

from __future__ import annotations

import json
from pathlib import Path

from fastapi.testclient import TestClient
from typer.testing import CliRunner

from fedchain.services.cli.main import app as cli
from fedchain.services.sn.api import build_app
from fedchain.shared.control_api import RoundEvidence, RoundProofInfo
from fedchain.shared.node.metrics import NodeMetrics
from tests.services.sn.entry.test_entry_rounds import Federation, fed  # noqa: F401


def _client(fed: Federation) -> TestClient:  # noqa: F811
    e = fed.entry
    return TestClient(build_app(e.own_sn, e, NodeMetrics("SN"), "token"))  # type: ignore[arg-type]


def test_a_round_shows_its_evidence_and_each_participant_has_a_proof_that_verifies(
    fed: Federation, tmp_path: Path  # noqa: F811
) -> None:
    fed.train(1)
    client = _client(fed)
    r = client.get("/rounds/1")
    assert r.status_code == 200, r.text
    ev = RoundEvidence.model_validate(r.json())
    assert [p.node_id for p in ev.participants] == fed.ens
    assert {p.parent_sn for p in ev.participants} == {fed.sn.node_id}
    assert [m.sn_node_id for m in ev.manifests] == [fed.sn.node_id]
    assert ev.height == fed.ledger.rounds()[0].height and len(ev.block_hash) == 64
    assert ev.head is not None and ev.head["size"] == ev.height + 1
    for en in fed.ens:
        answer = client.get(f"/rounds/1/proof/{en}")
        assert answer.status_code == 200, answer.text
        RoundProofInfo.model_validate(answer.json())
        path = tmp_path / f"{en}.json"
        path.write_text(json.dumps(answer.json()))
        ok = CliRunner().invoke(cli, ["verify", "--proof", str(path)])
        assert ok.exit_code == 0 and ok.stdout.startswith(f"ok: {en} signed update"), ok.stdout
    data = client.get(f"/rounds/1/proof/{fed.ens[0]}").json()
    data["samples"] += 1
    data["block"]["payload"]["participants"][0]["samples"] += 1
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(data))
    refused = CliRunner().invoke(cli, ["verify", "--proof", str(bad)])
    assert refused.exit_code == 1 and refused.stdout.startswith("FAILED: ")
    assert len(refused.stdout.strip().splitlines()) == 1


def test_unknown_rounds_and_nodes_are_404_with_a_reason(fed: Federation) -> None:  # noqa: F811
    fed.train(1)
    client = _client(fed)
    assert client.get("/rounds/9").json() == {"detail": "no round 9 on the chain"}
    missing = client.get("/rounds/1/proof/n-0000000000000000")
    assert missing.status_code == 404 and "not a participant of round 1" in missing.json()["detail"]
    assert client.get("/rounds/0").status_code == 422


def test_the_same_proof_over_grpc(fed: Federation) -> None:  # noqa: F811
    import grpc
    import pytest

    from fedchain.services.sn.servicer import SuperNodeServicer
    from fedchain.shared.chain.round_proof import RoundProof, check_proof
    from fedchain.shared.rpc import node_pb2 as pb

    fed.train(1)
    servicer = SuperNodeServicer(fed.entry.own_sn, fed.entry)  # type: ignore[arg-type]

    class Aborted(Exception):
        pass

    class Context:
        def abort(self, code: grpc.StatusCode, message: str) -> None:
            raise Aborted(code, message)

    reply = servicer.RoundProof(pb.RoundProofRequest(round=1, node_id=fed.ens[1]), Context())  # type: ignore[arg-type]
    http = _client(fed).get(f"/rounds/1/proof/{fed.ens[1]}").json()
    assert json.loads(reply.proof_json) == http
    assert check_proof(RoundProof.from_json(json.loads(reply.proof_json))).node_id == fed.ens[1]
    with pytest.raises(Aborted) as caught:
        servicer.RoundProof(pb.RoundProofRequest(round=7, node_id=fed.ens[1]), Context())  # type: ignore[arg-type]
    assert caught.value.args == (grpc.StatusCode.NOT_FOUND, "no round 7 on the chain")
