"""Running an SN (or the entry, with ``-z``) as a process: gRPC + HTTP servers, joining, heartbeats."""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any

import grpc

from fedchain.services.sn.chain import LedgerFactory
from fedchain.services.sn.status import RelayLog
from fedchain.services.sn.supernode import SuperNode
from fedchain.shared.chain.payloads import GenesisPayload
from fedchain.shared.config import ConfigError, Settings
from fedchain.shared.crypto import NodeKey
from fedchain.shared.ledger.contract import LedgerContract
from fedchain.shared.limits import message_bytes
from fedchain.shared.net.federation import apply_fl_config
from fedchain.shared.net.grpc_util import NetConfig, make_server, parse_address
from fedchain.shared.net.http_server import HttpServer
from fedchain.shared.net.https import HttpClientTls, HttpTls
from fedchain.shared.net.ports import check_free
from fedchain.shared.net.retry import RETRY, RetryInterrupted
from fedchain.shared.net.streams import add_node_servicer
from fedchain.shared.net.tls import tls_hosts
from fedchain.shared.node.heartbeats import (
    Beat,
    HeartbeatCounter,
    HeartbeatLoop,
    RejoinAfter,
    signed_heartbeat,
)
from fedchain.shared.node.joining import ChainReplaced, JoinCancelled, Joiner, entry_key_of, join_token_for
from fedchain.shared.node.metrics import NodeMetrics
from fedchain.shared.node.peers import Peers
from fedchain.shared.node.process import (
    StopFlag,
    StopRequested,
    load_key,
    node_addresses,
    stop_servers,
)
from fedchain.shared.node.trust import TrustStore

log = logging.getLogger("fedchain.node")

LEDGER_WAIT_S = 120.0
"""How long an entry waits at start-up for a ledger that does not answer yet."""


def sn_joiner(sn: SuperNode, settings: Settings, key: NodeKey, stop: threading.Event) -> Joiner:
    """The joiner of a (non-entry) SN: its first join and its re-joins go through it."""
    assert settings.entry
    return Joiner(
        sn.peers, key, role="SN", entry=settings.entry, token=join_token_for("SN", settings),
        address=sn.address, http_address=sn.http_address, stop=stop,
        trust=TrustStore(settings.state_dir), entry_key=entry_key_of(settings), tls=sn.peers.tls,
    )


def sn_heartbeats(sn: SuperNode, settings: Settings, joiner: Joiner, stop: threading.Event) -> HeartbeatLoop:
    """Beat the entry; re-join at once when it no longer knows this SN.

    While the entry does not answer the SN keeps serving its ENs (the entry may be restarting).
    Each beat is signed by the SN with a fresh counter.
    """
    counter = HeartbeatCounter()

    def beat(timeout: float) -> Beat:
        try:
            reply = sn.peers.stub(sn.entry_address).Heartbeat(
                signed_heartbeat(
                    sn.key, sn.chain_id, counter.next(), role="SN", address=sn.address,
                    http_address=sn.http_address, state=sn.state,
                    alive_edges=[e.node_id for e in sn.edges.alive()],
                ),
                timeout=timeout,
            )
        except grpc.RpcError:
            return Beat.UNANSWERED
        if reply.entry_http_address:
            sn.entry_http_address = reply.entry_http_address
        if not reply.known:
            return Beat.UNKNOWN
        sn.sync_edges(list(reply.edges))
        return Beat.KNOWN

    def rejoin() -> None:
        try:
            joiner.join(timeout=settings.heartbeat_timeout)
        except ChainReplaced as exc:  # shown in /status, not only logged
            if sn.heads is not None:
                sn.heads.refuse_chain(str(exc))
            raise

    return HeartbeatLoop(
        beat,
        rejoin,
        interval=settings.heartbeat_interval,
        rejoin_after=RejoinAfter(unknown=0.0, unanswered=None),
        stop=stop,
    )


def _adopt_genesis_config(settings: Settings, ledger: LedgerContract) -> Settings:
    """On an existing chain the federation's learning settings are genesis's, whatever the flags say."""
    genesis = ledger.get(0)
    if genesis is None or not isinstance(genesis.payload, GenesisPayload):
        return settings
    recorded = dict(genesis.payload.config)
    adopted = apply_fl_config(settings, recorded)
    changed = [k for k in recorded if getattr(settings, k, None) != getattr(adopted, k, None)]
    if changed:
        log.warning("the chain's genesis fixes %s; ignoring the different values given", ", ".join(changed))
    return adopted


def run_super_node(
    settings: Settings, *, entry_mode: bool, embedded_ledger: LedgerFactory | None = None
) -> None:
    """Run an SN (``entry_mode``: the entry M-SN) until SIGTERM/SIGINT.

    ``embedded_ledger`` opens the entry's own ledger store when there is no ``--ledger``.
    """
    if not entry_mode and not settings.entry:
        raise ConfigError("a super node needs --entry HOST:PORT (or -z to be the entry itself)")
    if settings.entry:
        parse_address(settings.entry, "--entry")
    check_free(settings.host, settings.port, "--port")  # before the node key is created
    check_free(settings.host, settings.effective_http_port, "--http-port")
    key = load_key(settings)
    address, http_address = node_addresses(settings)
    net = NetConfig.from_settings(settings, node_key=key, hosts=tls_hosts(address, http_address))
    server = make_server(net, settings.host, settings.port)  # fails first if the port is taken
    peers = Peers(net)
    metrics = NodeMetrics("SN")
    stop = StopFlag()
    entry = None
    from fedchain.services.sn.servicer import SuperNodeServicer

    if entry_mode:
        from fedchain.services.sn.chain import EntryChain, open_ledger
        from fedchain.services.sn.entry import EntryRole, GlobalModel
        from fedchain.shared.ledger.errors import LedgerError, LedgerUnavailable

        def open_and_adopt() -> tuple[LedgerContract, Settings]:
            ledger = open_ledger(settings, embedded_ledger, key)
            return ledger, _adopt_genesis_config(settings, ledger)

        try:  # a ledger still starting (compose, Swarm: no start order) is waited for
            ledger, settings = RETRY.within(LEDGER_WAIT_S).call(
                open_and_adopt,
                retry_on=lambda e: isinstance(e, LedgerUnavailable),
                stop=stop.event,
                on_retry=lambda e, _pause: log.warning("waiting for the ledger: %s", e),
            )
        except RetryInterrupted:
            log.info("stopped while waiting for the ledger")
            return
        except LedgerUnavailable as exc:
            raise ConfigError(f"cannot open the ledger (waited {LEDGER_WAIT_S:.0f} s): {exc}") from None
        except LedgerError as exc:
            raise ConfigError(f"cannot open the ledger: {exc}") from None
        chain = EntryChain(ledger, key, settings.state_dir)
        model = GlobalModel(chain, message_bytes(settings))
        sn = SuperNode(
            settings, key, peers, address=address, http_address=http_address,
            upstream_model=model.model_bytes, entry_address=address, entry_node_id=key.node_id,
            entry_http_address=http_address, stopping=stop.event,
        )
        sn.configure(settings)
        entry = EntryRole.build(
            settings, key, chain, peers, sn, model, address=address, http_address=http_address
        )
    else:
        sn = SuperNode(settings, key, peers, address=address, http_address=http_address, stopping=stop.event)
    relayed = RelayLog()
    add_node_servicer(SuperNodeServicer(sn, entry, metrics, relayed), server)
    from fedchain.services.sn.api import build_app

    metrics.gauge("fedchain_edges_alive", "ENs heartbeating this SN", lambda: len(sn.edges.alive()))
    if entry is not None:
        e = entry
        # the entry drives every round (its own SN opens one only when it has ENs in it)
        metrics.gauge("fedchain_last_round", "Last round the federation completed", lambda: e.model.ref.round)
        metrics.gauge("fedchain_model_version", "Global model version", lambda: e.model.ref.version)
        metrics.gauge("fedchain_chain_height", "Chain height", lambda: e.chain.cached_height)
        metrics.gauge("fedchain_sns_alive", "Live super nodes", lambda: len(e.registry.alive_sns()))
        e.driver.runner.on_decisions = metrics.count_decisions
        metrics.gauge("fedchain_ens_alive", "Live ENs of the federation", lambda: len(e.registry.alive_edges()))
        metrics.track_rounds()
        chain.appended.append(lambda block, seconds: _observe_block(metrics, block, seconds))
        metrics.gauge(
            "fedchain_eval_answers_refused",
            "Evaluation answers refused (unsigned, mis-signed, foreign or out of range)",
            lambda: e.evaluation.refused,
        )
    else:
        metrics.gauge("fedchain_last_round", "Last round this SN took part in", lambda: sn.last_round)
    api_token = settings.api_token.get_secret_value()
    http = HttpServer(
        build_app(sn, entry, metrics, api_token, relayed, HttpClientTls.from_settings(settings)),
        settings.host, settings.effective_http_port, tls=HttpTls.from_settings(settings),
    )
    server.start()
    http.start()
    beat_stop = threading.Event()
    try:
        if entry is not None:
            try:
                with stop.starting():  # a SIGTERM ends a bootstrap blocked on a hung ledger
                    entry.bootstrap()
            except StopRequested:
                log.info("stopped while starting")
                return
            except LedgerError as exc:
                raise ConfigError(f"cannot start the entry: {exc}") from None

            def tick() -> None:
                while not beat_stop.wait(min(1.0, settings.heartbeat_interval)):
                    entry.tick()

            threading.Thread(target=tick, name="entry-tick", daemon=True).start()
            log.info("entry super node %s listening on %s (HTTP %s)", key.node_id, address, http_address)
        else:
            joiner = sn_joiner(sn, settings, key, stop.event)
            try:
                reply = joiner.join()
            except JoinCancelled:
                log.info("stopped before joining the federation")
                return
            sn.trust = joiner.trust.trust if joiner.trust is not None else None
            sn.configure(apply_fl_config(settings, json.loads(reply.config_json)))
            sn.entry_node_id = reply.entry_node_id
            sn.entry_http_address = reply.entry_http_address
            beats = sn_heartbeats(sn, settings, joiner, beat_stop)
            threading.Thread(target=beats.run, name="sn-heartbeat", daemon=True).start()
            log.info("super node %s joined; listening on %s (HTTP %s)", key.node_id, address, http_address)
        print(f"fedchain node: SN {key.node_id} ready on {address} (HTTP {http_address})", flush=True)
        stop.wait()
    finally:
        log.info("stopping")
        t0 = time.monotonic()
        beat_stop.set()
        if entry is not None:
            entry.stop()
        t1 = time.monotonic()
        stop_servers(http, server)
        t2 = time.monotonic()
        peers.close()
        log.info("stopped: driver %.2f s, servers %.2f s, peers %.2f s", t1 - t0, t2 - t1, time.monotonic() - t2)


def _observe_block(metrics: NodeMetrics, block: Any, seconds: float) -> None:
    """The entry's metrics of one appended block (a round block also as a round)."""
    metrics.record_append(str(block.kind), seconds)
    p = block.payload
    if str(block.kind) == "round":
        metrics.record_round(dict(p.metrics), len(p.participants), list(p.rejected))
