"""The entry's registry: least-loaded SN assignment, stable partitions, liveness."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from fedchain.services.sn.registry import (
    FIRST_HEARTBEAT_GRACE_S,
    FederationFull,
    NoSuperNode,
    Registry,
    SuperNodesFull,
)


def _reg(tmp_path: Path, timeout: float = 5.0) -> Registry:
    r = Registry(tmp_path / "registry.json", heartbeat_timeout=timeout)
    r.add_entry("entry", "00" * 32, "127.0.0.1:1", "127.0.0.1:2")
    return r


def test_edges_go_to_the_least_loaded_non_entry_sn(tmp_path: Path) -> None:
    r = _reg(tmp_path)
    r.admit_sn("sn-a", "11" * 32, "a:1", "a:2")
    r.admit_sn("sn-b", "22" * 32, "b:1", "b:2")
    parents = [r.admit_en(f"en-{i}", "33" * 32, f"e{i}:1", "", clients=4)[0].parent_sn for i in range(4)]
    assert sorted(parents) == ["sn-a", "sn-a", "sn-b", "sn-b"]
    assert [m.partition_index for m in r.members("EN")] == [0, 1, 2, 3]


def test_the_entry_hosts_edges_only_without_other_sns(tmp_path: Path) -> None:
    r = _reg(tmp_path)
    m, _ = r.admit_en("en-0", "33" * 32, "e:1", "", clients=2)
    assert m.parent_sn == "entry"


def test_a_returning_edge_keeps_its_partition_and_avoids_a_dead_sn(tmp_path: Path) -> None:
    r = _reg(tmp_path)
    r.admit_sn("sn-a", "11" * 32, "a:1", "a:2")
    r.admit_sn("sn-b", "22" * 32, "b:1", "b:2")
    first, _ = r.admit_en("en-0", "33" * 32, "e:1", "", clients=3)
    r.admit_en("en-1", "44" * 32, "f:1", "", clients=3)
    again, changed = r.admit_en("en-0", "33" * 32, "e:1", "", clients=3, avoid_sn=first.parent_sn)
    assert again.partition_index == first.partition_index
    assert again.parent_sn != first.parent_sn and changed
    same, changed = r.admit_en("en-1", "44" * 32, "f:1", "", clients=3)
    assert not changed and same.partition_index == 1
    # persisted: a restarted entry knows the same federation
    r2 = Registry(tmp_path / "registry.json", heartbeat_timeout=5)
    assert {m.node_id: m.partition_index for m in r2.members("EN")} == {"en-0": 0, "en-1": 1}


def test_full_federation_is_refused(tmp_path: Path) -> None:
    r = _reg(tmp_path)
    r.admit_en("en-0", "33" * 32, "e:1", "", clients=1)
    with pytest.raises(FederationFull, match="all 1 partitions"):
        r.admit_en("en-1", "44" * 32, "f:1", "", clients=1)


def test_an_edge_avoiding_the_only_sn_goes_back_to_it(tmp_path: Path) -> None:
    r = _reg(tmp_path)  # the entry is the only SN: an EN whose SN it was re-joins after its restart
    first, _ = r.admit_en("en-0", "33" * 32, "e:1", "", clients=1)
    again, _ = r.admit_en("en-0", "33" * 32, "e:1", "", clients=1, avoid_sn="entry")
    assert again.parent_sn == first.parent_sn == "entry"
    assert again.partition_index == first.partition_index
    r.admit_sn("sn-a", "11" * 32, "a:1", "a:2")  # with another SN up, the avoided one is avoided
    moved, changed = r.admit_en("en-0", "33" * 32, "e:1", "", clients=1, avoid_sn="sn-a")
    assert moved.parent_sn == "entry"
    moved, changed = r.admit_en("en-0", "33" * 32, "e:1", "", clients=1, avoid_sn="entry")
    assert moved.parent_sn == "sn-a" and changed


def test_no_live_sn_is_refused(tmp_path: Path) -> None:
    r = Registry(tmp_path / "registry.json", heartbeat_timeout=5)  # no entry SN part either
    with pytest.raises(NoSuperNode, match="no super node is available"):
        r.admit_en("en-0", "33" * 32, "e:1", "", clients=1)


def test_sn_liveness_follows_heartbeats(tmp_path: Path) -> None:
    r = _reg(tmp_path, timeout=0.2)
    r.admit_sn("sn-a", "11" * 32, "a:1", "a:2")
    en, _ = r.admit_en("en-0", "33" * 32, "e:1", "", clients=1)
    assert r.heartbeat("sn-a", "a:1", "a:2", ["en-0"])
    assert r.is_alive("sn-a") and r.is_alive("en-0")
    time.sleep(0.3)
    assert not r.is_alive("sn-a") and not r.is_alive("en-0")
    assert r.is_alive("entry")
    assert not r.heartbeat("stranger", "x:1", "x:2", [])


class Ticks:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_super_nodes_are_capped_and_a_departed_one_frees_its_place(tmp_path: Path) -> None:
    r = _reg(tmp_path)
    r.admit_sn("sn-a", "11" * 32, "a:1", "a:2", max_sns=1)
    r.admit_sn("sn-a", "11" * 32, "a:9", "a:2", max_sns=1)  # the same SN again: a refresh
    with pytest.raises(SuperNodesFull, match="its 1 super nodes already"):
        r.admit_sn("sn-b", "22" * 32, "b:1", "b:2", max_sns=1)
    r.depart("sn-a")
    _, new = r.admit_sn("sn-b", "22" * 32, "b:1", "b:2", max_sns=1)
    assert new


def test_silent_members_expire_and_their_partition_is_free(tmp_path: Path) -> None:
    clock = Ticks()
    r = Registry(tmp_path / "registry.json", heartbeat_timeout=5, clock=clock)
    r.add_entry("entry", "00" * 32, "127.0.0.1:1", "127.0.0.1:2")
    r.admit_sn("sn-a", "11" * 32, "a:1", "a:2")
    r.admit_en("en-0", "33" * 32, "e:1", "", clients=2)
    r.admit_en("en-1", "44" * 32, "f:1", "", clients=2)
    r.heartbeat("sn-a", "a:1", "a:2", ["en-0", "en-1"])
    clock.now += 4
    r.heartbeat("sn-a", "a:1", "a:2", ["en-1"])  # en-0 is not heard from any more
    clock.now += 2
    assert [m.node_id for m in r.expired()] == ["en-0"]
    with pytest.raises(FederationFull):
        r.admit_en("en-2", "55" * 32, "g:1", "", clients=2)
    r.depart("en-0")
    assert r.get("en-0") is None and r.departed("en-0") is not None
    replacement, changed = r.admit_en("en-2", "55" * 32, "g:1", "", clients=2)
    assert replacement.partition_index == 0 and changed
    # the SN itself goes silent: it expires (the entry never does); en-2, never heard from
    # since it joined (an EN loads its data first), has a grace period for its first beat
    clock.now += 6
    assert {m.node_id for m in r.expired()} == {"sn-a", "en-1"}
    clock.now += FIRST_HEARTBEAT_GRACE_S
    assert {m.node_id for m in r.expired()} == {"sn-a", "en-1", "en-2"}
    # a restarted entry remembers who left
    r2 = Registry(tmp_path / "registry.json", heartbeat_timeout=5)
    assert r2.get("en-0") is None and r2.departed("en-0") is not None
    assert {m.node_id for m in r2.members("EN")} == {"en-1", "en-2"}


def test_a_departed_edge_gets_its_old_partition_back_when_it_is_still_free(tmp_path: Path) -> None:
    r = _reg(tmp_path)
    r.admit_en("en-0", "33" * 32, "e:1", "", clients=3)
    r.admit_en("en-1", "44" * 32, "f:1", "", clients=3)
    r.depart("en-1")
    back, changed = r.admit_en("en-1", "44" * 32, "f:1", "", clients=3)
    assert back.partition_index == 1 and changed  # back: recorded again
    r.depart("en-1")
    r.admit_en("en-2", "55" * 32, "g:1", "", clients=3)  # takes partition 1
    back, _ = r.admit_en("en-1", "44" * 32, "f:1", "", clients=3)
    assert back.partition_index == 2
