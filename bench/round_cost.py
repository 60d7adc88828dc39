"""Cost of the round evidence: block size per participant, and verify speed (blocks/s).

    python bench/round_cost.py [--quick] [--out DIR]

Builds real round blocks (every EN signs its update row, every SN its manifest, the entry
signs the block) for 4 and 16 ENs (and 64, 256 without --quick), one SN per 4 ENs, and
measures the canonical header bytes and the stored JSON bytes per participant. Then a
chain of such rounds (16 ENs each) is checked from genesis twice: in memory with the
chain's rules (``ChainState.replay``: hashes, entry signatures, every EN and SN signature,
Merkle roots) and by the SQLite ledger's ``verify`` (rows read back, blobs checked).
Writes DIR/round_cost.json and DIR/round_cost.md (DIR defaults to bench/results), with
the machine's load average beside the figures.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
from safetensors.numpy import save  # noqa: E402

from fedchain.shared.chain.blocks import Block, build_block, payload_text  # noqa: E402
from fedchain.shared.chain.evidence import signed_manifest, signed_participant  # noqa: E402
from fedchain.shared.chain.payloads import Decision, RoundPayload  # noqa: E402
from fedchain.shared.chain.rules import ChainState  # noqa: E402
from fedchain.shared.crypto import NodeKey  # noqa: E402

ENS_PER_SN = 4


class Federation:
    """An entry, SNs and ENs admitted on a chain in memory."""

    def __init__(self, ens: int, model: bytes) -> None:
        self.entry = NodeKey.generate()
        self.sns = [NodeKey.generate() for _ in range(max(1, ens // ENS_PER_SN))]
        self.ens = [NodeKey.generate() for _ in range(ens)]
        self.digest = hashlib.sha256(model).hexdigest()
        self.blocks: list[Block] = []
        self.add("genesis", {"config": {}, "model_digest": self.digest,
                             "entry_node_id": self.entry.node_id,
                             "entry_public_key": self.entry.public_hex})
        for sn in self.sns:
            self.join(sn, "SN", "")
        for i, en in enumerate(self.ens):
            self.join(en, "EN", self.sn_of(i).node_id)

    def sn_of(self, i: int) -> NodeKey:
        return self.sns[i % len(self.sns)]

    def add(self, kind: str, payload: Any) -> Block:
        prev = self.blocks[-1] if self.blocks else None
        block = build_block(kind, payload, prev, self.entry, 1_700_000_000_000 + len(self.blocks))
        self.blocks.append(block)
        return block

    def join(self, key: NodeKey, role: str, parent: str) -> None:
        self.add("node_joined", {"node_id": key.node_id, "role": role, "public_key": key.public_hex,
                                 "parent_sn": parent, "address": "127.0.0.1:1"})

    def round(self, number: int) -> Block:
        chain_id = self.blocks[0].hash
        rows = {sn.node_id: [] for sn in self.sns}  # type: dict[str, list[Any]]
        for i, en in enumerate(self.ens):
            sn = self.sn_of(i)
            digest = hashlib.sha256(f"{number}/{en.node_id}".encode()).hexdigest()
            rows[sn.node_id].append(
                signed_participant(en, chain_id, number, number - 1, sn.node_id, digest,
                                   600 + i, 0.4321, 12.5)
            )
        manifests = [
            signed_manifest(sn, chain_id, number, number - 1, rows[sn.node_id],
                            hashlib.sha256(f"agg/{number}/{sn.node_id}".encode()).hexdigest(),
                            1_700_000)
            for sn in self.sns
        ]
        participants = [p for group in rows.values() for p in group]
        decisions = [Decision(participants[0].node_id, "clipped", "norm above 10.0",
                              participants[0].parent_sn)]
        payload = RoundPayload.create(
            number, "fedper", number, self.digest, participants, manifests, decisions,
            {"accuracy": 0.91, "loss": 0.3, "samples": 1e4, "seconds": 12.0},
        )
        return self.add("round", payload)


def block_sizes(ens_counts: list[int], model: bytes) -> list[dict[str, Any]]:
    out = []
    empty = Federation(0, model)
    base = empty.add("round", RoundPayload.create(1, "fedper", 1, empty.digest, [],
                                                  metrics={"accuracy": 0.91, "loss": 0.3,
                                                           "samples": 1e4, "seconds": 12.0}))
    base_header, base_json = len(base.header()), len(payload_text(base.payload))
    for n in ens_counts:
        block = Federation(n, model).round(1)
        header, stored = len(block.header()), len(payload_text(block.payload))
        out.append({
            "ens": n, "sns": max(1, n // ENS_PER_SN), "header_bytes": header,
            "stored_json_bytes": stored,
            "header_bytes_per_participant": round((header - base_header) / n, 1),
            "json_bytes_per_participant": round((stored - base_json) / n, 1),
        })
    return out


def verify_speed(rounds: int, ens: int, model: bytes) -> dict[str, Any]:
    from fedchain.services.ledger.store import Ledger, default_db_url

    fed = Federation(ens, model)
    for r in range(1, rounds + 1):
        fed.round(r)
    start = time.perf_counter()
    ChainState.replay(fed.blocks)
    memory_s = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as tmp:
        ledger = Ledger(default_db_url(Path(tmp)), Path(tmp) / "blobs", create=True)
        try:
            ledger.put_blob(model)
            for block in fed.blocks:
                ledger.append(block)
            start = time.perf_counter()
            report = ledger.verify()
            store_s = time.perf_counter() - start
        finally:
            ledger.close()
    if not report.ok:
        raise SystemExit(f"the benchmark chain does not verify: {report.summary()}")
    blocks = len(fed.blocks)
    return {
        "rounds": rounds, "ens_per_round": ens, "blocks": blocks,
        "signatures_per_round_block": 1 + ens + max(1, ens // ENS_PER_SN),
        "rules_blocks_per_s": round(blocks / memory_s, 1),
        "rules_round_blocks_per_s": round(rounds / memory_s, 1),
        "sqlite_verify_blocks_per_s": round(blocks / store_s, 1),
    }


def write_markdown(path: Path, data: dict[str, Any]) -> None:
    lines = [
        "# Round evidence cost",
        "",
        f"`python bench/round_cost.py{' --quick' if data['quick'] else ''}` on "
        f"{data['machine']['cpus']} CPUs ({data['machine']['platform']}), {data['date']}, "
        f"load average {data['load_average'][0]:.2f} / {data['load_average'][1]:.2f} / "
        f"{data['load_average'][2]:.2f} (1/5/15 min).",
        "",
        "| ENs | SNs | header bytes | stored JSON bytes | header bytes / participant "
        "| JSON bytes / participant |",
        "|---|---|---|---|---|---|",
    ]
    for s in data["sizes"]:
        lines.append(
            f"| {s['ens']} | {s['sns']} | {s['header_bytes']} | {s['stored_json_bytes']} | "
            f"{s['header_bytes_per_participant']} | {s['json_bytes_per_participant']} |"
        )
    v = data["verify"]
    lines += [
        "",
        f"Verify, {v['rounds']} round blocks of {v['ens_per_round']} ENs "
        f"({v['signatures_per_round_block']} signatures each) plus {v['blocks'] - v['rounds']} "
        f"genesis/join blocks: chain rules in memory {v['rules_blocks_per_s']} blocks/s "
        f"({v['rules_round_blocks_per_s']} round blocks/s); SQLite ledger verify "
        f"{v['sqlite_verify_blocks_per_s']} blocks/s.",
        "",
    ]
    path.write_text("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="4 and 16 ENs, 20 rounds")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    args = parser.parse_args(argv)
    model = save({"base.weight": np.arange(64, dtype=np.float32)})
    counts = [4, 16] if args.quick else [4, 16, 64, 256]
    load_before = os.getloadavg()
    data = {
        "quick": args.quick,
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "sizes": block_sizes(counts, model),
        "verify": verify_speed(20 if args.quick else 200, 16, model),
    }
    data["load_average"] = [round(max(a, b), 2) for a, b in zip(load_before, os.getloadavg(), strict=True)]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "round_cost.json").write_text(json.dumps(data, indent=2) + "\n")
    write_markdown(args.out / "round_cost.md", data)
    print((args.out / "round_cost.md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
