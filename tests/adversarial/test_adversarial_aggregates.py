"""An SN that adds noise to its aggregate, against a real multi-process network.

The network (entry, the real ``sn-1`` with the real ``en-1``) keeps every update
(``FEDCHAIN_KEEP_UPDATES=all``). A malicious SN ``evil-sn`` hosts a test-driven EN whose
update is honest and signed by that EN; the SN lists it, hands its bytes over when the
entry asks, but adds noise to its aggregate. The entry recomputes the SN's partial from the
handed-over update and refuses it (its EN is listed as rejected with the reason), the round
lands with ``en-1``, and ``fedchain verify --deep`` recomputes that round bit for bit from
the retained update — the network's model equals the one FL core's replay.
"""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
from pathlib import Path

import grpc

from fedchain.shared.fl.aggregate import Partial
from fedchain.shared.fl.models import build_model
from fedchain.shared.fl.recompute import UsedState, partial_bytes, sn_partial
from fedchain.shared.fl.strategy import FedPer
from fedchain.shared.net.streams import join_model_chunks, update_parts
from fedchain.shared.rpc import node_pb2 as pb
from fedchain.shared.tensors import decode, encode
from tests.adversarial.attackers import CHUNK, FakeEdge, FakeSuper
from tests.conftest import REPO
from tests.network.harness import EN_JOIN_TOKEN, SN_JOIN_TOKEN, LocalNet

OPEN_WAIT_S = 90


def fedchain(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEDCHAIN_")}
    return subprocess.run(
        [sys.executable, "-m", "fedchain.services.cli.main", *args], capture_output=True,
        text=True, timeout=300, check=False, cwd=REPO, env={**env, "PYTHONPATH": str(REPO)},
    )


def test_a_noisy_sn_aggregate_is_refused_and_the_round_recomputes_bit_for_bit(
    tmp_path: Path,
) -> None:
    net = LocalNet(tmp_path, FEDCHAIN_HEARTBEAT_TIMEOUT="30", FEDCHAIN_KEEP_UPDATES="all")
    fakes: list[FakeEdge | FakeSuper] = []
    done = threading.Event()
    failures: list[grpc.RpcError] = []
    try:
        entry = net.start_entry("--dataset", "mnist-sample", "--clients", "3", "--max-samples",
                                "600", "--quorum", "0.1", "--local-epochs", "1", "--no-eval")
        net.wait_healthy(entry)
        net.start_sn("sn-1")
        net.wait_for(lambda: net.get("/status")["sns"] == 2, "the SN to join")
        net.start_en("en-1")
        net.wait_edges(1)
        evil_sn = FakeSuper(entry.address, SN_JOIN_TOKEN)
        fakes.append(evil_sn)
        honest = FakeEdge(entry.address, EN_JOIN_TOKEN)  # the least loaded SN: evil-sn
        fakes.append(honest)
        assert honest.reply.sn_node_id == evil_sn.node_id
        net.wait_edges(2)
        strategy = FedPer(personal_layers=1)
        strategy.bind(build_model("auto", "mnist-sample"))
        answers: queue.Queue[tuple[pb.SubmitReply, pb.UpdateHeader, pb.SubmitReply]] = queue.Queue()

        def cheat(req: pb.OpenRoundRequest) -> None:
            """The evil SN's answer to one OpenRound: the honest update, a noisy aggregate."""
            stream = evil_sn.stub.FetchModel(  # the entry serves its SNs the round's model
                pb.FetchModelRequest(version=req.version, digest=req.model_digest), timeout=30
            )
            previous = decode(join_model_chunks(stream, 64 << 20))
            update = {k: v.clone() + 0.01 for k, v in strategy.reference(previous).items()}
            data = encode(update)
            header = honest.header(req, data, samples=10)  # the EN's own signature: honest
            partial = sn_partial(strategy, req.round, [UsedState(honest.node_id, update, 10)])
            noisy = Partial({k: v + 1e-4 for k, v in partial.sums.items()}, 10, partial.dtypes)
            used = [pb.UsedUpdate(
                node_id=honest.node_id, digest=header.digest, samples=10, train_loss=0.5,
                train_seconds=1.0, signature=header.signature,
            )]
            reply = evil_sn.aggregate(req.round, req.version, used, partial_bytes(noisy))
            handed = evil_sn.stub.RetainUpdate(update_parts(header, data, CHUNK), timeout=30)
            answers.put((reply, header, handed))

        def cheat_every_attempt() -> None:
            # a round the entry retries (a slow en-1 on a loaded machine) opens again: the
            # evil SN cheats in every attempt, so whichever attempt lands shows the refusal
            while not done.is_set():
                try:
                    req = evil_sn.opened.get(timeout=0.5)
                except queue.Empty:
                    continue
                try:
                    cheat(req)
                except grpc.RpcError as exc:  # an attempt that closed under it: the next one
                    failures.append(exc)

        cheater = threading.Thread(target=cheat_every_attempt, daemon=True)
        cheater.start()
        assert net.post("/train", {"rounds": 1}).status_code == 202
        reply, header, handed = answers.get(timeout=OPEN_WAIT_S)
        assert reply.accepted and list(reply.retain) == [header.digest]  # it asks for the bytes
        assert handed.accepted

        net.wait_for(
            lambda: (s := net.get("/status"))["round"] >= 1 and s["state"] == "idle", "round 1", 240
        )
        block = next(
            b for b in net.get("/blocks", params={"from": 0, "limit": 100}) if b["kind"] == "round"
        )
        p = block["payload"]
        ids = [row["node_id"] for row in p["participants"]]
        assert honest.node_id not in ids and len(ids) == 1  # en-1 only
        reasons = {d["node_id"]: d["reason"] for d in p["decisions"]}
        assert "is not the weighted sum of the updates it used" in reasons[honest.node_id], (
            f"{reasons}\n{failures}\n{net.logs()}"
        )
    finally:
        done.set()
        for f in fakes:
            f.close()
        net.close()

    deep = fedchain("verify", "--deep", "--require-all", "--state-dir", str(entry.state_dir))
    assert deep.returncode == 0, deep.stdout + deep.stderr
    assert "1 rounds recomputed bit for bit, 0 not retained, 0 do not match" in deep.stdout
    # the retained update of en-1 altered on disk: --deep names the round's height
    row = p["participants"][0]
    blob = entry.state_dir / "blobs" / row["update_digest"][:2] / row["update_digest"]
    raw = bytearray(blob.read_bytes())
    raw[-1] ^= 0x01
    blob.write_bytes(bytes(raw))
    caught = fedchain("verify", "--deep", "--state-dir", str(entry.state_dir))
    assert caught.returncode == 1
    assert f"FAILED at height {block['height']} (round 1)" in caught.stdout, caught.stdout

