"""/status of a plain SN: the round and model version it last relayed, its own ENs."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from fedchain.services.sn.supernode import SuperNode
from fedchain.shared.control_api import NodeStatus, node_status


@dataclass(frozen=True)
class Relayed:
    """A round an SN opened for its ENs, and the model version it carried."""

    round: int = 0
    version: int = 0


class RelayLog:
    """The last round (and its model version) this SN relayed; the servicer records it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last = Relayed()

    def record(self, round_no: int, version: int) -> None:
        with self._lock:
            if round_no >= self._last.round:
                self._last = Relayed(round_no, version)

    @property
    def last(self) -> Relayed:
        with self._lock:
            return self._last


def sn_status(sn: SuperNode, relayed: RelayLog, federation: NodeStatus | None) -> NodeStatus:
    """A plain SN's /status: the federation's view from the entry when it answers, else its own.

    With the entry's answer, ``ens``/``sns``, the round, model version and height are the
    federation's; ``local_ens`` counts this SN's own live ENs.
    """
    local_ens = len(sn.edges.alive())
    chain = {} if sn.heads is None else sn.heads.status()
    if federation is not None:
        return federation.model_copy(
            update={"node_id": sn.node_id, "entry": False, "local_ens": local_ens, **chain}
        )
    last = relayed.last
    return node_status(
        node_id=sn.node_id,
        role="SN",
        entry=False,
        state=sn.state,
        algorithm=sn.settings.algorithm,
        round=sn.last_round,
        model_version=last.version,
        ens=local_ens,
        local_ens=local_ens,
        **chain,
    )
