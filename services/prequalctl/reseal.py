"""`prequalctl keys reseal`: move sealed data keys to the active key pair, so old pairs retire.

Every application's data key is stored sealed to the credit service's public key of its day
(`application_data_keys.key_id`). After a rotation (`keyVersion`) old rows keep opening, but
the old private key can never be dropped while a row names it. Reseal opens each data key
still under an old key id with the credit service's private keys (`SEALING_PRIVATE_KEYS`)
and seals it again to the active public key (`SEALING_PUBLIC_KEYS`, `SEALING_ACTIVE_KEY_ID`),
bound to the same application id; the ciphertexts under the data key do not change. The key
Secret that credit-service mounts holds all three, so that Secret is all it needs besides
`DATABASE_URL`.

Batches are transactions: rows taken `FOR UPDATE SKIP LOCKED` in application id order, each
new seal checked by opening it, and one `reseal` audit row per moved application (its id, the
principal, purpose `key-rotation`, the new key id, the run's request id, the batch and the old
key id in `detail`) written by one multi-row INSERT in the same transaction: "who touched
application X" has an answer for reseals too, at the cost of one statement per batch.
Progress is the rows' state: a run killed mid-batch changed nothing in that batch, and the
next run resumes. Concurrency: credit-service reads either seal (it holds both private keys);
an erasure deletes the row in its own statement, so an erased application has no row to move,
a row being erased is skipped (locked), and an erasure that comes after a reseal waits for its
batch and deletes the new seal. `--status` counts rows per key id and names retirable keys.
"""

from __future__ import annotations

import argparse
import sys
import uuid
from typing import Any

import psycopg

from prequal import audit, sealing
from prequal.settings import (
    DatabaseSettings,
    SealingPrivateKeySettings,
    SealingPublicKeySettings,
    load_settings,
)

ACTOR = "prequalctl"

BATCH_SQL = """
SELECT application_id, sealed_key FROM application_data_keys
WHERE key_id <> %(active)s AND application_id > %(after)s
ORDER BY application_id LIMIT %(batch)s
FOR UPDATE SKIP LOCKED
"""
UPDATE_SQL = (
    "UPDATE application_data_keys SET key_id = %s, sealed_key = %s WHERE application_id = %s"
)
COUNTS_SQL = "SELECT key_id, count(*) FROM application_data_keys GROUP BY 1 ORDER BY 1"


class ResealSettings(DatabaseSettings, SealingPublicKeySettings, SealingPrivateKeySettings):
    """The credit service's key Secret (both halves, the active id) and the database."""


class Resealer:
    """Opens with every private key, seals to the active public key, checks the new seal."""

    def __init__(self, opener: sealing.Opener, sealer: sealing.Sealer) -> None:
        if sealer.key_id not in opener.key_ids:
            raise sealing.KeyFormatError(
                f"the active key {sealer.key_id!r} has no private key here: credit-service "
                "could not be shown to open what this seals"
            )
        self.opener = opener
        self.sealer = sealer

    @property
    def key_id(self) -> str:
        return self.sealer.key_id

    def reseal(self, sealed_key: bytes, application_id: uuid.UUID) -> bytes:
        data_key = self.opener.open_key(sealed_key, application_id)
        resealed = self.sealer.seal_key(data_key, application_id)
        if self.opener.open_key(resealed, application_id) != data_key:
            raise sealing.TamperedSealError(f"the new seal of {application_id} did not round-trip")
        return resealed


def register_verb(verbs: Any) -> None:
    parser = verbs.add_parser(
        "reseal",
        help="Seal every data key under an old key pair to the active one (needs private keys)",
        description="Opens each sealed data key whose key id is not SEALING_ACTIVE_KEY_ID with "
        "SEALING_PRIVATE_KEYS and seals it to the active public key, in audited, resumable "
        "batches, so old key pairs can be retired. Needs DATABASE_URL and the credit "
        "service's key Secret (sealing_private_keys, sealing_public_keys, "
        "sealing_active_key_id).",
    )
    parser.add_argument("--status", action="store_true", help="count rows per key, move none")
    parser.add_argument(
        "--batch", type=int, default=200, help="data keys per transaction (default: %(default)s)"
    )
    parser.add_argument(
        "--principal",
        default=ACTOR,
        help="who runs it, for the audit rows (default: %(default)s)",
    )
    parser.add_argument(
        "--request-id",
        help="names this run in the audit rows, e.g. a change ticket (default: reseal-<uuid>)",
    )
    parser.set_defaults(handler=_reseal)


def run_id() -> str:
    return f"reseal-{uuid.uuid4()}"


def reseal_batch(
    conn: psycopg.Connection[Any],
    resealer: Resealer,
    after: uuid.UUID,
    batch: int,
    principal: str = ACTOR,
    *,
    request_id: str | None = None,
    number: int = 1,
) -> tuple[int, int, uuid.UUID | None]:
    """One transaction, the `number`th of run `request_id`: (moved, failed, last id seen, or
    None when nothing was left), with an audit row per moved application."""
    moved: list[tuple[uuid.UUID, str]] = []
    failed = 0
    last: uuid.UUID | None = None
    with conn.transaction():
        rows = conn.execute(BATCH_SQL, {"active": resealer.key_id, "after": after, "batch": batch})
        for application_id, blob in rows.fetchall():
            last = application_id
            sealed_key = bytes(blob)
            try:
                old = sealing.sealed_key_id(sealed_key)
                resealed = resealer.reseal(sealed_key, application_id)
            except sealing.OpenError as exc:
                # Named by id and reason only; the row stays as it was for a later run.
                print(f"cannot reseal application {application_id}: {exc}", file=sys.stderr)
                failed += 1
                continue
            conn.execute(UPDATE_SQL, (resealer.key_id, resealed, application_id))
            moved.append((application_id, old))
        if moved:
            entries = [
                audit.AuditEntry(
                    application_id,
                    "reseal",
                    ACTOR,
                    resealer.key_id,
                    detail=f"batch {number}: data key moved from {old} to {resealer.key_id}",
                    principal=principal,
                    request_id=request_id,
                    purpose=audit.PURPOSE_KEY_ROTATION,
                )
                for application_id, old in moved
            ]
            conn.execute(audit.INSERT_MANY_SQL, audit.many_params(entries))
    return len(moved), failed, last


def reseal(
    url: str,
    resealer: Resealer,
    batch: int,
    principal: str = ACTOR,
    request_id: str | None = None,
) -> tuple[int, int]:
    """Every data key under an old key id, batch by batch; (moved, failed)."""
    request_id = request_id or run_id()
    moved = failed = 0
    after = uuid.UUID(int=0)
    with psycopg.connect(url, autocommit=True) as conn:
        (remaining,) = conn.execute(
            "SELECT count(*) FROM application_data_keys WHERE key_id <> %s", (resealer.key_id,)
        ).fetchone() or (0,)
        print(
            f"{remaining} data keys to reseal to key {resealer.key_id} (request id {request_id})",
            flush=True,
        )
        number = 0
        while True:
            number += 1
            done, bad, last = reseal_batch(
                conn, resealer, after, batch, principal, request_id=request_id, number=number
            )
            if last is None:
                break
            moved, failed, after = moved + done, failed + bad, last
            print(f"resealed {moved} of {remaining} ({failed} failed)", flush=True)
    return moved, failed


def key_status(url: str) -> dict[str, int]:
    """Sealed data keys per key id."""
    with psycopg.connect(url, autocommit=True) as conn:
        return {str(k): int(n) for k, n in conn.execute(COUNTS_SQL).fetchall()}


def status_lines(counts: dict[str, int], held: list[str], active: str) -> list[str]:
    """One line per key id, held or named by a row: active, in use, or retirable."""
    lines = []
    for key_id in sorted({*held, *counts}):
        rows = counts.get(key_id, 0)
        if key_id == active:
            state = "active"
        elif key_id not in held:
            state = "in use, and no private key here opens it"
        elif rows:
            state = "in use: not retirable yet"
        else:
            state = "retirable"
        lines.append(f"{key_id}: {rows} sealed data keys ({state})")
    return lines


def _reseal(args: argparse.Namespace) -> int:
    settings = load_settings(ResealSettings)
    url = settings.database_url.get_secret_value()
    try:
        resealer = Resealer(settings.opener(), settings.sealer())
    except sealing.KeyFormatError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    code = 0
    if not args.status:
        moved, failed = reseal(url, resealer, args.batch, args.principal, args.request_id)
        print(f"done: resealed {moved} data keys to key {resealer.key_id}")
        if failed:
            print(f"error: {failed} data keys could not be opened", file=sys.stderr)
            code = 1
    for line in status_lines(key_status(url), resealer.opener.key_ids, resealer.key_id):
        print(line)
    return code
