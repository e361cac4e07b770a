"""`make tools` (toolchain/install.sh): idempotent, and clear about missing prerequisites."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).parents[3]
INSTALL = REPO / "toolchain" / "install.sh"


def _run(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(INSTALL)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_second_run_does_nothing_and_says_so() -> None:
    if not (REPO / ".tools" / "bin" / "kube-apiserver").exists():
        pytest.skip("the toolchain is not installed yet: `make tools` runs before `make test`")
    result = _run(dict(os.environ))
    assert result.returncode == 0, result.stderr
    assert "nothing to do" in result.stdout
    assert "==>" not in result.stdout  # no step ran


def test_missing_go_stops_with_what_to_install(tmp_path: Path) -> None:
    # The system's PATH, less every directory that holds a `go`.
    path = os.pathsep.join(
        d for d in os.environ["PATH"].split(os.pathsep) if d and not (Path(d) / "go").exists()
    )
    assert shutil.which("go", path=path) is None
    result = _run({"PATH": path, "HOME": str(tmp_path)})
    assert result.returncode != 0
    assert "go is missing" in result.stderr
    assert "install Go" in result.stderr
