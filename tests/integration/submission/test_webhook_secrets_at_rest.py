"""Webhook signing secrets at rest: the API stores a new endpoint's secret only sealed to the
webhook dispatcher, so a database dump holds nothing that signs; the dispatcher opens it and its
deliveries verify with the secret the API showed. Endpoints from before migration 0011 keep
working on their plaintext secret until `prequalctl webhooks reseal` seals it.

The API refuses, with a 422 naming `url`, a URL whose host is a loopback, private, link-local,
multicast or unspecified address (or a name that resolves to one)."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from devstack.tools import tool
from prequal import sealing, webhooks
from prequal.webhook_secrets import open_secret
from prequalctl.main import main as prequalctl
from tests.integration.decision_path.webhook_receiver import Receiver, serve_receiver
from tests.integration.submission.conftest import ApiProcess
from tests.integration.submission.parked_deliveries import HOOKS_HOST, deliver_parked

ENDPOINTS = "/webhooks/endpoints"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    yield from serve_receiver()


def _opener(pan_keys: dict[str, str]) -> sealing.Opener:
    private = pan_keys["WEBHOOK_SEALING_PRIVATE_KEYS"]
    return sealing.Opener(sealing.parse_key_list(private, "WEBHOOK_SEALING_PRIVATE_KEYS"))


def _pg_dump(database_url: str) -> bytes:
    pg_dump = Path(tool("pg_ctl")).resolve().parent / "pg_dump"
    return subprocess.run(
        [str(pg_dump), "--dbname", database_url], capture_output=True, check=True, timeout=120
    ).stdout


def _forms(secret: str) -> list[bytes]:
    """Every way the secret could sit in a dump: as issued, its base64, its bytes in hex."""
    raw = webhooks.secret_key(secret)
    return [secret.encode(), secret.removeprefix("whsec_").encode(), raw.hex().encode()]


def test_no_secret_is_in_a_dump_and_deliveries_verify_with_the_secret_shown_once(
    api: ApiProcess, database_url: str, pan_keys: dict[str, str], receiver: Receiver
) -> None:
    port = receiver.server.server_address[1]
    with api.client() as client:
        created = client.post(ENDPOINTS, json={"url": f"http://{HOOKS_HOST}:{port}/hooks/shown"})
    assert created.status_code == 201, created.text
    shown = created.json()["secret"]
    endpoint_id = uuid.UUID(created.json()["id"])

    dump = _pg_dump(database_url)
    assert str(endpoint_id).encode() in dump, "the dump holds the endpoint"
    for form in _forms(shown):
        assert form not in dump

    opener = _opener(pan_keys)
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT secret, sealed_secret FROM webhook_endpoints WHERE id = %s", (endpoint_id,)
        ).fetchone()
    assert row is not None
    assert row[0] is None
    assert open_secret(opener, bytes(row[1]), endpoint_id) == shown
    with pytest.raises(sealing.TamperedSealError):
        open_secret(opener, bytes(row[1]), uuid.uuid4())  # bound to its endpoint id

    receiver.endpoint("shown", shown)
    deliver_parked(database_url, opener, [endpoint_id])
    [got] = receiver.of("shown")
    assert got.verified, "the delivery did not verify with the secret the API showed"


def test_a_plaintext_secret_from_before_0011_signs_until_reseal_seals_it(
    database_url: str,
    pan_keys: dict[str, str],
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    port = receiver.server.server_address[1]
    legacy = webhooks.new_secret()
    endpoint_id = uuid.uuid4()
    with psycopg.connect(database_url) as conn:
        conn.execute(
            "INSERT INTO webhook_endpoints (id, client_id, url, secret) VALUES (%s, %s, %s, %s)",
            (endpoint_id, "legacy", f"http://{HOOKS_HOST}:{port}/hooks/legacy", legacy),
        )
    receiver.endpoint("legacy", legacy)
    opener = _opener(pan_keys)
    deliver_parked(database_url, opener, [endpoint_id])
    assert any(form in _pg_dump(database_url) for form in _forms(legacy)), "test premise"

    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("SECRETS_DIR", "/nonexistent")
    for name in ("WEBHOOK_SEALING_PUBLIC_KEYS", "WEBHOOK_SEALING_ACTIVE_KEY_ID"):
        monkeypatch.setenv(name, pan_keys[name])
    assert prequalctl(["webhooks", "reseal"]) == 0
    assert "plaintext signing secrets sealed" in capsys.readouterr().out
    assert prequalctl(["webhooks", "reseal"]) == 0
    assert capsys.readouterr().out.startswith("0 plaintext")

    dump = _pg_dump(database_url)
    for form in _forms(legacy):
        assert form not in dump
    deliver_parked(database_url, opener, [endpoint_id])
    assert [r.verified for r in receiver.of("legacy")] == [True, True]


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/hooks",
        "http://10.1.2.3/hooks",
        "http://192.168.0.10/hooks",
        "http://169.254.169.254/latest/meta-data",
        "http://0.0.0.0/hooks",
        "http://224.0.0.1/hooks",
        "http://localhost:9000/hooks",
    ],
)
def test_a_url_whose_host_is_not_public_is_a_422_naming_url(api: ApiProcess, url: str) -> None:
    with api.client() as client:
        answer = client.post(ENDPOINTS, json={"url": url})
        assert answer.status_code == 422, answer.text
        assert [d["field"] for d in answer.json()["details"]] == ["url"]
        assert url not in answer.text
        listed = client.get(ENDPOINTS).json()["endpoints"]
    assert url not in [e["url"] for e in listed]
