"""`prequalctl erase`: crypto-shred one application, or every one past the retention period.

`prequalctl erase ID` erases one application whatever client owns it (an operator's command,
audited as `prequalctl`). `prequalctl erase --older-than 30d` erases every application created
before then whose personal data is still there, oldest first, one transaction each, printing
progress; `--dry-run` only counts them. Without either, the retention period is the setting
`PERSONAL_DATA_RETENTION_DAYS` (the chart's CronJob runs it that way). Reads DATABASE_URL.
"""

from __future__ import annotations

import argparse
import re
import sys
import uuid
from typing import Any

import psycopg
from pydantic import Field

from prequal import erasure
from prequal.settings import DatabaseSettings, load_settings

ACTOR = "prequalctl"
_DURATION = re.compile(r"^([0-9]+)([dh])$")


class RetentionSettings(DatabaseSettings):
    # Applications older than this lose their personal data; 0 means no automatic erasure.
    personal_data_retention_days: int = Field(default=0, ge=0)


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "erase",
        help="Erase applicants' personal data (crypto-shredding)",
        description="Delete the sealed data key and the personal columns of one application, "
        "or of every application older than a period; decisions and audit rows stay.",
    )
    parser.add_argument("application_id", nargs="?", type=uuid.UUID, help="one application")
    parser.add_argument(
        "--older-than",
        metavar="PERIOD",
        help="erase every application created more than PERIOD ago (`30d`, `12h`); default: "
        "PERSONAL_DATA_RETENTION_DAYS",
    )
    parser.add_argument("--dry-run", action="store_true", help="count, erase nothing")
    parser.add_argument(
        "--batch", type=int, default=500, help="applications per query (default: %(default)s)"
    )
    parser.add_argument("--reason", default="", help="recorded in the audit row")
    parser.set_defaults(handler=_erase, group_parser=parser)


def parse_period(text: str) -> int:
    """`30d` or `12h` → seconds; ValueError naming the expected form otherwise."""
    match = _DURATION.match(text.strip())
    if not match or int(match.group(1)) == 0:
        raise ValueError(f"--older-than {text!r}: expected a positive period like 30d or 12h")
    return int(match.group(1)) * (86400 if match.group(2) == "d" else 3600)


def _erase(args: argparse.Namespace) -> int:
    settings = load_settings(RetentionSettings)
    url = settings.database_url.get_secret_value()
    if args.application_id is not None:
        if args.older_than:
            print("error: give an application id or --older-than, not both", file=sys.stderr)
            return 2
        return _erase_one(url, args.application_id, args.reason or "operator erasure")
    try:
        if args.older_than:
            seconds = parse_period(args.older_than)
        elif settings.personal_data_retention_days:
            seconds = settings.personal_data_retention_days * 86400
        else:
            print(
                "error: give an application id, --older-than PERIOD, or set "
                "PERSONAL_DATA_RETENTION_DAYS",
                file=sys.stderr,
            )
            return 2
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    reason = args.reason or f"retention: older than {seconds // 3600} h"
    return _erase_older(url, seconds, reason, dry_run=args.dry_run, batch=args.batch)


def _erase_one(url: str, application_id: uuid.UUID, reason: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            erasure.ERASE_SQL, erasure.Erasure(application_id, None, ACTOR, reason).params()
        ).fetchone()
    if row is None:
        print(f"error: no application {application_id}", file=sys.stderr)
        return 1
    print(f"erased the personal data of application {application_id}")
    return 0


def _erase_older(url: str, seconds: int, reason: str, *, dry_run: bool, batch: int) -> int:
    erased = 0
    with psycopg.connect(url, autocommit=True) as conn:
        if dry_run:
            row = conn.execute(
                "SELECT count(*) FROM applications WHERE personal_data_erased_at IS NULL "
                "AND created_at < now() - make_interval(secs => %s)",
                (seconds,),
            ).fetchone()
            print(f"dry run: {row[0] if row else 0} applications would be erased")
            return 0
        while True:
            due = conn.execute(erasure.DUE_SQL, (seconds, batch)).fetchall()
            if not due:
                break
            for application_id, _created in due:
                request = erasure.Erasure(application_id, None, ACTOR, reason)
                with conn.transaction():
                    conn.execute(erasure.ERASE_SQL, request.params())
                erased += 1
            print(f"erased {erased} applications so far", flush=True)
    print(f"done: erased the personal data of {erased} applications")
    return 0
