"""Abuse limits: per-client rate limits (429 + Retry-After) and the body cap (413, streamed)."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import pytest

from tests.applications import application, marked_name
from tests.integration.submission.conftest import ApiProcess, start_api
from tests.tokens import Oidc

ERROR_KEYS = {"error_code", "message", "details", "request_id"}


@pytest.fixture(scope="module")
def limited(
    tmp_path_factory: pytest.TempPathFactory, api_env: dict[str, str], oidc: Oidc
) -> Iterator[ApiProcess]:
    settings = {
        "RATE_LIMIT_POST_PER_SECOND": "0.2",
        "RATE_LIMIT_POST_BURST": "2",
        "MAX_BODY_BYTES": "4096",
    }
    api = start_api(tmp_path_factory.mktemp("limited"), {**api_env, **settings}, token=oidc.token())
    try:
        yield api
    finally:
        api.process.stop()


def test_a_client_over_its_post_rate_gets_429_with_retry_after_and_others_do_not(
    limited: ApiProcess, oidc: Oidc
) -> None:
    with limited.client() as http:
        codes = [http.post("/applications", json=application()).status_code for _ in range(2)]
        refused = http.post("/applications", json=application())
    assert codes == [202, 202]
    assert refused.status_code == 429
    assert set(refused.json()) == ERROR_KEYS
    assert refused.json()["error_code"] == "RATE_LIMITED"
    assert 1 <= int(refused.headers["retry-after"]) <= 5
    with limited.client(token=oidc.token(oidc.other)) as other:
        assert other.post("/applications", json=application()).status_code == 202


def test_a_declared_body_over_the_cap_is_413_before_it_is_read(limited: ApiProcess) -> None:
    body = json.dumps(application(first_name=marked_name() + "a" * 5000)).encode()
    with limited.client() as http:
        response = http.post(
            "/applications", content=body, headers={"Content-Type": "application/json"}
        )
    assert response.status_code == 413
    assert set(response.json()) == ERROR_KEYS
    assert response.json()["error_code"] == "PAYLOAD_TOO_LARGE"


def test_a_streamed_body_over_the_cap_is_413_while_it_streams(
    limited: ApiProcess, oidc: Oidc
) -> None:
    """Chunked, no Content-Length, and the body never ends: only a server that counts the bytes
    as they arrive can answer (one that buffers first would wait for the rest forever)."""
    host, port = limited.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(
            b"POST /applications HTTP/1.1\r\nHost: api\r\nContent-Type: application/json\r\n"
            b"Authorization: Bearer " + oidc.token().encode() + b"\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        for _ in range(8):  # 8 KB of a body that would go on; the cap is 4 KB
            sock.sendall(b"400\r\n" + b"A" * 1024 + b"\r\n")
        status, body = _read_response(sock)
    assert status == 413
    assert json.loads(body)["error_code"] == "PAYLOAD_TOO_LARGE"


def _read_response(sock: socket.socket) -> tuple[int, bytes]:
    """One whole HTTP/1.1 response with a Content-Length: the head and the body can arrive in
    separate segments, so one recv() is not enough."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"the connection closed before a whole response head: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in header_lines)
    length = int(headers["content-length"])
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, f"the connection closed after {len(body)} of {length} body bytes"
        body += chunk
    return int(status_line.split()[1]), body[:length]
