"""Reason codes: a stable enum, ranked, one to four per decision."""

from __future__ import annotations

import pytest

from decision_service.reasons import RANK, TEMPLATES, ReasonCode, ranked, reason, summary


def test_every_code_has_a_rank_and_a_text_and_its_value_is_its_name() -> None:
    for code in ReasonCode:
        assert code.value == code.name
        assert code in RANK
        assert code in TEMPLATES
    assert len(set(RANK.values())) == len(RANK)


def test_adverse_reasons_come_first_and_at_most_four_are_kept() -> None:
    figures = {
        "credit_score": 600,
        "min_credit_score": 650,
        "monthly_income": 1000,
        "requested_amount": 90_000,
        "term_months": 48,
        "max_offer_amount": 1,
        "offer_amount": 1,
    }
    everything = [reason(code, **figures) for code in reversed(ReasonCode)]
    kept = ranked(everything)
    assert [r.code for r in kept] == [
        ReasonCode.RECENT_APPLICATION_EXISTS,
        ReasonCode.CREDIT_SCORE_BELOW_MINIMUM,
        ReasonCode.INCOME_INSUFFICIENT_FOR_AMOUNT,
        ReasonCode.CREDIT_SCORE_MEETS_MINIMUM,
    ]
    assert summary(kept).startswith("An application with this PAN")
    assert kept[1].as_json() == {
        "code": "CREDIT_SCORE_BELOW_MINIMUM",
        "text": "Credit score 600 is below the minimum of 650.",
    }


def test_a_decision_without_reasons_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one reason"):
        ranked([])
