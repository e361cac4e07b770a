"""The indicative offer: EMI, processing fee and APR, in Decimal (docs/decisions.md).

- EMI by the standard amortisation formula, P·r·(1+r)^n / ((1+r)^n − 1) with r the annual rate
  / 12, rounded *up* to the whole rupee, as lenders quote it: rounding down would leave
  principal unpaid after the last instalment; rounding up makes the last one a little smaller.
  A zero rate is P / n, rounded up the same way.
- Processing fee: the policy's rate × the amount, rounded half-up to the paisa, kept within
  the policy's minimum and maximum (and never above the amount itself).
- APR: the yearly rate at which the EMI stream is worth the net disbursed amount (amount − fee),
  i.e. 12 × the monthly internal rate of return: the actuarial method of US Regulation Z
  (unit-period rate × periods a year), the cost of credit RBI's Key Fact Statement discloses.
  Found by Newton's method to far below a basis point, then rounded half-up to four decimals.
  The present value of the instalments is convex and decreasing in the rate, so Newton started
  below the root climbs to it monotonically and never overshoots (a few steps; bisection took
  80 and half a millisecond a decision).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Decimal, localcontext

from decision_service.policy import ProcessingFee

CURRENCY = "INR"
RUPEE = Decimal(1)
PAISA = Decimal("0.01")
RATE_PLACES = Decimal("0.0001")
_PRECISION = 40
_NEWTON_START = Decimal("1e-9")  # a monthly rate below any APR that rounds above zero
_NEWTON_TOLERANCE = Decimal("1e-15")  # of the monthly rate: far below 0.00005 a year
_NEWTON_STEPS = 100  # a bound; it converges in well under ten


@dataclass(frozen=True)
class Offer:
    amount: Decimal
    term_months: int
    annual_rate: Decimal
    processing_fee: Decimal
    apr: Decimal
    emi: Decimal
    expires_at: datetime
    currency: str = CURRENCY

    def as_json(self) -> dict[str, str | int]:
        """Amounts as decimal strings, rates as fractions with four decimals."""
        return {
            "amount": str(self.amount),
            "term_months": self.term_months,
            "annual_rate": str(self.annual_rate),
            "processing_fee": str(self.processing_fee),
            "apr": str(self.apr),
            "emi": str(self.emi),
            "currency": self.currency,
            "expires_at": self.expires_at.isoformat(),
        }


def exact_emi(principal: Decimal, annual_rate: Decimal, months: int) -> Decimal:
    """The unrounded instalment that amortises `principal` over `months`."""
    if months < 1:
        raise ValueError(f"months must be at least 1, got {months}")
    with localcontext() as ctx:
        ctx.prec = _PRECISION
        if annual_rate == 0:
            return principal / months
        rate = annual_rate / 12
        growth = (1 + rate) ** months
        return principal * rate * growth / (growth - 1)


def emi(principal: Decimal, annual_rate: Decimal, months: int) -> Decimal:
    """The instalment a lender quotes: the exact one rounded up to the whole rupee."""
    return exact_emi(principal, annual_rate, months).quantize(RUPEE, rounding=ROUND_CEILING)


def present_value(instalment: Decimal, monthly_rate: Decimal, months: int) -> Decimal:
    with localcontext() as ctx:
        ctx.prec = _PRECISION
        if monthly_rate == 0:
            return instalment * months
        return instalment * (1 - (1 + monthly_rate) ** -months) / monthly_rate


def apr(
    net_disbursed: Decimal, instalment: Decimal, months: int, start: Decimal = _NEWTON_START
) -> Decimal:
    """12 × the monthly rate equating the instalments to `net_disbursed`, four decimals.

    `start` is a monthly rate known to be at or below the answer (the loan's own rate, when
    fees only add to it and the instalment is rounded up): Newton then needs two or three
    steps instead of a dozen. A start that turns out above the answer is replaced by the
    smallest one."""
    if net_disbursed <= 0:
        raise ValueError("the net disbursed amount must be positive")
    if instalment * months <= net_disbursed:
        return Decimal("0.0000")  # repaying no more than was received costs nothing
    rate = max(start, _NEWTON_START)
    with localcontext() as ctx:
        ctx.prec = _PRECISION
        if present_value(instalment, rate, months) < net_disbursed:
            rate = _NEWTON_START  # the start was past the answer: climb from the bottom
        for _ in range(_NEWTON_STEPS):
            discount = (1 + rate) ** -months
            excess = instalment * (1 - discount) / rate - net_disbursed
            if excess <= 0:
                break  # at (or, by rounding, a hair past) the root
            slope = instalment * (months * discount / (1 + rate) * rate - (1 - discount)) / rate**2
            step = excess / slope  # slope < 0: the step is negative
            rate -= step
            if -step < _NEWTON_TOLERANCE:
                break
        return (12 * rate).quantize(RATE_PLACES, rounding=ROUND_HALF_UP)


def processing_fee(amount: Decimal, fee: ProcessingFee) -> Decimal:
    raw = (amount * fee.rate).quantize(PAISA, rounding=ROUND_HALF_UP)
    return min(max(raw, fee.minimum), fee.maximum, amount)


def round_down_to_thousands(amount: Decimal) -> Decimal:
    """A reduced offer in a round figure, never above what the income supports."""
    return (amount / 1000).quantize(RUPEE, rounding=ROUND_FLOOR) * 1000


def make_offer(
    amount: Decimal,
    annual_rate: Decimal,
    *,
    term_months: int,
    fee: ProcessingFee,
    decided_at: datetime,
    validity_days: int,
) -> Offer | None:
    """None when the fee would take the whole amount (an amount too small to lend)."""
    amount = amount.quantize(PAISA)
    instalment = emi(amount, annual_rate, term_months)
    charged = processing_fee(amount, fee)
    if charged >= amount:
        return None
    return Offer(
        amount=amount,
        term_months=term_months,
        annual_rate=annual_rate.quantize(RATE_PLACES),
        processing_fee=charged,
        apr=apr(amount - charged, instalment, term_months, start=annual_rate / 12),
        emi=instalment.quantize(PAISA),
        expires_at=decided_at + timedelta(days=validity_days),
    )
