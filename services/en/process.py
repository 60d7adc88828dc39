"""Running an EN as a process: gRPC + HTTP servers, joining through the entry, heartbeats to its SN."""

from __future__ import annotations

import logging
import os
import threading

from fedchain.services.en.api import build_app
from fedchain.services.en.edge import EdgeNode
from fedchain.services.en.servicer import EdgeServicer
from fedchain.shared.config import Settings
from fedchain.shared.net.grpc_util import NetConfig, make_server, parse_address
from fedchain.shared.net.http_server import HttpServer
from fedchain.shared.net.https import HttpTls
from fedchain.shared.net.ports import check_free
from fedchain.shared.net.tls import tls_hosts
from fedchain.shared.node.joining import JoinCancelled
from fedchain.shared.node.metrics import NodeMetrics
from fedchain.shared.node.peers import Peers
from fedchain.shared.node.process import StopFlag, load_key, node_addresses, stop_servers
from fedchain.shared.rpc import node_pb2_grpc

log = logging.getLogger("fedchain.node")

SHUTDOWN_WAIT_S = 3.5
"""How long a stopping EN waits for a running round to notice the stop flag (its servers
stop meanwhile, side by side, so the two share the 5 s stop budget instead of adding up)."""


def run_edge_node(settings: Settings) -> None:
    """Run an EN until SIGTERM/SIGINT."""
    from fedchain.shared.config import ConfigError

    if not settings.entry:
        raise ConfigError("an edge node needs --entry HOST:PORT of the entry super node")
    parse_address(settings.entry, "--entry")
    check_free(settings.host, settings.port, "--port")  # before the node key is created
    check_free(settings.host, settings.effective_http_port, "--http-port")
    key = load_key(settings)
    address, http_address = node_addresses(settings)
    net = NetConfig.from_settings(settings, node_key=key, hosts=tls_hosts(address, http_address))
    server = make_server(net, settings.host, settings.port, workers=8)  # fails first if the port is taken
    peers = Peers(net)
    stop = StopFlag()
    en = EdgeNode(settings, key, peers, address=address, http_address=http_address, stop=stop.event)
    metrics = NodeMetrics("EN")
    metrics.gauge("fedchain_last_round", "Last round this EN trained", lambda: en.last_round)
    node_pb2_grpc.add_NodeServicer_to_server(EdgeServicer(en), server)
    http = HttpServer(
        build_app(en, metrics), settings.host, settings.effective_http_port,
        tls=HttpTls.from_settings(settings),
    )
    server.start()
    http.start()
    try:
        try:
            en.join()
        except JoinCancelled:
            log.info("stopped before joining the federation")
            return
        threading.Thread(target=en.heartbeat_loop, name="en-heartbeat", daemon=True).start()
        print(
            f"fedchain node: EN {key.node_id} ready on {address} (partition {en.partition_index}, SN {en.sn_node_id})",
            flush=True,
        )
        stop.wait()
    finally:
        en.stop()
        servers = threading.Thread(target=stop_servers, args=(http, server), name="en-stop-servers")
        servers.start()
        stuck = not en.wait_idle(SHUTDOWN_WAIT_S)
        servers.join()
        peers.close()
        if stuck:
            # a round thread is still inside torch; letting the interpreter tear it down aborts (134)
            log.warning("a round did not stop within %.0f s; exiting without waiting for it", SHUTDOWN_WAIT_S)
            logging.shutdown()
            os._exit(0)
