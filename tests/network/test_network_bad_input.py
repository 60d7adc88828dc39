"""Bad input against a live network: each refused with a clear gRPC status, listed as rejected
in the round block, and the round still completes with the honest EN."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from concurrent import futures

import grpc
import pytest
import torch

from fedchain.shared.crypto import NodeKey
from fedchain.shared.net.signing import join_message, update_message
from fedchain.shared.net.streams import join_model_chunks, update_parts
from fedchain.shared.rpc import node_pb2 as pb
from fedchain.shared.rpc import node_pb2_grpc
from fedchain.shared.tensors import decode, digest, encode
from tests.conftest import free_port
from tests.network.harness import EN_JOIN_TOKEN, LocalNet

MAX_MB = 4
FAKES = ("shape", "dtype", "nan", "round", "signature", "oversized")


class FakeEdge(node_pb2_grpc.NodeServicer):
    """An EN the test drives by hand: joins, heartbeats, and records the rounds it is offered."""

    def __init__(self, entry: str) -> None:
        self.key = NodeKey.generate()
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.opened: queue.Queue[pb.OpenRoundRequest] = queue.Queue()
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        node_pb2_grpc.add_NodeServicer_to_server(self, self.server)
        self.server.add_insecure_port(self.address)
        self.server.start()
        self.entry = grpc.insecure_channel(entry)
        reply = join(self.entry, self.key, self.address, EN_JOIN_TOKEN)
        self.sn = grpc.insecure_channel(reply.sn_address, options=[("grpc.max_receive_message_length", 64 << 20)])
        self.stub = node_pb2_grpc.NodeStub(self.sn)
        self._stop = threading.Event()
        threading.Thread(target=self._beat, daemon=True).start()

    def _beat(self) -> None:
        while not self._stop.wait(0.3):
            try:
                self.stub.Heartbeat(pb.HeartbeatRequest(node_id=self.key.node_id, role="EN", address=self.address), timeout=2)
            except grpc.RpcError:
                pass

    def OpenRound(self, request: pb.OpenRoundRequest, context: grpc.ServicerContext) -> pb.OpenRoundReply:
        self.opened.put(request)
        return pb.OpenRoundReply(ok=True, edges=1)

    def Evaluate(self, request: pb.EvaluateRequest, context: grpc.ServicerContext) -> pb.EvaluateReply:
        return pb.EvaluateReply()  # a fake has no data to evaluate

    def submit(self, header: pb.UpdateHeader, data: bytes) -> grpc.RpcError:
        with pytest.raises(grpc.RpcError) as info:
            self.stub.SubmitUpdate(update_parts(header, data, 512 * 1024), timeout=30)
        return info.value

    def close(self) -> None:
        self._stop.set()
        self.server.stop(0)
        self.entry.close()
        self.sn.close()


def join(channel: grpc.Channel, key: NodeKey, address: str, token: str) -> pb.JoinReply:
    ts = int(time.time() * 1000)
    req = pb.JoinRequest(
        token=token, role="EN", public_key=key.public_bytes, address=address, http_address="",
        timestamp_ms=ts, signature=key.sign(join_message("EN", key.public_bytes, address, ts)),
    )
    return node_pb2_grpc.NodeStub(channel).Join(req, timeout=30)


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
        stream = fakes["shape"].stub.FetchModel(
            pb.FetchModelRequest(version=any_req.version, digest=any_req.model_digest), timeout=30
        )
        global_state = decode(join_model_chunks(stream, 64 << 20))
        good = {k: global_state[k].clone() for k in keys}
        first = keys[0]

        def header(f: FakeEdge, data: bytes, *, round_no: int | None = None, signer: NodeKey | None = None) -> pb.UpdateHeader:
            rq = reqs["shape"]
            rnd = rq.round if round_no is None else round_no
            d = digest(data)
            return pb.UpdateHeader(
                node_id=f.key.node_id, round=rnd, version=rq.version, samples=100, digest=d,
                signature=(signer or f.key).sign(update_message(d, rnd, rq.version)), total_bytes=len(data),
            )

        cases: dict[str, tuple[bytes, dict, grpc.StatusCode, str]] = {}
        wrong_shape = dict(good, **{first: torch.zeros(tuple(s + 1 for s in good[first].shape))})
        cases["shape"] = (encode(wrong_shape), {}, grpc.StatusCode.INVALID_ARGUMENT, "shape")
        wrong_dtype = dict(good, **{first: good[first].double()})
        cases["dtype"] = (encode(wrong_dtype), {}, grpc.StatusCode.INVALID_ARGUMENT, "dtype")
        nan = dict(good, **{first: torch.full_like(good[first], float("nan"))})
        cases["nan"] = (encode(nan), {}, grpc.StatusCode.INVALID_ARGUMENT, "NaN")
        cases["round"] = (encode(good), {"round_no": any_req.round + 5}, grpc.StatusCode.FAILED_PRECONDITION, "round")
        cases["signature"] = (encode(good), {"signer": NodeKey.generate()}, grpc.StatusCode.PERMISSION_DENIED, "signature")
        big = b"\0" * ((MAX_MB + 1) << 20)
        cases["oversized"] = (big, {}, grpc.StatusCode.RESOURCE_EXHAUSTED, "exceeds")
        for name, (data, kw, code, words) in cases.items():
            err = fakes[name].submit(header(fakes[name], data, **kw), data)
            assert err.code() == code, (name, err.code(), err.details())
            assert words.lower() in (err.details() or "").lower(), (name, err.details())
        stranger = NodeKey.generate()
        data = encode(good)
        d = digest(data)
        unknown = pb.UpdateHeader(
            node_id=stranger.node_id, round=any_req.round, version=any_req.version, samples=10, digest=d,
            signature=stranger.sign(update_message(d, any_req.round, any_req.version)), total_bytes=len(data),
        )
        err = fakes["shape"].submit(unknown, data)
        assert err.code() == grpc.StatusCode.PERMISSION_DENIED and "unknown node" in (err.details() or "")

        net.wait_for(lambda: net.get("/status")["round"] >= 1 and net.get("/status")["state"] == "idle", "round 1")
        block = next(b for b in net.get("/blocks", params={"from": 0, "limit": 100}) if b["kind"] == "round")
        p = block["payload"]
        assert len(p["participants"]) == 1  # only the honest EN
        reasons = {r["node_id"]: r["reason"] for r in p["rejected"]}
        for name, f in fakes.items():
            assert f.key.node_id in reasons, (name, reasons)
        assert "shape" in reasons[fakes["shape"].key.node_id]
        assert "NaN" in reasons[fakes["nan"].key.node_id]
        assert "signature" in reasons[fakes["signature"].key.node_id]
        assert reasons[stranger.node_id].startswith("unknown node")
        assert net.get("/verify")["ok"]
        assert all(p.popen.poll() is None for p in net.procs)  # nothing crashed
    finally:
        for f in fakes.values():
            f.close()
