"""Where the pinned toolchain lives: .tools/bin, written by `make tools`."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


class ToolMissingError(RuntimeError):
    pass


def tools_bin() -> Path:
    return Path(os.environ.get("PREQUAL_TOOLS_BIN", REPO_ROOT / ".tools" / "bin"))


def tool(name: str) -> str:
    """The absolute path of a toolchain binary, or an error that says what to run."""
    candidate = tools_bin() / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if found:
        return found
    raise ToolMissingError(f"{name} not found in {tools_bin()} or on PATH: run `make tools` first")


def kafka_home() -> Path:
    home = Path(os.environ.get("PREQUAL_KAFKA_HOME", REPO_ROOT / ".tools" / "kafka"))
    if not (home / "libs").is_dir():
        raise ToolMissingError(f"Kafka is not installed in {home}: run `make tools` first")
    return home
