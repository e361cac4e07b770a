"""The runtime part of requirements.lock, hashes included, for `pip install --require-hashes`.

requirements.lock pins the runtime dependencies and the dev tools together (one resolution, so
they agree). A package belongs to the runtime when pyproject.toml's [project] dependencies name
it, or when a runtime package pulls it in (uv's `# via` comments record who does). Run in the
image build and by the image tests: python3 runtime-requirements.py requirements.lock pyproject.toml
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

ROOT = "loan-prequal (pyproject.toml)"


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(spec: str) -> str:
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", spec)
    if not match:
        sys.exit(f"cannot read a package name from {spec!r}")
    return normalise(match.group(1))


def parse_lock(text: str) -> dict[str, tuple[list[str], set[str]]]:
    """Package name -> (its requirement lines, the names of what pulls it in)."""
    entries: dict[str, tuple[list[str], set[str]]] = {}
    current: tuple[list[str], set[str]] | None = None
    in_via = False
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        if not line[0].isspace():
            current = ([line], set())
            entries[requirement_name(line)] = current
            in_via = False
            continue
        if current is None:
            sys.exit(f"requirements.lock: an indented line before any requirement: {line!r}")
        stripped = line.strip()
        if stripped.startswith("--hash="):
            current[0].append(line)
        elif stripped.startswith("# via"):
            parent = stripped.removeprefix("# via").strip()
            in_via = not parent
            if parent:
                current[1].add(parent)
        elif stripped.startswith("#") and in_via:
            current[1].add(stripped.lstrip("#").strip())
    return entries


def runtime_entries(lock: str, pyproject: str) -> list[str]:
    entries = parse_lock(lock)
    roots = {requirement_name(dep) for dep in tomllib.loads(pyproject)["project"]["dependencies"]}
    missing = roots - entries.keys()
    if missing:
        sys.exit(f"requirements.lock lacks {sorted(missing)}: run `make lock`")
    runtime = set(roots)
    changed = True
    while changed:
        changed = False
        for name, (_, parents) in entries.items():
            if name not in runtime and any(normalise(p) in runtime for p in parents if p != ROOT):
                runtime.add(name)
                changed = True
    unhashed = [name for name in runtime if not any("--hash=" in line for line in entries[name][0])]
    if unhashed:
        sys.exit(f"requirements.lock has no hashes for {sorted(unhashed)}: run `make lock`")
    return ["\n".join(entries[name][0]) for name in sorted(runtime)]


def main() -> None:
    lock, pyproject = (Path(arg).read_text() for arg in sys.argv[1:3])
    print("\n".join(runtime_entries(lock, pyproject)))


if __name__ == "__main__":
    main()
