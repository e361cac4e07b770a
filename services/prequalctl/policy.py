"""`prequalctl policy backtest FILE`: replay stored applications through a candidate policy.

FILE is a decision policy document (docs/decisions.md) in YAML or JSON, or a LoanPipeline
whose `spec.decisionPolicy` is taken. Every decided application in the database (reads
DATABASE_URL) is decided again under it, from its stored score and figures, and the result is
printed per score band of the candidate: how many applications, how many outcomes would change,
and from what to what. Nothing is written; no personal field is read.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import yaml
from pydantic import ValidationError

from decision_service.backtest import BacktestReport, StoredOutcome, backtest
from decision_service.policy import DecisionPolicy
from prequal.settings import DatabaseSettings, load_settings

# Only the figures a decision uses: no name, PAN or contact field is selected.
DECIDED_SQL = (
    "SELECT a.credit_score, a.monthly_income, a.requested_amount, a.loan_type, a.status, "
    "coalesce(d.reason_codes, '{}') FROM applications a "
    "LEFT JOIN decisions d ON d.application_id = a.id "
    "WHERE a.status <> 'PENDING' AND a.credit_score IS NOT NULL "
    "AND a.created_at > now() - make_interval(days => %s)"
)


def register(commands: Any) -> None:
    group = commands.add_parser(
        "policy",
        help="Try a decision policy on past applications",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    group.set_defaults(group_parser=group)
    verbs = group.add_subparsers(title="Available Commands", metavar="<command>")
    run = verbs.add_parser(
        "backtest",
        help="Per score band, how many stored outcomes a candidate policy would change",
    )
    run.add_argument("file", type=Path, help="the candidate policy (YAML or JSON)")
    run.add_argument(
        "--days", type=int, default=90, help="applications of the last N days (%(default)s)"
    )
    run.add_argument("-o", "--output", choices=("table", "json"), default="table")
    run.set_defaults(handler=_backtest)


def load_candidate(path: Path) -> DecisionPolicy:
    """The policy in FILE; ValueError says what is wrong with it."""
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"cannot read {path}: {exc}") from None
    if isinstance(raw, dict) and raw.get("kind") == "LoanPipeline":
        raw = (raw.get("spec") or {}).get("decisionPolicy") or {}
    if not isinstance(raw, dict):
        raise ValueError(f"{path} holds no policy document (a mapping of its fields)")
    try:
        return DecisionPolicy.model_validate(raw)
    except ValidationError as exc:
        raise ValueError(f"{path} is not a valid policy document: {exc}") from None


def _stored(database_url: str, days: int) -> list[StoredOutcome]:
    with psycopg.connect(database_url) as conn, conn.cursor(name="backtest") as cur:
        cur.execute(DECIDED_SQL, (days,))
        return [
            StoredOutcome(
                credit_score=int(score),
                monthly_income=Decimal(income),
                requested_amount=Decimal(amount),
                loan_type=str(loan_type),
                status=str(status),
                reason_codes=tuple(codes),
            )
            for score, income, amount, loan_type, status, codes in cur
        ]


def render(report: BacktestReport) -> str:
    header = ("BAND", "FROM SCORE", "APPLICATIONS", "CHANGED", "CHANGES")
    rows = [
        (
            band.band,
            "-" if band.min_score is None else str(band.min_score),
            str(band.applications),
            str(band.changed),
            ", ".join(f"{a}→{b} {n}" for (a, b), n in sorted(band.transitions.items())) or "-",
        )
        for band in report.bands
    ]
    rows.append(("TOTAL", "", str(report.applications), str(report.changed), ""))
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    lines = [f"candidate policy {report.policy_version}"]
    lines += [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        for row in (header, *rows)
    ]
    return "\n".join(lines)


def _backtest(args: argparse.Namespace) -> int:
    try:
        candidate = load_candidate(args.file)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    database_url = load_settings(DatabaseSettings).database_url.get_secret_value()
    try:
        outcomes = _stored(database_url, args.days)
    except psycopg.OperationalError as exc:
        print(f"error: cannot read the applications: {exc}", file=sys.stderr)
        return 1
    report = backtest(outcomes, candidate, datetime.now(UTC))
    if args.output == "json":
        print(
            json.dumps(
                {
                    "policy_version": report.policy_version,
                    "applications": report.applications,
                    "changed": report.changed,
                    "bands": [b.as_json() for b in report.bands],
                },
                indent=2,
            )
        )
    else:
        print(render(report))
    return 0
