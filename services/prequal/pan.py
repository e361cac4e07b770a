"""PAN protection: AES-256-GCM under a keyring, an HMAC-SHA256 blind index, and masking.

A ciphertext is self-describing so keys can rotate without touching old rows:

    0x01 | len(key_id) | key_id (ASCII) | nonce (12 random bytes) | AES-GCM ciphertext + tag

The associated data binds it to its application (and to its header), so a ciphertext copied
onto another application, or re-labelled with another key id, fails to decrypt. The blind index
is keyed: an unkeyed hash of a PAN (~3x10^12 values) would fall to brute force in hours.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import uuid
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

PAN_PATTERN = re.compile(r"^[A-Z]{5}[0-9]{4}[A-Z]$")
FORMAT_VERSION = 1
NONCE_BYTES = 12
_TAG_BYTES = 16


class PanError(Exception):
    """Base of every PAN protection failure."""


class InvalidPanError(PanError, ValueError):
    """The text is not a PAN (`AAAAA9999A`)."""


class PanDecryptionError(PanError):
    """A ciphertext could not be decrypted; the message says why, never the PAN."""


class MalformedCiphertextError(PanDecryptionError):
    """Not a ciphertext this module wrote (truncated, wrong format version)."""


class UnknownKeyIdError(PanDecryptionError):
    """The ciphertext names a key id the keyring does not hold."""


class TamperedCiphertextError(PanDecryptionError):
    """Authentication failed: the bytes were changed or belong to another application."""


def normalize_pan(text: str) -> str:
    """Upper-cased and trimmed; raises InvalidPanError (without echoing the input) otherwise."""
    pan = text.strip().upper()
    if not PAN_PATTERN.match(pan):
        raise InvalidPanError("PAN must be five letters, four digits and a letter (AAAAA9999A)")
    return pan


def mask_pan(pan: str) -> str:
    """Only the last four characters stay: `XXXXXX234F`.

    Not five: for individuals the 4th letter is `P` and the 5th the surname's initial, so a
    five-character mask plus a duplicate answer left ~17,600 candidates to try.
    """
    return "X" * (len(pan) - 4) + pan[-4:]


@dataclass(frozen=True)
class Keyring:
    """Several keys by id; new ciphertexts use the active one, all of them decrypt."""

    keys: dict[str, bytes]
    active_key_id: str

    def __post_init__(self) -> None:
        if self.active_key_id not in self.keys:
            raise ValueError(f"active key id {self.active_key_id!r} is not in the keyring")
        for key_id, key in self.keys.items():
            if len(key) != 32:
                raise ValueError(f"key {key_id!r} is not 32 bytes (AES-256)")
            if not 0 < len(key_id.encode("ascii")) < 256:
                raise ValueError("key ids are 1..255 ASCII characters")

    def encrypt(self, pan: str, application_id: uuid.UUID) -> bytes:
        key_id = self.active_key_id.encode("ascii")
        header = bytes([FORMAT_VERSION, len(key_id)]) + key_id
        nonce = os.urandom(NONCE_BYTES)
        sealed = AESGCM(self.keys[self.active_key_id]).encrypt(
            nonce, pan.encode("ascii"), _associated_data(header, application_id)
        )
        return header + nonce + sealed

    def decrypt(self, blob: bytes, application_id: uuid.UUID) -> str:
        header, key_id, nonce, sealed = _split(blob)
        key = self.keys.get(key_id)
        if key is None:
            raise UnknownKeyIdError(
                f"ciphertext uses key id {key_id!r}, which is not in the keyring "
                f"(known: {sorted(self.keys)})"
            )
        try:
            plain = AESGCM(key).decrypt(nonce, sealed, _associated_data(header, application_id))
        except InvalidTag:
            raise TamperedCiphertextError(
                f"ciphertext failed authentication for application {application_id}: it was "
                "altered, or it belongs to another application"
            ) from None
        return plain.decode("ascii")

    @staticmethod
    def key_id_of(blob: bytes) -> str:
        return _split(blob)[1]


def _associated_data(header: bytes, application_id: uuid.UUID) -> bytes:
    return header + application_id.bytes


def _split(blob: bytes) -> tuple[bytes, str, bytes, bytes]:
    if len(blob) < 2 or blob[0] != FORMAT_VERSION:
        raise MalformedCiphertextError("not a PAN ciphertext (unknown format version)")
    id_len = blob[1]
    header_len = 2 + id_len
    if len(blob) < header_len + NONCE_BYTES + _TAG_BYTES:
        raise MalformedCiphertextError("PAN ciphertext is truncated")
    header = blob[:header_len]
    try:
        key_id = blob[2:header_len].decode("ascii")
    except UnicodeDecodeError:
        raise MalformedCiphertextError("PAN ciphertext has a corrupt key id") from None
    nonce = blob[header_len : header_len + NONCE_BYTES]
    return header, key_id, nonce, blob[header_len + NONCE_BYTES :]


def blind_index(pan: str, key: bytes) -> bytes:
    """HMAC-SHA256 of the normalized PAN: equal PANs meet in an index, the PAN stays unknown."""
    return hmac.new(key, b"pan:" + pan.encode("ascii"), hashlib.sha256).digest()


def to_transport(blob: bytes) -> str:
    """Base64 text of a ciphertext, as it travels in JSON event payloads."""
    return base64.b64encode(blob).decode("ascii")


def from_transport(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except ValueError:
        raise MalformedCiphertextError("PAN ciphertext is not valid base64") from None
