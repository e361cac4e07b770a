"""Certificates for the local control plane: a CA, the API server's serving cert, an admin
client cert in `system:masters`, and the service-account signing key."""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_VALIDITY = datetime.timedelta(days=365)


@dataclass(frozen=True)
class ControlPlanePki:
    directory: Path
    # More addresses the API server's certificate names (the node's bridge address).
    extra_ips: tuple[str, ...] = ()

    ca_cert = property(lambda self: self.directory / "ca.crt")
    ca_key = property(lambda self: self.directory / "ca.key")
    serving_cert = property(lambda self: self.directory / "apiserver.crt")
    serving_key = property(lambda self: self.directory / "apiserver.key")
    admin_cert = property(lambda self: self.directory / "admin.crt")
    admin_key = property(lambda self: self.directory / "admin.key")
    sa_key = property(lambda self: self.directory / "sa.key")
    sa_pub = property(lambda self: self.directory / "sa.pub")

    def ensure(self) -> ControlPlanePki:
        """Writes every file once; later calls reuse them (so `make run` keeps its kubeconfig)."""
        if self.sa_pub.exists():
            return self
        self.directory.mkdir(parents=True, exist_ok=True)
        ca_key = _key()
        ca_name = _name("prequal-local-ca")
        ca = (
            _builder(ca_name, ca_name, ca_key)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    key_cert_sign=True,
                    crl_sign=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(ca_key, hashes.SHA256())
        )
        _write(self.ca_cert, self.ca_key, ca, ca_key)

        serving_key = _key()
        serving = (
            _builder(_name("kube-apiserver"), ca_name, serving_key)
            .add_extension(
                x509.SubjectAlternativeName(
                    [
                        x509.DNSName("localhost"),
                        x509.DNSName("kubernetes"),
                        x509.DNSName("kubernetes.default.svc"),
                        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                        x509.IPAddress(ipaddress.ip_address("10.0.0.1")),
                        *(x509.IPAddress(ipaddress.ip_address(ip)) for ip in self.extra_ips),
                    ]
                ),
                critical=False,
            )
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
            .sign(ca_key, hashes.SHA256())
        )
        _write(self.serving_cert, self.serving_key, serving, serving_key)

        admin_key = _key()
        admin = (
            _builder(_name("prequal-admin", organization="system:masters"), ca_name, admin_key)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), False)
            .sign(ca_key, hashes.SHA256())
        )
        _write(self.admin_cert, self.admin_key, admin, admin_key)

        sa_key = _key()
        self.sa_key.write_bytes(_pem_key(sa_key))
        self.sa_pub.write_bytes(
            sa_key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        return self


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _name(common_name: str, organization: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    return x509.Name(attrs)


def _builder(
    subject: x509.Name, issuer: x509.Name, key: ec.EllipticCurvePrivateKey
) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + _VALIDITY)
    )


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


def _write(
    cert_path: Path, key_path: Path, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey
) -> None:
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(_pem_key(key))
    key_path.chmod(0o600)


@dataclass(frozen=True)
class ServingMaterial:
    """A fresh CA and one server certificate it signed, as PEM bytes (nothing on disk).

    The CA's key is not kept: nothing here signs a second certificate with it. `key` is PKCS#8,
    which Kafka's PEM key store reads without a password.
    """

    ca_cert: bytes
    server_cert: bytes
    key: bytes = field(repr=False)

    @property
    def keystore(self) -> bytes:
        """Key and certificate in one PEM: Kafka's `ssl.keystore.type=PEM` key store."""
        return self.key + self.server_cert


def serving_material(
    common_name: str, dns_names: tuple[str, ...] = (), ips: tuple[str, ...] = ()
) -> ServingMaterial:
    ca_key = _key()
    ca_name = _name(f"{common_name}-ca")
    ca = (
        _builder(ca_name, ca_name, ca_key)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = _key()
    cert = (
        _builder(_name(common_name), ca_name, key)
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    *(x509.DNSName(name) for name in dns_names),
                    *(x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
        .sign(ca_key, hashes.SHA256())
    )
    return ServingMaterial(
        ca.public_bytes(serialization.Encoding.PEM),
        cert.public_bytes(serialization.Encoding.PEM),
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )


@dataclass(frozen=True)
class ServingPki:
    """A CA of its own and one server certificate it signed (the local Kafka broker's).

    The files are written once and reused, so clients that trust `ca_cert` keep trusting it
    across restarts.
    """

    directory: Path
    common_name: str
    ips: tuple[str, ...] = ("127.0.0.1",)

    ca_cert = property(lambda self: self.directory / "ca.crt")
    server_cert = property(lambda self: self.directory / "server.crt")
    server_key = property(lambda self: self.directory / "server.key")
    # Certificate chain and key in one file: Kafka's `ssl.keystore.type=PEM` key store.
    keystore = property(lambda self: self.directory / "server.keystore.pem")

    def ensure(self) -> ServingPki:
        if self.keystore.exists():
            return self
        self.directory.mkdir(parents=True, exist_ok=True)
        made = serving_material(self.common_name, ("localhost",), self.ips)
        self.ca_cert.write_bytes(made.ca_cert)
        self.server_cert.write_bytes(made.server_cert)
        for path, data in ((self.server_key, made.key), (self.keystore, made.keystore)):
            path.touch(mode=0o600)
            path.write_bytes(data)
        return self
