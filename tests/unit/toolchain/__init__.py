"""Unit tests of the toolchain's scripts (images/, toolchain/)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).parents[3]


def load_script(relative: str, name: str) -> ModuleType:
    """A script that is no package module (`images/build.py`), imported under `name`."""
    spec = importlib.util.spec_from_file_location(name, REPO / relative)
    assert spec
    assert spec.loader
    module = importlib.util.module_from_spec(spec)
    # Its dataclasses look their module up by name while they are being made.
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
