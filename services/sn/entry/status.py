"""The entry's /status answer."""

from __future__ import annotations

from fedchain.services.sn.entry.driver import RoundDriver
from fedchain.services.sn.entry.model import GlobalModel
from fedchain.services.sn.entry.ports import ChainWriter
from fedchain.services.sn.registry import Registry
from fedchain.shared.control_api import NodeStatus, node_status


class EntryStatus:
    """Builds the entry's NodeStatus from the driver, the model, the chain and the registry."""

    def __init__(
        self,
        node_id: str,
        driver: RoundDriver,
        model: GlobalModel,
        chain: ChainWriter,
        registry: Registry,
    ) -> None:
        self.node_id = node_id
        self.driver = driver
        self.model = model
        self.chain = chain
        self.registry = registry

    def status(self) -> NodeStatus:
        """State, round, model version, last known height and live node counts (no ledger call)."""
        ref = self.model.ref
        return node_status(
            node_id=self.node_id,
            role="SN",
            entry=True,
            state=self.driver.state,
            algorithm=self.driver.plan.algorithm,
            round=ref.round,
            target_round=self.driver.plan.target_round,
            model_version=ref.version,
            height=self.chain.cached_height,
            ens=len(self.registry.alive_edges()),
            sns=len(self.registry.alive_sns()),
            error=self.driver.error,
        )
