"""Hand-built federations for ``verify --deep``: a tiny model, two SNs, three ENs, real blobs.

Each round is made the way the network makes it (SN partials in node id order, the entry's
finish in SN id order, the one FL core), then signed as the evidence format wants; a
test may lie at one step (``noisy_sn``: that SN's aggregate is off).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from torch import nn

from fedchain.services.ledger.store import Ledger, default_db_url
from fedchain.shared.chain.blocks import Block, build_block
from fedchain.shared.chain.evidence import signed_manifest, signed_participant
from fedchain.shared.chain.payloads import Decision, GenesisPayload, Participant, RoundPayload
from fedchain.shared.config import Settings
from fedchain.shared.crypto import NodeKey
from fedchain.shared.fl.aggregate import Partial
from fedchain.shared.fl.models import initial_model
from fedchain.shared.fl.recompute import (
    UsedState,
    global_state,
    partial_bytes,
    partial_digest,
    robust_global,
    sn_partial,
)
from fedchain.shared.fl.strategy import FedPer, Strategy
from fedchain.shared.ledger.deep import strategies_from_genesis
from fedchain.shared.net.federation import fl_config
from fedchain.shared.tensors import digest, encode


def key(seed: int) -> NodeKey:
    return NodeKey(Ed25519PrivateKey.from_private_bytes(bytes([seed]) * 32))


def tiny_strategy(aggregator: str = "mean") -> Strategy:
    torch.manual_seed(0)
    strategy = FedPer(personal_layers=1, aggregator=aggregator)
    strategy.bind(tiny_model())
    return strategy


def tiny_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2))


ENTRY = key(40)
SN_A, SN_B = key(41), key(42)
EN1, EN2, EN3, EN4, EN5 = key(43), key(44), key(45), key(46), key(47)
TREE = {SN_A: [EN1, EN2], SN_B: [EN3]}
ROBUST_TREE = {SN_A: [EN1, EN2, EN3], SN_B: [EN4, EN5]}
"""Five ENs: enough for ``multikrum:1`` (n >= 2f + 3)."""


@dataclass
class Federation:
    ledger: Ledger
    strategy: Strategy = field(default_factory=tiny_strategy)
    blocks: list[Block] = field(default_factory=list)
    state: dict[str, torch.Tensor] = field(default_factory=dict)
    update_digests: dict[int, dict[str, str]] = field(default_factory=dict)
    tree: dict[NodeKey, list[NodeKey]] = field(default_factory=lambda: dict(TREE))

    @classmethod
    def create(
        cls, tmp: Path, settings: Settings | None = None, *, aggregator: str = "mean"
    ) -> Federation:
        """A federation in ``tmp``; with ``settings`` the model genesis records (what the
        CLI rebuilds), else the tiny model (the tests pass its strategy). A robust
        ``aggregator`` gives the tiny model's strategy that rule and five ENs."""
        fed = cls(Ledger(default_db_url(tmp), tmp / "blobs"))
        if aggregator != "mean":
            fed.strategy = tiny_strategy(aggregator)
            fed.tree = dict(ROBUST_TREE)
        model = tiny_model() if settings is None else initial_model(settings)
        fed.state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        config = {} if settings is None else fl_config(settings)
        if settings is not None:
            fed.strategy = strategies_from_genesis(
                GenesisPayload(config, "0" * 64, ENTRY.node_id, ENTRY.public_hex)
            )("fedper")
        genesis = build_block(
            "genesis",
            {"config": config, "model_digest": fed.ledger.put_blob(encode(fed.state)),
             "entry_node_id": ENTRY.node_id, "entry_public_key": ENTRY.public_hex},
            None, ENTRY, 1,
        )
        fed._append(genesis)
        for sn, ens in fed.tree.items():
            fed._join(sn, "SN", "")
            for en in ens:
                fed._join(en, "EN", sn.node_id)
        return fed

    def _append(self, block: Block) -> None:
        self.blocks.append(self.ledger.append(block))

    def _join(self, node: NodeKey, role: str, parent: str) -> None:
        self._append(build_block(
            "node_joined",
            {"node_id": node.node_id, "role": role, "public_key": node.public_hex,
             "parent_sn": parent, "address": "127.0.0.1:1"},
            self.blocks[-1], ENTRY, len(self.blocks) + 1,
        ))

    def run_round(
        self, number: int, *, noisy_sn: NodeKey | None = None, lying_model: bool = False
    ) -> Block:
        """Round ``number`` from the current model; appended; returns its block."""
        chain_id = self.blocks[0].hash
        version = number - 1
        shared = self.strategy.reference(self.state)
        participants, manifests, partials = [], [], {}
        self.update_digests[number] = {}
        for sn, ens in self.tree.items():
            used, rows = [], []
            for i, en in enumerate(sorted(ens, key=lambda k: k.node_id)):
                gen = torch.Generator().manual_seed(number * 100 + i + int(en.node_id[2:6], 16))
                update = {k: v + 0.1 * torch.randn(v.shape, generator=gen) for k, v in shared.items()}
                d = self.ledger.put_blob(encode(update))
                self.update_digests[number][en.node_id] = d
                samples = 5 + i + number
                used.append(UsedState(en.node_id, update, samples))
                rows.append(signed_participant(
                    en, chain_id, number, version, sn.node_id, d, samples, 0.5, 1.0
                ))
            partial = sn_partial(self.strategy, number, used)
            if sn is noisy_sn:
                partial = Partial(
                    {k: v + 1e-3 for k, v in partial.sums.items()}, partial.weight, partial.dtypes
                )
            partials[sn.node_id] = partial
            participants.extend(rows)
            manifests.append(signed_manifest(
                sn, chain_id, number, version, rows, partial_digest(partial),
                len(partial_bytes(partial)),
            ))
        new_state = global_state(self.strategy, number, self.state, partials)
        if lying_model:  # the entry records a model that is not the average
            new_state = {k: v + 1e-2 if v.is_floating_point() else v for k, v in new_state.items()}
        model_digest = self.ledger.put_blob(encode(new_state))
        payload = RoundPayload.create(
            number, "fedper", number, model_digest, participants, manifests, (), {}
        )
        self._append(build_block("round", payload, self.blocks[-1], ENTRY, len(self.blocks) + 1))
        self.state = new_state
        assert digest(encode(new_state)) == model_digest
        return self.blocks[-1]

    def run_robust_round(
        self,
        number: int,
        *,
        attacker: NodeKey | None = None,
        lie: str = "",
    ) -> Block:
        """Round ``number`` under the federation's robust rule, made as the network makes it:
        each SN forwards its used updates' bytes (node id order), the entry runs the rule
        over all of them in ``aggregation_order`` (here: node id order), sets aside what it
        rejects and records its decisions. ``attacker`` sends 10x its update. ``lie`` makes
        the entry lie at one step: ``reason`` (a decision's reason altered), ``keep`` (a
        rejected update kept as a participant, its decision dropped), ``order`` (the block's
        order is not the one the rule saw), ``model`` (the model is not the rule's)."""
        chain_id = self.blocks[0].hash
        version = number - 1
        shared = self.strategy.reference(self.state)
        spec = str(self.strategy.aggregator.spec)
        rows: dict[str, tuple[NodeKey, Participant]] = {}
        states: dict[str, UsedState] = {}
        forwarded: dict[str, bytes] = {}
        self.update_digests[number] = {}
        for sn, ens in self.tree.items():
            for i, en in enumerate(sorted(ens, key=lambda k: k.node_id)):
                gen = torch.Generator().manual_seed(number * 100 + i + int(en.node_id[2:6], 16))
                scale = 10.0 if en is attacker else 1.0
                update = {
                    k: v + scale * 0.1 * torch.randn(v.shape, generator=gen) for k, v in shared.items()
                }
                data = encode(update)
                d = self.ledger.put_blob(data)
                self.update_digests[number][en.node_id] = d
                forwarded[en.node_id] = data
                samples = 5 + i + number
                states[en.node_id] = UsedState(en.node_id, update, samples)
                rows[en.node_id] = (sn, signed_participant(
                    en, chain_id, number, version, sn.node_id, d, samples, 0.5, 1.0
                ))
        order = sorted(states)
        result = robust_global(self.strategy, number, self.state, [states[n] for n in order])
        decisions = [
            Decision(order[d.index], d.action, d.reason, ENTRY.node_id) for d in result.decisions
        ]
        gone = {d.node_id for d in decisions if d.action == "rejected"}
        if lie == "reason":
            first = decisions[0]
            decisions[0] = Decision(first.node_id, first.action, first.reason + " (edited)", first.by)
        if lie == "keep":
            kept = sorted(gone)[0]
            gone.discard(kept)
            decisions = [d for d in decisions if d.node_id != kept]
        manifests = []
        for sn, ens in self.tree.items():
            mine = sorted(en.node_id for en in ens)
            data = b"".join(forwarded[n] for n in mine)
            m = signed_manifest(
                sn, chain_id, number, version, [rows[n][1] for n in mine], digest(data),
                len(data), aggregator=spec, used_bytes=[str(len(forwarded[n])) for n in mine],
            )
            aside = [rows[n][1] for n in mine if n in gone]
            manifests.append(replace(m, set_aside=aside) if aside else m)
        new_state = result.state
        if lie == "model":
            new_state = {k: v + 1e-2 if v.is_floating_point() else v for k, v in new_state.items()}
        model_digest = self.ledger.put_blob(encode(new_state))
        recorded = list(reversed(order)) if lie == "order" else order
        payload = RoundPayload.create(
            number, "fedper", number, model_digest,
            [row for n, (_, row) in rows.items() if n not in gone], manifests, decisions, {},
            aggregation_order=recorded,
        )
        self._append(build_block("round", payload, self.blocks[-1], ENTRY, len(self.blocks) + 1))
        self.state = new_state
        return self.blocks[-1]
