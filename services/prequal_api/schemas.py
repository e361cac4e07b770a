"""Request and response bodies of the HTTP API (the contract is DESIGN.md)."""

from __future__ import annotations

import uuid
from datetime import date, datetime
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


def age_on(birth: date, today: date) -> int:
    return today.year - birth.year - ((today.month, today.day) < (birth.month, birth.day))


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


class ApplicationStatus(BaseModel):
    application_id: uuid.UUID
    status: Status
    pan_masked: str
    credit_score: int | None
    decision_reason: str | None
    max_approved_amount: Decimal | None
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
