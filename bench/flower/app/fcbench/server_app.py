"""ServerApp: Flower's FedAvg strategy driven round by round, each round timed.

The loop is ``Strategy.start`` without the evaluation phase: configure_train ->
grid.send_and_receive -> aggregate_train. Each round's wall time (send to aggregate) and
the clients' reported training seconds go to the JSON file named by run-config ``out``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch
from flwr.app import ArrayRecord, ConfigRecord, Context
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import FedAvg

from fcbench.task import build_model

app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    """Run the timed rounds; on any failure write ``{"error": ...}`` so the benchmark stops waiting."""
    try:
        timed_rounds(grid, context)
    except Exception as exc:
        _write(str(context.run_config["out"]), {"error": f"{type(exc).__name__}: {exc}"})
        raise


def _write(out: str, data: dict[str, object]) -> None:
    if out:
        tmp = Path(out + ".part")
        tmp.write_text(json.dumps(data, indent=1))
        tmp.replace(out)


def timed_rounds(grid: Grid, context: Context) -> None:
    """Run ``num-rounds`` FedAvg rounds over every connected SuperNode and record their times."""
    cfg = context.run_config
    rounds = int(cfg["num-rounds"])
    nodes = int(cfg["nodes"])
    torch.manual_seed(int(cfg["seed"]))
    arrays = ArrayRecord(build_model().state_dict())
    strategy = FedAvg(
        fraction_train=1.0,
        fraction_evaluate=0.0,
        min_train_nodes=nodes,
        min_available_nodes=nodes,
    )
    records: list[dict[str, float | int]] = []
    for rnd in range(1, rounds + 1):
        t0 = time.perf_counter()
        replies = list(grid.send_and_receive(
            messages=strategy.configure_train(rnd, arrays, ConfigRecord(), grid), timeout=600
        ))
        new_arrays, metrics = strategy.aggregate_train(rnd, replies)
        seconds = time.perf_counter() - t0
        if new_arrays is None:
            raise RuntimeError(f"round {rnd}: no client replied with arrays")
        arrays = new_arrays
        ok = sum(1 for r in replies if r.has_content())
        records.append(
            {
                "round": rnd,
                "seconds": seconds,
                "replies": ok,
                "train_seconds_mean": float(metrics["train_seconds"]) if metrics else float("nan"),
                "handler_seconds_mean": float(metrics["handler_seconds"]) if metrics else float("nan"),
                "train_loss": float(metrics["train_loss"]) if metrics else float("nan"),
            }
        )
    _write(str(cfg["out"]), {"nodes": nodes, "rounds": records})
