"""Moving sealed webhook signing secrets to the dispatcher's active key pair, so old pairs retire.

After a rotation of the dispatcher's pair (`webhookKeyVersion`), secrets sealed to the old pair
keep opening (the dispatcher holds every pair), but the old private key can only be dropped
once no endpoint's `sealed_secret` names it. `prequalctl webhooks reseal`, given the
dispatcher's private keys (`WEBHOOK_SEALING_PRIVATE_KEYS`), opens each such secret and seals
it again to the active public key, bound to the same endpoint; receivers keep their secret.

The key id is read from the sealed bytes' header (`prequal.sealing`: version, suite, id
length, id), so no column or migration is needed: byte 2 is the id's length, the id follows.
Rows are taken `FOR UPDATE SKIP LOCKED` in id order, a batch per transaction; a deliverer
claiming a delivery reads the endpoint without locking it and opens whichever seal it sees.
Signing secrets are not personal data, so no audit row is written (docs/webhooks.md).
"""

from __future__ import annotations

import sys
import uuid
from typing import Any

import psycopg

from prequal import sealing
from prequal.webhook_secrets import PURPOSE

# The key id in a sealed secret's header: byte 2 is its length, the id starts at byte 3.
BATCH_SQL = """
SELECT id, sealed_secret FROM webhook_endpoints
WHERE sealed_secret IS NOT NULL
  AND convert_from(substring(sealed_secret FROM 4 FOR get_byte(sealed_secret, 2)), 'UTF8')
      <> %(active)s
  AND id > %(after)s
ORDER BY id LIMIT %(batch)s
FOR UPDATE SKIP LOCKED
"""
UPDATE_SQL = "UPDATE webhook_endpoints SET sealed_secret = %s WHERE id = %s"
COUNTS_SQL = """
SELECT convert_from(substring(sealed_secret FROM 4 FOR get_byte(sealed_secret, 2)), 'UTF8'),
       count(*)
FROM webhook_endpoints WHERE sealed_secret IS NOT NULL GROUP BY 1 ORDER BY 1
"""


def check_keys(opener: sealing.Opener, sealer: sealing.Sealer) -> None:
    """The active public key must have its private key here: what is sealed must open."""
    if sealer.key_id not in opener.key_ids:
        raise sealing.KeyFormatError(
            f"the active webhook key {sealer.key_id!r} is not in WEBHOOK_SEALING_PRIVATE_KEYS: "
            "distribute it to the dispatcher first"
        )


def move_batch(
    conn: psycopg.Connection[Any],
    opener: sealing.Opener,
    sealer: sealing.Sealer,
    after: uuid.UUID,
    batch: int,
) -> tuple[int, int, uuid.UUID | None]:
    """One transaction: (moved, failed, last id seen, or None when nothing was left)."""
    moved = failed = 0
    last: uuid.UUID | None = None
    with conn.transaction():
        rows = conn.execute(BATCH_SQL, {"active": sealer.key_id, "after": after, "batch": batch})
        for endpoint_id, blob in rows.fetchall():
            last = endpoint_id
            try:
                raw = opener.open_key(bytes(blob), endpoint_id, PURPOSE)
                resealed = sealer.seal_key(raw, endpoint_id, PURPOSE)
                if opener.open_key(resealed, endpoint_id, PURPOSE) != raw:
                    raise sealing.TamperedSealError("the new seal did not round-trip")
            except sealing.OpenError as exc:
                print(f"cannot reseal endpoint {endpoint_id}: {exc}", file=sys.stderr)
                failed += 1
                continue
            conn.execute(UPDATE_SQL, (resealed, endpoint_id))
            moved += 1
    return moved, failed, last


def move_to_active(
    conn: psycopg.Connection[Any], opener: sealing.Opener, sealer: sealing.Sealer, batch: int
) -> tuple[int, int]:
    """Every secret sealed to another pair than the active one; (moved, failed)."""
    check_keys(opener, sealer)
    moved = failed = 0
    after = uuid.UUID(int=0)
    while True:
        done, bad, last = move_batch(conn, opener, sealer, after, batch)
        if last is None:
            return moved, failed
        moved, failed, after = moved + done, failed + bad, last


def key_counts(conn: psycopg.Connection[Any]) -> dict[str, int]:
    """Sealed signing secrets per key id."""
    return {str(k): int(n) for k, n in conn.execute(COUNTS_SQL).fetchall()}
