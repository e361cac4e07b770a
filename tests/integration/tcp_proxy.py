"""A loopback TCP proxy that can stop forwarding: a network partition, on one machine.

`blackhole()` keeps every socket open and drops whatever arrives in either direction, as a
partition does: no FIN, no RST, so neither end learns anything from the connection itself.
(Unlike a real partition, the proxy's kernel still acknowledges what it receives, so TCP
keepalives and tcp_user_timeout cannot see it; only timeouts that count silence can.)
"""

from __future__ import annotations

import contextlib
import socket
import threading

from devstack.net import LOOPBACK


class TcpProxy:
    def __init__(self, target_port: int, target_host: str = LOOPBACK) -> None:
        self.target = (target_host, target_port)
        self._listener = socket.create_server((LOOPBACK, 0))
        self.port: int = self._listener.getsockname()[1]
        self._forwarding = threading.Event()
        self._forwarding.set()
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, name="tcp-proxy", daemon=True).start()

    def blackhole(self) -> None:
        self._forwarding.clear()

    def close(self) -> None:
        self._forwarding.clear()
        with self._lock:
            sockets, self._sockets = self._sockets, []
        self._listener.close()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            upstream = socket.create_connection(self.target)
            with self._lock:
                self._sockets += [client, upstream]
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(src, dst), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        while True:
            try:
                data = src.recv(65536)
                if not data:
                    dst.shutdown(socket.SHUT_WR)
                    return
                if self._forwarding.is_set():
                    dst.sendall(data)
            except OSError:
                return
