"""Typed settings shared by every process (the contract is docs/configuration.md).

Each process composes its own `Settings` class from these mixins and reads it once through
`load_settings`, which also honours `SECRETS_DIR`: secrets may be files named after the setting
in lower case (a mounted Kubernetes Secret), environment variables win over files.
"""

from __future__ import annotations

import base64
import binascii
import os
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from prequal import blind_index, egress, sealing
from prequal.kafka_security import KafkaConnection, SaslMechanism, SecurityProtocol

DEFAULT_SECRETS_DIR = "/var/run/secrets/prequal"
KEY_BYTES = 32
KEY_ID_PATTERN = sealing.KEY_ID_PATTERN
# Values people paste from examples; a key that reads like a word is not a key.
_PLACEHOLDERS = {"changeme", "change-me", "secret", "example", "xxx", "todo", "replace-me"}

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]


class BaseServiceSettings(BaseSettings):
    """What every process reads: only the log level."""

    # Errors name the setting but never echo its value: it may be a key or a password.
    model_config = SettingsConfigDict(
        extra="ignore", case_sensitive=False, hide_input_in_errors=True
    )

    log_level: LogLevel = "INFO"

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value


class DatabaseSettings(BaseServiceSettings):
    database_url: SecretStr

    @field_validator("database_url")
    @classmethod
    def _libpq_url(cls, value: SecretStr) -> SecretStr:
        url = value.get_secret_value().strip()
        if not url.startswith(("postgresql://", "postgres://")):
            raise ValueError(
                "DATABASE_URL must be a libpq URL: postgresql://user:pass@host:port/db"
            )
        return SecretStr(url)


class SessionSettings(BaseServiceSettings):
    """How a long-lived worker session fails fast instead of holding locks for hours.

    A node crash or a partition leaves no FIN: without these a session's locks and open
    transaction outlive its process until the kernel gives up (about two hours). TCP keepalives
    let the client notice; the server-side timeouts end what the server would otherwise keep.
    """

    database_keepalives_idle_seconds: int = Field(default=10, ge=1)
    database_keepalives_interval_seconds: int = Field(default=5, ge=1)
    database_keepalives_count: int = Field(default=3, ge=1)
    # A transaction left idle this long is ended by the server (its locks go with it). Longer
    # than the publisher's wait for Kafka within a batch (OUTBOX_DELIVERY_TIMEOUT_SECONDS + 5).
    database_idle_in_transaction_timeout_seconds: float = Field(default=60.0, gt=0)
    database_statement_timeout_seconds: float = Field(default=30.0, gt=0)
    database_lock_timeout_seconds: float = Field(default=10.0, gt=0)

    def session_options(self) -> dict[str, Any]:
        """libpq keyword arguments for psycopg.connect (with `options` to extend, not replace)."""
        ms = {
            "idle_in_transaction_session_timeout": (
                self.database_idle_in_transaction_timeout_seconds
            ),
            "statement_timeout": self.database_statement_timeout_seconds,
            "lock_timeout": self.database_lock_timeout_seconds,
        }
        return {
            "keepalives": 1,
            "keepalives_idle": self.database_keepalives_idle_seconds,
            "keepalives_interval": self.database_keepalives_interval_seconds,
            "keepalives_count": self.database_keepalives_count,
            "options": " ".join(f"-c {name}={int(s * 1000)}" for name, s in ms.items()),
        }


class KafkaSettings(BaseServiceSettings):
    """Where the Kafka cluster is and how this process authenticates (prequal.kafka_security)."""

    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    kafka_security_protocol: SecurityProtocol = "SASL_SSL"
    kafka_sasl_mechanism: SaslMechanism = "SCRAM-SHA-512"
    kafka_sasl_username: str = ""
    kafka_sasl_password: SecretStr = SecretStr("")
    kafka_ssl_ca_location: str = ""
    topic_applications_submitted: str = "loan_applications_submitted"
    topic_credit_reports: str = "credit_reports_generated"
    topic_applications_decided: str = "loan_applications_decided"

    def kafka_connection(self) -> KafkaConnection:
        """Every Kafka client of this process connects with this (ValueError if incomplete)."""
        return KafkaConnection(
            self.kafka_bootstrap_servers,
            self.kafka_security_protocol,
            self.kafka_sasl_mechanism,
            self.kafka_sasl_username,
            self.kafka_sasl_password.get_secret_value(),
            self.kafka_ssl_ca_location,
        )


def decode_key(value: str, name: str) -> bytes:
    """A base64 32-byte key, or a ValueError naming the setting and the fault (never the key)."""
    text = value.strip()
    if text.lower() in _PLACEHOLDERS:
        raise ValueError(f"{name} is a placeholder; generate keys with `prequalctl keys generate`")
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"{name} is not valid base64") from None
    if len(raw) != KEY_BYTES:
        raise ValueError(f"{name} must decode to {KEY_BYTES} bytes, got {len(raw)}")
    if len(set(raw)) < 8:
        raise ValueError(
            f"{name} has almost no entropy; generate keys with `prequalctl keys generate`"
        )
    return raw


def parse_keyring(value: str) -> dict[str, bytes]:
    """`PAN_ENCRYPTION_KEYS`: comma-separated `key_id:base64(32 bytes)` entries."""
    return sealing.parse_key_list(
        value,
        "PAN_ENCRYPTION_KEYS",
        decode=lambda encoded, key_id: decode_key(encoded, f"PAN_ENCRYPTION_KEYS key {key_id!r}"),
    )


class PanKeySettings(BaseServiceSettings):
    """The keyring (decryption), the active key id (encryption) and the blind-index key."""

    pan_encryption_keys: SecretStr
    pan_active_key_id: str
    pan_blind_index_key: SecretStr

    @field_validator("pan_encryption_keys")
    @classmethod
    def _keyring(cls, value: SecretStr) -> SecretStr:
        parse_keyring(value.get_secret_value())
        return value

    @field_validator("pan_blind_index_key")
    @classmethod
    def _blind_key(cls, value: SecretStr) -> SecretStr:
        decode_key(value.get_secret_value(), "PAN_BLIND_INDEX_KEY")
        return value

    @field_validator("pan_active_key_id", mode="before")
    @classmethod
    def _strip(cls, value: object) -> object:
        return value.strip() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _active_key_in_keyring(self) -> PanKeySettings:
        if self.pan_active_key_id not in self.keyring():
            raise ValueError(
                f"PAN_ACTIVE_KEY_ID {self.pan_active_key_id!r} is not in PAN_ENCRYPTION_KEYS"
            )
        return self

    def keyring(self) -> dict[str, bytes]:
        return parse_keyring(self.pan_encryption_keys.get_secret_value())

    def blind_index_key(self) -> bytes:
        return decode_key(self.pan_blind_index_key.get_secret_value(), "PAN_BLIND_INDEX_KEY")


class IndexKeySettings(BaseServiceSettings):
    """The index key ring (prequal.blind_index): the PAN's blind index and idempotency digests.

    `PAN_INDEX_KEYS` (`key_id:base64,…`, 32-byte root keys) with `PAN_INDEX_ACTIVE_KEY_ID`; the
    single key from before migration 0010, `PAN_BLIND_INDEX_KEY`, joins the ring as `v0` (and
    is the active one when it is the only key), so a deployment upgrades without a new Secret.
    """

    pan_index_keys: SecretStr | None = None
    pan_index_active_key_id: str = ""
    pan_blind_index_key: SecretStr | None = None

    @field_validator("pan_index_active_key_id", mode="before")
    @classmethod
    def _strip(cls, value: object) -> object:
        return value.strip() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _ring(self) -> IndexKeySettings:
        self.index_key_ring()
        return self

    def index_key_ring(self) -> blind_index.IndexKeyRing:
        keys: dict[str, bytes] = {}
        text = self.pan_index_keys.get_secret_value() if self.pan_index_keys else ""
        if text.strip():
            keys = sealing.parse_key_list(
                text,
                "PAN_INDEX_KEYS",
                decode=lambda encoded, kid: decode_key(encoded, f"PAN_INDEX_KEYS key {kid!r}"),
            )
            if blind_index.LEGACY_KEY_ID in keys:
                raise ValueError(
                    f"PAN_INDEX_KEYS: key id {blind_index.LEGACY_KEY_ID!r} is reserved for "
                    "PAN_BLIND_INDEX_KEY (the key from before migration 0010)"
                )
        legacy = self.pan_blind_index_key.get_secret_value() if self.pan_blind_index_key else ""
        if legacy.strip():
            keys[blind_index.LEGACY_KEY_ID] = decode_key(legacy, "PAN_BLIND_INDEX_KEY")
        if not keys:
            raise ValueError(
                "PAN_INDEX_KEYS (or the older PAN_BLIND_INDEX_KEY) is required; generate one "
                "with `prequalctl keys generate`"
            )
        active = self.pan_index_active_key_id
        if not active:
            if list(keys) != [blind_index.LEGACY_KEY_ID]:
                raise ValueError("PAN_INDEX_ACTIVE_KEY_ID is required with PAN_INDEX_KEYS")
            active = blind_index.LEGACY_KEY_ID
        if active not in keys:
            raise ValueError(f"PAN_INDEX_ACTIVE_KEY_ID {active!r} is not in PAN_INDEX_KEYS")
        return blind_index.IndexKeyRing(keys, active)


class SealingPublicKeySettings(BaseServiceSettings):
    """What seals (the API): public keys by id and the active one. Nothing here can open."""

    sealing_public_keys: str
    sealing_active_key_id: str

    @field_validator("sealing_public_keys")
    @classmethod
    def _public_keys(cls, value: str) -> str:
        sealing.parse_key_list(value, "SEALING_PUBLIC_KEYS")
        return value

    @field_validator("sealing_active_key_id", mode="before")
    @classmethod
    def _strip(cls, value: object) -> object:
        return value.strip() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _sealer(self) -> SealingPublicKeySettings:
        self.sealer()  # the active key exists and is a public key of a known KEM
        return self

    def public_keys(self) -> dict[str, bytes]:
        return sealing.parse_key_list(self.sealing_public_keys, "SEALING_PUBLIC_KEYS")

    def sealer(self) -> sealing.Sealer:
        try:
            return sealing.Sealer(self.public_keys(), self.sealing_active_key_id)
        except sealing.KeyFormatError as exc:
            raise ValueError(f"SEALING_ACTIVE_KEY_ID / SEALING_PUBLIC_KEYS: {exc}") from None


class SealingPrivateKeySettings(BaseServiceSettings):
    """What opens (the credit service only): every sealing private key, and the legacy keyring.

    `PAN_ENCRYPTION_KEYS` is optional and decrypt-only: it opens PAN ciphertexts written before
    migration 0007 (format 0x01) that still sit in the database, Kafka or a DLQ.
    """

    sealing_private_keys: SecretStr
    pan_encryption_keys: SecretStr | None = None

    @field_validator("sealing_private_keys")
    @classmethod
    def _private_keys(cls, value: SecretStr) -> SecretStr:
        text = value.get_secret_value()
        try:
            sealing.Opener(sealing.parse_key_list(text, "SEALING_PRIVATE_KEYS"))
        except sealing.KeyFormatError as exc:
            raise ValueError(str(exc)) from None
        return value

    @field_validator("pan_encryption_keys")
    @classmethod
    def _keyring(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and value.get_secret_value().strip():
            parse_keyring(value.get_secret_value())
        return value

    def opener(self) -> sealing.Opener:
        text = self.sealing_private_keys.get_secret_value()
        return sealing.Opener(sealing.parse_key_list(text, "SEALING_PRIVATE_KEYS"))

    def legacy_keyring(self) -> dict[str, bytes]:
        if self.pan_encryption_keys is None or not self.pan_encryption_keys.get_secret_value():
            return {}
        return parse_keyring(self.pan_encryption_keys.get_secret_value())


class WebhookSealingPublicKeySettings(BaseServiceSettings):
    """What seals webhook signing secrets (the API): the dispatcher's public keys by id and the
    active one (prequal.webhook_secrets)."""

    webhook_sealing_public_keys: str
    webhook_sealing_active_key_id: str

    @field_validator("webhook_sealing_active_key_id", mode="before")
    @classmethod
    def _strip(cls, value: object) -> object:
        return value.strip() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _sealer(self) -> WebhookSealingPublicKeySettings:
        self.webhook_sealer()
        return self

    def webhook_sealer(self) -> sealing.Sealer:
        try:
            keys = sealing.parse_key_list(
                self.webhook_sealing_public_keys, "WEBHOOK_SEALING_PUBLIC_KEYS"
            )
            return sealing.Sealer(keys, self.webhook_sealing_active_key_id)
        except sealing.KeyFormatError as exc:
            raise ValueError(
                f"WEBHOOK_SEALING_ACTIVE_KEY_ID / WEBHOOK_SEALING_PUBLIC_KEYS: {exc}"
            ) from None


class WebhookSealingPrivateKeySettings(BaseServiceSettings):
    """What opens webhook signing secrets: the webhook dispatcher's private keys, its only."""

    webhook_sealing_private_keys: SecretStr

    @field_validator("webhook_sealing_private_keys")
    @classmethod
    def _private_keys(cls, value: SecretStr) -> SecretStr:
        try:
            _webhook_opener(value.get_secret_value())
        except sealing.KeyFormatError as exc:
            raise ValueError(str(exc)) from None
        return value

    def webhook_opener(self) -> sealing.Opener:
        return _webhook_opener(self.webhook_sealing_private_keys.get_secret_value())


def _webhook_opener(text: str) -> sealing.Opener:
    return sealing.Opener(sealing.parse_key_list(text, "WEBHOOK_SEALING_PRIVATE_KEYS"))


class WebhookEgressSettings(BaseServiceSettings):
    """Where webhooks may go besides the public internet (prequal.egress): CIDRs, comma-separated.
    Empty (production): loopback, private, link-local, multicast and unspecified addresses are
    refused. `make run`, the demo and the tests allow loopback (`127.0.0.0/8,::1/128`)."""

    webhook_allowed_networks: str = ""

    @field_validator("webhook_allowed_networks")
    @classmethod
    def _networks(cls, value: str) -> str:
        egress.parse_networks(value)
        return value

    def allowed_networks(self) -> tuple[egress.Network, ...]:
        return egress.parse_networks(self.webhook_allowed_networks)


S = TypeVar("S", bound=BaseSettings)


def load_settings(cls: type[S], **overrides: Any) -> S:
    """Reads `cls` from the environment and, when it exists, the `SECRETS_DIR` directory."""
    secrets_dir = Path(os.environ.get("SECRETS_DIR", DEFAULT_SECRETS_DIR))
    if secrets_dir.is_dir():
        return cls(_secrets_dir=secrets_dir, **overrides)
    return cls(**overrides)
