"""ClientApp: load the global arrays, train on this node's few samples, send the arrays back.

Torch threads follow OMP_NUM_THREADS, set alike for Flower and fedchain by the benchmark.
"""

from __future__ import annotations

import time

import torch
from flwr.app import ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from fcbench.task import build_model, load_partition, train_batches

app = ClientApp()
_DATA: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}


@app.train()
def train(msg: Message, context: Context) -> Message:
    """Train ``local-epochs`` passes over this SuperNode's samples (node-config ``data-file``)."""
    started = time.perf_counter()
    cfg = context.run_config
    node = context.node_config
    batch_size = int(cfg["batch-size"])
    data_file = str(node["data-file"])
    if data_file not in _DATA:
        _DATA[data_file] = load_partition(data_file)
    x, y = _DATA[data_file]
    model = build_model()
    model.load_state_dict(msg.content["arrays"].to_torch_state_dict())
    t0 = time.perf_counter()
    loss = train_batches(model, x, y, epochs=int(cfg["local-epochs"]), batch_size=batch_size, lr=float(cfg["lr"]))
    train_s = time.perf_counter() - t0
    metrics = MetricRecord(
        {
            "train_loss": loss,
            "train_seconds": train_s,
            "handler_seconds": time.perf_counter() - started,
            "num-examples": len(y),
        }
    )
    content = RecordDict({"arrays": ArrayRecord(model.state_dict()), "metrics": metrics})
    return Message(content=content, reply_to=msg)
