"""decision-service against real PostgreSQL and Kafka: every decision is stored with its ranked
reasons, the version of the policy that made it (whose text is kept), its rule trace and, when
there is one, the indicative offer."""

from __future__ import annotations

import hashlib
import json
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest

from decision_service.offer import apr, emi
from decision_service.policy import DecisionPolicy, ManualReviewOffer
from prequal import events
from prequalctl.main import main as prequalctl
from tests.polling import wait_until

from .conftest import World, insert_application, report_payload


def _decision(database_url: str, application_id: uuid.UUID) -> dict[str, Any] | None:
    with psycopg.connect(database_url) as conn:
        cur = conn.execute(
            "SELECT d.status, d.reason_codes, d.reasons, d.policy_version, d.trace, "
            "d.offer_amount, d.offer_term_months, d.offer_annual_rate, d.offer_processing_fee, "
            "d.offer_apr, d.offer_emi, d.offer_currency, "
            "d.offer_expires_at - d.decided_at AS offer_validity, "
            "a.decision_reason, p.document "
            "FROM decisions d JOIN applications a ON a.id = d.application_id "
            "JOIN policy_documents p ON p.version = d.policy_version "
            "WHERE d.application_id = %s",
            (application_id,),
        )
        row = cur.fetchone()
        if row is None:
            return None
        names = [c.name for c in cur.description or ()]
    return dict(zip(names, row, strict=True))


def _decide(world: World, score: int, policy: DecisionPolicy | None = None, **app: Any) -> Any:
    application = insert_application(world.database_url, world.keyring, **app)
    world.consumers.decision(world.topics, policy)
    world.producer.event(
        world.topics.reports,
        events.CREDIT_REPORT_GENERATED,
        report_payload(application, score),
        key=str(application.id),
    )
    return wait_until(lambda: _decision(world.database_url, application.id))


def test_a_pre_approval_is_stored_with_reasons_policy_trace_and_offer(world: World) -> None:
    row = _decide(world, 720, monthly_income=Decimal(85_000), requested_amount=Decimal(500_000))
    policy = DecisionPolicy()
    assert row["status"] == "PRE_APPROVED"
    assert row["reason_codes"] == ["CREDIT_SCORE_MEETS_MINIMUM", "INCOME_SUFFICIENT_FOR_AMOUNT"]
    assert [r["code"] for r in row["reasons"]] == row["reason_codes"]
    assert row["decision_reason"] == " ".join(r["text"] for r in row["reasons"])
    # The version is the content hash of the text kept under it.
    assert row["policy_version"] == policy.version
    assert hashlib.sha256(row["document"].encode()).hexdigest()[:16] == policy.version
    assert DecisionPolicy.from_json(row["document"]) == policy
    assert {r["rule"] for r in row["trace"]} >= {"credit_score_below_minimum", "score_band"}
    band = next(r for r in row["trace"] if r["rule"] == "score_band")
    assert band == {
        "rule": "score_band",
        "inputs": {"credit_score": 720},
        "fired": True,
        "result": "NEAR_PRIME 0.1450",
    }
    instalment = emi(Decimal(500_000), Decimal("0.1450"), 48)
    assert (
        row["offer_amount"],
        row["offer_term_months"],
        row["offer_annual_rate"],
        row["offer_processing_fee"],
        row["offer_emi"],
        row["offer_currency"],
        row["offer_apr"],
    ) == (
        Decimal("500000.00"),
        48,
        Decimal("0.1450"),
        Decimal("10000.00"),
        instalment,
        "INR",
        apr(Decimal(490_000), instalment, 48),
    )
    assert row["offer_validity"].days == 30


def test_the_decision_uses_the_stored_figures_not_the_events(world: World) -> None:
    """A forged credit.report.generated.v1 (DESIGN.md: "takes income, amount and loan type from
    its own database row, never from the event"): had the event's figures counted, this
    application would be PRE_APPROVED for a small HOME loan; the row's say MANUAL_REVIEW."""
    application = insert_application(
        world.database_url,
        world.keyring,
        monthly_income=Decimal(1000),
        requested_amount=Decimal(500_000),
        loan_type="PERSONAL",
    )
    world.consumers.decision(world.topics)
    forged = {
        **report_payload(application, 790),
        "monthly_income": "900000",
        "requested_amount": "1000",
        "loan_type": "HOME",
    }
    world.producer.event(
        world.topics.reports, events.CREDIT_REPORT_GENERATED, forged, key=str(application.id)
    )
    row = wait_until(lambda: _decision(world.database_url, application.id))
    assert row["status"] == "MANUAL_REVIEW"
    assert row["reason_codes"] == ["INCOME_INSUFFICIENT_FOR_AMOUNT", "CREDIT_SCORE_MEETS_MINIMUM"]
    assert "Monthly income 1000.00 does not exceed" in row["decision_reason"]
    assert row["offer_amount"] is None
    [income] = [r for r in row["trace"] if r["rule"] == "income_covers_amount"]
    assert income["inputs"] == {
        "monthly_income": "1000.00",
        "requested_amount": "500000.00",
        "term_months": 48,
    }
    with psycopg.connect(world.database_url) as conn:
        stored = conn.execute(
            "SELECT monthly_income, requested_amount, loan_type FROM applications WHERE id = %s",
            (application.id,),
        ).fetchone()
    assert stored == (Decimal("1000.00"), Decimal("500000.00"), "PERSONAL")


def test_a_rejection_has_its_adverse_reasons_and_no_offer(world: World) -> None:
    row = _decide(world, 610, monthly_income=Decimal(1000), requested_amount=Decimal(500_000))
    assert row["status"] == "REJECTED"
    assert row["reason_codes"] == ["CREDIT_SCORE_BELOW_MINIMUM", "INCOME_INSUFFICIENT_FOR_AMOUNT"]
    assert row["offer_amount"] is None
    assert row["reasons"][0] == {
        "code": "CREDIT_SCORE_BELOW_MINIMUM",
        "text": "Credit score 610 is below the minimum of 650.",
    }


def test_a_policy_allowing_it_gives_manual_review_a_reduced_offer_under_its_own_version(
    world: World,
) -> None:
    generous = DecisionPolicy(manual_review_offer=ManualReviewOffer(enabled=True))
    row = _decide(
        world,
        760,
        generous,
        monthly_income=Decimal(40_000),
        requested_amount=Decimal(5_000_000),
    )
    assert row["status"] == "MANUAL_REVIEW"
    assert row["policy_version"] == generous.version != DecisionPolicy().version
    assert row["reason_codes"][-1] == "REDUCED_OFFER_FOR_REVIEW"
    assert (row["offer_amount"], row["offer_annual_rate"]) == (
        Decimal("960000.00"),
        Decimal("0.1200"),
    )


def _shadow(database_url: str, application_id: uuid.UUID) -> list[tuple[Any, ...]]:
    with psycopg.connect(database_url) as conn:
        return conn.execute(
            "SELECT policy_version, champion_version, status, champion_status, reason_codes, "
            "offer IS NOT NULL FROM shadow_decisions WHERE application_id = %s",
            (application_id,),
        ).fetchall()


def test_a_challenger_decides_in_the_shadow_recorded_and_never_applied(world: World) -> None:
    champion = DecisionPolicy()
    challenger = DecisionPolicy(min_credit_score=700)
    application = insert_application(world.database_url, world.keyring)
    decision = world.consumers.decision(world.topics, champion, challenger)
    world.producer.event(
        world.topics.reports,
        events.CREDIT_REPORT_GENERATED,
        report_payload(application, 680),
        key=str(application.id),
    )
    row = wait_until(lambda: _decision(world.database_url, application.id))
    assert row["status"] == "PRE_APPROVED"  # the champion's outcome is the one applied
    assert _shadow(world.database_url, application.id) == [
        (
            challenger.version,
            champion.version,
            "REJECTED",
            "PRE_APPROVED",
            ["CREDIT_SCORE_BELOW_MINIMUM"],
            False,
        )
    ]
    with psycopg.connect(world.database_url) as conn:
        kept = conn.execute(
            "SELECT count(*) FROM policy_documents WHERE version = %s", (challenger.version,)
        ).fetchone()
    assert kept == (1,)
    assert (
        decision.sample(
            "shadow_decisions_total",
            champion_version=champion.version,
            challenger_version=challenger.version,
            agreement="disagree",
        )
        == 1
    )
    assert (
        decision.sample(
            "decisions_by_policy_total",
            policy_version=challenger.version,
            role="challenger",
            status="REJECTED",
        )
        == 1
    )


def test_backtest_replays_the_stored_decisions_through_a_candidate(
    world: World,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _decide(world, 760, monthly_income=Decimal(85_000), requested_amount=Decimal(500_000))
    candidate = tmp_path / "candidate.yaml"
    candidate.write_text("minCreditScore: 800\n")
    monkeypatch.setenv("DATABASE_URL", world.database_url)
    assert prequalctl(["policy", "backtest", str(candidate), "-o", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["policy_version"] == DecisionPolicy(min_credit_score=800).version
    prime = next(b for b in report["bands"] if b["band"] == "PRIME")
    # Everything this module decided at 750 or more was approved; at 800 most is rejected.
    assert prime["applications"] >= 1
    assert prime["transitions"].get("PRE_APPROVED->REJECTED", 0) >= 1
    assert report["changed"] == sum(b["changed"] for b in report["bands"])
