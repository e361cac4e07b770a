"""The operator's settings, from the environment (see docs/configuration.md)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from prequal.sealing import DEFAULT_KEM, KemName


class Settings(BaseSettings):
    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore")

    metrics_port: int = Field(default=9104, validation_alias="METRICS_PORT")
    metrics_host: str = Field(default="127.0.0.1", validation_alias="METRICS_HOST")
    log_level: str = Field(default="INFO", validation_alias="LOG_LEVEL")
    resync_seconds: float = Field(default=60.0, gt=0, validation_alias="OPERATOR_RESYNC_SECONDS")
    kafka_timeout_seconds: float = Field(
        default=5.0, gt=0, validation_alias="OPERATOR_KAFKA_TIMEOUT_SECONDS"
    )
    # Phase one of a key rotation lasts this long: a mounted Secret reaches every running pod
    # within the kubelet's sync period plus its cache TTL (about two minutes by default).
    key_distribution_seconds: float = Field(
        default=180.0, ge=0, validation_alias="OPERATOR_KEY_DISTRIBUTION_SECONDS"
    )
    # HPKE KEM of the key pairs it generates (docs/data-protection.md): the post-quantum hybrid
    # by default; `x25519` for classic X25519. Existing pairs keep theirs.
    sealing_kem: KemName = Field(default=DEFAULT_KEM, validation_alias="OPERATOR_SEALING_KEM")
    max_backoff_seconds: float = Field(
        default=60.0, gt=0, validation_alias="OPERATOR_MAX_BACKOFF_SECONDS"
    )
