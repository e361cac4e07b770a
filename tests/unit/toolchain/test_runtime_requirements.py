"""images/runtime-requirements.py: the image installs exactly pyproject's runtime closure of the
lock, every package with its hashes, and none of the dev tools."""

from __future__ import annotations

import re
import tomllib
from types import ModuleType

import pytest

from tests.unit.toolchain import REPO, load_script


def _module() -> ModuleType:
    return load_script("images/runtime-requirements.py", "runtime_requirements")


def _names(entries: list[str]) -> set[str]:
    return {re.split(r"[=\s;]", entry, maxsplit=1)[0] for entry in entries}


LOCK = """\
# header
app-dep==1.0 \\
    --hash=sha256:aa
    # via loan-prequal (pyproject.toml)
child==2.0 \\
    --hash=sha256:bb \\
    --hash=sha256:cc
    # via
    #   app-dep
    #   test-tool
test-tool==3.0 \\
    --hash=sha256:dd
    # via loan-prequal (pyproject.toml)
test-only-child==4.0 \\
    --hash=sha256:ee
    # via test-tool
"""
PYPROJECT = '[project]\nname = "x"\ndependencies = ["App_Dep[extra]>=1"]\n'


def test_the_runtime_closure_keeps_hashes_and_drops_what_only_dev_tools_pull_in() -> None:
    entries = _module().runtime_entries(LOCK, PYPROJECT)
    assert _names(entries) == {"app-dep", "child"}
    child = next(entry for entry in entries if entry.startswith("child=="))
    assert "--hash=sha256:bb" in child
    assert "--hash=sha256:cc" in child


def test_a_lock_without_hashes_is_refused_with_what_to_do() -> None:
    with pytest.raises(SystemExit, match="make lock"):
        _module().runtime_entries(
            "app-dep==1.0\n    # via loan-prequal (pyproject.toml)\n", PYPROJECT
        )


def test_the_real_lock_gives_every_runtime_dependency_and_no_dev_tool() -> None:
    pyproject = (REPO / "pyproject.toml").read_text()
    entries = _module().runtime_entries((REPO / "requirements.lock").read_text(), pyproject)
    names = _names(entries)
    project = tomllib.loads(pyproject)["project"]
    runtime = {
        re.split(r"[\[<>=!~;\s]", dep, maxsplit=1)[0].lower() for dep in project["dependencies"]
    }
    assert runtime <= names
    assert not names & {"pytest", "mypy", "ruff", "import-linter", "py-spy", "jsonschema"}
    assert all("--hash=sha256:" in entry for entry in entries)
