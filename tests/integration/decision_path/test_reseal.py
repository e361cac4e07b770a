"""`prequalctl keys reseal` moves every data key sealed to an old key pair to the active one:
the same data key, bound to the same application, now opened by the new private key alone, so
the old pair can be retired. It is resumable after a kill mid-batch, skips erased applications
(and one being erased), audits every moved application in its batch's transaction (one
multi-row INSERT), so `prequalctl audit --application` names who resealed it, and
credit-service scores a resealed application holding only the new private key."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from prequal import erasure, events, sealing
from prequalctl.main import main as prequalctl
from prequalctl.reseal import Resealer, reseal_batch
from tests.polling import wait_until

from .conftest import World, insert_sealed_application, sealed_payload

BIN = Path(sys.executable).parent


@dataclass(frozen=True)
class Pairs:
    """The credit service's pair `s1` the rows were sealed to, and `s2`, active after a rotation."""

    old: sealing.KeyPair
    new: sealing.KeyPair

    @property
    def old_sealer(self) -> sealing.Sealer:
        return sealing.Sealer({"s1": self.old.public}, "s1")

    def opener(self, *key_ids: str) -> sealing.Opener:
        held = {"s1": self.old.private, "s2": self.new.private}
        return sealing.Opener({k: held[k] for k in key_ids})

    def env(self, database_url: str) -> dict[str, str]:
        """What the key Secret holds after the rotation, as the environment."""
        return {
            "DATABASE_URL": database_url,
            "SECRETS_DIR": "/nonexistent",
            "SEALING_PRIVATE_KEYS": sealing.format_key_list(
                {"s1": self.old.private, "s2": self.new.private}
            ),
            "SEALING_PUBLIC_KEYS": sealing.format_key_list(
                {"s1": self.old.public, "s2": self.new.public}
            ),
            "SEALING_ACTIVE_KEY_ID": "s2",
        }


@pytest.fixture(scope="module")
def pairs() -> Pairs:
    return Pairs(sealing.generate_key_pair(), sealing.generate_key_pair())


def _data_keys(database_url: str) -> dict[uuid.UUID, tuple[str, bytes]]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT application_id, key_id, sealed_key FROM application_data_keys"
        ).fetchall()
    return {r[0]: (r[1], bytes(r[2])) for r in rows}


def _erase(conn: psycopg.Connection[Any], application_id: uuid.UUID) -> None:
    params = erasure.Erasure(application_id, None, "test", "retention").params()
    assert conn.execute(erasure.ERASE_SQL, params).fetchone() is not None


@dataclass(frozen=True)
class ResealRow:
    application_id: uuid.UUID | None
    principal: str
    purpose: str
    key_id: str
    request_id: str | None
    detail: str


def _reseal_audit(database_url: str) -> list[ResealRow]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT application_id, principal, purpose, key_id, request_id, detail "
            "FROM audit_log WHERE action = 'reseal' ORDER BY id"
        ).fetchall()
    return [ResealRow(*row) for row in rows]


def test_reseal_moves_every_data_key_skips_erased_ones_and_credit_opens_with_the_new_key(
    world: World,
    pairs: Pairs,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    apps = [insert_sealed_application(world.database_url, pairs.old_sealer) for _ in range(7)]
    stored = _data_keys(world.database_url)
    before = {app.id: pairs.opener("s1").open_key(stored[app.id][1], app.id) for app, _ in apps}
    erased, being_erased = apps[0][0], apps[1][0]
    with psycopg.connect(world.database_url) as conn:
        _erase(conn, erased.id)
    for name, value in pairs.env(world.database_url).items():
        monkeypatch.setenv(name, value)

    # An erasure in flight holds its row: the reseal skips it, and it is gone once committed.
    with psycopg.connect(world.database_url) as eraser:
        _erase(eraser, being_erased.id)
        assert prequalctl(["keys", "reseal", "--batch", "2", "--principal", "ops@lender"]) == 0
        eraser.commit()
    # The count was taken while the erasure was in flight, so it still saw that row.
    assert "6 data keys to reseal to key s2" in capsys.readouterr().out

    stored = _data_keys(world.database_url)
    assert erased.id not in stored
    assert being_erased.id not in stored
    kept = [app for app, _ in apps[2:]]
    assert {stored[app.id][0] for app in kept} == {"s2"}
    only_new = pairs.opener("s2")
    for app in kept:
        assert sealing.sealed_key_id(stored[app.id][1]) == "s2"
        assert only_new.open_key(stored[app.id][1], app.id) == before[app.id]
        with pytest.raises(sealing.TamperedSealError):  # still bound to its application
            only_new.open_key(stored[app.id][1], uuid.uuid4())
    assert prequalctl(["keys", "reseal", "--status"]) == 0
    out = capsys.readouterr().out
    assert "s1: 0 sealed data keys (retirable)" in out
    assert "s2: 5 sealed data keys (active)" in out

    # One row per moved application, none for the erased ones, all of one run (request id),
    # each naming its batch (three batches of at most 2) and the key it left.
    audited = _reseal_audit(world.database_url)
    assert [row.application_id for row in audited] == sorted(app.id for app in kept)
    assert {(r.principal, r.purpose, r.key_id) for r in audited} == {
        ("ops@lender", "key-rotation", "s2")
    }
    [request_id] = {row.request_id for row in audited}
    assert request_id is not None
    assert request_id.startswith("reseal-")
    assert [row.detail for row in audited] == [
        f"batch {n}: data key moved from s1 to s2" for n in (1, 1, 2, 2, 3)
    ]

    # `prequalctl audit` answers "who touched application X" for a reseal too.
    assert prequalctl(["audit", "--application", str(kept[0].id), "-o", "json"]) == 0
    trail = json.loads(capsys.readouterr().out)
    [resealed] = [row for row in trail if row["action"] == "reseal"]
    assert (resealed["principal"], resealed["purpose"], resealed["request_id"]) == (
        "ops@lender",
        "key-rotation",
        request_id,
    )

    # Repeating it moves nothing and writes no audit row.
    assert prequalctl(["keys", "reseal", "--request-id", "CHG-1"]) == 0
    assert "0 data keys to reseal" in capsys.readouterr().out
    assert len(_reseal_audit(world.database_url)) == 5

    # credit-service with the new private key only (the old one retired) scores a moved row.
    app, pan_ciphertext = apps[3]
    credit = world.consumers.credit(world.topics, world.keyring, only_new)
    world.producer.event(
        world.topics.submitted,
        events.APPLICATION_SUBMITTED,
        sealed_payload(app, pan_ciphertext),
        key=str(app.id),
    )
    wait_until(lambda: credit.sample("credit_reports_total") == 1)
    with psycopg.connect(world.database_url) as conn:
        audited_open = conn.execute(
            "SELECT key_id FROM audit_log WHERE application_id = %s AND action = 'decrypt'",
            (app.id,),
        ).fetchall()
    assert audited_open == [("s2",)]


def _cli(env: dict[str, str]) -> tuple[list[str], dict[str, str]]:
    inherited = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")}
    return [str(BIN / "prequalctl"), "keys", "reseal", "--batch", "2"], {**inherited, **env}


def test_a_reseal_killed_mid_batch_changes_nothing_in_that_batch_and_the_next_run_resumes(
    world: World, pairs: Pairs
) -> None:
    apps = [insert_sealed_application(world.database_url, pairs.old_sealer)[0].id for _ in range(5)]
    audits_before = len(_reseal_audit(world.database_url))
    resealer = Resealer(pairs.opener("s1", "s2"), sealing.Sealer({"s2": pairs.new.public}, "s2"))
    with psycopg.connect(world.database_url, autocommit=True) as conn:
        moved, failed, _ = reseal_batch(conn, resealer, uuid.UUID(int=0), 2, request_id="r-1")
    assert (moved, failed) == (2, 0)
    audited = _reseal_audit(world.database_url)[audits_before:]
    assert [r.application_id for r in audited] == sorted(apps)[:2]  # application id order
    first = _data_keys(world.database_url)
    command, env = _cli(pairs.env(world.database_url))

    # The fault: the batch's audit rows cannot be written (the table is locked), so the process
    # is caught with its batch's updates made and not committed, and killed there. The rows
    # are one statement (an INSERT … SELECT FROM unnest), not one per application.
    with (
        psycopg.connect(world.database_url) as locker,
        psycopg.connect(world.database_url, autocommit=True) as watcher,
    ):
        locker.execute("LOCK TABLE audit_log IN EXCLUSIVE MODE")
        process = subprocess.Popen(
            command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )

        def blocked_backend() -> int | None:
            row = watcher.execute(
                "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND query LIKE 'INSERT INTO audit_log%%unnest%%'"
            ).fetchone()
            return int(row[0]) if row else None

        backend = wait_until(blocked_backend, what="the reseal's audit insert to wait")
        process.send_signal(signal.SIGKILL)
        process.wait(10)
        locker.rollback()
        wait_until(
            lambda: (
                watcher.execute(
                    "SELECT count(*) = 0 FROM pg_stat_activity WHERE pid = %s", (backend,)
                ).fetchone()
                == (True,)
            ),
            what="the killed client's backend to end",
        )
    assert _data_keys(world.database_url) == first, "the killed batch changed nothing"
    assert len(_reseal_audit(world.database_url)) == audits_before + 2

    finished = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert finished.returncode == 0, finished.stderr
    stored = _data_keys(world.database_url)
    for app_id in apps:
        assert stored[app_id][0] == "s2"
        pairs.opener("s2").open_key(stored[app_id][1], app_id)
    assert "3 data keys to reseal" in finished.stdout
    assert "s1: 0 sealed data keys (retirable)" in finished.stdout
    audited = _reseal_audit(world.database_url)[audits_before:]
    # Each application once: the killed batch left no row.
    assert [r.application_id for r in audited] == sorted(apps)
