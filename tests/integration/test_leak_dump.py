"""The leak dump writes what a real PostgreSQL holds so the scan can see it: a personal value
in a bytea column comes out of `pg_dump` as hex and the scan finds it there (tests/leakdump.py).

The server lives outside pytest's basetemp, and is removed afterwards, for the reason
tests/unit/observability/test_leak_scan.py gives.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from devstack.postgres import Postgres
from tests import leakscan
from tests.applications import marked_name
from tests.leakdump import dump_postgres


@pytest.fixture(scope="module")
def outside_postgres() -> Iterator[Postgres]:
    with tempfile.TemporaryDirectory(prefix="leak-dump-test-") as folder:
        server = Postgres(Path(folder) / "pg" / "data")
        try:
            yield server.start()
        finally:
            server.stop()


def test_a_name_in_a_bytea_column_is_found_in_the_pg_dump(outside_postgres: Postgres) -> None:
    url = outside_postgres.create_database("planted")
    with psycopg.connect(url) as conn:
        conn.execute("CREATE TABLE blobs (id int, data bytea)")
        conn.execute("INSERT INTO blobs VALUES (1, %s)", (marked_name().encode(),))
    with tempfile.TemporaryDirectory(prefix="leak-dump-out-") as folder:
        out = Path(folder)
        dump_postgres(outside_postgres, out, "pg")
        assert (out / "pg-planted.sql").is_file()
        findings, failed, _ = leakscan.scan_tree(out)
    assert failed == []
    assert [(str(f.path), f.kind, f.encoding) for f in findings] == [
        ("pg-planted.sql", leakscan.KINDS["marker"], "hex")
    ]


def test_a_stopped_server_leaves_a_note_that_fails_the_scan() -> None:
    with tempfile.TemporaryDirectory(prefix="leak-dump-out-") as folder:
        out = Path(folder)
        never_started = Postgres(out / "none" / "data")
        dump_postgres(never_started, out, "pg")
        findings, failed, _ = leakscan.scan_tree(out)
    assert findings == []
    assert [str(f) for f in failed] == [f"pg{leakscan.FAILED_DUMP_SUFFIX}"]
