"""Backtest: per score band of the candidate, how many stored outcomes would change."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from decision_service.backtest import NO_BAND, StoredOutcome, backtest
from decision_service.policy import DecisionPolicy
from prequalctl.policy import load_candidate, render

NOW = datetime(2026, 12, 2, tzinfo=UTC)


def _stored(score: int, status: str, income: int = 85_000, *codes: str) -> StoredOutcome:
    return StoredOutcome(score, Decimal(income), Decimal(500_000), "PERSONAL", status, codes)


def test_a_stricter_minimum_changes_only_the_scores_it_now_rejects() -> None:
    stored = [
        _stored(660, "PRE_APPROVED"),  # STANDARD band; rejected at 680
        _stored(679, "PRE_APPROVED"),  # idem
        _stored(675, "MANUAL_REVIEW", 1000),  # rejected at 680
        _stored(700, "PRE_APPROVED"),  # NEAR_PRIME: unchanged
        _stored(790, "PRE_APPROVED"),  # PRIME: unchanged
        _stored(610, "REJECTED"),  # STANDARD: still rejected
    ]
    report = backtest(stored, DecisionPolicy(min_credit_score=680), NOW)
    by_band = {b.band: b for b in report.bands}
    assert [b.band for b in report.bands] == ["PRIME", "NEAR_PRIME", "STANDARD"]
    assert (by_band["PRIME"].applications, by_band["PRIME"].changed) == (1, 0)
    assert (by_band["NEAR_PRIME"].applications, by_band["NEAR_PRIME"].changed) == (1, 0)
    assert (by_band["STANDARD"].applications, by_band["STANDARD"].changed) == (4, 3)
    assert dict(by_band["STANDARD"].transitions) == {
        ("PRE_APPROVED", "REJECTED"): 2,
        ("MANUAL_REVIEW", "REJECTED"): 1,
    }
    assert (report.applications, report.changed) == (6, 3)
    table = render(report)
    assert "PRE_APPROVED→REJECTED 2" in table
    assert table.splitlines()[0] == f"candidate policy {report.policy_version}"


def test_the_same_policy_changes_nothing_and_a_recent_application_stays_rejected() -> None:
    stored = [
        _stored(790, "REJECTED", 85_000, "RECENT_APPLICATION_EXISTS"),
        _stored(700, "PRE_APPROVED"),
    ]
    report = backtest(stored, DecisionPolicy(), NOW)
    assert report.changed == 0


def test_scores_below_every_band_are_counted_apart() -> None:
    policy = DecisionPolicy.model_validate(
        {
            "minCreditScore": 700,
            "scoreBands": [{"name": "ONLY", "minScore": 650, "annualRate": "0.15"}],
        }
    )
    report = backtest([_stored(600, "REJECTED"), _stored(660, "PRE_APPROVED")], policy, NOW)
    assert [(b.band, b.applications, b.changed) for b in report.bands] == [
        ("ONLY", 1, 1),
        (NO_BAND, 1, 0),
    ]


def test_the_candidate_file_may_be_a_document_or_a_loan_pipeline(tmp_path: Path) -> None:
    document = tmp_path / "policy.yaml"
    document.write_text("minCreditScore: 700\n")
    assert load_candidate(document).min_credit_score == 700
    pipeline = tmp_path / "pipeline.yaml"
    pipeline.write_text(
        "kind: LoanPipeline\nspec:\n  decisionPolicy: {minCreditScore: 720, termMonths: 36}\n"
    )
    assert load_candidate(pipeline).term_months == 36
    broken = tmp_path / "broken.yaml"
    broken.write_text("minCreditScore: 1000\n")
    with pytest.raises(ValueError, match="not a valid policy document"):
        load_candidate(broken)
    with pytest.raises(ValueError, match="cannot read"):
        load_candidate(tmp_path / "missing.yaml")
