"""The images tier: builds every image with `make images`' builder (cached by content hash, so a
second run takes seconds) and runs them with Docker, never with a network."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from devstack.tools import REPO_ROOT

BUILD = REPO_ROOT / "images" / "build.py"
DOCKER = "/usr/bin/docker"  # Debian's client: another `docker` may come first in PATH
# A cold build of every image takes minutes (Debian bases, PyPI, CoreDNS from the Go proxy).
BUILD_TIMEOUT = 3600


def image_tags() -> dict[str, str]:
    pairs = (
        line.split("=", 1)
        for line in (REPO_ROOT / "images" / "images.env").read_text().splitlines()
        if "=" in line and not line.startswith("#")
    )
    return dict(pairs)


def docker(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [DOCKER, *args], capture_output=True, text=True, timeout=timeout, check=False
    )


@dataclass(frozen=True)
class Built:
    """What the builder wrote: one entry per image (tags, size_bytes, cached, seconds...)."""

    document: dict[str, Any]
    seconds: float

    def image(self, name: str) -> dict[str, Any]:
        return next(i for i in self.document["images"] if i["name"] == name)


def build_all(output: Path) -> Built:
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, str(BUILD), "--output", str(output)],
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, f"make images failed:\n{done.stdout}\n{done.stderr}"
    return Built(json.loads(output.read_text()), time.monotonic() - started)


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    return build_all(tmp_path_factory.mktemp("images") / "images.json")


@pytest.fixture
def container() -> Iterator[list[str]]:
    """Names of detached containers a test started; removed afterwards, also on failure."""
    names: list[str] = []
    yield names
    for name in names:
        docker("rm", "--force", name)
