"""`prequalctl reindex`: move every stored PAN index to the active index key, so old keys retire.

A blind index cannot be re-keyed without the PAN, and the API cannot read one back: it holds
only public sealing keys. So reindex runs with what credit-service holds, the sealing private
keys (`SEALING_PRIVATE_KEYS`, and `PAN_ENCRYPTION_KEYS` for rows from before migration 0007),
plus the index keys (`PAN_INDEX_KEYS`, `PAN_INDEX_ACTIVE_KEY_ID`, `PAN_BLIND_INDEX_KEY` as
`v0`) and `DATABASE_URL`. For each application whose `pan_index_key_id` is not the active one
it opens the data key, decrypts the PAN in memory, writes the PAN's index under the active key
with its key id, and appends a `decrypt` audit row (purpose `reindex`), in one transaction per
batch. Progress is the rows' state, so an interrupted run resumes where it stopped; rows are
taken `FOR UPDATE SKIP LOCKED` in id order, so two runs share the work instead of colliding.

Submissions during a reindex are safe: a row moves from one live key's digest to another's,
and the 24-hour rule checks both. Idempotency keys cannot be moved (only their HMAC is stored,
never the key): rows under an old key simply expire with the retention. `--status` counts
rows per key id and says when an old key can be retired.
"""

from __future__ import annotations

import argparse
import sys
import uuid
from typing import Any

import psycopg

from prequal import audit, blind_index, pan, sealing
from prequal.settings import (
    DatabaseSettings,
    IndexKeySettings,
    SealingPrivateKeySettings,
    load_settings,
)

ACTOR = "prequalctl"

BATCH_SQL = """
SELECT a.id, a.pan_ciphertext, k.sealed_key FROM applications a
LEFT JOIN application_data_keys k ON k.application_id = a.id
WHERE a.pan_index_key_id IS NOT NULL AND a.pan_index_key_id <> %(active)s
  AND a.pan_ciphertext IS NOT NULL AND a.id > %(after)s
ORDER BY a.id LIMIT %(batch)s
FOR UPDATE OF a SKIP LOCKED
"""

UPDATE_SQL = "UPDATE applications SET pan_blind_index = %s, pan_index_key_id = %s WHERE id = %s"

APPLICATION_COUNTS_SQL = (
    "SELECT pan_index_key_id, count(*) FROM applications "
    "WHERE pan_index_key_id IS NOT NULL GROUP BY 1 ORDER BY 1"
)
IDEMPOTENCY_COUNTS_SQL = (
    "SELECT index_key_id, count(*) FROM idempotency_keys "
    "WHERE created_at > now() - make_interval(secs => %s) GROUP BY 1 ORDER BY 1"
)


class ReindexSettings(DatabaseSettings, IndexKeySettings, SealingPrivateKeySettings):
    # Idempotency keys under an old index key stop mattering after the API's retention.
    idempotency_key_retention_hours: float = 24.0


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "reindex",
        help="Recompute PAN blind indexes under the active index key (needs the private keys)",
        description="Moves every application's PAN index to PAN_INDEX_ACTIVE_KEY_ID in "
        "batches, resumably, so old index keys can be retired. Needs DATABASE_URL, the index "
        "keys and the sealing private keys (it decrypts each PAN in memory, audited).",
    )
    parser.add_argument("--status", action="store_true", help="count rows per key, move none")
    parser.add_argument(
        "--batch", type=int, default=200, help="applications per transaction (default: %(default)s)"
    )
    parser.set_defaults(handler=_reindex, group_parser=parser)


class PanReader:
    """Opens an application's PAN with the sealing private keys (or the legacy keyring)."""

    def __init__(self, settings: SealingPrivateKeySettings) -> None:
        self.opener = settings.opener()
        legacy = settings.legacy_keyring()
        self.legacy = pan.Keyring(legacy, next(iter(legacy))) if legacy else None

    def read(
        self, application_id: uuid.UUID, blob: bytes, sealed_key: bytes | None
    ) -> tuple[str, str]:
        """(PAN, the key id that opened it)."""
        if sealing.field_version(blob) == sealing.LEGACY_PAN_VERSION:
            if self.legacy is None:
                raise sealing.OpenError("legacy PAN ciphertext and no PAN_ENCRYPTION_KEYS")
            return self.legacy.decrypt(blob, application_id), pan.Keyring.key_id_of(blob)
        if sealed_key is None:
            raise sealing.OpenError("no sealed data key")
        data_key = self.opener.open_key(sealed_key, application_id)
        opened = sealing.open_field(data_key, "pan", blob, application_id)
        return opened.decode("ascii"), sealing.sealed_key_id(sealed_key)


def reindex_batch(
    conn: psycopg.Connection[Any],
    ring: blind_index.IndexKeyRing,
    reader: PanReader,
    after: uuid.UUID,
    batch: int,
) -> tuple[int, int, uuid.UUID | None]:
    """One transaction: (moved, failed, last id seen, or None when nothing was left)."""
    active = ring.active_key_id
    moved = failed = 0
    last: uuid.UUID | None = None
    with conn.transaction():
        rows = conn.execute(BATCH_SQL, {"active": active, "after": after, "batch": batch})
        entries: list[audit.AuditEntry] = []
        for application_id, blob, sealed_key in rows.fetchall():
            last = application_id
            try:
                number, key_id = reader.read(
                    application_id, bytes(blob), None if sealed_key is None else bytes(sealed_key)
                )
            except (sealing.OpenError, pan.PanDecryptionError) as exc:
                # Named by id and reason only; the row stays under its old key for a later run.
                print(f"cannot open application {application_id}: {exc}", file=sys.stderr)
                failed += 1
                continue
            conn.execute(UPDATE_SQL, (ring.pan_index(number, active), active, application_id))
            entries.append(
                audit.AuditEntry(
                    application_id,
                    "decrypt",
                    ACTOR,
                    key_id,
                    principal=ACTOR,
                    purpose=audit.PURPOSE_REINDEX,
                )
            )
            moved += 1
        if entries:
            with conn.cursor() as cur:
                cur.executemany(audit.INSERT_SQL, [e.params() for e in entries])
    return moved, failed, last


def reindex(
    url: str, ring: blind_index.IndexKeyRing, reader: PanReader, batch: int
) -> tuple[int, int]:
    """Every application under an old key, batch by batch; (moved, failed)."""
    moved = failed = 0
    after = uuid.UUID(int=0)
    with psycopg.connect(url, autocommit=True) as conn:
        (remaining,) = conn.execute(
            "SELECT count(*) FROM applications WHERE pan_index_key_id <> %s",
            (ring.active_key_id,),
        ).fetchone() or (0,)
        print(f"{remaining} applications to move to index key {ring.active_key_id}", flush=True)
        while True:
            done, bad, last = reindex_batch(conn, ring, reader, after, batch)
            if last is None:
                break
            moved, failed, after = moved + done, failed + bad, last
            print(f"moved {moved} of {remaining} ({failed} failed)", flush=True)
    return moved, failed


def key_status(
    url: str, ring: blind_index.IndexKeyRing, retention_seconds: float
) -> dict[str, tuple[int, int]]:
    """Per key id: (applications, idempotency keys within the retention)."""
    with psycopg.connect(url, autocommit=True) as conn:
        apps: dict[str, int] = dict(conn.execute(APPLICATION_COUNTS_SQL).fetchall())
        keys: dict[str, int] = dict(
            conn.execute(IDEMPOTENCY_COUNTS_SQL, (retention_seconds,)).fetchall()
        )
    ids = sorted({*ring.key_ids, *apps, *keys})
    return {k: (int(apps.get(k, 0)), int(keys.get(k, 0))) for k in ids}


def _reindex(args: argparse.Namespace) -> int:
    settings = load_settings(ReindexSettings)
    url = settings.database_url.get_secret_value()
    ring = settings.index_key_ring()
    retention = settings.idempotency_key_retention_hours * 3600
    if not args.status:
        moved, failed = reindex(url, ring, PanReader(settings), args.batch)
        print(f"done: moved {moved} applications to index key {ring.active_key_id}")
        if failed:
            print(f"error: {failed} applications could not be opened", file=sys.stderr)
            return 1
    for key_id, (apps, idem) in key_status(url, ring, retention).items():
        if key_id == ring.active_key_id:
            state = "active"
        elif apps or idem:
            state = "in use: not retirable yet"
        else:
            state = "retirable"
        print(f"{key_id}: {apps} applications, {idem} live idempotency keys ({state})")
    return 0
