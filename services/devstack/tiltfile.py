"""What the Tiltfile hands Helm, read from the Tiltfile itself so that `make cluster` installs the
charts with the same values files and `--set`s as `tilt up` does on kind.

The Tiltfile is Starlark; its `helm(...)` calls use literals, top-level string constants and
`"%s" % NAME` formatting only, which is all this reads (anything else is an error naming the
call, so a Tiltfile change that this cannot follow fails loudly instead of being skipped).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

from devstack.tools import REPO_ROOT

TILTFILE = REPO_ROOT / "Tiltfile"


class TiltfileError(ValueError):
    pass


@dataclass(frozen=True)
class HelmCall:
    chart: str
    name: str
    namespace: str
    values: tuple[str, ...]
    sets: tuple[str, ...]

    def helm_args(self) -> list[str]:
        """The same values as `helm upgrade` arguments (values files relative to the repo)."""
        return [f"--values={REPO_ROOT / v}" for v in self.values] + [
            f"--set={s}" for s in self.sets
        ]


def helm_calls(path: Path = TILTFILE) -> dict[str, HelmCall]:
    """Every `helm(chart, ...)` call of the Tiltfile, by chart path."""
    tree = ast.parse(path.read_text(), str(path))
    constants: dict[str, object] = {}
    for node in tree.body:
        if (
            isinstance(node, ast.Assign)
            and len(node.targets) == 1
            and isinstance(node.targets[0], ast.Name)
            and isinstance(node.value, ast.Constant)
        ):
            constants[node.targets[0].id] = node.value.value
    calls = {}
    for call in ast.walk(tree):
        if isinstance(call, ast.Call) and getattr(call.func, "id", None) == "helm":
            where = f"{path.name}:{call.lineno}"
            chart = _evaluate(call.args[0], constants, where)
            keywords = {k.arg: _evaluate(k.value, constants, where) for k in call.keywords}
            calls[str(chart)] = HelmCall(
                chart=str(chart),
                name=str(keywords.get("name", "")),
                namespace=str(keywords.get("namespace", "")),
                values=tuple(str(v) for v in _list(keywords.get("values", []), where)),
                sets=tuple(str(s) for s in _list(keywords.get("set", []), where)),
            )
    return calls


def _list(value: object, where: str) -> list[object]:
    if not isinstance(value, list):
        raise TiltfileError(f"{where}: expected a list in helm(), got {value!r}")
    return value


def _evaluate(node: ast.expr, constants: dict[str, object], where: str) -> object:
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name) and node.id in constants:
        return constants[node.id]
    if isinstance(node, ast.List):
        return [_evaluate(e, constants, where) for e in node.elts]
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod):
        template = _evaluate(node.left, constants, where)
        argument = _evaluate(node.right, constants, where)
        if isinstance(template, str):
            return template % argument
    raise TiltfileError(
        f"{where}: cannot read `{ast.unparse(node)}` in a helm() call"
        " (only literals, top-level constants and '%' formatting); update devstack/tiltfile.py"
    )
