"""The entry super node (M-SN), split by concern.

- ``admissions``: join, SN heartbeats, EN assignment, upkeep tick
- ``driver``: the training plan, start/pause, retry of a failing round, resume from the tip
- ``round``: one round (select, open on the SNs, collect, aggregate, append its block)
- ``intake``: the SNs' aggregates for the open round
- ``evaluation``: evaluation fan-out; ``checkpoints``: save; ``status``: /status
- ``model``: the global model the entry serves; ``ports``: what the parts need
- ``role``: ``EntryRole``, the façade the servicer and the HTTP API call
"""

from fedchain.services.sn.entry.driver import TrainingPlan
from fedchain.services.sn.entry.errors import AlgorithmRefused, Busy, RoundFailed
from fedchain.services.sn.entry.model import GlobalModel
from fedchain.services.sn.entry.role import EntryRole

__all__ = ["AlgorithmRefused", "Busy", "EntryRole", "GlobalModel", "RoundFailed", "TrainingPlan"]
