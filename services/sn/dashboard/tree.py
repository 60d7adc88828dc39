"""The node tree from the entry's registry."""

from __future__ import annotations

from fedchain.services.sn.dashboard.models import EdgeNodeInfo, NodeTree, SuperNodeBranch
from fedchain.services.sn.registry import Registry


def node_tree(entry_id: str, registry: Registry) -> NodeTree:
    """Every admitted SN (the entry first) with its ENs by partition, and who is alive."""
    branches = []
    for sn in sorted(registry.members("SN"), key=lambda m: (not m.entry, m.node_id)):
        ens = [
            EdgeNodeInfo(
                node_id=m.node_id, address=m.address, http_address=m.http_address,
                partition_index=m.partition_index,
                status="alive" if registry.is_alive(m.node_id) else "dead",
            )
            for m in registry.edges_of(sn.node_id)
        ]
        branches.append(
            SuperNodeBranch(
                node_id=sn.node_id, address=sn.address, http_address=sn.http_address, entry=sn.entry,
                status="alive" if registry.is_alive(sn.node_id) else "dead", ens=ens,
                alive_ens=sum(e.status == "alive" for e in ens),
            )
        )
    return NodeTree(entry=entry_id, sns=branches)
