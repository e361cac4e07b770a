"""Certificates for the local control plane: a CA, the API server's serving cert, an admin
client cert in `system:masters`, and the service-account signing key."""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
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
class ServingPki:
    """A CA of its own and one server certificate it signed (the local Kafka broker's).

    The key is PKCS#8 PEM, which Kafka's PEM key store reads without a password; the files are
    written once and reused, so clients that trust `ca_cert` keep trusting it across restarts.
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
        ca_key = _key()
        ca_name = _name(f"{self.common_name}-ca")
        ca = (
            _builder(ca_name, ca_name, ca_key)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(ca_key, hashes.SHA256())
        )
        key = _key()
        cert = (
            _builder(_name(self.common_name), ca_name, key)
            .add_extension(
                x509.SubjectAlternativeName(
                    [
                        x509.DNSName("localhost"),
                        *(x509.IPAddress(ipaddress.ip_address(ip)) for ip in self.ips),
                    ]
                ),
                critical=False,
            )
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
            .sign(ca_key, hashes.SHA256())
        )
        self.ca_cert.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
        pem_cert = cert.public_bytes(serialization.Encoding.PEM)
        pkcs8 = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        self.server_cert.write_bytes(pem_cert)
        for path, data in ((self.server_key, pkcs8), (self.keystore, pkcs8 + pem_cert)):
            path.touch(mode=0o600)
            path.write_bytes(data)
        return self
