"""Dead-letter headers, retry backoff, report ids and the CLI's masking: pure logic."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from credit_service.handler import report_id
from prequal import dlq
from prequal.consumer import RetryPolicy
from prequalctl.demo import api_url, random_pan
from prequalctl.dlq import masked_payload


def test_backoff_doubles_from_the_initial_wait_and_is_capped() -> None:
    policy = RetryPolicy(initial_backoff=0.2, max_backoff=1.0)
    assert [policy.backoff(n) for n in (1, 2, 3, 4, 10)] == [0.2, 0.4, 0.8, 1.0, 1.0]


def test_failure_headers_name_origin_group_attempts_and_a_redacted_error() -> None:
    error = ValueError("bad record for ABCDE1234F")
    failure = dlq.Failure.of(
        error, topic="t", partition=2, offset=41, consumer_group="g", attempts=3
    )
    headers = dict(failure.headers())
    assert headers[dlq.ORIGINAL_TOPIC] == b"t"
    assert headers[dlq.ORIGINAL_PARTITION] == b"2"
    assert headers[dlq.ORIGINAL_OFFSET] == b"41"
    assert headers[dlq.CONSUMER_GROUP] == b"g"
    assert headers[dlq.ATTEMPTS] == b"3"
    assert headers[dlq.ERROR_CLASS] == b"ValueError"
    assert headers[dlq.ERROR_MESSAGE] == b"bad record for [PAN-REDACTED]"


def test_a_long_error_is_bounded() -> None:
    assert len(dlq.safe_error_text(RuntimeError("x" * 5000))) == dlq.MAX_ERROR_CHARS


def test_dead_letter_headers_keep_the_original_and_replace_earlier_failures() -> None:
    first = dlq.Failure("t", 0, 1, "g", 1, "E1", "one")
    second = dlq.Failure("t", 0, 9, "g", 3, "E2", "two")
    original = [("ce_id", b"abc"), ("ce_type", b"x")]
    once = dlq.dead_letter_headers(original, first)
    replayed = dlq.replay_headers(once, "t_dlq[0]@0")
    twice = dlq.dead_letter_headers(replayed, second)
    assert twice[:2] == original
    assert [k for k, _ in twice].count(dlq.ERROR_CLASS) == 1
    assert dict(twice)[dlq.ERROR_CLASS] == b"E2"
    assert dlq.REPLAYED_FROM not in dict(twice)
    assert dict(replayed)[dlq.REPLAYED_FROM] == b"t_dlq[0]@0"
    assert dlq.ERROR_CLASS not in dict(replayed)


def test_report_id_is_a_function_of_the_input_event_id() -> None:
    event = uuid.uuid4()
    assert report_id(event) == report_id(uuid.UUID(str(event)))
    assert report_id(event) != report_id(uuid.uuid4())
    assert report_id(event).version == 5


def test_masked_payload_hides_the_ciphertext_and_keeps_the_rest() -> None:
    shown = masked_payload(b'{"application_id": "a", "pan_encrypted": "QUJDREUxMjM0Rg=="}')
    assert shown == {"application_id": "a", "pan_encrypted": "<hidden: 16 characters>"}
    assert masked_payload(b"{not json") == "{not json"


def test_demo_api_url_prefers_flag_then_environment_then_run_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env_file = tmp_path / "env"
    env_file.write_text("DATABASE_URL=postgresql://x\nAPI_URL=http://127.0.0.1:18000\n")
    monkeypatch.delenv("API_URL", raising=False)
    assert api_url(None, env_file) == "http://127.0.0.1:18000"
    assert api_url(None, tmp_path / "missing") == "http://127.0.0.1:8000"
    monkeypatch.setenv("API_URL", "http://127.0.0.1:28000/")
    assert api_url(None, env_file) == "http://127.0.0.1:28000"
    assert api_url("http://127.0.0.1:1/", env_file) == "http://127.0.0.1:1"


def test_demo_pans_are_well_formed_and_never_the_test_pans() -> None:
    pans = {random_pan() for _ in range(200)}
    assert all(len(p) == 10 and p[:5].isalpha() and p[5:9].isdigit() for p in pans)
    assert not pans & {"ABCDE1234F", "FGHIJ5678K"}
