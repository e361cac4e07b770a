"""`prequalctl webhooks list|create|delete|replay|reseal`: webhook endpoints and dead deliveries.

For the platform's operators, on the database (`DATABASE_URL`): a client manages its own
endpoints through the API (`/webhooks/endpoints`, scope `webhooks:manage`). `create` prints the
signing secret once, as the API does; `list` never shows it. `replay` parks dead deliveries
again as new (attempts from zero, due now); the dispatcher picks them up on its next poll.

`create` and `reseal` seal with the webhook dispatcher's public key (`WEBHOOK_SEALING_PUBLIC_KEYS`,
`WEBHOOK_SEALING_ACTIVE_KEY_ID`, as the API does). `reseal` seals the plaintext secrets of
endpoints registered before migration 0011 and empties the plaintext column, one row per
transaction; given the dispatcher's private keys too (`WEBHOOK_SEALING_PRIVATE_KEYS`), it also
moves secrets sealed to an older pair of the dispatcher's to the active one
(prequalctl.webhook_reseal), so that pair can be retired after a `webhookKeyVersion` rotation.
It is safe to repeat: rows already under the active pair are skipped.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import uuid
from typing import Any

import psycopg
from pydantic import ValidationError

from prequal import egress, sealing, webhooks
from prequal.settings import (
    DatabaseSettings,
    WebhookEgressSettings,
    WebhookSealingPrivateKeySettings,
    WebhookSealingPublicKeySettings,
    load_settings,
)
from prequal.webhook_secrets import seal_secret
from prequalctl import webhook_reseal

# The API's rule (prequal_api.webhook_routes.URL_PATTERN), so both refuse the same URLs.
_URL = re.compile(r"^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[\x21-\x7e]*)?\Z")
# Plaintext secrets (rows from before migration 0011), each locked while it is sealed.
_PLAINTEXT_SQL = (
    "SELECT id, secret FROM webhook_endpoints WHERE secret IS NOT NULL "
    "ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED"
)
_RESEAL_SQL = "UPDATE webhook_endpoints SET sealed_secret = %s, secret = NULL WHERE id = %s"


class _SealingSettings(DatabaseSettings, WebhookSealingPublicKeySettings, WebhookEgressSettings):
    """What `create` and `reseal` read: the database and the dispatcher's public key."""


def register(commands: Any) -> None:
    group = commands.add_parser(
        "webhooks",
        help="Webhook endpoints of the clients, and replay of dead deliveries",
        description="Reads DATABASE_URL. Clients manage their own endpoints through the API.",
    )
    group.set_defaults(group_parser=group)
    verbs = group.add_subparsers(title="Available Commands", metavar="<command>")

    listing = verbs.add_parser("list", help="Endpoints (never their secrets)")
    listing.add_argument("--client", help="only this OAuth2 client's endpoints")
    listing.add_argument("-o", "--output", choices=("table", "json"), default="table")
    listing.set_defaults(handler=_list)

    create = verbs.add_parser("create", help="Register an endpoint; prints its secret once")
    create.add_argument("--client", required=True, help="the OAuth2 client that owns it")
    create.add_argument("--url", required=True, help="http(s) URL decisions are POSTed to")
    create.set_defaults(handler=_create)

    delete = verbs.add_parser("delete", help="Remove an endpoint and its deliveries")
    delete.add_argument("endpoint_id", type=uuid.UUID)
    delete.set_defaults(handler=_delete)

    replay = verbs.add_parser(
        "replay",
        help="Deliver dead deliveries again",
        description="Fix the receiver first, then replay: attempts start from zero.",
    )
    chosen = replay.add_mutually_exclusive_group(required=True)
    chosen.add_argument("--delivery", type=uuid.UUID, action="append", help="(repeatable)")
    chosen.add_argument("--endpoint", type=uuid.UUID, help="every dead delivery of an endpoint")
    chosen.add_argument("--all", action="store_true", help="every dead delivery")
    replay.set_defaults(handler=_replay)

    reseal = verbs.add_parser(
        "reseal",
        help="Seal plaintext signing secrets, and move old-pair ones to the active pair",
        description="Reads DATABASE_URL and WEBHOOK_SEALING_PUBLIC_KEYS / "
        "WEBHOOK_SEALING_ACTIVE_KEY_ID; with WEBHOOK_SEALING_PRIVATE_KEYS (the dispatcher's "
        "Secret) it also reseals secrets sealed to an older pair. Receivers keep their "
        "secrets: only the storage changes.",
    )
    reseal.add_argument(
        "--batch", type=int, default=100, help="endpoints per transaction (default: %(default)s)"
    )
    reseal.set_defaults(handler=_reseal)


def _connect() -> psycopg.Connection[Any]:
    url = load_settings(DatabaseSettings).database_url.get_secret_value()
    return psycopg.connect(url, connect_timeout=5, autocommit=True)


def _sealing_settings() -> _SealingSettings | None:
    try:
        return load_settings(_SealingSettings)
    except ValidationError as exc:
        missing = ", ".join(str(e["loc"][0]).upper() for e in exc.errors() if e["loc"])
        print(
            f"error: {missing or 'settings'} missing or invalid; the dispatcher's public key "
            "comes from `prequalctl keys generate --for api`",
            file=sys.stderr,
        )
        return None


def _list(args: argparse.Namespace) -> int:
    with _connect() as conn:
        if args.client:
            rows = conn.execute(webhooks.LIST_ENDPOINTS_SQL, (args.client,)).fetchall()
        else:
            rows = conn.execute(webhooks.LIST_ALL_ENDPOINTS_SQL).fetchall()
        dead = dict(
            conn.execute(
                "SELECT endpoint_id, count(*) FROM webhook_deliveries WHERE status = 'DEAD' "
                "GROUP BY endpoint_id"
            ).fetchall()
        )
    found = [
        {
            "id": str(endpoint_id),
            "client": client,
            "url": url,
            "enabled": enabled,
            "created_at": created.isoformat(),
            "dead_deliveries": int(dead.get(endpoint_id, 0)),
        }
        for endpoint_id, url, enabled, created, client in rows
    ]
    if args.output == "json":
        print(json.dumps(found, indent=2))
        return 0
    print(f"{'ID':36}  {'CLIENT':24}  {'ENABLED':7}  {'DEAD':>4}  URL")
    for e in found:
        enabled = "yes" if e["enabled"] else "no"
        print(f"{e['id']:36}  {e['client']:24}  {enabled:7}  {e['dead_deliveries']:>4}  {e['url']}")
    return 0


def _create(args: argparse.Namespace) -> int:
    url = args.url.strip()
    if len(url) > webhooks.URL_MAX_LENGTH or not _URL.match(url):
        print(
            "--url must be an http(s) URL with a plain host name (letters, digits, dots, "
            "hyphens), an optional port and path",
            file=sys.stderr,
        )
        return 2
    settings = _sealing_settings()
    if settings is None:
        return 2
    try:
        egress.resolve(url, settings.allowed_networks())
    except egress.RefusedDestinationError as exc:
        print(f"--url: {exc}", file=sys.stderr)
        return 2
    except egress.UnresolvedDestinationError:
        pass  # the dispatcher checks again at every delivery
    endpoint_id = uuid.uuid4()
    secret = webhooks.new_secret()
    sealed = seal_secret(settings.webhook_sealer(), secret, endpoint_id)
    with _connect() as conn:
        row = conn.execute(
            webhooks.INSERT_ENDPOINT_SQL, (endpoint_id, args.client, url, sealed)
        ).fetchone()
    assert row is not None
    print(f"endpoint {row[0]} registered for {args.client}: {url}")
    print(f"signing secret (shown once, keep it in the receiver's secret store): {secret}")
    return 0


def _delete(args: argparse.Namespace) -> int:
    with _connect() as conn:
        deleted = conn.execute(webhooks.DELETE_ANY_ENDPOINT_SQL, (args.endpoint_id,)).rowcount
    if not deleted:
        print(f"no endpoint {args.endpoint_id}; see `prequalctl webhooks list`", file=sys.stderr)
        return 1
    print(f"endpoint {args.endpoint_id} and its deliveries removed")
    return 0


def _replay(args: argparse.Namespace) -> int:
    with _connect() as conn:
        if args.all:
            replayed = conn.execute(webhooks.REPLAY_SQL).rowcount
        elif args.endpoint:
            replayed = conn.execute(
                webhooks.REPLAY_SQL + " AND endpoint_id = %s", (args.endpoint,)
            ).rowcount
        else:
            replayed = conn.execute(
                webhooks.REPLAY_SQL + " AND id = ANY(%s)", (args.delivery,)
            ).rowcount
    print(f"{replayed} dead deliveries parked again; the dispatcher delivers them next")
    return 0


def _dispatcher_opener() -> sealing.Opener | None:
    """The dispatcher's private keys when given (to move old-pair secrets), else None."""
    try:
        return load_settings(WebhookSealingPrivateKeySettings).webhook_opener()
    except ValidationError:
        return None


def _reseal(args: argparse.Namespace) -> int:
    settings = _sealing_settings()
    if settings is None:
        return 2
    sealer = settings.webhook_sealer()
    opener = _dispatcher_opener()
    resealed = 0
    with psycopg.connect(settings.database_url.get_secret_value(), connect_timeout=5) as conn:
        while True:
            with conn.transaction():
                row = conn.execute(_PLAINTEXT_SQL).fetchone()
                if row is None:
                    break
                endpoint_id, secret = row
                conn.execute(_RESEAL_SQL, (seal_secret(sealer, secret, endpoint_id), endpoint_id))
            resealed += 1
        print(
            f"{resealed} plaintext signing secrets sealed with key {sealer.key_id}; "
            "none is left in plaintext"
        )
        code = 0
        if opener is not None:
            try:
                moved, failed = webhook_reseal.move_to_active(conn, opener, sealer, args.batch)
            except sealing.KeyFormatError as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 2
            print(f"{moved} sealed signing secrets moved to key {sealer.key_id}")
            if failed:
                print(f"error: {failed} sealed secrets could not be opened", file=sys.stderr)
                code = 1
        for key_id, count in webhook_reseal.key_counts(conn).items():
            state = "active" if key_id == sealer.key_id else "in use: not retirable yet"
            print(f"{key_id}: {count} sealed signing secrets ({state})")
        if opener is None and set(webhook_reseal.key_counts(conn)) - {sealer.key_id}:
            print(
                "secrets sealed to older keys stay there: give WEBHOOK_SEALING_PRIVATE_KEYS "
                "(the dispatcher's Secret) to move them",
                file=sys.stderr,
            )
    return code
