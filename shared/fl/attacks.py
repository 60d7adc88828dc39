"""Poisoning attacks for experiments: what a dishonest client sends instead of its update.

Off unless asked for (``fedchain simulate --attackers 0.3 --attack sign-flip``). An
``AttackPlan`` names the attack and the attacking clients (a seeded choice of
``round(share x clients)`` of them) and is applied by the engine at two points:

* ``prepare(data)`` -- before a client is registered (``label-flip`` trains on labels
  ``(classes - 1) - y``; every other attack leaves the data alone);
* ``poison(server_round, index, update, global_shared)`` -- on the update a client
  returns. With the update's distance from the global model ``Δ = update - global``
  (floating-point tensors; integer buffers such as ``num_batches_tracked`` are kept):

  * ``sign-flip``: ``global - Δ`` (the client pushes the other way);
  * ``scale:λ``: ``global + λΔ`` (e.g. ``scale:10``);
  * ``gaussian:σ``: ``global + N(0, σ²)`` (noise instead of training; seeded per round
    and client);
  * ``nan``: every floating-point value NaN;
  * ``label-flip``: the honest update of a model trained on flipped labels.

``flagged_share`` is the share of attacker updates an aggregator rejected or clipped.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Literal

import torch

from fedchain.shared.config import ConfigError
from fedchain.shared.fl.data import ClientData, ImageTensors
from fedchain.shared.fl.robust import Decision
from fedchain.shared.fl.seeding import derive_seed

AttackKind = Literal["sign-flip", "scale", "gaussian", "label-flip", "nan"]
ATTACKS: tuple[str, ...] = ("sign-flip", "scale", "gaussian", "label-flip", "nan")
DATA_ATTACKS = frozenset({"label-flip"})
"""Attacks on the data a client trains on (the others change the update it sends)."""
USAGE = "sign-flip, scale:λ, gaussian:σ, label-flip or nan"


@dataclass(frozen=True)
class AttackSpec:
    """A parsed attack: its kind and its parameter (``scale``: λ, ``gaussian``: σ)."""

    kind: AttackKind
    param: float | None = None

    def __str__(self) -> str:
        return self.kind if self.param is None else f"{self.kind}:{self.param:g}"


def parse_attack(text: str) -> AttackSpec:
    """``sign-flip``, ``scale:10``, ``gaussian:0.1``, ``label-flip``, ``nan`` -> AttackSpec."""
    cleaned = "".join(text.split()).lower()
    name, _, arg = cleaned.partition(":")
    if name not in ATTACKS:
        raise ConfigError(f"unknown attack '{text}' (use {USAGE})")
    if name in ("scale", "gaussian"):
        what = "λ, e.g. scale:10" if name == "scale" else "σ > 0, e.g. gaussian:0.1"
        try:
            value = float(arg)
        except ValueError:
            raise ConfigError(f"attack '{text}': {name} takes one number {what}") from None
        if not 0 < abs(value) < float("inf") or (name == "gaussian" and value < 0):
            raise ConfigError(f"attack '{text}': {name} takes one number {what}")
        return AttackSpec(name, value)  # type: ignore[arg-type]
    if arg:
        raise ConfigError(f"attack '{text}': {name} takes no parameter")
    return AttackSpec(name)  # type: ignore[arg-type]


def choose_attackers(client_ids: Sequence[int], share: float, seed: int) -> list[int]:
    """``round(share x len(client_ids))`` of the clients, a seeded choice (sorted)."""
    if not 0 <= share < 1:
        raise ConfigError(f"--attackers must be a share in [0, 1) of the clients (got {share})")
    count = round(share * len(client_ids))
    rng = random.Random(derive_seed("attackers", seed))
    return sorted(rng.sample(sorted(client_ids), count))


def _flip_labels(dataset: object) -> object:
    if not isinstance(dataset, ImageTensors):
        raise ConfigError("label-flip needs the in-memory image datasets of fedchain.shared.fl.data")
    return ImageTensors(dataset.images, (dataset.spec.num_classes - 1) - dataset.labels, dataset.spec)


@dataclass(frozen=True)
class AttackPlan:
    """An attack and the clients that carry it out (see the module doc)."""

    spec: AttackSpec
    attackers: frozenset[int]
    share: float
    seed: int = 0

    @classmethod
    def build(cls, attack: str, share: float, client_ids: Sequence[int], seed: int) -> AttackPlan:
        """Parse ``attack`` and choose ``share`` of ``client_ids`` as attackers (seeded)."""
        return cls(parse_attack(attack), frozenset(choose_attackers(client_ids, share, seed)), share, seed)

    def describe(self) -> str:
        """One line for start-up: which clients attack, and how."""
        ids = ", ".join(str(i) for i in sorted(self.attackers)) or "none"
        return (
            f"ATTACK (experiment): {len(self.attackers)} clients ({100 * self.share:g}%) "
            f"send {self.spec} updates: clients {ids}"
        )

    def to_json(self) -> dict[str, object]:
        """JSON-ready: the attack, the share asked for, the attacking clients."""
        return {"attack": str(self.spec), "share": self.share, "attackers": sorted(self.attackers)}

    def prepare(self, data: ClientData) -> ClientData:
        """The data an attacker trains on (``label-flip``: labels ``(classes - 1) - y``); others unchanged."""
        if data.index not in self.attackers or self.spec.kind not in DATA_ATTACKS:
            return data
        return replace(data, train=_flip_labels(data.train))  # type: ignore[arg-type]

    def poison(
        self,
        server_round: int,
        index: int,
        update: Mapping[str, torch.Tensor],
        global_shared: Mapping[str, torch.Tensor],
    ) -> dict[str, torch.Tensor]:
        """What client ``index`` sends in ``server_round`` instead of ``update``."""
        out = dict(update)
        kind = self.spec.kind
        if index not in self.attackers or kind in DATA_ATTACKS:
            return out
        gen = torch.Generator().manual_seed(derive_seed("attack", self.seed, server_round, index))
        for key, value in update.items():
            if not value.dtype.is_floating_point:
                continue
            base = global_shared[key].to(value.dtype)
            if kind == "sign-flip":
                out[key] = base - (value - base)
            elif kind == "scale":
                out[key] = base + (value - base) * float(self.spec.param or 0.0)
            elif kind == "gaussian":
                noise = torch.randn(value.shape, generator=gen, dtype=torch.float32)
                out[key] = base + (noise * float(self.spec.param or 0.0)).to(value.dtype)
            else:  # nan
                out[key] = torch.full_like(value, float("nan"))
        return out


def flagged_share(
    decisions: Sequence[Decision], participants: Sequence[int], attackers: frozenset[int]
) -> float | None:
    """Share of the attackers among ``participants`` whose update was rejected or clipped
    (decision indices are positions in ``participants``); None when no attacker took part."""
    present = [i for i, client in enumerate(participants) if client in attackers]
    if not present:
        return None
    flagged = {d.index for d in decisions if d.action in ("rejected", "clipped")}
    return sum(1 for i in present if i in flagged) / len(present)
