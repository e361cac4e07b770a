"""`make bench`: runs every bench/bench_*.py and writes their figures as one flat JSON object.

Each benchmark module exposes `run(workdir: pathlib.Path) -> dict[str, float]` and starts the
real components it needs with devstack. Figures from one run are comparable with each other
(ratios); absolute numbers on a shared 2-core machine are noisy.

    make bench                      # all benchmarks
    make bench BENCH=publisher      # only bench/bench_publisher.py
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="comma-separated benchmark names")
    parser.add_argument("--output", type=Path, default=None, help="where to write the JSON")
    args = parser.parse_args()
    only = {name for name in args.only.split(",") if name}
    modules = sorted(HERE.glob("bench_*.py"))
    if only:
        modules = [m for m in modules if m.stem.removeprefix("bench_") in only]
    if not modules:
        print(f"no benchmarks matched {sorted(only)}", file=sys.stderr)
        return 2
    figures: dict[str, float | str] = {
        "host": platform.node(),
        "python": platform.python_version(),
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    for path in modules:
        spec = importlib.util.spec_from_file_location(path.stem, path)
        assert spec
        assert spec.loader
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        print(f"==> {path.stem}", flush=True)
        started = time.monotonic()
        with tempfile.TemporaryDirectory(prefix=f"{path.stem}-") as workdir:
            result = module.run(Path(workdir))
        for key, value in result.items():
            print(f"    {key} = {value}")
        print(f"    ({time.monotonic() - started:.0f}s)", flush=True)
        figures.update(result)
    output = args.output or HERE.parent / ".bench" / f"results-{int(time.time())}.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(figures, indent=2, sort_keys=True) + "\n")
    print(f"bench: figures written to {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
