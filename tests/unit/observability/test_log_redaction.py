"""The redaction filter keeps e-mail addresses and phone numbers out of every log line, as it
does PANs, without mangling the ids and numbers operators need; the level is configuration."""

from __future__ import annotations

import io
import logging
import uuid
from collections.abc import Iterator

import pytest

from prequal.logging import configure_logging, redact
from tests.logcapture import json_lines, json_logs


@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    with json_logs("loan-operator", "INFO") as stream:
        yield stream


_lines = json_lines


@pytest.mark.parametrize(
    "text",
    [
        "asha.rao@example.com",
        "Asha.Rao+loans@mail.example.co.in",
        "9876543210",
        "+91 9876543210",
        "+91-9876543210",
        "919876543210",
    ],
)
def test_emails_and_phone_numbers_are_redacted(text: str) -> None:
    redacted = redact(f"customer {text}, please")
    assert text not in redacted
    assert "9876543210" not in redacted
    assert "@" not in redacted
    assert redacted.startswith("customer [")
    assert redacted.endswith("], please")


@pytest.mark.parametrize(
    "text",
    [
        str(uuid.UUID("12345678-1234-5678-1234-567890123456")),
        "loan_applications_submitted[2]@1234567",
        "offset 98765432101",  # 11 digits: not a phone number
        "took 123 ms for 4500 records",
    ],
)
def test_ids_offsets_and_other_numbers_are_kept(text: str) -> None:
    assert redact(text) == text


def test_every_path_into_a_line_is_redacted(log_stream: io.StringIO) -> None:
    log = logging.getLogger("kopf.objects")
    log.info("mail %s phone %s", "asha.rao@example.com", 9876543210)
    log.info("in an id", extra={"application_id": "asha.rao@example.com"})
    try:
        raise ValueError("bad contact 9876543210 / asha.rao@example.com")
    except ValueError:
        log.exception("failed")
    text = log_stream.getvalue()
    assert "asha.rao@example.com" not in text
    assert "9876543210" not in text
    lines = _lines(log_stream)
    assert lines[0]["message"] == "mail [EMAIL-REDACTED] phone [PHONE-REDACTED]"
    assert lines[1]["application_id"] == "[EMAIL-REDACTED]"
    assert "[PHONE-REDACTED]" in lines[2]["exception"]
    assert all(line["service"] == "loan-operator" for line in lines)


def test_the_level_comes_from_configuration() -> None:
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    stream = io.StringIO()
    try:
        configure_logging("credit-service", "WARNING", stream)
        logging.getLogger("x").info("not shown")
        logging.getLogger("x").warning("shown")
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in saved_handlers:
            root.addHandler(handler)
        root.setLevel(saved_level)
    [line] = _lines(stream)
    assert (line["level"], line["message"]) == ("WARNING", "shown")
