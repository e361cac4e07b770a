"""credit-service settings (docs/configuration.md): the consumer's, plus the PAN keyring."""

from __future__ import annotations

from pydantic import SecretStr, field_validator

from prequal.consumer_process import ConsumerSettings
from prequal.settings import parse_keyring


class CreditSettings(ConsumerSettings):
    metrics_port: int = 9102
    consumer_group: str = "credit-service"
    # Decryption only: every key of the ring is needed, the active key id is not.
    pan_encryption_keys: SecretStr

    @field_validator("pan_encryption_keys")
    @classmethod
    def _keyring(cls, value: SecretStr) -> SecretStr:
        parse_keyring(value.get_secret_value())
        return value

    def keyring(self) -> dict[str, bytes]:
        return parse_keyring(self.pan_encryption_keys.get_secret_value())
