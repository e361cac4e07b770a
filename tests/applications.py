"""Request bodies for tests: synthetic PANs (never a real one) and a valid application.

Every personal value the tests submit comes from here and carries a recognisable mark, so the
leak scan after the suite (tests/leakscan.py, docs/data-protection.md) can find it in any file,
dump or encoding: names and e-mail addresses contain `MARKER`, phone numbers start with
`PHONE_PREFIX`, the date of birth is `DATE_OF_BIRTH`. None of them is a real person's.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
# In every generated name and e-mail address (any case): no word of any language.
MARKER = "zqvleak"
# Every generated phone number: these six digits, then four random ones.
PHONE_PREFIX = "907731"
DATE_OF_BIRTH = "1961-07-29"


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


def marked_name(given: str = "Asha") -> str:
    """A name that passes the API's checks and the leak scan recognises, e.g. `Asha Zqvleakmbq`."""
    suffix = "".join(secrets.choice(_LETTERS.lower()) for _ in range(3))
    return f"{given} {MARKER.capitalize()}{suffix}"


def marked_email() -> str:
    return f"asha.{MARKER}{secrets.token_hex(3)}@example.com"


def marked_phone() -> str:
    return PHONE_PREFIX + f"{secrets.randbelow(10_000):04d}"


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
    """A valid `POST /applications` body with a fresh synthetic PAN and marked personal fields;
    override any field."""
    body: dict[str, object] = {
        "pan_number": synthetic_pan(),
        "first_name": marked_name("Asha"),
        "last_name": marked_name("Rao"),
        "date_of_birth": DATE_OF_BIRTH,
        "email": marked_email(),
        "phone_number": marked_phone(),
        "requested_amount": 500000,
        "monthly_income": 85000,
        "loan_type": "PERSONAL",
        "consent": consent(),
    }
    body.update(overrides)
    return body
