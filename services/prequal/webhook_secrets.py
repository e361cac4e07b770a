"""Webhook signing secrets, sealed at rest: a database dump cannot forge our webhooks.

The API generates an endpoint's `whsec_` secret, shows it once and stores it only sealed with
HPKE (`prequal.sealing`, the same format as a sealed data key) to the webhook dispatcher's
public key: a key pair of its own purpose, not the credit service's. The HPKE `info` binds the
purpose and the endpoint id, so a sealed secret copied onto another endpoint, or a sealed data
key passed off as a secret, does not open. Only the dispatcher holds the private key
(`WEBHOOK_SEALING_PRIVATE_KEYS`); it opens the secret when it signs a delivery.

What is sealed is the secret's 32 HMAC-key bytes; `open_secret` gives back the `whsec_` form.
"""

from __future__ import annotations

import base64
import uuid

from prequal import sealing, webhooks

PURPOSE = b"prequal/webhook-signing-secret/v1\x00"


def seal_secret(sealer: sealing.Sealer, secret: str, endpoint_id: uuid.UUID) -> bytes:
    return sealer.seal_key(webhooks.secret_key(secret), endpoint_id, PURPOSE)


def open_secret(opener: sealing.Opener, sealed: bytes, endpoint_id: uuid.UUID) -> str:
    """The `whsec_` secret; `sealing.OpenError` when it does not open for this endpoint."""
    raw = opener.open_key(sealed, endpoint_id, PURPOSE)
    return webhooks.SECRET_PREFIX + base64.b64encode(raw).decode()
