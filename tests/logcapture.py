"""Capture what the platform's JSON logging writes, for tests of the log format and redaction."""

from __future__ import annotations

import contextlib
import io
import json
import logging
from collections.abc import Iterator

from prequal.logging import configure_logging


@contextlib.contextmanager
def json_logs(service: str, level: str) -> Iterator[io.StringIO]:
    """Configures the root logger as `service` would, into a string; restores it afterwards."""
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    stream = io.StringIO()
    configure_logging(service, level, stream)
    try:
        yield stream
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in saved_handlers:
            root.addHandler(handler)
        root.setLevel(saved_level)


def json_lines(stream: io.StringIO) -> list[dict[str, str]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]
