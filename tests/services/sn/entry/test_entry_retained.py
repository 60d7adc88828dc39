"""The entry keeps its own SN's updates from memory; any other SN hands them over."""

from __future__ import annotations

import hashlib

import torch

from fedchain.services.sn.collector import Accepted
from fedchain.services.sn.entry.retained import RetainedUpdates
from fedchain.shared.fl.strategy import FedAvg
from fedchain.shared.ledger.retention import parse_keep_updates
from fedchain.shared.rpc import node_pb2 as pb


def _used(node_id: str, data: bytes, samples: int = 5) -> pb.UsedUpdate:
    return pb.UsedUpdate(node_id=node_id, digest=hashlib.sha256(data).hexdigest(), samples=samples)


class _Ledger:
    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}

    def put_blob(self, data: bytes) -> str:
        d = hashlib.sha256(data).hexdigest()
        self.blobs[d] = data
        return d


def test_own_sn_updates_are_kept_from_memory_and_not_recomputed() -> None:
    kept = RetainedUpdates(parse_keep_updates("all"), max_bytes=1 << 20, wait_s=0.1)
    kept.open(3, 2)
    a, b = b"update-of-en-a", b"update-of-en-b"
    used = [_used("en-a", a), _used("en-b", b)]
    missing = kept.keep_own("entry", used, {u.digest: d for u, d in zip(used, (a, b), strict=True)})
    assert missing == []  # nothing to ask its own SN to stream
    # its aggregate is the entry's own: settle recomputes nothing (this state is not a partial)
    own = Accepted("entry", {"w": torch.zeros(1)}, 10, "d" * 64, 0.0)
    assert kept.settle([own], FedAvg(), {"w": torch.zeros(1)}) == []
    ledger = _Ledger()
    assert kept.upload(ledger, ["entry"]) == 2
    assert set(ledger.blobs.values()) == {a, b}


def test_an_update_the_own_sn_no_longer_holds_is_asked_for_and_missing_until_it_comes() -> None:
    kept = RetainedUpdates(parse_keep_updates("all"), max_bytes=1 << 20, wait_s=0.1)
    kept.open(3, 2)
    a, b = b"update-of-en-a", b"update-of-en-b"
    used = [_used("en-a", a), _used("en-b", b)]
    missing = kept.keep_own("entry", used, {used[0].digest: a})
    assert missing == [used[1].digest]
    own = Accepted("entry", {"w": torch.zeros(1)}, 10, "d" * 64, 0.0)
    refused = kept.settle([own], FedAvg(), {"w": torch.zeros(1)})
    assert refused == [("entry", "did not hand over 1 of the updates it used")]


def test_nothing_is_kept_under_keep_updates_none() -> None:
    kept = RetainedUpdates(parse_keep_updates("none"), max_bytes=1 << 20)
    kept.open(1, 0)
    assert kept.keep_own("entry", [_used("en-a", b"x")], {}) == []
    assert kept.upload(_Ledger(), ["entry"]) == 0
