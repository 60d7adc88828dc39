"""A TCP proxy a test can cut and restore: listen on one loopback address, forward to another.

With ``target=None`` it is an HTTP CONNECT proxy instead (gRPC clients use one when their
process has ``grpc_proxy=http://HOST:PORT`` in the environment), so a test can route one
process's outgoing gRPC calls through it. ``cut()`` closes the listening socket and every open connection
(peers see resets and
refused connections, as after a cable pull followed by a fast fail); ``restore()`` listens
again on the same address. Threads only; everything is bounded by socket timeouts.
"""

from __future__ import annotations

import socket
import threading


class CuttableProxy:
    """Forward ``listen`` (host, port) to ``target`` (host, port), or act as a CONNECT proxy, until cut."""

    def __init__(self, listen: tuple[str, int], target: tuple[str, int] | None) -> None:
        self.listen = listen
        self.target = target
        self._server: socket.socket | None = None
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self.accepted = 0

    def restore(self) -> None:
        """Start (or resume) listening and forwarding."""
        with self._lock:
            assert self._server is None, "proxy is already forwarding"
            server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            server.bind(self.listen)
            server.listen(64)
            self._server = server
        threading.Thread(target=self._accept, args=(server,), name="proxy-accept", daemon=True).start()

    start = restore

    def cut(self) -> None:
        """Stop listening and reset every open connection."""
        with self._lock:
            server, self._server = self._server, None
            conns, self._conns = self._conns, []
        if server is not None:
            try:
                server.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked in accept()
            except OSError:
                pass
            server.close()
        for c in conns:
            try:
                c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                c.close()
            except OSError:
                pass

    def _accept(self, server: socket.socket) -> None:
        while True:
            try:
                client, _ = server.accept()
            except OSError:
                return  # cut
            try:
                upstream = socket.create_connection(self.target or self._connect_request(client), timeout=5)
                if self.target is None:
                    client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            except (OSError, ValueError):
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                if self._server is not server:
                    client.close()
                    upstream.close()
                    return
                self._conns += [client, upstream]
                self.accepted += 1
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), name="proxy-pipe", daemon=True).start()

    @staticmethod
    def _connect_request(client: socket.socket) -> tuple[str, int]:
        """Read an HTTP CONNECT request (bounded to 8 KiB, 5 s) and return its target; loopback only."""
        client.settimeout(5)
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = client.recv(1024)
            if not chunk or len(head) > 8192:
                raise ValueError("incomplete CONNECT request")
            head += chunk
        client.settimeout(None)
        line = head.split(b"\r\n", 1)[0].decode("ascii", "replace").split()
        if len(line) < 2 or line[0] != "CONNECT":
            raise ValueError(f"not a CONNECT request: {line}")
        host, _, port = line[1].rpartition(":")
        if host not in ("127.0.0.1", "localhost"):
            raise ValueError(f"refusing to connect outside loopback: {host}")
        return host, int(port)

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
