"""The operator's settings, from the environment (see docs/configuration.md)."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from prequal.kafka_security import KafkaConnection, SaslMechanism, SecurityProtocol
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
    # How often the orphan sweep looks for Kafka users of deleted pipelines (orphan_sweep.py).
    orphan_sweep_seconds: float = Field(
        default=60.0, gt=0, validation_alias="OPERATOR_ORPHAN_SWEEP_SECONDS"
    )
    max_backoff_seconds: float = Field(
        default=60.0, gt=0, validation_alias="OPERATOR_MAX_BACKOFF_SECONDS"
    )
    # The operator's own Kafka identity (a super user), used against every pipeline's
    # bootstrap list; the services' settings of the same names (docs/kafka-security.md).
    kafka_security_protocol: SecurityProtocol = Field(
        default="SASL_SSL", validation_alias="KAFKA_SECURITY_PROTOCOL"
    )
    kafka_sasl_mechanism: SaslMechanism = Field(
        default="SCRAM-SHA-512", validation_alias="KAFKA_SASL_MECHANISM"
    )
    kafka_sasl_username: str = Field(default="", validation_alias="KAFKA_SASL_USERNAME")
    kafka_sasl_password: SecretStr = Field(
        default=SecretStr(""), validation_alias="KAFKA_SASL_PASSWORD"
    )
    kafka_ssl_ca_location: str = Field(default="", validation_alias="KAFKA_SSL_CA_LOCATION")

    def kafka_identity(self) -> KafkaConnection:
        """How the operator connects; each pipeline supplies the bootstrap list."""
        return KafkaConnection(
            "",
            self.kafka_security_protocol,
            self.kafka_sasl_mechanism,
            self.kafka_sasl_username,
            self.kafka_sasl_password.get_secret_value(),
            self.kafka_ssl_ca_location,
        )
