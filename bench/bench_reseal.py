"""What `prequalctl keys reseal` costs per data key, for two implementations side by side.

    .venv/bin/python bench/bench_reseal.py [--rows N] [--pairs P] [--base PATH]

Seals N data keys to a pair `s1` on a real, durable PostgreSQL, then reseals them to `s2` with
`prequalctl.reseal.reseal_batch` (batches of 200, as `reseal` runs them), and reports CPU
microseconds per data key: this
process (open, seal, open again, the driver) and the PostgreSQL server (every backend, the
updates and the audit rows). With `--base PATH` (a reseal.py from another commit, e.g.
`git show <commit>:services/prequalctl/reseal.py > /tmp/base_reseal.py`) the two alternate,
base first, P pairs, fresh rows each round, so drift on a shared machine hits both alike.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import tempfile
import time
import uuid
from decimal import Decimal
from pathlib import Path
from types import ModuleType
from typing import Any

import psycopg
from measure import CpuTime

from devstack.postgres import Postgres
from prequal import sealing
from prequal.db import migrate
from prequalctl import reseal as branch_reseal


def _load(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location("base_reseal", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _prefill(url: str, sealer: sealing.Sealer, rows: int) -> None:
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        for _ in range(rows):
            app_id = uuid.uuid4()
            sealed = sealer.seal(app_id, "ZZZZZ9999Z", b"{}")
            cur.execute(
                "INSERT INTO applications (id, client_id, pan_ciphertext, pan_blind_index, "
                "personal_ciphertext, requested_amount, monthly_income, loan_type) "
                "VALUES (%s, 'bench', %s, %s, %s, %s, %s, 'PERSONAL')",
                (app_id, sealed.pan, os.urandom(32), sealed.personal, Decimal(1), Decimal(1)),
            )
            cur.execute(
                "INSERT INTO application_data_keys (application_id, key_id, sealed_key) "
                "VALUES (%s, %s, %s)",
                (app_id, sealed.key_id, sealed.sealed_key),
            )


def _round(
    impl: ModuleType, url: str, postgres_pid: int, pairs: dict[str, sealing.KeyPair], rows: int
) -> dict[str, float]:
    opener = sealing.Opener({k: p.private for k, p in pairs.items()})
    _prefill(url, sealing.Sealer({"s1": pairs["s1"].public}, "s1"), rows)
    resealer = impl.Resealer(opener, sealing.Sealer({"s2": pairs["s2"].public}, "s2"))
    # The batches as `reseal()` runs them, on a connection that lives across both CPU samples
    # (a backend that exits between them would not be counted).
    with psycopg.connect(url, autocommit=True) as conn:
        cpu = CpuTime({"postgres": postgres_pid})
        started = time.process_time()
        moved = failed = 0
        after = uuid.UUID(int=0)
        while True:
            done, bad, last = impl.reseal_batch(conn, resealer, after, 200, "bench")
            if last is None:
                break
            moved, failed, after = moved + done, failed + bad, last
        client = time.process_time() - started
        server = cpu.spent()["postgres"]
    assert (moved, failed) == (rows, 0), (moved, failed)
    return {"client_us_per_key": client / rows * 1e6, "server_us_per_key": server / rows * 1e6}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--pairs", type=int, default=2)
    parser.add_argument("--base", type=Path, help="another commit's reseal.py to compare with")
    args = parser.parse_args()
    impls: list[tuple[str, ModuleType]] = [("branch", branch_reseal)]
    if args.base:
        impls.insert(0, ("base", _load(args.base)))
    pairs = {"s1": sealing.generate_key_pair(), "s2": sealing.generate_key_pair()}
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-reseal-") as workdir:
        postgres = Postgres(Path(workdir) / "data", durable=True).start()
        try:
            url = postgres.create_database("bench_reseal")
            migrate.upgrade(url)
            assert postgres.process is not None
            assert postgres.process.pid is not None
            for pair in range(args.pairs):
                for name, impl in impls:
                    figures = _round(impl, url, postgres.process.pid, pairs, args.rows)
                    results.append({"pair": pair + 1, "impl": name, **figures})
                    print(json.dumps(results[-1]), flush=True)
        finally:
            postgres.stop()


if __name__ == "__main__":
    main()
