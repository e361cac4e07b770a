"""images/build.py records each image's build time as soon as that image is built, so a
`make images` killed later (pytest-timeout killed a cold one) leaves no image that is cached
but has no build time (the cold CI run's `build_seconds is None` failure)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.unit.toolchain import load_script


def test_a_built_images_time_is_on_disk_before_the_run_ends(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    build = load_script("images/build.py", "image_build")
    times_file = tmp_path / "build-seconds.json"
    monkeypatch.setattr(build, "TIMES", times_file)
    labels: dict[str, str] = {}

    def fake_build(image: object, staged: object, inputs: str) -> None:
        labels["demo:1"] = inputs

    monkeypatch.setattr(build, "build", fake_build)
    monkeypatch.setattr(build, "label_of", labels.get)
    monkeypatch.setattr(build, "size_of", lambda tag: 1)
    monkeypatch.setattr(build, "docker", lambda *args: "sha256:0\n")
    context = tmp_path / "context"
    context.mkdir()
    (context / "Dockerfile").write_text("FROM scratch\n")
    image = build.Image("demo", ("demo:1",), context, context / "Dockerfile", ())

    result = build.ensure_image(image, {}, {})

    # The run has not reached main()'s final save: a SIGKILL here would lose nothing.
    assert json.loads(times_file.read_text()) == {result["inputs"]: result["build_seconds"]}
    assert not result["cached"]
    again = build.ensure_image(image, build.read_times(), {})
    assert again["cached"]
    assert again["build_seconds"] == result["build_seconds"]
