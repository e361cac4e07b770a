"""Webhook endpoints and Standard Webhooks signatures, shared by the API, the dispatcher and
`prequalctl`.

Signatures follow the Standard Webhooks specification (standardwebhooks.com): the secret is
`whsec_` + base64 of 32 random bytes; the signed content is `{webhook-id}.{webhook-timestamp}.
{body}`; `webhook-signature` is `v1,` + base64(HMAC-SHA256(secret bytes, content)). The tests
verify these signatures with the reference `standardwebhooks` package.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime

SECRET_PREFIX = "whsec_"  # noqa: S105 - the prefix the spec fixes, not a secret
SECRET_BYTES = 32
# URLs a client may register: http(s) only, bounded (a URL is stored and logged by its host).
# 1024 keeps any over-long value inside the API's 16 KiB body cap even at its worst JSON
# escaping (12 bytes a character, `\ud83c\udffb`), so it is refused with a 422 naming `url`,
# as the document says, not with a 413 before validation.
URL_MAX_LENGTH = 1024

# The secret only sealed (prequal.webhook_secrets.seal_secret, bound to the id).
INSERT_ENDPOINT_SQL = (
    "INSERT INTO webhook_endpoints (id, client_id, url, sealed_secret) VALUES (%s, %s, %s, %s) "
    "RETURNING id, url, enabled, created_at"
)
# Never the secret: it is shown once, at creation.
LIST_ENDPOINTS_SQL = (
    "SELECT id, url, enabled, created_at, client_id FROM webhook_endpoints "
    "WHERE client_id = %s ORDER BY created_at, id"
)
LIST_ALL_ENDPOINTS_SQL = (
    "SELECT id, url, enabled, created_at, client_id FROM webhook_endpoints "
    "ORDER BY client_id, created_at, id"
)
DELETE_ENDPOINT_SQL = "DELETE FROM webhook_endpoints WHERE id = %s AND client_id = %s"
DELETE_ANY_ENDPOINT_SQL = "DELETE FROM webhook_endpoints WHERE id = %s"
# A dead delivery parked again as new: attempts start over, due now.
REPLAY_SQL = (
    "UPDATE webhook_deliveries SET status = 'PENDING', attempts = 0, next_attempt_at = now(), "
    "last_error = NULL WHERE status = 'DEAD'"
)


@dataclass(frozen=True)
class Endpoint:
    id: uuid.UUID
    url: str
    enabled: bool
    created_at: datetime


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def secret_key(secret: str) -> bytes:
    """The HMAC key of a `whsec_` secret."""
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError("a webhook secret starts with whsec_")
    return base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` header value (one `v1` signature)."""
    content = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_key(secret), content, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signed_headers(secret: str, message_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, message_id, timestamp, body),
        "content-type": "application/json",
    }
