"""Re-homing when the entry is the only SN, for real: the entry stays down past the heartbeat
timeout, so its EN re-joins "avoiding" the SN that stopped answering — the entry itself, the
only one there is. The restarted entry takes it back (not "no super node is available"), with
its partition, and it trains the next round."""

from __future__ import annotations

from pathlib import Path

from tests.network.harness import LocalNet

FL = ["--dataset", "mnist-sample", "--clients", "1", "--max-samples", "300", "--local-epochs", "1"]


def test_an_edge_of_the_only_sn_rejoins_the_restarted_entry(tmp_path: Path) -> None:
    net = LocalNet(tmp_path, FEDCHAIN_HEARTBEAT_TIMEOUT="5")
    try:
        entry = net.start_entry(*FL)
        net.wait_healthy(entry)
        en = net.start_en("en-0")
        net.wait_edges(1)
        before = net.get("/status", en)
        assert net.train(1)[-1]["participants"] == [before["node_id"]]
        net.kill(entry)
        net.wait_for(
            lambda: "re-joining through the entry" in en.log.read_text(errors="replace"),
            "the EN to give up on its SN (the entry)", 60,
        )
        net.restart(entry)
        net.wait_healthy(entry)
        # the entry admitted the re-join (under load the EN may have given up waiting for
        # the answer already; its beats are then known again and it stays)
        joined = f"EN {before['node_id']} joined"
        net.wait_for(
            lambda: entry.log.read_text(errors="replace").count(joined) >= 2,
            "the restarted entry to take the EN back", 120,
        )
        assert "no super node is available" not in en.log.read_text(errors="replace")
        after = net.get("/status", en)
        assert (after["node_id"], after["partition_index"]) == (before["node_id"], before["partition_index"])
        net.wait_edges(1)
        rounds = net.train(1)
        assert [r["round"] for r in rounds] == [1, 2]
        assert rounds[-1]["participants"] == [before["node_id"]]
    finally:
        net.close()
