"""`prequalctl erase`: one application by id, or every one past the retention period (with a
dry run first); each erasure audited, the decision-side columns kept."""

from __future__ import annotations

import uuid

import psycopg
import pytest

from prequalctl.main import main
from tests.applications import application
from tests.integration.submission.conftest import ApiProcess


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, database_url: str, tmp_path: object) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("SECRETS_DIR", "/nonexistent")
    monkeypatch.delenv("PERSONAL_DATA_RETENTION_DAYS", raising=False)


def _erased(database_url: str, ids: list[str]) -> dict[str, bool]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT a.id::text, a.personal_data_erased_at IS NOT NULL AND k.application_id IS NULL "
            "FROM applications a LEFT JOIN application_data_keys k ON k.application_id = a.id "
            "WHERE a.id = ANY(%s::uuid[])",
            (ids,),
        ).fetchall()
    return dict(rows)


def test_erase_older_than_dry_runs_then_erases_only_old_applications(
    api: ApiProcess, database_url: str, cli_env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    with api.client() as client:
        ids = [
            client.post("/applications", json=application()).json()["application_id"]
            for _ in range(3)
        ]
    old, new = ids[:2], ids[2:]
    with psycopg.connect(database_url) as conn:
        conn.execute(
            "UPDATE applications SET created_at = now() - interval '40 days' "
            "WHERE id = ANY(%s::uuid[])",
            (old,),
        )
    assert main(["erase", "--older-than", "30d", "--dry-run"]) == 0
    assert "2 applications would be erased" in capsys.readouterr().out
    assert not any(_erased(database_url, ids).values())

    assert main(["erase", "--older-than", "30d"]) == 0
    out = capsys.readouterr().out
    assert "erased 2 applications so far" in out
    assert "done: erased the personal data of 2 applications" in out
    state = _erased(database_url, ids)
    assert all(state[i] for i in old)
    assert not any(state[i] for i in new)
    with psycopg.connect(database_url) as conn:
        audited = conn.execute(
            "SELECT count(*) FROM audit_log WHERE action = 'erase' AND actor = 'prequalctl' "
            "AND application_id = ANY(%s::uuid[])",
            (old,),
        ).fetchone()
    assert audited == (2,)


def test_erase_one_by_id_and_an_unknown_id_fails(
    api: ApiProcess, database_url: str, cli_env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    with api.client() as client:
        app_id = client.post("/applications", json=application()).json()["application_id"]
    assert main(["erase", app_id]) == 0
    assert _erased(database_url, [app_id]) == {app_id: True}
    assert main(["erase", str(uuid.uuid4())]) == 1
    assert "no application" in capsys.readouterr().err


def test_a_bad_period_or_nothing_to_go_by_is_refused(
    cli_env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["erase", "--older-than", "30 days"]) == 2
    assert "expected a positive period like 30d" in capsys.readouterr().err
    assert main(["erase"]) == 2
    assert "PERSONAL_DATA_RETENTION_DAYS" in capsys.readouterr().err
