"""The entry's dashboard: a page at ``/`` (node tree, rounds, chain, controls) kept live by
server-sent events (``GET /events``)."""

from fedchain.services.sn.dashboard.events import EventHub
from fedchain.services.sn.dashboard.routes import mount_dashboard

__all__ = ["EventHub", "mount_dashboard"]
