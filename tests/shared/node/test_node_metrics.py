"""A node's /metrics text: rounds, rejections by bounded reason, stream bytes, appends."""

from __future__ import annotations

from prometheus_client import generate_latest

from fedchain.shared.net.streams import join_model_chunks, model_chunks
from fedchain.shared.net.traffic import Traffic
from fedchain.shared.node.metrics import MAX_REASONS, NodeMetrics, reason_label


def _text(m: NodeMetrics) -> str:
    return generate_latest(m.registry).decode()


def test_a_recorded_round_shows_its_number_duration_accuracy_and_rejections() -> None:
    m = NodeMetrics("SN", Traffic())
    m.track_rounds()
    m.gauge("fedchain_last_round", "round", lambda: 6)
    m.record_round(
        {"seconds": 12.5, "accuracy": 0.81, "loss": 0.52, "train_loss": 0.6}, 2,
        [("ab" * 32, "update refused: norm 1e9 over the bound"),
         ("cd" * 32, f"its super node {'ef' * 32} failed: UNAVAILABLE")],
    )
    m.record_append("round", 0.004)
    text = _text(m)
    assert "fedchain_last_round 6.0" in text
    assert "fedchain_last_round_duration_seconds 12.5" in text
    assert "fedchain_round_accuracy 0.81" in text and "fedchain_round_loss 0.52" in text
    assert "fedchain_round_participants 2.0" in text and "fedchain_rounds_total 1.0" in text
    assert 'fedchain_rejected_updates_total{reason="update refused"} 1.0' in text
    assert 'fedchain_rejected_updates_total{reason="its super node failed"} 1.0' in text
    assert 'fedchain_ledger_append_seconds_count{kind="round"} 1.0' in text


def test_reason_labels_stay_bounded() -> None:
    m = NodeMetrics("SN", Traffic())
    m.track_rounds()
    m.record_round({}, 0, [("n", f"reason {i}: detail") for i in range(MAX_REASONS + 5)])
    text = _text(m)
    assert text.count("fedchain_rejected_updates_total{") == MAX_REASONS + 1
    assert 'fedchain_rejected_updates_total{reason="other"} 5.0' in text
    assert reason_label("") == "unspecified"


def test_stream_bytes_are_counted_both_ways() -> None:
    data = bytes(range(256)) * 40
    before = NodeMetrics("EN")
    join_model_chunks(model_chunks(data, len(data)), len(data))
    text = _text(before)
    sent = [ln for ln in text.splitlines() if ln.startswith('fedchain_bytes_sent_total{stream="model"}')]
    got = [ln for ln in text.splitlines() if ln.startswith('fedchain_bytes_received_total{stream="model"}')]
    assert sent and float(sent[0].split()[-1]) >= len(data)
    assert got and float(got[0].split()[-1]) >= len(data)
