"""`make chaos`: the chaos run; figures go to one JSON file whose path is printed last."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

from bench.chaos.run import Config, run

REPO = Path(__file__).resolve().parents[2]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make chaos", description=__doc__)
    parser.add_argument("--seed", type=int, default=None, help="default: from the clock")
    parser.add_argument("--applications", type=int, default=None, help="default 10000 (short 1000)")
    parser.add_argument(
        "--rate", type=float, default=None, help="per second; default 50 (short 20)"
    )
    parser.add_argument(
        "--short", action="store_true", help="the schedule of `make test`: one fault of each kind"
    )
    parser.add_argument(
        "--drain-bound", type=float, default=None, help="seconds; default 180 (short 90)"
    )
    parser.add_argument("--output", type=Path, default=None, help="where to write the JSON")
    parser.add_argument("--keep", action="store_true", help="keep the run directory (logs, data)")
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else int(time.time()) % 100_000
    (REPO / ".bench").mkdir(exist_ok=True)
    run_dir = Path(tempfile.mkdtemp(prefix=f"chaos-{seed}-", dir=REPO / ".bench"))
    config = Config(
        seed=seed,
        applications=args.applications or (1000 if args.short else 10_000),
        rate=args.rate or (20.0 if args.short else 50.0),
        run_dir=run_dir,
        short=args.short,
        drain_bound_s=args.drain_bound or (90.0 if args.short else 180.0),
    )
    figures, failures = run(config)
    print("\nchaos summary:")
    for key, value in figures.items():
        print(f"    {key} = {value}")
    for failure in failures:
        print(f"FAILED: {failure}")
    if failures or args.keep:
        print(f"run directory kept: {run_dir}")
    else:
        shutil.rmtree(run_dir, ignore_errors=True)
    output = args.output or REPO / ".bench" / f"chaos-{int(time.time())}.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(figures, indent=2, sort_keys=True) + "\n")
    print(f"chaos: {'FAILED' if failures else 'passed'}; figures written to {output}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
