"""EMI, processing fee and APR against worked examples computed independently here."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import ROUND_FLOOR, Decimal

import pytest

from decision_service.offer import apr, emi, exact_emi, make_offer, processing_fee
from decision_service.policy import ProcessingFee

NOW = datetime(2026, 12, 2, 8, 0, tzinfo=UTC)


def _float_emi(principal: float, annual_rate: float, months: int) -> float:
    rate = annual_rate / 12
    return principal * rate * (1 + rate) ** months / ((1 + rate) ** months - 1)


def _float_apr(net: float, instalment: float, months: int) -> float:
    """Newton's method on the annuity equation, in floats: an independent check."""
    rate = 0.01
    for _ in range(100):
        value = instalment * (1 - (1 + rate) ** -months) / rate - net
        step = 1e-9
        slope = (
            instalment * (1 - (1 + rate + step) ** -months) / (rate + step) - net - value
        ) / step
        rate -= value / slope
    return 12 * rate


@pytest.mark.parametrize(
    ("principal", "annual_rate", "months", "table_value"),
    [
        # The EMI tables' classic rows: ₹1 lakh at 12 % for a year is ₹8,884.88 a month;
        # ₹10 lakh at 10 % for 20 years is ₹9,650.22.
        (100_000, "0.12", 12, "8884.88"),
        (1_000_000, "0.10", 240, "9650.22"),
    ],
)
def test_emi_matches_the_published_table_and_is_rounded_up_to_the_rupee(
    principal: int, annual_rate: str, months: int, table_value: str
) -> None:
    exact = exact_emi(Decimal(principal), Decimal(annual_rate), months)
    assert exact.quantize(Decimal("0.01")) == Decimal(table_value)
    assert float(exact) == pytest.approx(_float_emi(principal, float(annual_rate), months))
    quoted = emi(Decimal(principal), Decimal(annual_rate), months)
    assert quoted == Decimal(table_value).to_integral_value(ROUND_FLOOR) + 1  # .88, .22 go up
    assert quoted * months >= exact * months  # the loan is repaid in full, never short


def test_a_whole_rupee_emi_is_not_rounded_further() -> None:
    # 120,000 at 0 % over 12 months is exactly 10,000.
    assert emi(Decimal(120_000), Decimal(0), 12) == Decimal(10_000)


def test_apr_without_fees_equals_the_rate_but_for_the_emi_rounding() -> None:
    exact = exact_emi(Decimal(100_000), Decimal("0.12"), 12)
    assert apr(Decimal(100_000), exact, 12) == Decimal("0.1200")
    # The quoted EMI (8,885) is a little more than the exact one: the APR shows it.
    assert apr(Decimal(100_000), Decimal(8885), 12) == Decimal("0.1200")
    assert apr(Decimal(100_000), Decimal(8900), 12) > Decimal("0.1200")


@pytest.mark.parametrize(
    ("amount", "fee", "instalment", "months"),
    [(100_000, 3000, 8885, 12), (47_000, 1175, 2416, 24), (500_000, 10_000, 13_167, 48)],
)
def test_apr_equates_the_net_disbursed_amount_to_the_emi_stream(
    amount: int, fee: int, instalment: int, months: int
) -> None:
    found = apr(Decimal(amount - fee), Decimal(instalment), months)
    assert found == Decimal(str(round(_float_apr(amount - fee, instalment, months), 4)))


def test_worked_example_one_lakh_at_twelve_percent_with_a_three_percent_fee() -> None:
    # Net 97,000 for twelve payments of 8,885: monthly IRR 1.4856 %, APR 17.83 %.
    assert apr(Decimal(97_000), Decimal(8885), 12) == Decimal("0.1783")


def test_processing_fee_is_the_rate_within_the_minimum_and_maximum() -> None:
    fee = ProcessingFee(rate=Decimal("0.0200"), minimum=Decimal(1000), maximum=Decimal(25_000))
    assert processing_fee(Decimal("500000.00"), fee) == Decimal("10000.00")
    assert processing_fee(Decimal("10000.00"), fee) == Decimal(1000)  # 200 → the minimum
    assert processing_fee(Decimal("5000000.00"), fee) == Decimal(25_000)  # the maximum
    assert processing_fee(Decimal("12345.67"), fee) == Decimal(1000)
    assert processing_fee(Decimal("61728.25"), fee) == Decimal("1234.57")  # 1234.565 half-up


def test_the_offer_carries_the_key_fact_statement_figures_as_strings() -> None:
    fee = ProcessingFee()
    offer = make_offer(
        Decimal(500_000),
        Decimal("0.145"),
        term_months=48,
        fee=fee,
        decided_at=NOW,
        validity_days=30,
    )
    assert offer is not None
    assert offer.as_json() == {
        "amount": "500000.00",
        "term_months": 48,
        "annual_rate": "0.1450",
        "processing_fee": "10000.00",
        "apr": str(apr(Decimal(490_000), offer.emi, 48)),
        "emi": str(emi(Decimal(500_000), Decimal("0.145"), 48)) + ".00",
        "currency": "INR",
        "expires_at": (NOW + timedelta(days=30)).isoformat(),
    }
    assert Decimal("0.1450") < offer.apr < Decimal("0.1600")


@pytest.mark.parametrize("start", ["0", "0.01", "0.0148", "0.5"])
def test_apr_is_the_same_from_any_starting_rate(start: str) -> None:
    # 0.01 a month is the loan's own rate (below the answer); 0.5 is far above it.
    assert apr(Decimal(97_000), Decimal(8885), 12, start=Decimal(start)) == Decimal("0.1783")
