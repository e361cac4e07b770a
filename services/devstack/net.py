"""Loopback ports and readiness probes."""

from __future__ import annotations

import secrets
import socket
import ssl
import urllib.error
import urllib.request
from pathlib import Path

LOOPBACK = "127.0.0.1"


# Below Linux's ephemeral range (32768-60999 by default): a port picked here is never taken in
# the meantime by an outgoing connection's source port or by someone else's bind(0), which is
# what made "bind to port 0, close, hand the number out" collide under load.
_PORT_RANGE = (20000, 32000)
_handed_out: set[int] = set()


def free_port() -> int:
    """A loopback port that is free now and that this process has not handed out before."""
    low, high = _PORT_RANGE
    for _ in range(1000):
        port = secrets.randbelow(high - low) + low
        if port not in _handed_out and port_is_free(port):
            _handed_out.add(port)
            return port
    raise RuntimeError(f"no free loopback port in {low}-{high}")


def port_is_free(port: int) -> bool:
    """Nothing listens on it. A port in TIME_WAIT counts as free: servers bind with SO_REUSEADDR."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((LOOPBACK, port))
        except OSError:
            return False
        return True


def tcp_open(port: int, host: str = LOOPBACK) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def http_ok(
    url: str,
    *,
    ca: Path | None = None,
    cert: tuple[Path, Path] | None = None,
    expect: bytes | None = None,
) -> bool:
    context = None
    if url.startswith("https"):
        context = ssl.create_default_context(cafile=str(ca) if ca else None)
        if cert:
            context.load_cert_chain(str(cert[0]), str(cert[1]))
    try:
        with urllib.request.urlopen(url, timeout=2, context=context) as resp:  # noqa: S310
            body: bytes = resp.read()
            return resp.status == 200 and (expect is None or expect in body)
    except urllib.error.HTTPError as exc:
        exc.close()  # an error response still holds its socket
        return False
