"""Request bodies for tests: synthetic PANs (never a real one) and a valid application."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def synthetic_pan() -> str:
    """A random, well-formed PAN (AAAAA9999A); collisions with the two documented test PANs
    are one in 10^11."""
    raw = uuid.uuid4().int
    letters = "".join(_LETTERS[(raw >> (5 * i)) % 26] for i in range(6))
    return letters[:5] + f"{(raw >> 40) % 10000:04d}" + letters[5]


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
