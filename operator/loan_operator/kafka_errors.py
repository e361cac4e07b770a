"""How the operator reads confluent_kafka's many failure shapes: two exceptions.

`KafkaUnreachable` (retry later, with backoff) and `KafkaRequestFailed` (the broker answered
no), for the two Kafka adapters (kafka_admin, kafka_access) and everything that calls them.
"""

from __future__ import annotations

from concurrent.futures import Future
from typing import Any

from confluent_kafka import KafkaError, KafkaException

_UNREACHABLE = {
    KafkaError._TRANSPORT,
    KafkaError._TIMED_OUT,
    KafkaError._ALL_BROKERS_DOWN,
    KafkaError._RESOLVE,
    KafkaError.REQUEST_TIMED_OUT,
    KafkaError.NETWORK_EXCEPTION,
}


COORDINATOR_MOVING = {
    KafkaError.NOT_COORDINATOR,
    KafkaError.COORDINATOR_NOT_AVAILABLE,
    KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
}


def error_code(exc: KafkaException) -> int | None:
    error = exc.args[0] if exc.args else None
    return int(error.code()) if isinstance(error, KafkaError) else None


class KafkaUnreachable(Exception):  # noqa: N818 - a state, not a bug
    """No broker answered within the timeout."""


class KafkaRequestFailed(Exception):  # noqa: N818 - a state, not a bug
    """A broker answered and refused the request."""


class TopicMissing(KafkaRequestFailed):
    pass


class TopicExists(KafkaRequestFailed):
    pass


def translate(exc: BaseException) -> Exception:
    if isinstance(exc, KafkaException) and exc.args and isinstance(exc.args[0], KafkaError):
        error: KafkaError = exc.args[0]
        if error.code() in _UNREACHABLE:
            return KafkaUnreachable(error.str())
        if error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
            return TopicMissing(error.str())
        if error.code() == KafkaError.TOPIC_ALREADY_EXISTS:
            return TopicExists(error.str())
        return KafkaRequestFailed(error.str())
    if isinstance(exc, TimeoutError):
        return KafkaUnreachable("timed out")
    return KafkaRequestFailed(str(exc))


def result(future: Future[Any], timeout: float) -> Any:
    try:
        return future.result(timeout)
    except Exception as exc:
        raise translate(exc) from exc
