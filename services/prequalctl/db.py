"""`prequalctl db upgrade|check|roles`: apply the migrations, verify them, set up the roles."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

import psycopg

from prequal.db import migrate, roles
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

    roles_parser = verbs.add_parser(
        "roles",
        help="Create the per-service roles if missing and grant each what it needs (repeatable)",
        description="Creates the login roles <prefix>api, publisher, credit, decision and "
        "auditor when missing, sets the passwords found in PREQUAL_DB_PASSWORD_<SERVICE> "
        "(e.g. PREQUAL_DB_PASSWORD_API), and grants each only what it needs on this database. "
        "Run it after `db upgrade`, as a role with CREATEROLE that owns the tables "
        "(docs/database-roles.md). Safe to repeat.",
    )
    roles_parser.add_argument(
        "--prefix", default=roles.DEFAULT_PREFIX, help="role name prefix (default %(default)s)"
    )
    roles_parser.set_defaults(handler=_roles)


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


def _roles(args: argparse.Namespace) -> int:
    passwords = {
        service: os.environ[f"PREQUAL_DB_PASSWORD_{service.upper()}"]
        for service in roles.SERVICES
        if os.environ.get(f"PREQUAL_DB_PASSWORD_{service.upper()}")
    }
    try:
        with psycopg.connect(_database_url(), connect_timeout=10, autocommit=True) as conn:
            created = roles.ensure_roles(conn, passwords, roles.RoleNames(args.prefix))
    except psycopg.errors.InsufficientPrivilege as exc:
        print(
            f"error: {exc}; run this as a role with CREATEROLE that owns the tables "
            "(the migrations owner or a superuser)",
            file=sys.stderr,
        )
        return 1
    names = roles.RoleNames(args.prefix)
    print(f"created roles: {', '.join(created) or 'none (all existed)'}")
    print(f"granted: {', '.join(names.of(s) for s in roles.SERVICES)}")
    return 0
