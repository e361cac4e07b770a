"""Where `make images` and `make kind-image` build, and with what they share.

The project's and the cache's paths, the pinned versions (toolchain/versions.env) and image
tags (images/images.env), the content hash that says whether an image's inputs changed, and the
docker and long-running commands every build step runs. Stdlib only.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HERE = ROOT / "images"
CACHE = Path(os.environ.get("PREQUAL_CACHE", Path.home() / ".cache" / "loan-prequal"))
LOGS = CACHE / "logs"
DOCKER = os.environ.get("DOCKER", "/usr/bin/docker")
INPUTS_LABEL = "dev.prequal.inputs"
# Raise to rebuild every image from scratch (e.g. to take Debian's security updates).
REVISION = "1"


def read_env(path: Path) -> dict[str, str]:
    """KEY=VALUE lines (toolchain/versions.env, images/images.env)."""
    pairs = (
        line.split("=", 1)
        for line in path.read_text().splitlines()
        if "=" in line and not line.startswith("#")
    )
    return {key.strip(): value.strip() for key, value in pairs}


VERSIONS = read_env(ROOT / "toolchain" / "versions.env")
TAGS = read_env(HERE / "images.env")
SUITE = TAGS["DEBIAN_SUITE"]


class BuildError(Exception):
    """A build step failed; the message says what to do."""


# --- inputs and hashes ------------------------------------------------------------------------


def files_under(path: Path) -> Iterator[Path]:
    # What .dockerignore keeps out of the project's build context is not an input either.
    skipped = {"__pycache__", ".mypy_cache", ".ruff_cache", ".pytest_cache", "devstack"}
    if path.is_file():
        yield path
        return
    for child in sorted(path.rglob("*")):
        parts = set(child.relative_to(path).parts)
        if (
            child.is_file()
            and not parts & skipped
            and not child.name.endswith(".pyc")
            and ".egg-info" not in str(child)
        ):
            yield child


def content_hash(*parts: object, paths: Iterable[Path] = ()) -> str:
    digest = hashlib.sha256(json.dumps([REVISION, *parts], sort_keys=True, default=str).encode())
    for top in paths:
        for file in files_under(top):
            digest.update(str(file.relative_to(top.parent)).encode() + b"\0")
            digest.update(hashlib.sha256(file.read_bytes()).digest())
    return digest.hexdigest()


# --- docker -----------------------------------------------------------------------------------


def docker(*args: str, capture: bool = True) -> str:
    result = subprocess.run([DOCKER, *args], capture_output=capture, text=True, check=False)
    if result.returncode != 0:
        raise BuildError(f"docker {' '.join(args[:2])} failed: {(result.stderr or '').strip()}")
    return result.stdout if capture else ""


def label_of(tag: str) -> str | None:
    result = subprocess.run(
        [
            DOCKER,
            "image",
            "inspect",
            "--format",
            f'{{{{index .Config.Labels "{INPUTS_LABEL}"}}}}',
            tag,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    return result.stdout.strip() if result.returncode == 0 else None


def run_logged(
    what: str, command: list[str], *, stdin: int | None = None, env: dict[str, str] | None = None
) -> None:
    """Runs a long step with its output in a log, printing a heartbeat with its latest line."""
    LOGS.mkdir(parents=True, exist_ok=True)
    log = LOGS / f"image-{what}.log"
    started = time.monotonic()
    with log.open("w") as out:
        process = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, stdin=stdin, env=env
        )
        while process.poll() is None:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                last = log.read_text(errors="replace").strip().splitlines()[-1:] or [""]
                print(
                    f"    ... {what} ({time.monotonic() - started:.0f}s): {last[0][:100]}",
                    flush=True,
                )
    if process.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-25:])
        raise BuildError(
            f"{what} failed after {time.monotonic() - started:.0f}s:\n{tail}\nfull log: {log}"
        )


def size_of(tag: str) -> int:
    return int(docker("image", "inspect", "--format", "{{.Size}}", tag).strip())
