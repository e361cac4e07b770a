"""Events on Kafka: CloudEvents 1.0 in binary mode, and the payload models.

Binary mode puts the CloudEvents attributes in `ce_*` record headers and the data, JSON, in the
record value. `ce_id` is the outbox event's id: it stays the same when a record is re-sent, and
consumers dedupe on it (never on topic/partition/offset). The PAN travels only encrypted
(`pan_encrypted`, see prequal.pan), and the payloads carry only what the consumers need.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict

SPEC_VERSION = "1.0"
CONTENT_TYPE = "application/json"
APPLICATION_SUBMITTED = "loan.application.submitted.v1"
CREDIT_REPORT_GENERATED = "credit.report.generated.v1"
APPLICATION_DECIDED = "loan.application.decided.v1"
SOURCES = {
    APPLICATION_SUBMITTED: "/prequal/api",
    CREDIT_REPORT_GENERATED: "/prequal/credit-service",
    APPLICATION_DECIDED: "/prequal/decision-service",
}

LoanType = Literal["PERSONAL", "HOME", "AUTO"]


class InvalidEnvelopeError(ValueError):
    """A record without the CloudEvents headers this platform writes: it can never succeed."""


class _Payload(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class ApplicationSubmitted(_Payload):
    """`loan.application.submitted.v1` on `loan_applications_submitted`."""

    application_id: uuid.UUID
    pan_encrypted: str
    monthly_income: Decimal
    requested_amount: Decimal
    loan_type: LoanType
    submitted_at: datetime


class CreditReportGenerated(_Payload):
    """`credit.report.generated.v1` on `credit_reports_generated`."""

    application_id: uuid.UUID
    credit_score: int
    monthly_income: Decimal
    requested_amount: Decimal
    loan_type: LoanType
    generated_at: datetime


class DecidedOffer(_Payload):
    """The indicative offer: amounts as decimal strings, rates as fractions."""

    amount: Decimal
    term_months: int
    annual_rate: Decimal
    processing_fee: Decimal
    apr: Decimal
    emi: Decimal
    currency: str
    expires_at: datetime


class ApplicationDecided(_Payload):
    """`loan.application.decided.v1` on `loan_applications_decided`: the decision without
    personal data. Reason codes travel without their texts, and neither the credit score nor
    `max_approved_amount` is here: the texts quote the score and the income, and the maximum
    is the income times the term. `client_id` is the OAuth2 client that owns the application
    (the webhook dispatcher delivers to that client's endpoints)."""

    application_id: uuid.UUID
    client_id: str
    status: Literal["PRE_APPROVED", "REJECTED", "MANUAL_REVIEW"]
    reason_codes: tuple[str, ...]
    offer: DecidedOffer | None
    policy_version: str
    decided_at: datetime


PAYLOADS: dict[str, type[_Payload]] = {
    APPLICATION_SUBMITTED: ApplicationSubmitted,
    CREDIT_REPORT_GENERATED: CreditReportGenerated,
    APPLICATION_DECIDED: ApplicationDecided,
}

Headers = list[tuple[str, str | bytes | None]]


def format_time(moment: datetime) -> str:
    """RFC 3339 in UTC, as `ce_time` wants it."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def binary_headers(
    event_id: uuid.UUID | str, event_type: str, time: datetime, source: str | None = None
) -> Headers:
    return [
        ("ce_specversion", b"1.0"),
        ("ce_id", str(event_id).encode()),
        ("ce_type", event_type.encode()),
        ("ce_source", (source or SOURCES.get(event_type, "/prequal")).encode()),
        ("ce_time", format_time(time).encode()),
        ("content-type", b"application/json"),
    ]


@dataclass(frozen=True)
class CloudEventAttributes:
    id: uuid.UUID
    type: str
    source: str
    time: str
    specversion: str


def parse_headers(headers: Sequence[tuple[str, str | bytes | None]] | None) -> CloudEventAttributes:
    """The attributes of a binary-mode record; InvalidEnvelopeError when any is missing."""
    found = {
        name: value.decode("utf-8", "replace") if isinstance(value, bytes) else value or ""
        for name, value in headers or ()
    }
    missing = [
        h for h in ("ce_specversion", "ce_id", "ce_type", "ce_source", "ce_time") if h not in found
    ]
    if missing:
        raise InvalidEnvelopeError(f"record lacks CloudEvents headers {missing}")
    if found["ce_specversion"] != SPEC_VERSION:
        raise InvalidEnvelopeError(f"unsupported ce_specversion {found['ce_specversion']!r}")
    try:
        event_id = uuid.UUID(found["ce_id"])
    except ValueError:
        raise InvalidEnvelopeError("ce_id is not a UUID") from None
    return CloudEventAttributes(
        id=event_id,
        type=found["ce_type"],
        source=found["ce_source"],
        time=found["ce_time"],
        specversion=found["ce_specversion"],
    )


def parse_payload(event_type: str, value: bytes) -> _Payload:
    """The payload model for `event_type`; InvalidEnvelopeError for unknown types or bad JSON."""
    model = PAYLOADS.get(event_type)
    if model is None:
        raise InvalidEnvelopeError(f"unknown event type {event_type!r}")
    try:
        return model.model_validate_json(value)
    except ValueError as exc:
        raise InvalidEnvelopeError(f"payload of {event_type} is invalid: {exc}") from None
