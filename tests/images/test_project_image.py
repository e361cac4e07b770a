"""The platform's image (the root Dockerfile's default target): every process starts as user
10001 on a read-only root filesystem without a network, and it holds only what runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.images.conftest import Built, build_all, docker, image_tags

pytestmark = pytest.mark.timeout(3600)

TAGS = image_tags()
# How every chart runs it: non-root, read-only, and here no network at all.
LOCKED_DOWN = ("run", "--rm", "--read-only", "--user", "10001:10001", "--network", "none")
PROCESSES = (
    "prequal_api",
    "outbox_publisher",
    "credit_service",
    "decision_service",
    "loan_operator",
    "prequalctl",
)


def run(image: str, *argv: str) -> tuple[int, str]:
    done = docker(*LOCKED_DOWN, image, *argv)
    return done.returncode, done.stdout + done.stderr


def test_the_default_target_is_the_runtime_image_and_is_under_the_size_budget(built: Built) -> None:
    image = built.image("prequal")
    assert TAGS["PREQUAL_IMAGE"] in image["tags"]
    assert image["size_bytes"] < built.document["project_budget_bytes"], image
    config = docker(
        "image",
        "inspect",
        "--format",
        "{{.Config.User}} {{json .Config.Entrypoint}}",
        TAGS["PREQUAL_IMAGE"],
    )
    assert config.stdout.split() == ["10001:10001", "null"], config.stdout


def test_every_process_imports_read_only_as_10001_from_compiled_bytecode(built: Built) -> None:
    code, output = run(
        TAGS["PREQUAL_IMAGE"],
        "python3",
        "-c",
        "import importlib, importlib.util, pathlib, sys\n"
        f"for name in {PROCESSES!r}: importlib.import_module(name + '.main')\n"
        "assert sys.dont_write_bytecode\n"
        "import kubernetes.client, prequal_api.app as app\n"
        "missing = [m.__file__ for m in (kubernetes.client, app)\n"
        "           if not pathlib.Path(importlib.util.cache_from_source(m.__file__)).exists()]\n"
        "print('imported', len(sys.modules), 'without bytecode', missing)",
    )
    assert code == 0, output
    assert "without bytecode []" in output, output


@pytest.mark.parametrize("command", [["prequalctl", "--help"], ["loan-operator", "--help"]])
def test_the_command_line_tools_answer_help(built: Built, command: list[str]) -> None:
    code, output = run(TAGS["PREQUAL_IMAGE"], *command)
    assert code == 0, output
    assert "usage:" in output, output


@pytest.mark.parametrize(
    "script", ["prequal-api", "outbox-publisher", "credit-service", "decision-service"]
)
def test_a_service_without_its_settings_says_which_are_missing(built: Built, script: str) -> None:
    code, output = run(TAGS["PREQUAL_IMAGE"], script)
    assert code == 2, output  # prequal.startup: settings it cannot use
    assert "DATABASE_URL" in output or "database_url" in output, output
    assert "Read-only file system" not in output, output
    assert "Traceback" not in output, output


def test_it_holds_no_dev_tool_no_pip_and_no_source_tree(built: Built) -> None:
    code, output = run(
        TAGS["PREQUAL_IMAGE"],
        "python3",
        "-c",
        "import importlib.util, pathlib\n"
        "tools = ['pytest', 'mypy', 'ruff', 'importlinter', 'pip', 'setuptools', 'devstack']\n"
        "print('found', [t for t in tools if importlib.util.find_spec(t)])\n"
        "trees = ('/src', '/app', '/opt/venv/src')\n"
        "print('trees', [p for p in trees if pathlib.Path(p).exists()])\n"
        "import prequal; print('package', prequal.__file__)",
    )
    assert code == 0, output
    assert "found []" in output, output
    assert "trees []" in output, output
    assert "package /opt/venv/lib/python3.11/site-packages/prequal/" in output, output


def test_the_dev_target_reloads_the_source_under_app(built: Built) -> None:
    tag = TAGS["PREQUAL_DEV_IMAGE"]
    entrypoint = docker("image", "inspect", "--format", "{{json .Config.Entrypoint}}", tag)
    assert "watchfiles" in entrypoint.stdout, entrypoint.stdout
    done = docker(
        "run",
        "--rm",
        "--network",
        "none",
        "--entrypoint",
        "python3",
        tag,
        "-c",
        "import prequal; print(prequal.__file__)",
    )
    assert done.stdout.startswith("/app/services/prequal/"), done.stdout + done.stderr


def test_a_second_build_with_nothing_changed_takes_seconds(built: Built, tmp_path: Path) -> None:
    again = build_all(tmp_path / "images.json")
    assert all(image["cached"] for image in again.document["images"]), again.document
    assert again.seconds < 60, f"a cached `make images` took {again.seconds:.0f}s"
