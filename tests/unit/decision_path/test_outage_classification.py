"""Database errors are sorted into outages and record faults by SQLSTATE, in one place."""

from __future__ import annotations

import psycopg
import pytest
from psycopg import errors

from prequal.db.outages import is_outage

OUTAGES = [
    "25006",  # ReadOnlySqlTransaction (an InternalError to psycopg)
    "53100",  # DiskFull
    "53300",  # TooManyConnections
    "57014",  # QueryCanceled by a statement_timeout
    "57P01",  # AdminShutdown
    "57P03",  # CannotConnectNow
    "25P03",  # IdleInTransactionSessionTimeout
    "55P03",  # LockNotAvailable after lock_timeout
    "08006",  # ConnectionFailure
]
RECORD_FAULTS = ["23505", "22003", "40P01", "40001", "42P01", "54000"]


@pytest.mark.parametrize("sqlstate", OUTAGES)
def test_a_server_that_cannot_do_the_work_now_is_an_outage(sqlstate: str) -> None:
    assert is_outage(errors.lookup(sqlstate)("from the server"))


@pytest.mark.parametrize("sqlstate", RECORD_FAULTS)
def test_an_error_about_the_work_itself_is_not(sqlstate: str) -> None:
    assert not is_outage(errors.lookup(sqlstate)("from the server"))


def test_a_connection_that_never_answered_is_an_outage() -> None:
    assert is_outage(psycopg.OperationalError("connection refused"))
    assert is_outage(psycopg.InterfaceError("the connection is closed"))
    assert not is_outage(ValueError("not a database error"))
