"""/docs in a real browser (headless Chromium from Debian): the operations render, offline."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.integration.submission.conftest import ApiProcess

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _chromium(*args: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    return subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",  # we run as root in CI
            "--disable-gpu",
            "--no-first-run",
            "--window-size=1280,1800",
            "--virtual-time-budget=15000",  # let Swagger UI fetch /openapi.json and render
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed: run `make tools`")
def test_swagger_ui_renders_every_operation_and_the_authorize_button(
    api: ApiProcess, tmp_path: Path
) -> None:
    screenshot = tmp_path / "docs.png"
    shot = _chromium(f"--screenshot={screenshot}", f"{api.url}/docs")
    assert screenshot.exists(), shot.stderr[-2000:]
    dom = _chromium("--dump-dom", f"{api.url}/docs").stdout
    assert "Unable to render this definition" not in dom
    assert 'class="btn authorize' in dom  # the bearer scheme is documented
    for path in ("/applications", "/applications/{application_id}/status"):
        assert f'data-path="{path}"' in dom, f"{path} not rendered (screenshot: {screenshot})"
    redoc = _chromium("--dump-dom", f"{api.url}/redoc").stdout
    assert "Submit a loan application" in redoc
