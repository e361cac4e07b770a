"""Webhook endpoints through the API (scope `webhooks:manage`) and `prequalctl webhooks`: each
client sees only its own, a bad URL is a 422 naming `url`, the secret is shown once."""

from __future__ import annotations

import base64
import uuid

import psycopg
import pytest

from prequalctl.main import main as prequalctl
from tests.integration.submission.conftest import ApiProcess
from tests.tokens import Oidc

ENDPOINTS = "/webhooks/endpoints"


def test_a_client_registers_lists_and_removes_its_endpoints_and_sees_the_secret_once(
    api: ApiProcess, oidc: Oidc, database_url: str
) -> None:
    with api.client() as owner, api.client(token=oidc.token(oidc.other)) as other:
        created = owner.post(ENDPOINTS, json={"url": "https://hooks.example.test/prequal"})
        assert created.status_code == 201, created.text
        body = created.json()
        # Standard Webhooks: `whsec_` + base64 of the key.
        assert body["secret"].startswith("whsec_")
        assert len(base64.b64decode(body["secret"].removeprefix("whsec_"))) == 32
        assert body["url"] == "https://hooks.example.test/prequal"
        assert body["enabled"] is True

        listed = owner.get(ENDPOINTS).json()["endpoints"]
        assert [e["id"] for e in listed] == [body["id"]]
        assert "secret" not in listed[0]
        assert body["secret"] not in owner.get(ENDPOINTS).text

        # Another client neither sees it nor can remove it.
        assert other.get(ENDPOINTS).json() == {"endpoints": []}
        assert other.delete(f"{ENDPOINTS}/{body['id']}").status_code == 404

        assert owner.delete(f"{ENDPOINTS}/{body['id']}").status_code == 204
        assert owner.get(ENDPOINTS).json() == {"endpoints": []}
        assert owner.delete(f"{ENDPOINTS}/{body['id']}").status_code == 404
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM webhook_endpoints WHERE id = %s", (body["id"],)
        ).fetchone()
    assert row == (0,)


@pytest.mark.parametrize(
    "url",
    ["ftp://hooks.example.test/x", "https://", "hooks.example.test", "https://a b.test/", 42],
)
def test_a_bad_url_is_a_422_naming_the_field_without_echoing_it(
    api: ApiProcess, url: object
) -> None:
    with api.client() as client:
        answer = client.post(ENDPOINTS, json={"url": url})
    assert answer.status_code == 422
    assert [d["field"] for d in answer.json()["details"]] == ["url"]
    if isinstance(url, str) and len(url) > 8:
        assert url not in answer.text


def test_managing_endpoints_needs_the_scope(api: ApiProcess, oidc: Oidc) -> None:
    token = oidc.token(scope="applications:read applications:write")
    with api.client(token=token) as client:
        assert client.get(ENDPOINTS).status_code == 403
        assert client.post(ENDPOINTS, json={"url": "https://a.test/"}).status_code == 403
        assert client.delete(f"{ENDPOINTS}/{uuid.uuid4()}").status_code == 403


def test_prequalctl_creates_lists_replays_and_deletes_endpoints(
    database_url: str,
    pan_keys: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("SECRETS_DIR", "/nonexistent")
    # `create` seals the secret to the dispatcher, as the API does.
    for name in ("WEBHOOK_SEALING_PUBLIC_KEYS", "WEBHOOK_SEALING_ACTIVE_KEY_ID"):
        monkeypatch.setenv(name, pan_keys[name])
    client = f"ops-{uuid.uuid4().hex[:6]}"
    assert prequalctl(["webhooks", "create", "--client", client, "--url", "ftp://x.test"]) == 2
    local = ["webhooks", "create", "--client", client, "--url", "http://10.0.0.1/h"]
    assert prequalctl(local) == 2, "a private address is refused here too"
    assert prequalctl(["webhooks", "create", "--client", client, "--url", "http://x.test/h"]) == 0
    out = capsys.readouterr().out
    secret = out.split("): ")[-1].strip()
    assert secret.startswith("whsec_")
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT id FROM webhook_endpoints WHERE client_id = %s", (client,)
        ).fetchone()
        assert row is not None
        endpoint_id = row[0]
        delivery = uuid.uuid4()
        conn.execute(
            "INSERT INTO webhook_deliveries (id, endpoint_id, event_id, application_id, "
            "payload, status, attempts, last_error) "
            "VALUES (%s, %s, %s, %s, '{}', 'DEAD', 8, 'HTTP 500')",
            (delivery, endpoint_id, uuid.uuid4(), uuid.uuid4()),
        )

    assert prequalctl(["webhooks", "list", "--client", client, "-o", "json"]) == 0
    listed = capsys.readouterr().out
    assert str(endpoint_id) in listed
    assert '"dead_deliveries": 1' in listed
    assert secret not in listed

    assert prequalctl(["webhooks", "replay", "--endpoint", str(endpoint_id)]) == 0
    with psycopg.connect(database_url) as conn:
        state = conn.execute(
            "SELECT status, attempts, last_error FROM webhook_deliveries WHERE id = %s",
            (delivery,),
        ).fetchone()
    assert state == ("PENDING", 0, None)

    assert prequalctl(["webhooks", "delete", str(endpoint_id)]) == 0
    assert prequalctl(["webhooks", "delete", str(endpoint_id)]) == 1
