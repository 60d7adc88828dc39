"""Prometheus metrics of a node (one registry per process, served at /metrics).

Every node: bytes sent and received over the gRPC streams (``fedchain_bytes_*_total``)
and the gauges its process registers (``gauge``). The entry also records each round it
appends (``record_round``: round, duration, pooled accuracy and loss, participants,
rejected updates by reason) and each ledger append (``record_append``: latency, height).
An SN counts the EN updates it accepts and refuses (``updates``); the entry counts its
aggregator's decisions per EN (``count_decisions``).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from fedchain.shared.net.traffic import TRAFFIC, Traffic

MAX_REASONS = 20
"""Distinct ``reason`` labels kept; later new reasons are counted as ``other``."""
ROUND_SECONDS_BUCKETS = (1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800)
APPEND_SECONDS_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)

_NODE_ID = re.compile(r"\b[0-9a-f]{16,}\b")


def reason_label(reason: str) -> str:
    """A rejection reason as a bounded label: node ids dropped, the detail after ':' cut."""
    head = _NODE_ID.sub("", reason.split(":", 1)[0]).strip()
    return " ".join(head.split())[:60] or "unspecified"


class _TrafficCollector(Collector):
    def __init__(self, traffic: Traffic) -> None:
        self.traffic = traffic

    def collect(self) -> Iterator[CounterMetricFamily]:
        sent, received = self.traffic.totals()
        for name, doc, values in (
            ("fedchain_bytes_sent", "Bytes this node sent in gRPC streams", sent),
            ("fedchain_bytes_received", "Bytes this node received in gRPC streams", received),
        ):
            family = CounterMetricFamily(name, doc, labels=["stream"])
            for stream, n in sorted(values.items()):
                family.add_metric([stream], float(n))
            yield family


class NodeMetrics:
    """The metrics of one node process."""

    def __init__(self, role: str, traffic: Traffic = TRAFFIC) -> None:
        self.registry = CollectorRegistry()
        self.role = role
        r = self.registry
        self.updates = Counter(
            "fedchain_updates_total", "EN updates received by this SN", ["outcome"], registry=r
        )
        self.decisions = Counter(
            "fedchain_aggregator_decisions_total",
            "Updates the aggregator rejected, clipped or down-weighted (entry), per edge node",
            ["node", "action"],
            registry=r,
        )
        self.registry.register(_TrafficCollector(traffic))
        self._lock = threading.Lock()
        self._reasons: set[str] = set()

    def count_decisions(self, decisions: Iterable[tuple[str, str]]) -> None:
        """Count a round's aggregator decisions, given as (node id, action) pairs."""
        for node, action in decisions:
            self.decisions.labels(node=node, action=action).inc()

    def gauge(self, name: str, doc: str, read: Callable[[], float]) -> None:
        """A gauge whose value is read when /metrics is scraped."""
        g = Gauge(name, doc, registry=self.registry)
        g.set_function(lambda: float(read()))

    def track_rounds(self) -> None:
        """Declare the entry's round and ledger metrics (before the first ``record_*``)."""
        r = self.registry
        self.round_seconds = Histogram(
            "fedchain_round_duration_seconds", "Wall time of each appended round",
            buckets=ROUND_SECONDS_BUCKETS, registry=r,
        )
        self.last_round_seconds = Gauge(
            "fedchain_last_round_duration_seconds", "Wall time of the last appended round", registry=r
        )
        self.accuracy = Gauge(
            "fedchain_round_accuracy", "Pooled test accuracy of the last round's model", registry=r
        )
        self.loss = Gauge("fedchain_round_loss", "Pooled test loss of the last round's model", registry=r)
        self.train_loss = Gauge(
            "fedchain_round_train_loss", "Sample-weighted training loss of the last round", registry=r
        )
        self.participants = Gauge(
            "fedchain_round_participants", "ENs whose updates the last round used", registry=r
        )
        self.rounds_total = Counter("fedchain_rounds", "Rounds appended to the chain", registry=r)
        self.rejected = Counter(
            "fedchain_rejected_updates", "EN updates left out of rounds, by reason", ["reason"],
            registry=r,
        )
        self.append_seconds = Histogram(
            "fedchain_ledger_append_seconds", "Latency of one block append to the ledger",
            ["kind"], buckets=APPEND_SECONDS_BUCKETS, registry=r,
        )

    def record_round(
        self,
        metrics: Mapping[str, float],
        participants: int,
        rejected: Iterable[tuple[str, str]],
    ) -> None:
        """One appended round: its block's metrics, participants and rejected (node, reason)."""
        if "seconds" in metrics:
            self.round_seconds.observe(metrics["seconds"])
            self.last_round_seconds.set(metrics["seconds"])
        if "accuracy" in metrics:
            self.accuracy.set(metrics["accuracy"])
        if "loss" in metrics:
            self.loss.set(metrics["loss"])
        if "train_loss" in metrics:
            self.train_loss.set(metrics["train_loss"])
        self.participants.set(participants)
        self.rounds_total.inc()
        for _node, reason in rejected:
            self.rejected.labels(reason=self._bounded(reason_label(reason))).inc()

    def record_append(self, kind: str, seconds: float) -> None:
        """One block appended to the ledger in ``seconds``."""
        self.append_seconds.labels(kind=kind).observe(seconds)

    def _bounded(self, label: str) -> str:
        with self._lock:
            if label in self._reasons or len(self._reasons) < MAX_REASONS:
                self._reasons.add(label)
                return label
            return "other"
