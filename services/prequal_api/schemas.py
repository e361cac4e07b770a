"""Request and response bodies of the HTTP API (the contract is DESIGN.md)."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from prequal.pan import PAN_PATTERN

Status = Literal["PENDING", "PRE_APPROVED", "REJECTED", "MANUAL_REVIEW"]
LoanType = Literal["PERSONAL", "HOME", "AUTO"]
# Free text: 1-100 characters, no control characters (C0, DEL, C1: NUL, newlines, escapes), so
# what a fuzzer sends gets a 422 naming the field, never a database error or a forged log line.
_NO_CONTROL = r"^[^\x00-\x1f\x7f-\x9f]*$"
Name = Annotated[
    str,
    Field(
        min_length=1,
        max_length=100,
        pattern=_NO_CONTROL,
        description="1-100 characters, no control characters",
    ),
]
MIN_AGE, MAX_AGE = 18, 100
# How far ahead of the server's clock a consent's captured_at may be (clock skew).
CONSENT_CLOCK_SKEW = timedelta(minutes=5)


def age_on(birth: date, today: date) -> int:
    return today.year - birth.year - ((today.month, today.day) < (birth.month, birth.day))


class Consent(BaseModel):
    """The applicant's consent to a soft credit inquiry, as the client captured it."""

    model_config = ConfigDict(str_strip_whitespace=True, extra="ignore")

    soft_inquiry: bool = Field(description="must be true: the applicant agreed to a soft inquiry")
    text_version: str = Field(
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]*$",
        description="version of the consent text the applicant was shown",
        examples=["soft-inquiry-2026-11"],
    )
    captured_at: datetime = Field(description="when the applicant consented, with a time zone")
    channel: str = Field(
        min_length=1,
        max_length=32,
        pattern=r"^[A-Z][A-Z0-9_]*$",
        description="where it was captured, e.g. WEB, MOBILE_APP, BRANCH, CALL_CENTER",
        examples=["WEB"],
    )

    @field_validator("soft_inquiry")
    @classmethod
    def _agreed(cls, value: bool) -> bool:
        if value is not True:
            raise ValueError("must be true: a soft credit inquiry needs the applicant's consent")
        return value

    @field_validator("captured_at")
    @classmethod
    def _past_and_zoned(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("needs a time zone (e.g. 2026-12-02T07:00:00Z)")
        if value > datetime.now(UTC) + CONSENT_CLOCK_SKEW:
            raise ValueError("is in the future")
        return value.astimezone(UTC)  # the same instant, always shown in UTC


class ApplicationRequest(BaseModel):
    """A loan application. Validation errors name the field and never echo its value."""

    model_config = ConfigDict(str_strip_whitespace=True, extra="ignore")

    pan_number: str = Field(
        description="AAAAA9999A; upper-cased and trimmed", examples=["ABCDE1234F"]
    )
    first_name: Name
    last_name: Name
    date_of_birth: date = Field(description="applicant must be 18 to 100 years old")
    # A syntax check, not RFC 5322 in full: one @, no spaces, a dotted domain. (email-validator
    # cost a third of a request's CPU for little more certainty than a confirmation mail gives.)
    email: str = Field(
        max_length=254,
        pattern=r"^[^@\s\x00-\x1f\x7f-\x9f]+@[^@\s\x00-\x1f\x7f-\x9f]+\.[^@\s.\x00-\x1f\x7f-\x9f]+$",
        examples=["asha.rao@example.com"],
    )
    phone_number: str = Field(pattern=r"^[0-9]{10}$", description="10 digits")
    requested_amount: Decimal = Field(gt=0, le=10_000_000, max_digits=14, decimal_places=2)
    monthly_income: Decimal = Field(ge=0, lt=10**12, max_digits=14, decimal_places=2)
    loan_type: LoanType = "PERSONAL"
    consent: Consent = Field(description="required: the applicant's consent to a soft inquiry")

    @field_validator("pan_number", mode="before")
    @classmethod
    def _pan(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = value.strip().upper()
            if not PAN_PATTERN.match(value):
                raise ValueError("must be five letters, four digits and a letter (AAAAA9999A)")
        return value

    @field_validator("loan_type", mode="before")
    @classmethod
    def _loan_type(cls, value: Any) -> Any:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("date_of_birth")
    @classmethod
    def _adult(cls, value: date) -> date:
        age = age_on(value, date.today())
        if not MIN_AGE <= age <= MAX_AGE:
            raise ValueError(f"applicant must be {MIN_AGE} to {MAX_AGE} years old")
        return value


class Accepted(BaseModel):
    application_id: uuid.UUID
    status: Status
    created_at: datetime


class Reason(BaseModel):
    code: str = Field(description="a code of the stable enum in docs/decisions.md")
    text: str


class Offer(BaseModel):
    """An indicative offer: the Key Fact Statement's figures. Amounts are decimal strings,
    rates decimal fractions ("0.1450" is 14.50 % a year)."""

    amount: str
    term_months: int
    annual_rate: str
    processing_fee: str
    apr: str
    emi: str
    currency: Literal["INR"] = "INR"
    expires_at: datetime


class Decision(BaseModel):
    reasons: list[Reason] = Field(description="one to four, most important first")
    policy_version: str = Field(description="content hash of the policy document that decided")
    offer: Offer | None


class ProcessingIssue(BaseModel):
    """Why the application is stuck: its latest dead letter, until a replay succeeds."""

    code: str
    message: str
    since: datetime


class ApplicationStatus(BaseModel):
    application_id: uuid.UUID
    status: Status
    pan_masked: str
    credit_score: int | None
    decision: Decision | None
    consent: Consent | None
    decision_reason: str | None
    max_approved_amount: Decimal | None
    processing_issue: ProcessingIssue | None = None
    created_at: datetime
    updated_at: datetime


class ErrorDetail(BaseModel):
    field: str
    message: str


class ErrorBody(BaseModel):
    error_code: str
    message: str
    details: list[ErrorDetail] = []
    request_id: str


class DuplicateBody(ErrorBody):
    """The 409: the same client's earlier application of this PAN (to this client only)."""

    application_id: uuid.UUID
