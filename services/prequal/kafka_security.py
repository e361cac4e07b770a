"""How a Kafka client proves who it is: the one place every client's security config is built.

Every client (the services, the operator's admin client, prequalctl, the test helpers and the
benchmarks) connects through a `KafkaConnection`: the bootstrap list plus the security protocol,
the SASL mechanism and principal, and the CA that signed the brokers' certificates. Settings
build it (`KafkaSettings.kafka_connection`); the devstack broker hands one out per principal.
PLAINTEXT stays possible for a deployment that terminates security elsewhere; the default is
SASL/SCRAM-SHA-512 over TLS (docs/kafka-security.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"]


@dataclass(frozen=True)
class KafkaConnection:
    """Where a client connects and as whom. The password never appears in a repr."""

    bootstrap_servers: str
    security_protocol: SecurityProtocol = "PLAINTEXT"
    sasl_mechanism: SaslMechanism = "SCRAM-SHA-512"
    sasl_username: str = ""
    sasl_password: str = field(default="", repr=False)
    # Empty: the system's trust store (a CA the lender's PKI already put there).
    ssl_ca_location: str = ""

    def __post_init__(self) -> None:
        if self.security_protocol.startswith("SASL_") and not (
            self.sasl_username and self.sasl_password
        ):
            raise ValueError(
                f"KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD are required with "
                f"KAFKA_SECURITY_PROTOCOL={self.security_protocol}"
            )

    @property
    def uses_tls(self) -> bool:
        return self.security_protocol in ("SSL", "SASL_SSL")

    def config(self) -> dict[str, str | int | float | bool]:
        """librdkafka properties: bootstrap and security; callers add their own on top."""
        config: dict[str, str | int | float | bool] = {
            "bootstrap.servers": self.bootstrap_servers,
            "security.protocol": self.security_protocol.lower(),
        }
        if self.security_protocol.startswith("SASL_"):
            config["sasl.mechanism"] = self.sasl_mechanism
            config["sasl.username"] = self.sasl_username
            config["sasl.password"] = self.sasl_password
        if self.uses_tls and self.ssl_ca_location:
            config["ssl.ca.location"] = self.ssl_ca_location
        return config

    def at(self, bootstrap_servers: str) -> KafkaConnection:
        """The same identity against another bootstrap list (the operator: one per pipeline)."""
        return replace(self, bootstrap_servers=bootstrap_servers)

    def as_principal(self, username: str, password: str) -> KafkaConnection:
        return replace(self, sasl_username=username, sasl_password=password)

    def environment(self) -> dict[str, str]:
        """The settings (docs/configuration.md) that make a process connect like this."""
        return {
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap_servers,
            "KAFKA_SECURITY_PROTOCOL": self.security_protocol,
            "KAFKA_SASL_MECHANISM": self.sasl_mechanism,
            "KAFKA_SASL_USERNAME": self.sasl_username,
            "KAFKA_SASL_PASSWORD": self.sasl_password,
            "KAFKA_SSL_CA_LOCATION": self.ssl_ca_location,
        }
