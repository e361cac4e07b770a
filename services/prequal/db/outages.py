"""Which database errors are outages: the one place the consumers and the publisher ask.

An outage is not the fault of the record or row in hand: the same work will succeed unchanged
once the condition ends, so it is retried with backoff and never dead-lettered. Classified by
SQLSTATE (PostgreSQL appendix A), not by the Python exception class: psycopg files
`ReadOnlySqlTransaction` under InternalError and `QueryCanceled` under OperationalError, and
both are outages, while a deadlock or a constraint violation is the record's own problem.
"""

from __future__ import annotations

import psycopg

# Whole SQLSTATE classes: 08 connection exception, 53 insufficient resources (disk full, out
# of memory, too many connections), 57 operator intervention (query canceled by a statement
# timeout, admin or crash shutdown, cannot connect now), 58 system error (I/O).
OUTAGE_CLASSES = frozenset({"08", "53", "57", "58"})
OUTAGE_STATES = frozenset(
    {
        "25006",  # read_only_sql_transaction: a failover to a standby, a read-only database
        "25P03",  # idle_in_transaction_session_timeout
        "25P04",  # transaction_timeout
        "55P03",  # lock_not_available: lock_timeout behind a session that holds the row
    }
)


def is_outage(exc: BaseException) -> bool:
    """True when `exc` says the database cannot do the work now, whatever the work is."""
    if isinstance(exc, psycopg.InterfaceError):
        return True  # the client's connection is closed or unusable
    if not isinstance(exc, psycopg.Error):
        return False
    state = exc.sqlstate
    if state is None:
        # No answer from the server at all: the connection broke or never opened.
        return isinstance(exc, psycopg.OperationalError)
    return state[:2] in OUTAGE_CLASSES or state in OUTAGE_STATES
