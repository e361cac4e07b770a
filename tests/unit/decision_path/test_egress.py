"""The SSRF guard's decisions (prequal.egress): which addresses webhooks may not reach and why,
what an allow-list opens, and that a destination is the one looked-up address with the name
kept for Host and SNI."""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from typing import Any

import pytest

from prequal import egress


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("::ffff:127.0.0.1", "loopback"),
        ("10.0.0.1", "private"),
        ("172.16.5.4", "private"),
        ("192.168.1.1", "private"),
        ("fd12:3456::1", "private"),
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("224.0.0.251", "multicast"),
        ("ff02::1", "multicast"),
        ("0.0.0.0", "unspecified"),  # noqa: S104 - an address under test, not a bind
        ("::", "unspecified"),
        ("100.64.0.1", "not globally routable"),
        ("93.184.215.14", None),
        ("2606:4700::1111", None),
    ],
)
def test_each_kind_of_address_is_refused_with_its_reason(address: str, reason: str | None) -> None:
    assert egress.refusal(ipaddress.ip_address(address)) == reason


def test_an_allow_list_opens_only_its_networks() -> None:
    allowed = egress.parse_networks("127.0.0.0/8, ::1/128")
    assert egress.refusal(ipaddress.ip_address("127.0.0.1"), allowed) is None
    assert egress.refusal(ipaddress.ip_address("::1"), allowed) is None
    assert egress.refusal(ipaddress.ip_address("10.0.0.1"), allowed) == "private"
    assert egress.refusal(ipaddress.ip_address("169.254.169.254"), allowed) == "link-local"


def test_a_bad_allow_list_entry_is_named() -> None:
    with pytest.raises(ValueError, match="entry 2"):
        egress.parse_networks("127.0.0.0/8,localhost")


def _answers(*addresses: str) -> egress.Resolver:
    def resolver(host: str, port: int, **kwargs: Any) -> list[tuple[Any, ...]]:
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port)) for a in addresses]

    return resolver


def test_a_destination_is_the_looked_up_address_with_the_name_for_host_and_sni() -> None:
    found = egress.resolve("https://hooks.example.com:8443/p?q=1", (), _answers("93.184.215.14"))
    assert found.url == "https://93.184.215.14:8443/p?q=1"
    assert found.host_header == "hooks.example.com:8443"
    assert found.sni_hostname == "hooks.example.com"
    assert found.address == "93.184.215.14"


def test_one_refused_address_among_public_ones_refuses_the_name() -> None:
    with pytest.raises(egress.RefusedDestinationError, match=r"169\.254\.169\.254, a link-local"):
        egress.resolve("http://x.example/", (), _answers("93.184.215.14", "169.254.169.254"))


def test_a_literal_address_is_checked_without_a_lookup() -> None:
    def no_lookup(*args: Any, **kwargs: Any) -> list[tuple[Any, ...]]:
        raise AssertionError("a literal address needs no lookup")

    with pytest.raises(egress.RefusedDestinationError, match="private"):
        egress.resolve("http://10.1.2.3:8080/x", (), no_lookup)


def test_a_name_that_does_not_resolve_is_unresolved_not_refused() -> None:
    def fails(*args: Any, **kwargs: Any) -> list[tuple[Any, ...]]:
        raise socket.gaierror(socket.EAI_NONAME, "unknown")

    with pytest.raises(egress.UnresolvedDestinationError):
        egress.resolve("http://nowhere.test/", (), fails)


def test_a_lookup_with_no_answer_gives_up_at_the_timeout_as_unresolved() -> None:
    """A DNS server that never answers must not hold a delivery worker: the bounded lookup
    fails at its timeout, and the destination is unresolved (retried later), not refused."""
    answer = threading.Event()

    def hangs(*args: Any, **kwargs: Any) -> list[tuple[Any, ...]]:
        answer.wait()  # until the test lets it go
        return []

    lookup = egress.bounded(hangs, timeout=0.2, lookups=1)
    started = time.monotonic()
    try:
        with pytest.raises(egress.UnresolvedDestinationError, match="no answer from DNS"):
            egress.resolve("http://slow.example/", (), lookup)
        # The one lookup thread is still held: the next call waits in the queue, also bounded.
        with pytest.raises(egress.UnresolvedDestinationError, match="no answer from DNS"):
            egress.resolve("http://slow.example/", (), lookup)
    finally:
        answer.set()
    assert time.monotonic() - started < 2.0


def test_a_bounded_lookup_returns_what_the_resolver_answers() -> None:
    lookup = egress.bounded(_answers("93.184.215.14"), timeout=5.0)
    assert egress.resolve("http://x.example/", (), lookup).address == "93.184.215.14"
