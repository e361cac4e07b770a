"""JSON log lines with correlation ids, and PAN redaction whatever path the PAN takes."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest

from tests.logcapture import json_lines, json_logs


@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    with json_logs("test-service", "DEBUG") as stream:
        yield stream


_lines = json_lines


def test_a_line_is_json_with_timestamp_level_service_message_and_ids(
    log_stream: io.StringIO,
) -> None:
    logging.getLogger("x").info("accepted", extra={"application_id": "a-1", "event_id": "e-1"})
    (line,) = _lines(log_stream)
    assert line["level"] == "INFO"
    assert line["service"] == "test-service"
    assert line["message"] == "accepted"
    assert line["application_id"] == "a-1"
    assert line["event_id"] == "e-1"
    assert line["timestamp"].endswith("Z")


def test_pans_are_redacted_in_messages_arguments_extras_and_tracebacks(
    log_stream: io.StringIO,
) -> None:
    log = logging.getLogger("leaky")
    log.warning("pan is ABCDE1234F")
    log.warning("pan is %s and %r", "fghij5678k", "XYZAB9876C")
    log.warning("in an id", extra={"application_id": "ABCDE1234F"})
    try:
        raise ValueError("bad PAN QWERT1234Y")
    except ValueError:
        log.exception("failed")
    text = log_stream.getvalue()
    for value in ("ABCDE1234F", "fghij5678k", "XYZAB9876C", "QWERT1234Y"):
        assert value not in text
    assert text.count("[PAN-REDACTED]") >= 5


def test_text_that_only_contains_a_pan_shape_inside_a_longer_token_is_kept(
    log_stream: io.StringIO,
) -> None:
    logging.getLogger("x").info("id XABCDE1234FX stays")
    assert _lines(log_stream)[0]["message"] == "id XABCDE1234FX stays"
