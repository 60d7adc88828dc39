"""Cached gRPC stubs to other nodes (one channel per address, same TLS and bounds as ours)."""

from __future__ import annotations

import threading

import grpc

from fedchain.shared.net.grpc_util import NetConfig, make_channel
from fedchain.shared.net.tls import NodeTls
from fedchain.shared.rpc import node_pb2_grpc


class Peers:
    """Channels to peers by address; closed together on shutdown.

    When the node's TLS certificate changes (the entry enrolled it at join), every channel
    is dropped: the next call dials again with the new certificate.
    """

    def __init__(self, net: NetConfig) -> None:
        self._net = net
        self._lock = threading.Lock()
        self._channels: dict[str, grpc.Channel] = {}
        if net.identity is not None:
            net.identity.on_change(self.close)

    @property
    def tls(self) -> NodeTls | None:
        """This node's TLS identity (what the joiner enrolls), None without mutual TLS."""
        return self._net.identity

    def stub(self, address: str) -> node_pb2_grpc.NodeStub:
        """A stub for the node at HOST:PORT."""
        return node_pb2_grpc.NodeStub(self.channel(address))

    def channel(self, address: str) -> grpc.Channel:
        """The (shared) channel to the node at HOST:PORT."""
        with self._lock:
            channel = self._channels.get(address)
            if channel is None:
                channel = make_channel(self._net, address)
                self._channels[address] = channel
        return channel

    def forget(self, address: str) -> None:
        """Drop the channel to ``address`` (after the peer went away)."""
        with self._lock:
            channel = self._channels.pop(address, None)
        if channel is not None:
            channel.close()

    def close(self) -> None:
        with self._lock:
            channels, self._channels = list(self._channels.values()), {}
        for c in channels:
            c.close()
