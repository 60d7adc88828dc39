"""Bad input against a live network: each refused with a clear gRPC status, listed as rejected
in the round block, and the round still completes with the honest EN."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest
import torch

from fedchain.shared.crypto import NodeKey
from fedchain.shared.rpc import node_pb2 as pb
from fedchain.shared.tensors import encode
from tests.adversarial.attackers import FakeEdge as _FakeEdge
from tests.adversarial.attackers import join
from tests.network.harness import EN_JOIN_TOKEN, LocalNet

MAX_MB = 4
FAKES = ("shape", "dtype", "nan", "round", "signature", "oversized")


class FakeEdge(_FakeEdge):
    """An EN the test drives by hand (``tests/adversarial/attackers.py``)."""

    def __init__(self, entry: str) -> None:
        super().__init__(entry, EN_JOIN_TOKEN)

    def submit_refused(self, header: pb.UpdateHeader, data: bytes) -> grpc.RpcError:
        with pytest.raises(grpc.RpcError) as info:
            self.submit(header, data)
        return info.value


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalNet]:
    # a long heartbeat timeout: the fake ENs live in this (busy) test process and must not be declared dead
    n = LocalNet(
        tmp_path_factory.mktemp("bad-input-net"), FEDCHAIN_MAX_MESSAGE_MB=str(MAX_MB), FEDCHAIN_HEARTBEAT_TIMEOUT="30"
    )
    try:
        n.wait_healthy(n.start_entry("--dataset", "mnist-sample", "--clients", str(len(FAKES) + 1),
                                     "--max-samples", "800", "--quorum", "0.1", "--local-epochs", "1"))
        n.start_sn("sn-1")
        n.wait_for(lambda: n.get("/status")["sns"] == 2, "the SN to join")
        n.start_en("en-honest")
        n.wait_edges(1)
        yield n
    finally:
        n.close()


def test_wrong_join_token_is_refused_and_changes_nothing(net: LocalNet) -> None:
    height = net.get("/status")["height"]
    with grpc.insecure_channel(net.entry.address) as ch:  # type: ignore[union-attr]
        with pytest.raises(grpc.RpcError) as info:
            join(ch, NodeKey.generate(), "127.0.0.1:1", "wrong-token")
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "join token" in (info.value.details() or "")
    assert net.get("/status")["height"] == height


def test_bad_updates_are_refused_and_listed(net: LocalNet) -> None:
    from fedchain.shared.fl.models import build_model
    from fedchain.shared.fl.strategy import FedPer

    keys = FedPer(personal_layers=1).shared_keys(build_model("auto", "mnist-sample"))
    fakes = {name: FakeEdge(net.entry.address) for name in FAKES}  # type: ignore[union-attr]
    try:
        net.wait_edges(1 + len(FAKES))
        r = net.post("/train", {"rounds": 1})
        assert r.status_code == 202, r.text
        reqs = {name: f.opened.get(timeout=60) for name, f in fakes.items()}
        any_req = reqs["shape"]
        global_state = fakes["shape"].global_model(any_req)
        good = {k: global_state[k].clone() for k in keys}
        first = keys[0]

        def header(
            f: FakeEdge, data: bytes, *, round_no: int | None = None, signer: NodeKey | None = None
        ) -> pb.UpdateHeader:
            rq = pb.OpenRoundRequest()
            rq.CopyFrom(reqs[name])
            if round_no is not None:
                rq.round = round_no
            return f.header(rq, data, signer=signer)

        cases: dict[str, tuple[bytes, dict, grpc.StatusCode, str]] = {}
        wrong_shape = dict(good, **{first: torch.zeros(tuple(s + 1 for s in good[first].shape))})
        cases["shape"] = (encode(wrong_shape), {}, grpc.StatusCode.INVALID_ARGUMENT, "shape")
        wrong_dtype = dict(good, **{first: good[first].double()})
        cases["dtype"] = (encode(wrong_dtype), {}, grpc.StatusCode.INVALID_ARGUMENT, "dtype")
        nan = dict(good, **{first: torch.full_like(good[first], float("nan"))})
        cases["nan"] = (encode(nan), {}, grpc.StatusCode.INVALID_ARGUMENT, "NaN")
        cases["round"] = (encode(good), {"round_no": any_req.round + 5}, grpc.StatusCode.FAILED_PRECONDITION, "round")
        cases["signature"] = (
            encode(good),
            {"signer": NodeKey.generate()},
            grpc.StatusCode.PERMISSION_DENIED,
            "signature",
        )
        big = b"\0" * ((MAX_MB + 1) << 20)
        cases["oversized"] = (big, {}, grpc.StatusCode.RESOURCE_EXHAUSTED, "exceeds")
        for name, (data, kw, code, words) in cases.items():
            err = fakes[name].submit_refused(header(fakes[name], data, **kw), data)
            assert err.code() == code, (name, err.code(), err.details())
            assert words.lower() in (err.details() or "").lower(), (name, err.details())
        stranger = NodeKey.generate()
        data = encode(good)
        unknown = fakes["shape"].header(any_req, data, signer=stranger, node_id=stranger.node_id)
        err = fakes["shape"].submit_refused(unknown, data)
        assert err.code() == grpc.StatusCode.PERMISSION_DENIED and "unknown node" in (err.details() or "")
        # the forged header changed nothing: the EN it named still delivers its own update
        assert fakes["signature"].submit(fakes["signature"].header(reqs["signature"], data), data).accepted

        net.wait_for(lambda: net.get("/status")["round"] >= 1 and net.get("/status")["state"] == "idle", "round 1")
        block = next(b for b in net.get("/blocks", params={"from": 0, "limit": 100}) if b["kind"] == "round")
        p = block["payload"]
        # the honest EN and the one a forged header named (refused unrecorded, then its own update)
        ids = [row["node_id"] for row in p["participants"]]
        assert len(ids) == 2 and fakes["signature"].node_id in ids
        reasons = {d["node_id"]: d["reason"] for d in p["decisions"] if d["action"] == "rejected"}
        for name, f in fakes.items():
            if name != "signature":
                assert f.key.node_id in reasons, (name, reasons)
        assert "shape" in reasons[fakes["shape"].key.node_id]
        assert "NaN" in reasons[fakes["nan"].key.node_id]
        assert stranger.node_id not in reasons  # nobody can vouch for an unknown sender
        assert net.get("/verify")["ok"]
        assert all(p.popen.poll() is None for p in net.procs)  # nothing crashed
    finally:
        for f in fakes.values():
            f.close()
