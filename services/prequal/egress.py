"""The SSRF guard: webhooks go to the public internet, never into our own networks.

A client registers any URL it likes; without a guard the dispatcher would POST from inside the
cluster to whatever that URL names: the database, the cloud's metadata service
(169.254.169.254), a kubelet. So a destination is refused when its address is loopback,
private (RFC 1918, ULA fc00::/7), link-local (169.254/16, fe80::/10), multicast, unspecified,
reserved or otherwise not globally routable (IPv4-mapped IPv6 addresses count as their IPv4
address), unless an allow-list (`WEBHOOK_ALLOWED_NETWORKS`, CIDRs; empty in production) holds it.

The check is on the address actually connected to: `resolve` looks the name up once, refuses
if any of its addresses is refused (a name that also resolves to a private address is not
trusted), and returns a URL with the first address in place of the name, the `Host` header and
the TLS SNI name to send. A name that answers a public address to the check and a private one
to the connection (DNS rebinding) therefore gains nothing: there is no second lookup.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any

import httpx

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[..., list[tuple[Any, ...]]]

SETTING = "WEBHOOK_ALLOWED_NETWORKS"


class RefusedDestinationError(Exception):
    """The destination is in a network webhooks may not reach; the message says which and why,
    `reason` only the kind of address (for answers that must not echo the input)."""

    def __init__(self, host: str, address: Address, reason: str) -> None:
        super().__init__(
            f"{host} resolves to {address}, a {reason} address; webhooks go only to public "
            f"addresses (or those {SETTING} allows)"
        )
        self.reason = reason


class UnresolvedDestinationError(Exception):
    """The name did not resolve (now): a failed attempt like a refused connection."""


def parse_networks(text: str, setting: str = SETTING) -> tuple[Network, ...]:
    """`127.0.0.0/8,::1/128` → networks; a ValueError names the bad entry."""
    networks: list[Network] = []
    for position, raw in enumerate(text.split(","), start=1):
        entry = raw.strip()
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            raise ValueError(f"{setting} entry {position} ({entry!r}) is not a CIDR") from None
    return tuple(networks)


def refusal(address: Address, allowed: Sequence[Network] = ()) -> str | None:
    """Why webhooks may not go to `address`, or None when they may."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if any(address in network for network in allowed):
        return None
    for reason, hit in (
        ("loopback", address.is_loopback),
        ("unspecified", address.is_unspecified),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("private", address.is_private),
        ("reserved", address.is_reserved),
    ):
        if hit:
            return reason
    return None if address.is_global else "not globally routable"


@dataclass(frozen=True)
class Destination:
    """Where to connect (`url`, with the address in place of the name) and what to say there."""

    url: str
    host_header: str
    sni_hostname: str | None
    address: str


def literal_address(url: str) -> Address | None:
    try:
        return ipaddress.ip_address(httpx.URL(url).host)
    except ValueError:
        return None


def bounded(getaddrinfo: Resolver, timeout: float, lookups: int = 4) -> Resolver:
    """`getaddrinfo` that gives up after `timeout` seconds (an OSError, as a failed lookup).

    The C resolver has no timeout of its own to pass: a slow DNS server would hold a delivery
    worker past the delivery's timeout. The lookups run on their own small pool; one that
    outlives its caller finishes there, and while `lookups` of them hang, the next waits its
    `timeout` in the queue and fails the same way, so a worker is never held longer.
    """
    pool = ThreadPoolExecutor(max_workers=lookups, thread_name_prefix="dns")

    def lookup(*args: Any, **kwargs: Any) -> list[tuple[Any, ...]]:
        future = pool.submit(getaddrinfo, *args, **kwargs)
        try:
            return future.result(timeout=timeout)
        except FutureTimeout:
            future.cancel()
            raise OSError(f"no answer from DNS within {timeout:g}s") from None

    return lookup


def resolve(
    url: str, allowed: Sequence[Network] = (), getaddrinfo: Resolver = socket.getaddrinfo
) -> Destination:
    """The one lookup of a delivery; `RefusedDestinationError` if any address is refused."""
    parsed = httpx.URL(url)
    host = parsed.host
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    literal = literal_address(url)
    if literal is not None:
        addresses: list[Address] = [literal]
    else:
        try:
            found = getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as exc:
            raise UnresolvedDestinationError(f"{host} did not resolve ({exc})") from None
        addresses = list(dict.fromkeys(ipaddress.ip_address(info[4][0]) for info in found))
        if not addresses:
            raise UnresolvedDestinationError(f"{host} resolved to no address")
    for address in addresses:
        reason = refusal(address, allowed)
        if reason is not None:
            raise RefusedDestinationError(host, address, reason)
    first = addresses[0]
    return Destination(
        url=str(parsed.copy_with(host=str(first))),
        host_header=parsed.netloc.decode("ascii"),
        sni_hostname=host if parsed.scheme == "https" and literal is None else None,
        address=str(first),
    )
