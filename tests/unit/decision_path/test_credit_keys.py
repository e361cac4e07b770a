"""Which keys credit-service opens a PAN with: the legacy keyring for 0x01 ciphertexts, and
what happens when it has none (poison, not an endless wait)."""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from prometheus_client import CollectorRegistry

from credit_service.handler import CreditHandler, CreditMetrics, Keys, decrypt_only
from prequal import pan, sealing
from prequal.consumer import OutageError, PoisonRecordError
from prequal.events import ApplicationSubmitted

PAN = "ABCDE1234F"


def _no_row() -> None:
    raise AssertionError("the legacy path reads no data key row")


def _submitted(app: uuid.UUID, blob: bytes) -> ApplicationSubmitted:
    return ApplicationSubmitted(
        application_id=app,
        pan_encrypted=pan.to_transport(blob),
        monthly_income=Decimal(80_000),
        requested_amount=Decimal(100_000),
        loan_type="PERSONAL",
        submitted_at=datetime.now(UTC),
    )


def _handler(keys: Keys, reload: Keys | None = None) -> CreditHandler:
    return CreditHandler(
        keys,
        "reports",
        CreditMetrics(CollectorRegistry()),
        reload_keys=None if reload is None else (lambda: reload),
    )


def test_a_legacy_ciphertext_opens_with_the_decrypt_only_keyring() -> None:
    ring = {"v1": os.urandom(32)}
    app = uuid.uuid4()
    blob = pan.Keyring(ring, "v1").encrypt(PAN, app)
    handler = _handler(Keys(sealing.Opener({}), decrypt_only(ring)))
    assert handler._open_pan(_submitted(app, blob), _no_row) == (PAN, "v1")


def test_a_legacy_ciphertext_without_any_legacy_keyring_is_poison() -> None:
    app = uuid.uuid4()
    blob = pan.Keyring({"v1": os.urandom(32)}, "v1").encrypt(PAN, app)
    handler = _handler(Keys(sealing.Opener({})), reload=Keys(sealing.Opener({})))
    with pytest.raises(PoisonRecordError, match="no PAN_ENCRYPTION_KEYS"):
        handler._open_pan(_submitted(app, blob), _no_row)


def test_a_legacy_key_id_not_held_yet_is_an_outage() -> None:
    app = uuid.uuid4()
    blob = pan.Keyring({"v2": os.urandom(32)}, "v2").encrypt(PAN, app)
    keys = Keys(sealing.Opener({}), decrypt_only({"v1": os.urandom(32)}))
    with pytest.raises(OutageError, match="waiting for the key Secret"):
        _handler(keys, reload=keys)._open_pan(_submitted(app, blob), _no_row)
