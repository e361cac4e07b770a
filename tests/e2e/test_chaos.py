"""The short chaos schedule of `make chaos --short` (docs/chaos.md): 1,000 applications at 20/s
through two API instances while one fault of each kind lands (a SIGKILL of each process kind
and of the operator, a Kafka SIGKILL and restart, a 6 s broker SIGSTOP, a PostgreSQL crash,
8 s of a read-only database, a credit-service rebalance storm), then every check of the full
run, the LoanPipeline's among them."""

from __future__ import annotations

from pathlib import Path

import pytest
from bench.chaos.run import Config, run

SEED = 12


# Platform start, 50 s of load, the drain and the scans. The platform's start dominates and
# depends on the machine's load: the whole test took 2 min 13 s here on a quieter machine, and
# the start alone 325 s at a load average of 45; the bound leaves room for that.
@pytest.mark.timeout(900)
def test_short_chaos_schedule_loses_duplicates_and_leaks_nothing(tmp_path: Path) -> None:
    config = Config(
        seed=SEED,
        applications=1000,
        rate=20.0,
        run_dir=tmp_path / "chaos",
        short=True,
        drain_bound_s=90.0,
    )
    figures, failures = run(config)
    assert failures == [], f"seed {SEED}: {failures}"
    assert figures["accepted"] == 1000
    assert figures["kills"] == 5
    assert figures["kills_loan_operator"] == 1
    assert figures["operator_restarts"] >= 1
    assert figures["pipeline_ready"] == 1
    assert figures["topics_watched"] == 6  # three topics and their DLQs, none recreated
    assert figures["secrets_watched"] >= 3  # database, key and API key Secrets, none recreated
    for kind in ("kafka_restarts", "broker_stops", "postgres_restarts", "read_only_windows"):
        assert figures[kind] == 1, kind
    assert figures["rebalance_storms"] == 1
    assert figures["process_restarts"] >= 5  # every killed process came back
