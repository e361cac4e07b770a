"""Seal, don't share: per-application data keys, sealed with HPKE (RFC 9180) to the credit service.

Each application gets a random 256-bit data key. Its PAN and its other personal fields are
encrypted under that key with AES-256-GCM; the data key itself is kept only sealed with HPKE to
the credit service's public key. Whoever holds only public keys (the API) can seal but never
open; deleting the sealed data key erases the applicant wherever the ciphertexts were copied
(crypto-shredding). Two self-describing formats, each starting with a version byte:

    sealed data key  0x01 | suite | len(key_id) | key_id (ASCII) | HPKE enc || HPKE ciphertext
    field            0x02 | nonce (12 random bytes) | AES-GCM ciphertext + tag

The HPKE `info` binds the sealed key to its application id and header (a sealed key copied onto
another application, or re-labelled with another key id or suite, does not open). A field's
associated data is its format byte, its field label and the application id, so a ciphertext
moved to another application or another column fails. Field format 0x01 is the legacy PAN
format of `prequal.pan` (a shared keyring), which only the credit service can still open.

Suites (`cryptography` >= 46 `hazmat.primitives.hpke`, base mode, single-shot):
    1  KEM MLKEM768_X25519 (hybrid, post-quantum) + HKDF-SHA256 + AES-256-GCM   (default)
    2  KEM X25519 (DHKEM) + HKDF-SHA256 + AES-256-GCM
The key's encoding tells its KEM: a hybrid private key is the ML-KEM-768 seed (64 bytes) then
the X25519 key (32), its public key the ML-KEM-768 public key (1184) then X25519's (32).
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import IntEnum
from typing import Literal

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric import mlkem, x25519
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

SEALED_KEY_VERSION = 1
FIELD_VERSION = 2
LEGACY_PAN_VERSION = 1
DATA_KEY_BYTES = 32
NONCE_BYTES = 12
_TAG_BYTES = 16
# The HPKE `info` starts with the purpose: a blob sealed for one purpose never opens as another.
DATA_KEY_PURPOSE = b"prequal/sealed-data-key/v1\x00"
KEY_ID_PATTERN = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")

_MLKEM_SEED = 64
_MLKEM_PUBLIC = 1184
_X25519 = 32

KemName = Literal["mlkem768-x25519", "x25519"]
DEFAULT_KEM: KemName = "mlkem768-x25519"


class Suite(IntEnum):
    MLKEM768_X25519 = 1
    X25519 = 2


_SUITES = {
    Suite.MLKEM768_X25519: hpke.Suite(
        hpke.KEM.MLKEM768_X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM
    ),
    Suite.X25519: hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM),
}

PublicKey = hpke.MLKEM768X25519PublicKey | x25519.X25519PublicKey
PrivateKey = hpke.MLKEM768X25519PrivateKey | x25519.X25519PrivateKey


class SealingError(Exception):
    """Base of every sealing failure; messages never carry a key or a plaintext."""


class OpenError(SealingError):
    """A sealed key or a field could not be opened; the message says why."""


class MalformedSealError(OpenError):
    """Not bytes this module wrote (truncated, unknown version or suite)."""


class UnknownSealingKeyError(OpenError):
    """The sealed key names a key id this process does not hold (yet): not the record's fault."""

    def __init__(self, key_id: str, known: list[str]) -> None:
        super().__init__(
            f"sealed with key id {key_id!r}, which this process does not hold (known: {known}); "
            "it may not have reached this process yet"
        )
        self.key_id = key_id


class TamperedSealError(OpenError):
    """Authentication failed: the bytes were altered or belong to another application."""


class KeyFormatError(SealingError, ValueError):
    """A configured key cannot be parsed; the message names the entry, never the key."""


# --- keys ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class KeyPair:
    """A generated sealing key pair, encoded as the settings and Secrets carry it."""

    private: bytes
    public: bytes


def generate_key_pair(kem: KemName = DEFAULT_KEM) -> KeyPair:
    x = x25519.X25519PrivateKey.generate()
    x_private, x_public = x.private_bytes_raw(), x.public_key().public_bytes_raw()
    if kem == "x25519":
        return KeyPair(x_private, x_public)
    m = mlkem.MLKEM768PrivateKey.generate()
    return KeyPair(m.private_bytes_raw() + x_private, m.public_key().public_bytes_raw() + x_public)


def load_public_key(raw: bytes) -> tuple[Suite, PublicKey]:
    if len(raw) == _X25519:
        return Suite.X25519, x25519.X25519PublicKey.from_public_bytes(raw)
    if len(raw) == _MLKEM_PUBLIC + _X25519:
        return Suite.MLKEM768_X25519, hpke.MLKEM768X25519PublicKey(
            mlkem.MLKEM768PublicKey.from_public_bytes(raw[:_MLKEM_PUBLIC]),
            x25519.X25519PublicKey.from_public_bytes(raw[_MLKEM_PUBLIC:]),
        )
    raise ValueError(
        f"a sealing public key is {_X25519} (X25519) or {_MLKEM_PUBLIC + _X25519} "
        f"(ML-KEM-768 + X25519) bytes, not {len(raw)}"
    )


def load_private_key(raw: bytes) -> tuple[Suite, PrivateKey]:
    if len(raw) == _X25519:
        return Suite.X25519, x25519.X25519PrivateKey.from_private_bytes(raw)
    if len(raw) == _MLKEM_SEED + _X25519:
        return Suite.MLKEM768_X25519, hpke.MLKEM768X25519PrivateKey(
            mlkem.MLKEM768PrivateKey.from_seed_bytes(raw[:_MLKEM_SEED]),
            x25519.X25519PrivateKey.from_private_bytes(raw[_MLKEM_SEED:]),
        )
    raise ValueError(
        f"a sealing private key is {_X25519} (X25519) or {_MLKEM_SEED + _X25519} "
        f"(ML-KEM-768 seed + X25519) bytes, not {len(raw)}"
    )


def parse_key_list(
    value: str, setting: str, decode: Callable[[str, str], bytes] | None = None
) -> dict[str, bytes]:
    """`key_id:base64,key_id:base64` → {key_id: raw bytes}; errors name the entry, not the key.
    `decode(encoded, key_id)` replaces the plain base64 decoding (the AES keyring checks each
    key's length and entropy)."""
    keys: dict[str, bytes] = {}
    for position, raw_entry in enumerate(value.split(","), start=1):
        entry = raw_entry.strip()
        if not entry:
            continue
        key_id, sep, encoded = entry.partition(":")
        if not sep:
            raise KeyFormatError(f"{setting} entry {position} is not `key_id:base64key`")
        if not KEY_ID_PATTERN.match(key_id):
            raise KeyFormatError(
                f"{setting} entry {position}: key id must match {KEY_ID_PATTERN.pattern}"
            )
        if key_id in keys:
            raise KeyFormatError(f"{setting} names key id {key_id!r} twice")
        if decode is not None:
            keys[key_id] = decode(encoded, key_id)
            continue
        try:
            keys[key_id] = base64.b64decode(encoded.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise KeyFormatError(f"{setting} key {key_id!r} is not valid base64") from None
    if not keys:
        raise KeyFormatError(f"{setting} is empty; generate keys with `prequalctl keys generate`")
    return keys


def format_key_list(keys: Mapping[str, bytes]) -> str:
    return ",".join(f"{kid}:{base64.b64encode(raw).decode()}" for kid, raw in keys.items())


# --- sealing (public keys only) -----------------------------------------------------------


@dataclass(frozen=True)
class SealedApplication:
    """What the API stores and sends; the data key itself is already forgotten."""

    sealed_key: bytes
    key_id: str
    pan: bytes
    personal: bytes


class Sealer:
    """Seals with the active public key; holds nothing that can open."""

    def __init__(self, public_keys: Mapping[str, bytes], active_key_id: str) -> None:
        if active_key_id not in public_keys:
            raise KeyFormatError(f"active sealing key id {active_key_id!r} has no public key")
        try:
            self._suite, self._public = load_public_key(public_keys[active_key_id])
        except ValueError as exc:
            raise KeyFormatError(f"sealing public key {active_key_id!r}: {exc}") from None
        self.key_id = active_key_id
        self._kid = active_key_id.encode("ascii")

    @property
    def suite(self) -> Suite:
        return self._suite

    def seal_key(
        self, data_key: bytes, application_id: uuid.UUID, purpose: bytes = DATA_KEY_PURPOSE
    ) -> bytes:
        """`purpose` and `application_id` (any subject's id) are bound into the HPKE info."""
        header = bytes([SEALED_KEY_VERSION, self._suite, len(self._kid)]) + self._kid
        sealed = _SUITES[self._suite].encrypt(
            data_key, self._public, info=_info(header, application_id, purpose)
        )
        return header + sealed

    def seal(self, application_id: uuid.UUID, pan: str, personal: bytes) -> SealedApplication:
        """A fresh data key encrypts the PAN and the personal fields, then is sealed and dropped."""
        data_key = os.urandom(DATA_KEY_BYTES)
        aead = AESGCM(data_key)
        return SealedApplication(
            sealed_key=self.seal_key(data_key, application_id),
            key_id=self.key_id,
            pan=_encrypt_field(aead, b"pan", pan.encode("ascii"), application_id),
            personal=_encrypt_field(aead, b"personal", personal, application_id),
        )


def _info(header: bytes, application_id: uuid.UUID, purpose: bytes) -> bytes:
    return purpose + header + application_id.bytes


def _field_aad(label: bytes, application_id: uuid.UUID) -> bytes:
    return bytes([FIELD_VERSION]) + label + b"\x00" + application_id.bytes


def _encrypt_field(aead: AESGCM, label: bytes, plain: bytes, application_id: uuid.UUID) -> bytes:
    nonce = os.urandom(NONCE_BYTES)
    return (
        bytes([FIELD_VERSION])
        + nonce
        + aead.encrypt(nonce, plain, _field_aad(label, application_id))
    )


# --- opening (private keys) ---------------------------------------------------------------


def sealed_key_id(sealed_key: bytes) -> str:
    return _split_sealed(sealed_key)[2]


def _split_sealed(blob: bytes) -> tuple[bytes, Suite, str, bytes]:
    if len(blob) < 3 or blob[0] != SEALED_KEY_VERSION:
        raise MalformedSealError("not a sealed data key (unknown format version)")
    try:
        suite = Suite(blob[1])
    except ValueError:
        raise MalformedSealError(f"sealed data key names unknown suite {blob[1]}") from None
    header_len = 3 + blob[2]
    if len(blob) <= header_len:
        raise MalformedSealError("sealed data key is truncated")
    try:
        key_id = blob[3:header_len].decode("ascii")
    except UnicodeDecodeError:
        raise MalformedSealError("sealed data key has a corrupt key id") from None
    return blob[:header_len], suite, key_id, blob[header_len:]


class Opener:
    """Opens sealed data keys with the private keys it holds (credit service only)."""

    def __init__(self, private_keys: Mapping[str, bytes]) -> None:
        self._keys: dict[str, tuple[Suite, PrivateKey]] = {}
        for key_id, raw in private_keys.items():
            try:
                self._keys[key_id] = load_private_key(raw)
            except ValueError as exc:
                raise KeyFormatError(f"sealing private key {key_id!r}: {exc}") from None

    @property
    def key_ids(self) -> list[str]:
        return sorted(self._keys)

    def open_key(
        self, sealed_key: bytes, application_id: uuid.UUID, purpose: bytes = DATA_KEY_PURPOSE
    ) -> bytes:
        header, suite, key_id, sealed = _split_sealed(sealed_key)
        held = self._keys.get(key_id)
        if held is None:
            raise UnknownSealingKeyError(key_id, self.key_ids)
        key_suite, private = held
        if key_suite != suite:
            raise TamperedSealError(
                f"sealed data key names suite {suite.name}, but key {key_id!r} is {key_suite.name}"
            )
        try:
            data_key = _SUITES[suite].decrypt(
                sealed, private, info=_info(header, application_id, purpose)
            )
        except (InvalidTag, ValueError):
            raise TamperedSealError(
                f"sealed data key failed to open for application {application_id}: it was "
                "altered, or it belongs to another application"
            ) from None
        if len(data_key) != DATA_KEY_BYTES:
            raise MalformedSealError("sealed data key does not hold a 256-bit key")
        return data_key


def open_field(data_key: bytes, label: str, blob: bytes, application_id: uuid.UUID) -> bytes:
    """A field encrypted under the application's data key (format 0x02)."""
    if len(blob) < 1 + NONCE_BYTES + _TAG_BYTES or blob[0] != FIELD_VERSION:
        raise MalformedSealError(f"{label} is not a sealed field (unknown version or truncated)")
    nonce = blob[1 : 1 + NONCE_BYTES]
    try:
        return AESGCM(data_key).decrypt(
            nonce, blob[1 + NONCE_BYTES :], _field_aad(label.encode("ascii"), application_id)
        )
    except InvalidTag:
        raise TamperedSealError(
            f"{label} failed authentication for application {application_id}: it was altered, "
            "or it belongs to another application or field"
        ) from None


def field_version(blob: bytes) -> int:
    """0x01: a legacy keyring PAN ciphertext (`prequal.pan`); 0x02: under a data key."""
    if not blob:
        raise MalformedSealError("empty ciphertext")
    return blob[0]
