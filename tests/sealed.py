"""What only the credit service can do, for tests that check what the API stored: open a row."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg

from prequal import sealing


def data_key(keys: dict[str, str], database_url: str, application_id: uuid.UUID) -> bytes:
    """The application's data key, opened with the generated `SEALING_PRIVATE_KEYS`."""
    opener = sealing.Opener(
        sealing.parse_key_list(keys["SEALING_PRIVATE_KEYS"], "SEALING_PRIVATE_KEYS")
    )
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT sealed_key FROM application_data_keys WHERE application_id = %s",
            (application_id,),
        ).fetchone()
    assert row is not None, f"application {application_id} has no sealed data key"
    return opener.open_key(bytes(row[0]), application_id)


def open_pan(key: bytes, blob: bytes, application_id: uuid.UUID) -> str:
    return sealing.open_field(key, "pan", blob, application_id).decode("ascii")


def open_personal(key: bytes, blob: Any, application_id: uuid.UUID) -> bytes:
    return sealing.open_field(key, "personal", bytes(blob), application_id)
