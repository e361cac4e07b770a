"""The leak scan finds a planted plaintext value in any encoding, names where and what, and never
prints the value (tests/leakscan.py).

The planted files live in a folder outside pytest's basetemp: the scan of the whole run after
the suite reads everything under the basetemp and would, rightly, fail on them.
"""

from __future__ import annotations

import base64
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import leakscan
from tests.applications import application, marked_email, marked_name, synthetic_pan


@pytest.fixture
def outside() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="leak-scan-test-") as folder:
        yield Path(folder)


def _kinds(root: Path) -> list[tuple[str, int, str, str]]:
    findings, _, _ = leakscan.scan_tree(root)
    return [(str(f.path), f.line, f.kind, f.encoding) for f in findings]


def test_a_pan_in_a_log_line_is_found_with_its_file_and_line(outside: Path) -> None:
    pan = synthetic_pan()
    (outside / "api.log").write_text(
        '{"level": "INFO", "message": "started"}\n'
        f'{{"level": "INFO", "message": "scored {pan}"}}\n'
    )
    assert _kinds(outside) == [("api.log", 2, leakscan.KINDS["pan"], "text")]


def test_a_name_in_a_pg_dump_bytea_is_found_in_its_hex(outside: Path) -> None:
    personal = b'{"first_name": "' + marked_name().encode() + b'"}'
    (outside / "prequal.sql").write_text(
        "COPY public.blobs (id, data) FROM stdin;\n" + f"1\t\\\\x{personal.hex()}\n" + "\\.\n"
    )
    assert _kinds(outside) == [("prequal.sql", 2, leakscan.KINDS["marker"], "hex")]


@pytest.mark.parametrize("encode", [base64.b64encode, base64.urlsafe_b64encode])
@pytest.mark.parametrize("prefix", [b"", b"x", b"xy"])  # every base64 alignment
def test_a_base64_email_in_a_topic_dump_is_found(
    outside: Path, encode: object, prefix: bytes
) -> None:
    assert callable(encode)
    email = marked_email().encode()
    value = b'{"contact": "' + encode(prefix + email) + b'"}'
    (outside / "kafka-topics.dump").write_bytes(
        b"loan_applications_submitted[0]@7 key=k value=" + value + b"\n"
    )
    assert _kinds(outside) == [("kafka-topics.dump", 1, leakscan.KINDS["marker"], "base64")]


def test_every_generated_personal_value_is_recognised(outside: Path) -> None:
    body = application()
    for field in ("first_name", "last_name", "email", "phone_number", "date_of_birth"):
        (outside / f"{field}.log").write_text(f"value={body[field]}\n")
    kinds = {path: kind for path, _, kind, _ in _kinds(outside)}
    assert kinds == {
        "first_name.log": leakscan.KINDS["marker"],
        "last_name.log": leakscan.KINDS["marker"],
        "email.log": leakscan.KINDS["marker"],
        "phone_number.log": leakscan.KINDS["phone"],
        "date_of_birth.log": leakscan.KINDS["dob"],
    }


def test_what_the_platform_may_store_is_not_a_finding(outside: Path) -> None:
    (outside / "clean.log").write_text(
        '{"pan_masked": "XXXXXX234F", "id": "XABCDE1234FX", "n": 19077311234, '
        f'"sealed": "{base64.b64encode(bytes(range(256))).decode()}"}}\n'
    )
    assert _kinds(outside) == []


def test_the_report_names_the_place_and_kind_but_never_the_value(
    outside: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pan = synthetic_pan()
    (outside / "pods").mkdir()
    (outside / "pods" / "credit.log").write_text(f"decrypting {pan}\n")
    assert leakscan.main([str(outside)]) == 1
    printed = capsys.readouterr().out
    assert "pods/credit.log:1 (byte 11): PAN, text" in printed
    assert pan not in printed


def test_a_dump_that_failed_fails_the_scan(outside: Path) -> None:
    (outside / f"kafka{leakscan.FAILED_DUMP_SUFFIX}").write_text("KafkaException: down\n")
    assert leakscan.main([str(outside)]) == 1
    (outside / f"kafka{leakscan.FAILED_DUMP_SUFFIX}").unlink()
    assert leakscan.main([str(outside)]) == 0
