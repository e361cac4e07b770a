"""Unit tests of the toolchain's scripts (images/, toolchain/)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).parents[3]


def load_script(relative: str, name: str) -> ModuleType:
    """A script that is no package module (`images/build.py`), imported under `name`; its
    folder is on the path meanwhile, as when it runs, so it finds its sibling modules."""
    path = REPO / relative
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec
    assert spec.loader
    module = importlib.util.module_from_spec(spec)
    # Its dataclasses look their module up by name while they are being made.
    sys.modules[name] = module
    sys.path.insert(0, str(path.parent))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(path.parent))
    return module
