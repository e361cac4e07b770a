"""`prequalctl audit`: who accessed an application, and what a client read.

    prequalctl audit --application 4f1c…          # every row about one application
    prequalctl audit --principal retail-web --since 24h -o json

Rows come from `audit_log` (append-only, migration 0008), oldest first; they name ids, never a
personal field. Reads DATABASE_URL or SECRETS_DIR/database_url: a role that may SELECT the
audit table (the migrations owner or the auditor role, docs/database-roles.md).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from prequal.settings import DatabaseSettings, load_settings

COLUMNS = (
    "at",
    "application_id",
    "action",
    "outcome",
    "principal",
    "actor",
    "purpose",
    "request_id",
    "event_id",
    "key_id",
)
_DURATION = re.compile(r"^(\d+)([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "audit",
        help="Who accessed an application; what a client read",
        description="Rows of the audit trail (append-only), oldest first. Name an application, "
        "a principal (an OAuth2 client id or a service), or both. Reads DATABASE_URL or "
        "SECRETS_DIR/database_url.",
    )
    parser.add_argument("--application", type=uuid.UUID, help="an application id")
    parser.add_argument("--principal", help="an OAuth2 client id, or a service's name")
    parser.add_argument(
        "--since",
        type=since,
        help="only rows at or after this time: an ISO 8601 time, or a duration ago (30m, 24h, 7d)",
    )
    parser.add_argument("--limit", type=int, default=1000, help="at most (default %(default)s)")
    parser.add_argument("-o", "--output", choices=("table", "json"), default="table")
    parser.set_defaults(handler=_audit, group_parser=parser)


def since(text: str) -> datetime:
    """`24h` ago, or an ISO 8601 time (UTC unless it names its offset)."""
    matched = _DURATION.match(text.strip())
    if matched:
        amount, unit = matched.groups()
        return datetime.now(UTC) - timedelta(**{_UNITS[unit]: int(amount)})
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is neither a duration (30m, 24h, 7d) nor an ISO 8601 time"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def query(
    conn: psycopg.Connection[Any],
    *,
    application: uuid.UUID | None,
    principal: str | None,
    since_time: datetime | None,
    limit: int,
) -> list[dict[str, Any]]:
    """The rows matching every filter given, oldest first."""
    conditions: list[str] = []
    params: list[object] = []
    for column, value in (("application_id", application), ("principal", principal)):
        if value is not None:
            conditions.append(f"{column} = %s")
            params.append(value)
    if since_time is not None:
        conditions.append("at >= %s")
        params.append(since_time)
    where = " AND ".join(conditions) or "true"
    sql = f"SELECT {', '.join(COLUMNS)} FROM audit_log WHERE {where} ORDER BY at, id LIMIT %s"  # noqa: S608 - column names are constants; values are parameters
    with conn.cursor() as cur:
        cur.execute(sql.encode(), [*params, limit])
        return [dict(zip(COLUMNS, row, strict=True)) for row in cur.fetchall()]


def _jsonable(row: dict[str, Any]) -> dict[str, Any]:
    return {
        k: v.isoformat() if isinstance(v, datetime) else str(v) if isinstance(v, uuid.UUID) else v
        for k, v in row.items()
    }


def _cell(value: object) -> str:
    if value is None:
        return "<none>"
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return str(value)


def table(rows: list[dict[str, Any]]) -> str:
    """kubectl-style columns: upper-case headers, left-aligned, two spaces apart."""
    shown = ("at", "application_id", "action", "outcome", "principal", "purpose", "request")
    cells = [
        {
            **{c: _cell(row.get(c)) for c in shown if c != "request"},
            "request": _cell(row["request_id"] or row["event_id"]),
        }
        for row in rows
    ]
    widths = {c: max(len(c), *(len(r[c]) for r in cells)) for c in shown}
    header = "  ".join(c.upper().ljust(widths[c]) for c in shown)
    body = ["  ".join(r[c].ljust(widths[c]) for c in shown).rstrip() for r in cells]
    return "\n".join([header.rstrip(), *body])


def _audit(args: argparse.Namespace) -> int:
    if args.application is None and args.principal is None:
        print(
            "error: name --application ID, --principal NAME, or both "
            "(see `prequalctl audit --help`)",
            file=sys.stderr,
        )
        return 2
    url = load_settings(DatabaseSettings).database_url.get_secret_value()
    try:
        with psycopg.connect(url, connect_timeout=10) as conn:
            rows = query(
                conn,
                application=args.application,
                principal=args.principal,
                since_time=args.since,
                limit=args.limit,
            )
    except psycopg.OperationalError as exc:
        print(f"error: cannot reach the database: {exc}", file=sys.stderr)
        return 1
    except psycopg.errors.InsufficientPrivilege as exc:
        print(
            f"error: {exc}; use a role that may read audit_log (docs/database-roles.md)",
            file=sys.stderr,
        )
        return 1
    if args.output == "json":
        print(json.dumps([_jsonable(r) for r in rows], indent=2))
    elif not rows:
        print("No audit rows found.")
    else:
        print(table(rows))
    return 0
