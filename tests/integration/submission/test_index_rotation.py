"""A blind index that rotates, through real API processes on one PostgreSQL database.

Five API processes stand for the stages of a rotation: `legacy` holds only the key from before
migration 0010 (`PAN_BLIND_INDEX_KEY`, ring id v0); `old` has v1 active (v0 still live);
`distributed` has received v2 but keeps v1 active; `new` has v2 active with v0 and v1 still
live (a pod that activated first, while `distributed` has not yet); `retired` holds v2 only
(after `prequalctl reindex`). Pods that run side by side must be neighbours in this list: a
pod must hold every key another pod has active (distribute, then activate). The tests run in
file order: the reindex comes last and moves what the earlier ones stored.
"""

from __future__ import annotations

import base64
import os
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import psycopg
import pytest

from prequal.blind_index import IndexKeyRing, lock_keys
from prequal.settings import IndexKeySettings
from prequalctl.main import main
from tests.applications import application, marked_name, synthetic_pan
from tests.integration.submission.conftest import ApiProcess, base_env, start_api
from tests.polling import wait_until
from tests.tokens import Oidc

KEYS = {kid: base64.b64encode(os.urandom(32)).decode() for kid in ("v0", "v1", "v2")}
RINGS: dict[str, dict[str, str]] = {
    "legacy": {"PAN_BLIND_INDEX_KEY": KEYS["v0"]},
    "old": {
        "PAN_BLIND_INDEX_KEY": KEYS["v0"],
        "PAN_INDEX_KEYS": f"v1:{KEYS['v1']}",
        "PAN_INDEX_ACTIVE_KEY_ID": "v1",
    },
    "distributed": {
        "PAN_BLIND_INDEX_KEY": KEYS["v0"],
        "PAN_INDEX_KEYS": f"v1:{KEYS['v1']},v2:{KEYS['v2']}",
        "PAN_INDEX_ACTIVE_KEY_ID": "v1",
    },
    "new": {
        "PAN_BLIND_INDEX_KEY": KEYS["v0"],
        "PAN_INDEX_KEYS": f"v1:{KEYS['v1']},v2:{KEYS['v2']}",
        "PAN_INDEX_ACTIVE_KEY_ID": "v2",
    },
    "retired": {"PAN_INDEX_KEYS": f"v2:{KEYS['v2']}", "PAN_INDEX_ACTIVE_KEY_ID": "v2"},
}


def _ring(stage: str) -> IndexKeyRing:
    settings = IndexKeySettings(**{k.lower(): v for k, v in RINGS[stage].items()})
    return settings.index_key_ring()


@pytest.fixture(scope="module")
def apis(
    tmp_path_factory: pytest.TempPathFactory,
    api_env: dict[str, str],
    oidc: Oidc,
) -> Iterator[dict[str, ApiProcess]]:
    shared = {k: v for k, v in api_env.items() if not k.startswith("PAN_INDEX")}
    started: dict[str, ApiProcess] = {}
    try:
        for stage, ring in RINGS.items():
            started[stage] = start_api(
                tmp_path_factory.mktemp(stage),
                {**shared, **ring},
                name=f"prequal-api-{stage}",
                token=oidc.token(),
            )
        yield started
    finally:
        for proc in started.values():
            proc.process.stop()


def _post(api: ApiProcess, body: dict[str, object], key: str | None = None) -> httpx.Response:
    with api.client() as http:
        return http.post(
            "/applications", json=body, headers={"Idempotency-Key": key} if key else None
        )


def _index_key_ids(database_url: str, ids: list[str]) -> list[str | None]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT pan_index_key_id FROM applications WHERE id = ANY(%s::uuid[]) ORDER BY id",
            (ids,),
        ).fetchall()
    return [r[0] for r in rows]


def test_each_stored_index_names_the_key_it_was_made_with(
    apis: dict[str, ApiProcess], database_url: str
) -> None:
    made = {
        stage: _post(apis[stage], application()).json()["application_id"]
        for stage in ("legacy", "old", "distributed", "new")
    }
    stored = [_index_key_ids(database_url, [made[s]]) for s in made]
    assert stored == [["v0"], ["v1"], ["v1"], ["v2"]]


@pytest.mark.parametrize(
    ("first", "then"),
    [
        ("legacy", "old"),
        ("old", "distributed"),
        ("distributed", "new"),
        ("new", "distributed"),  # the pod that has not activated v2 yet finds v2's rows
        ("legacy", "new"),
    ],
)
def test_a_duplicate_stored_under_an_older_key_is_found_under_the_active_one(
    apis: dict[str, ApiProcess], first: str, then: str
) -> None:
    pan_number = synthetic_pan()
    accepted = _post(apis[first], application(pan_number=pan_number))
    assert accepted.status_code == 202
    again = _post(apis[then], application(pan_number=pan_number))
    assert again.status_code == 409
    assert again.json()["application_id"] == accepted.json()["application_id"]


def test_an_idempotent_replay_across_a_rotation_returns_the_original(
    apis: dict[str, ApiProcess], database_url: str
) -> None:
    key = f"retry-{uuid.uuid4()}"
    body = application()
    first = _post(apis["old"], body, key)
    replay = _post(apis["new"], body, key)
    assert _post(apis["distributed"], body, key).json() == first.json()
    assert first.status_code == replay.status_code == 202
    assert replay.json() == first.json()
    assert replay.headers.get("idempotent-replayed") == "true"
    # The body is compared under the key the stored row names (v1), not the active one (v2).
    other = _post(apis["new"], application(first_name=marked_name("Ravi")), key)
    assert other.status_code == 422
    assert other.json()["error_code"] == "IDEMPOTENCY_KEY_REUSED"
    with psycopg.connect(database_url) as conn:
        stored = conn.execute(
            "SELECT index_key_id FROM idempotency_keys k JOIN applications a "
            "ON a.id = k.application_id WHERE a.id = %s",
            (first.json()["application_id"],),
        ).fetchall()
    assert stored == [("v1",)]


def _waiting_for_advisory_locks(database_url: str) -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
        ).fetchone()
    return int(row[0]) if row else 0


def test_twenty_simultaneous_submissions_through_pods_with_different_active_keys_give_one_202(
    apis: dict[str, ApiProcess], database_url: str
) -> None:
    """The worst moment, made deterministic: the PAN's locks are held while ten submissions
    reach each pod (one with v1 active, one with v2), then all are released at once."""
    body = application()
    pan_number = str(body["pan_number"])
    pods = [apis["distributed"], apis["new"]]
    candidates = _ring("new").pan_candidates(pan_number)

    def submit(i: int) -> httpx.Response:
        return _post(pods[i % 2], body)

    with (
        psycopg.connect(database_url) as holder,
        ThreadPoolExecutor(max_workers=20) as pool,
    ):
        for key in lock_keys(candidates.values()):
            holder.execute("SELECT pg_advisory_xact_lock(%s)", (key,))
        futures = [pool.submit(submit, i) for i in range(20)]
        wait_until(
            lambda: _waiting_for_advisory_locks(database_url) >= 20 or None,
            timeout=4,
            what="twenty submissions queued on the PAN's locks",
        )
        holder.commit()
        responses = [f.result() for f in futures]
    assert sorted(r.status_code for r in responses) == [202] + [409] * 19
    with psycopg.connect(database_url) as conn:
        created = conn.execute(
            "SELECT pan_index_key_id FROM applications WHERE pan_blind_index = ANY(%s::bytea[])",
            (list(candidates.values()),),
        ).fetchall()
    assert len(created) == 1, created


def test_concurrent_retries_of_one_idempotency_key_across_active_keys_create_one_application(
    apis: dict[str, ApiProcess],
) -> None:
    key = f"retry-{uuid.uuid4()}"
    body = application()
    pods = [apis["distributed"], apis["new"]]

    def submit(i: int) -> tuple[int, str]:
        r = _post(pods[i % 2], body, key)
        return r.status_code, r.json().get("application_id", "")

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(submit, range(8)))
    assert {code for code, _ in results} == {202}
    assert len({app_id for _, app_id in results}) == 1


@pytest.fixture
def reindex_env(
    monkeypatch: pytest.MonkeyPatch, database_url: str, pan_keys: dict[str, str]
) -> None:
    env = base_env(
        DATABASE_URL=database_url,
        **{k: v for k, v in pan_keys.items() if k == "SEALING_PRIVATE_KEYS"},
        **RINGS["new"],
    )
    for name in ("PAN_INDEX_KEYS", "PAN_INDEX_ACTIVE_KEY_ID", "PAN_BLIND_INDEX_KEY"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)


def test_reindex_moves_every_row_to_the_active_key_resumably_and_the_old_keys_retire(
    apis: dict[str, ApiProcess],
    database_url: str,
    reindex_env: None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    pan_number = synthetic_pan()
    under_v1 = _post(apis["old"], application(pan_number=pan_number)).json()["application_id"]
    held = _post(apis["legacy"], application()).json()["application_id"]
    # A row another transaction holds is skipped, not waited for; the next run moves it.
    with psycopg.connect(database_url) as blocker:
        blocker.execute("SELECT 1 FROM applications WHERE id = %s FOR UPDATE", (held,))
        assert main(["reindex", "--batch", "3"]) == 0
        first = capsys.readouterr().out
    assert "applications to move to index key v2" in first
    assert "moved 3 of" in first  # progress per batch
    assert _index_key_ids(database_url, [held]) == ["v0"]
    assert _index_key_ids(database_url, [under_v1]) == ["v2"]
    assert main(["reindex"]) == 0
    assert "done: moved 1 applications" in capsys.readouterr().out
    with psycopg.connect(database_url) as conn:
        left = conn.execute(
            "SELECT count(*) FROM applications WHERE pan_index_key_id <> 'v2'"
        ).fetchone()
        audited = conn.execute(
            "SELECT count(*) FROM audit_log WHERE action = 'decrypt' AND purpose = 'reindex' "
            "AND application_id = ANY(%s::uuid[])",
            ([under_v1, held],),
        ).fetchone()
        # Idempotency keys cannot be re-keyed: the old ones retire with the retention.
        conn.execute("UPDATE idempotency_keys SET created_at = now() - interval '25 hours'")
    assert left == (0,)
    assert audited == (2,)
    # Retired: a pod holding only v2 still finds the PAN first stored under v1.
    again = _post(apis["retired"], application(pan_number=pan_number))
    assert again.status_code == 409
    assert again.json()["application_id"] == under_v1
    assert main(["reindex", "--status"]) == 0
    status = capsys.readouterr().out
    assert "v0: 0 applications, 0 live idempotency keys (retirable)" in status
    assert "v1: 0 applications, 0 live idempotency keys (retirable)" in status
    (active,) = [line for line in status.splitlines() if line.startswith("v2:")]
    assert active.endswith("(active)")
