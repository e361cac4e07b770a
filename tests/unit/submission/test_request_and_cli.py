"""The application request model and `prequalctl`'s parser and key generation."""

from __future__ import annotations

import base64
import os
import stat
from datetime import date
from pathlib import Path

import pytest
from pydantic import ValidationError

from prequal_api.schemas import ApplicationRequest, age_on
from prequalctl.main import build_parser, main
from tests.applications import consent

BODY = {
    "pan_number": " abcde1234f ",
    "first_name": " Asha ",
    "last_name": "Rao",
    "date_of_birth": "1990-04-12",
    "email": "asha@example.com",
    "phone_number": "9876543210",
    "requested_amount": "500000",
    "monthly_income": "85000",
    "consent": consent(),
}


def test_request_normalizes_pan_and_names_and_defaults_the_loan_type() -> None:
    request = ApplicationRequest.model_validate(BODY)
    assert request.pan_number == "ABCDE1234F"
    assert request.first_name == "Asha"
    assert request.loan_type == "PERSONAL"


def test_request_errors_do_not_carry_the_pan() -> None:
    with pytest.raises(ValidationError) as caught:
        ApplicationRequest.model_validate({**BODY, "pan_number": "ABCDE12345"})
    errors = caught.value.errors(include_input=False)
    assert [e["loc"] for e in errors] == [("pan_number",)]


def test_age_counts_completed_years() -> None:
    assert age_on(date(2000, 6, 15), date(2018, 6, 14)) == 17
    assert age_on(date(2000, 6, 15), date(2018, 6, 15)) == 18


def test_keys_generate_prints_env_assignments_of_fresh_keys(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["keys", "generate", "--key-id", "v2"]) == 0
    first = capsys.readouterr().out
    assert main(["keys", "generate", "--key-id", "v2"]) == 0
    second = capsys.readouterr().out
    names = [line.split("=", 1)[0] for line in first.splitlines()]
    assert names == [
        "SEALING_PUBLIC_KEYS",
        "SEALING_ACTIVE_KEY_ID",
        "PAN_INDEX_KEYS",
        "PAN_INDEX_ACTIVE_KEY_ID",
        "WEBHOOK_SEALING_PUBLIC_KEYS",
        "WEBHOOK_SEALING_ACTIVE_KEY_ID",
        "SEALING_PRIVATE_KEYS",
        "WEBHOOK_SEALING_PRIVATE_KEYS",
    ]
    assert "SEALING_ACTIVE_KEY_ID=v2" in first
    assert first != second


def test_keys_generate_for_the_api_prints_no_private_key(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["keys", "generate", "--for", "api", "--kem", "x25519"]) == 0
    out = capsys.readouterr().out
    assert "PRIVATE_KEYS" not in out
    assert "SEALING_PUBLIC_KEYS=v1:" in out
    assert "WEBHOOK_SEALING_PUBLIC_KEYS=v1:" in out


@pytest.mark.parametrize(
    ("role", "private"),
    [("credit", "SEALING_PRIVATE_KEYS"), ("webhooks", "WEBHOOK_SEALING_PRIVATE_KEYS")],
)
def test_keys_generate_gives_each_opener_only_its_own_private_key(
    capsys: pytest.CaptureFixture[str], role: str, private: str
) -> None:
    assert main(["keys", "generate", "--for", role, "--kem", "x25519"]) == 0
    names = [line.split("=", 1)[0] for line in capsys.readouterr().out.splitlines()]
    assert names == [private]


def test_keys_generate_can_write_secret_files_readable_only_by_the_owner(tmp_path: Path) -> None:
    target = tmp_path / "keys"
    assert main(["keys", "generate", "--output-dir", str(target)]) == 0
    files = sorted(p.name for p in target.iterdir())
    assert files == [
        "pan_index_active_key_id",
        "pan_index_keys",
        "sealing_active_key_id",
        "sealing_private_keys",
        "sealing_public_keys",
        "webhook_sealing_active_key_id",
        "webhook_sealing_private_keys",
        "webhook_sealing_public_keys",
    ]
    for path in target.iterdir():
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_an_invalid_key_id_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["keys", "generate", "--key-id", "bad id"]) == 2
    assert "key id must match" in capsys.readouterr().err


def test_help_lists_the_command_groups(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert "db" in out
    assert "keys" in out
    assert main(["db"]) == 2  # a noun without a verb prints its help


def test_keys_index_rotate_distributes_then_activates_and_never_replaces(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SECRETS_DIR", "/nonexistent")
    monkeypatch.delenv("PAN_BLIND_INDEX_KEY", raising=False)
    v1 = base64.b64encode(os.urandom(32)).decode()
    monkeypatch.setenv("PAN_INDEX_KEYS", f"v1:{v1}")
    monkeypatch.setenv("PAN_INDEX_ACTIVE_KEY_ID", "v1")
    assert main(["keys", "index-rotate", "--key-id", "v2", "--phase", "activate"]) == 2
    assert "distribute it first" in capsys.readouterr().err
    assert main(["keys", "index-rotate", "--key-id", "v2", "--phase", "distribute"]) == 0
    out = dict(line.split("=", 1) for line in capsys.readouterr().out.splitlines())
    assert out["PAN_INDEX_ACTIVE_KEY_ID"] == "v1"
    assert out["PAN_INDEX_KEYS"].startswith(f"v1:{v1},v2:")
    monkeypatch.setenv("PAN_INDEX_KEYS", out["PAN_INDEX_KEYS"])
    assert main(["keys", "index-rotate", "--key-id", "v2", "--phase", "distribute"]) == 2
    assert "never replaced" in capsys.readouterr().err
    assert main(["keys", "index-rotate", "--key-id", "v2", "--phase", "activate"]) == 0
    activated = dict(line.split("=", 1) for line in capsys.readouterr().out.splitlines())
    assert activated == {**out, "PAN_INDEX_ACTIVE_KEY_ID": "v2"}
