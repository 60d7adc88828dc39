"""Live processes the bad-input suite attacks: a ledger process, an entry SN using it, a second
SN and one EN, all on 127.0.0.1. One network for the whole session (started on first use)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.faults.cluster import FL, start_ledger, wait_ledger
from tests.network.harness import LocalNet, Proc


@dataclass
class LiveNet:
    """The running processes and the network that owns them."""

    net: LocalNet
    ledger: Proc
    entry: Proc
    sn: Proc
    en: Proc


@pytest.fixture(scope="session")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveNet]:
    net = LocalNet(tmp_path_factory.mktemp("badinput-net"))
    try:
        ledger = start_ledger(net)
        wait_ledger(net, ledger)
        entry = net.start_entry(*FL, "--ledger", f"127.0.0.1:{ledger.port}")
        net.wait_healthy(entry)
        sn = net.start_sn("sn-0")
        net.wait_for(lambda: net.get("/status")["sns"] == 2, "the SN to join")
        en = net.start_en("en-0")
        net.wait_edges(1)
        net.wait_healthy(en)
        yield LiveNet(net, ledger, entry, sn, en)
    finally:
        net.close()
