"""Seeds derived from (run seed, round, client index), so every engine draws the same numbers.

The simulation and a networked edge node both call ``round_seed(seed, round, client)``
before a client's local training of a round; the seed feeds python's, numpy's and
torch's RNGs and the batch shuffling, so the same inputs give the same update.
"""

from __future__ import annotations

import hashlib
import random

import numpy as np
import torch

SEED_BITS = 63


def derive_seed(*parts: int | str) -> int:
    """A 63-bit seed from the given parts (SHA-256 of their text, stable across runs)."""
    text = "/".join(str(p) for p in parts).encode()
    return int.from_bytes(hashlib.sha256(text).digest()[:8], "big") >> (64 - SEED_BITS)


def round_seed(seed: int, server_round: int, client_index: int) -> int:
    """The seed of client ``client_index``'s local training in round ``server_round``."""
    return derive_seed("fit", seed, server_round, client_index)


def selection_seed(seed: int, server_round: int) -> int:
    """The seed of the client selection of round ``server_round`` (FedAvg client fraction)."""
    return derive_seed("select", seed, server_round)


def seed_everything(seed: int) -> None:
    """Seed python's ``random``, numpy's global RNG and torch's RNG."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
