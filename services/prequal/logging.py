"""JSON-lines logging to stdout, with redaction of personal data enforced on the handler.

Every record that reaches stdout passes the redaction filter, whichever logger wrote it
(uvicorn, librdkafka callbacks, kopf, ours): anything shaped like a PAN becomes
`[PAN-REDACTED]`, an e-mail address `[EMAIL-REDACTED]`, a standalone 10-digit number (the
phone numbers the API accepts, with or without a +91 prefix) `[PHONE-REDACTED]`.
`application_id` and `event_id` passed in `extra=` become top-level fields (correlation ids).
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from typing import Any

PAN_SHAPED = re.compile(r"(?<![A-Za-z0-9])[A-Za-z]{5}[0-9]{4}[A-Za-z](?![A-Za-z0-9])")
REDACTED = "[PAN-REDACTED]"
EMAIL_SHAPED = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
EMAIL_REDACTED = "[EMAIL-REDACTED]"
# Bounded by non-alphanumerics on both sides, so no run of digits inside a UUID or a longer
# number is touched; a 10-digit Unix time in a message is redacted too (a price worth paying).
PHONE_SHAPED = re.compile(r"(?<![A-Za-z0-9])(?:\+?91[ -]?)?[0-9]{10}(?![A-Za-z0-9])")
PHONE_REDACTED = "[PHONE-REDACTED]"
CORRELATION_FIELDS = ("application_id", "event_id", "request_id")


def redact(text: str) -> str:
    text = PAN_SHAPED.sub(REDACTED, text)
    text = EMAIL_SHAPED.sub(EMAIL_REDACTED, text)
    return PHONE_SHAPED.sub(PHONE_REDACTED, text)


class PanRedactingFilter(logging.Filter):
    """Renders the message once, redacted, so no argument can smuggle a PAN (or an e-mail
    address or phone number, which it redacts as well) past it."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        for name in CORRELATION_FIELDS:
            value = getattr(record, name, None)
            if isinstance(value, str):
                setattr(record, name, redact(value))
        return True


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "service": self.service,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in CORRELATION_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                line[name] = str(value)
        if record.exc_text:
            line["exception"] = record.exc_text
        return json.dumps(line, ensure_ascii=False)


def configure_logging(service: str, level: str = "INFO", stream: Any = None) -> logging.Handler:
    """Replaces the root handlers with one redacting JSON handler; returns it (for tests)."""
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(JsonFormatter(service))
    handler.addFilter(PanRedactingFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    return handler
