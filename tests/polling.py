"""Bounded waiting for tests: poll a condition, fail with a message when time runs out.

The one polling helper of the test suite: `wait_until` fails the test saying what it waited for
and the condition's last value; `poll` returns None instead, for a caller that adds its own
evidence (a log tail) to the failure.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import pytest

T = TypeVar("T")


def poll(condition: Callable[[], T | None], timeout: float, interval: float = 0.1) -> T | None:
    """Calls `condition()` until it is truthy and returns that value; None after `timeout`."""
    return _poll(condition, timeout, interval)[0]


def wait_until(
    condition: Callable[[], T | None], timeout: float = 60.0, interval: float = 0.1, what: str = ""
) -> T:
    """Polls until `condition()` is truthy and returns its value; fails the test on timeout,
    saying `what` it waited for and what the condition last returned."""
    value, last = _poll(condition, timeout, interval)
    if value is None:
        pytest.fail(
            f"timed out after {timeout:.0f}s waiting for {what or 'a condition'}; last: {last!r}"
        )
    return value


def _poll(
    condition: Callable[[], T | None], timeout: float, interval: float
) -> tuple[T | None, T | None]:
    deadline = time.monotonic() + timeout
    last: T | None = None
    while True:
        last = condition()
        if last:
            return last, last
        if time.monotonic() >= deadline:
            return None, last
        time.sleep(interval)
