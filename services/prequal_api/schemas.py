"""Request and response bodies of the HTTP API (the contract is DESIGN.md)."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema, field_validator

from prequal.pan import PAN_PATTERN

Status = Literal["PENDING", "PRE_APPROVED", "REJECTED", "MANUAL_REVIEW"]
LoanType = Literal["PERSONAL", "HOME", "AUTO"]
# Free text: 1-100 characters, no control characters (C0, DEL, C1: NUL, newlines, escapes), so
# what a fuzzer sends gets a 422 naming the field, never a database error or a forged log line.
# At least one character that is not white space, as the value is trimmed first: a name of
# only spaces (" ", U+00A0) is refused, and the document says so.
_NO_CONTROL = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
Name = Annotated[
    str,
    Field(
        min_length=1,
        max_length=100,
        pattern=_NO_CONTROL,
        description="1-100 characters once trimmed, not all white space, no control characters",
    ),
]
MIN_AGE, MAX_AGE = 18, 100
# What `_pan` accepts once trimmed, in the document (case-insensitive: it upper-cases).
PAN_DOCUMENTED_PATTERN = r"^[A-Za-z]{5}[0-9]{4}[A-Za-z]$"


def _amount_schema(bounds: str, number: dict[str, int], string: str) -> WithJsonSchema:
    """A rupee amount as the document shows it: whole rupees as a number, or a decimal string
    with paise (pydantic's own schema for a Decimal is "any number or any string"). A JSON
    number with two decimals is accepted too; the document leaves it out because a float
    such as 0.1 + 0.2 is not one (JSON Schema's multipleOf cannot say "two places")."""
    return WithJsonSchema(
        {
            "anyOf": [{"type": "integer", **number}, {"type": "string", "pattern": string}],
            "description": f"rupees, {bounds}, at most 2 decimal places",
        },
        mode="validation",
    )


# How far ahead of the server's clock a consent's captured_at may be (clock skew).
CONSENT_CLOCK_SKEW = timedelta(minutes=5)


def _iso_string(value: Any, what: str) -> Any:
    """Dates and times come as the strings the document states: pydantic would also take a
    number as Unix seconds (a consent "captured" at -286, 1969-12-31T23:55:14Z)."""
    if not isinstance(value, str):
        raise ValueError(f"must be {what}, as a string")
    return value


def age_on(birth: date, today: date) -> int:
    return today.year - birth.year - ((today.month, today.day) < (birth.month, birth.day))


class Consent(BaseModel):
    """The applicant's consent to a soft credit inquiry, as the client captured it."""

    model_config = ConfigDict(str_strip_whitespace=True, extra="ignore")

    soft_inquiry: bool = Field(
        description="must be true: the applicant agreed to a soft inquiry",
        json_schema_extra={"const": True},
    )
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

    @field_validator("soft_inquiry", mode="before")
    @classmethod
    def _agreed(cls, value: Any) -> bool:
        # Before pydantic's coercion: JSON `true` only, not "yes", "on" or 1.
        if value is not True:
            raise ValueError("must be true: a soft credit inquiry needs the applicant's consent")
        return value

    @field_validator("captured_at", mode="before")
    @classmethod
    def _a_string(cls, value: Any) -> Any:
        return _iso_string(value, "an RFC 3339 date-time with a time zone")

    @field_validator("captured_at")
    @classmethod
    def _past_and_zoned(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("needs a time zone (e.g. 2026-12-02T07:00:00Z)")
        if value > datetime.now(UTC) + CONSENT_CLOCK_SKEW:
            raise ValueError("is in the future")
        return value.astimezone(UTC)  # the same instant, always shown in UTC


# A synthetic applicant (the PAN is the documented test value, no real person's).
_EXAMPLE_APPLICATION: dict[str, Any] = {
    "pan_number": "ABCDE1234F",
    "first_name": "Asha",
    "last_name": "Rao",
    "date_of_birth": "1990-04-12",
    "email": "asha.rao@example.com",
    "phone_number": "9876543210",
    "requested_amount": 500000,
    "monthly_income": 85000,
    "loan_type": "PERSONAL",
    "consent": {
        "soft_inquiry": True,
        "text_version": "soft-inquiry-2026-11",
        "captured_at": "2026-11-30T09:15:00Z",
        "channel": "WEB",
    },
}


class ApplicationRequest(BaseModel):
    """A loan application. Validation errors name the field and never echo its value."""

    model_config = ConfigDict(
        str_strip_whitespace=True,
        extra="ignore",
        json_schema_extra={"examples": [_EXAMPLE_APPLICATION]},
    )

    pan_number: str = Field(
        description="AAAAA9999A: five letters, four digits, a letter; upper-cased and trimmed",
        examples=["ABCDE1234F"],
        # Documented, so generated bodies reach the logic; enforced by `_pan` (which also trims).
        json_schema_extra={"pattern": PAN_DOCUMENTED_PATTERN},
    )
    first_name: Name
    last_name: Name
    date_of_birth: date = Field(
        description=f"YYYY-MM-DD; the applicant must be {MIN_AGE} to {MAX_AGE} years old today",
        json_schema_extra={"x-age-range": [MIN_AGE, MAX_AGE]},
    )
    # A syntax check, not RFC 5322 in full: one @, no spaces, a dotted domain. (email-validator
    # cost a third of a request's CPU for little more certainty than a confirmation mail gives.)
    email: str = Field(
        max_length=254,
        pattern=r"^[^@\s\x00-\x1f\x7f-\x9f]+@[^@\s\x00-\x1f\x7f-\x9f]+\.[^@\s.\x00-\x1f\x7f-\x9f]+$",
        examples=["asha.rao@example.com"],
    )
    phone_number: str = Field(pattern=r"^[0-9]{10}$", description="10 digits")
    requested_amount: Annotated[
        Decimal,
        _amount_schema(
            "over 0, at most 10000000",
            {"minimum": 1, "maximum": 10_000_000},
            r"^(?:[1-9][0-9]{0,6}(?:\.[0-9]{1,2})?|0\.(?:[1-9][0-9]?|0[1-9]))$",
        ),
    ] = Field(gt=0, le=10_000_000, max_digits=14, decimal_places=2)
    monthly_income: Annotated[
        Decimal,
        _amount_schema(
            "0 or more, under 10^12",
            {"minimum": 0, "maximum": 10**12 - 1},
            r"^[0-9]{1,12}(?:\.[0-9]{1,2})?$",
        ),
    ] = Field(ge=0, lt=10**12, max_digits=14, decimal_places=2)
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

    @field_validator("date_of_birth", mode="before")
    @classmethod
    def _a_date_string(cls, value: Any) -> Any:
        return _iso_string(value, "a date, YYYY-MM-DD")

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


class PersonalDataErasure(BaseModel):
    """Present once the applicant's personal data was erased; the decision stays."""

    erased_at: datetime
    message: str


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
    personal_data_erasure: PersonalDataErasure | None = None
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
