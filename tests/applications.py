"""Request bodies for tests: synthetic PANs (never a real one) and a valid application."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def synthetic_pan() -> str:
    """A random, well-formed PAN (AAAAA9999A); collisions with the two documented test PANs
    are one in 10^12."""
    return pan_from(secrets.token_bytes(9))


def pan_from(seed: bytes) -> str:
    """A well-formed PAN derived from nine bytes of `seed`: the same seed gives the same PAN
    (the API fuzz derives one from each generated body)."""
    letters = "".join(_LETTERS[b % 26] for b in seed[:6])
    digits = f"{int.from_bytes(seed[6:9], 'big') % 10_000:04d}"
    return letters[:5] + digits + letters[5]


def consent(**overrides: object) -> dict[str, object]:
    """The applicant's consent to a soft credit inquiry, captured now."""
    body: dict[str, object] = {
        "soft_inquiry": True,
        "text_version": "soft-inquiry-v1",
        "captured_at": datetime.now(UTC).isoformat(),
        "channel": "WEB",
    }
    body.update(overrides)
    return body


def application(**overrides: object) -> dict[str, object]:
    """A valid `POST /applications` body with a fresh synthetic PAN; override any field."""
    body: dict[str, object] = {
        "pan_number": synthetic_pan(),
        "first_name": "Asha",
        "last_name": "Rao",
        "date_of_birth": "1990-04-12",
        "email": "asha.rao@example.com",
        "phone_number": "9876543210",
        "requested_amount": 500000,
        "monthly_income": 85000,
        "loan_type": "PERSONAL",
        "consent": consent(),
    }
    body.update(overrides)
    return body
