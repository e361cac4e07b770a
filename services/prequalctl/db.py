"""`prequalctl db upgrade|check`: apply the packaged migrations, or verify they are applied."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from prequal.db import migrate
from prequal.settings import DatabaseSettings, load_settings


def register(commands: Any) -> None:
    group = commands.add_parser(
        "db",
        help="Manage the database schema",
        description="Manage the database schema (reads DATABASE_URL or SECRETS_DIR/database_url).",
    )
    group.set_defaults(group_parser=group)
    verbs = group.add_subparsers(title="Available Commands", metavar="<command>")

    upgrade = verbs.add_parser(
        "upgrade",
        help="Apply every migration up to the latest (safe to repeat)",
        description="Apply every migration up to the latest. Safe to repeat and to run from "
        "several processes at once (an advisory lock serializes them).",
    )
    upgrade.add_argument(
        "--revision", default="head", help="target revision (default: %(default)s)"
    )
    upgrade.set_defaults(handler=_upgrade)

    check = verbs.add_parser(
        "check", help="Exit 0 if the schema is at the latest migration, 1 otherwise"
    )
    check.set_defaults(handler=_check)


def _database_url() -> str:
    settings = load_settings(DatabaseSettings)
    return settings.database_url.get_secret_value()


def _upgrade(args: argparse.Namespace) -> int:
    migrate.upgrade(_database_url(), args.revision)
    print(f"database schema is at revision {args.revision}")
    return 0


def _check(_args: argparse.Namespace) -> int:
    try:
        migrate.check_at_head(_database_url())
    except migrate.SchemaNotReadyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"database schema is at the latest revision ({migrate.head_revision()})")
    return 0
