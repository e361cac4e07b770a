"""The cost of sealing (API) and opening (credit-service) one application, in process.

Sealing: a fresh data key, AES-256-GCM over the PAN and the personal fields, the data key
sealed with HPKE to the active public key. Opening: the HPKE open and the PAN's AES-GCM
decryption. Each suite is timed in CPU microseconds per application (process time, so other
load on the machine moves it less), against the legacy keyring encryption it replaces.
"""

from __future__ import annotations

import functools
import os
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from prequal import pan, sealing

ROUNDS = 2000
PAN = "ABCDE1234F"
PERSONAL = (
    b'{"first_name":"Synthetic","last_name":"Applicant","date_of_birth":"1990-04-12",'
    b'"email":"synthetic@example.com","phone_number":"9000000000"}'
)


def _cpu_us(work: Callable[[], object], rounds: int = ROUNDS) -> float:
    work()  # warm up
    started = time.process_time()
    for _ in range(rounds):
        work()
    return round((time.process_time() - started) / rounds * 1e6, 1)


def run(_workdir: Path) -> dict[str, float]:
    figures: dict[str, float] = {}
    app = uuid.uuid4()
    kems: tuple[sealing.KemName, ...] = ("mlkem768-x25519", "x25519")
    for kem in kems:
        pair = sealing.generate_key_pair(kem)
        sealer = sealing.Sealer({"v1": pair.public}, "v1")
        opener = sealing.Opener({"v1": pair.private})
        sealed = sealer.seal(app, PAN, PERSONAL)

        def open_pan(
            opener: sealing.Opener = opener, sealed: sealing.SealedApplication = sealed
        ) -> bytes:
            key = opener.open_key(sealed.sealed_key, app)
            return sealing.open_field(key, "pan", sealed.pan, app)

        name = kem.replace("-", "_")
        figures[f"sealing_{name}_seal_cpu_us"] = _cpu_us(
            functools.partial(sealer.seal, app, PAN, PERSONAL)
        )
        figures[f"sealing_{name}_open_cpu_us"] = _cpu_us(open_pan)
        figures[f"sealing_{name}_sealed_key_bytes"] = float(len(sealed.sealed_key))
    ring = pan.Keyring({"v1": os.urandom(32)}, "v1")
    blob = ring.encrypt(PAN, app)
    figures["sealing_legacy_keyring_encrypt_cpu_us"] = _cpu_us(lambda: ring.encrypt(PAN, app))
    figures["sealing_legacy_keyring_decrypt_cpu_us"] = _cpu_us(lambda: ring.decrypt(blob, app))
    return figures
