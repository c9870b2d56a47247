"""The package's import rules, read from the source: data flows one way (no stage imports a stage to
its right; Lightning, the CLI and the pipelines sit on top and only wire stages), ``report/`` imports
neither Lightning nor training, and no module uses another module's private (``_name``) function."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "mtmct_reid"

#: Stage (first component under ``mtmct_reid``) -> stages it must never import.
FORBIDDEN = {
    "data": {
        "models",
        "training",
        "features",
        "featureset",
        "retrieval",
        "mtmc",
        "report",
        "gallery",
        "index",
        "export",
        "distributed",
    },
    "models": {"training", "features", "retrieval", "mtmc", "report", "gallery", "index"},
    "featureset": {"training", "retrieval", "mtmc", "report"},
    "features": {"training", "retrieval", "mtmc", "report", "index"},
    "retrieval": {"training", "features", "mtmc", "report", "gallery", "index"},
    "mtmc": {"training", "report"},
    "report": {"training", "features", "models"},
}
#: Only these may import the command line and the pipelines (they sit on top).
ON_TOP = {"cli", "pipelines", "__main__"}
#: Third-party packages ``report/`` never imports.
NOT_IN_REPORT = ("lightning", "pytorch_lightning")


def _name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _stage(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _imports(module: str) -> tuple[set[str], list[tuple[str, str]], set[str]]:
    """``(package modules imported, (module, private name) pairs used, third-party tops)``,
    counting imports inside functions too."""
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    imported: set[str] = set()
    private: list[tuple[str, str]] = []
    third_party: set[str] = set()
    aliases: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if not node.module.startswith("mtmct_reid"):
                third_party.add(node.module.split(".")[0])
                continue
            imported.add(node.module)
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                if full in MODULES:
                    imported.add(full)
                    aliases[alias.asname or alias.name] = full
                elif alias.name.startswith("_") and node.module != module:
                    private.append((node.module, alias.name))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("mtmct_reid"):
                    imported.add(alias.name)
                    if alias.asname:
                        aliases[alias.asname] = alias.name
                else:
                    third_party.add(alias.name.split(".")[0])
    for node in ast.walk(tree):
        if not (
            isinstance(node, ast.Attribute)
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
        ):
            continue
        owner = _dotted(node.value)
        # ``alias._name`` or, after a plain ``import mtmct_reid.x.y``, ``mtmct_reid.x.y._name``.
        owner = aliases.get(owner, owner) if owner else None
        if owner in MODULES and owner != module:
            private.append((owner, node.attr))
    return imported, private, third_party


def _dotted(node: ast.expr) -> str | None:
    """``a.b.c`` for a chain of attribute lookups on a name, else None."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    return ".".join([node.id, *reversed(parts)])


def test_the_scan_sees_the_package():
    # The rules below are only as good as the scan: it must find modules, imports inside
    # functions and attribute uses.
    assert {"mtmct_reid.data.records", "mtmct_reid.report.plots", "mtmct_reid.cli"} <= set(MODULES)
    imported, _, third_party = _imports("mtmct_reid.pipelines.demo")
    assert "mtmct_reid.training.module" in imported  # imported inside train_demo_model
    assert "lightning" in third_party


def test_the_scan_finds_private_names_used_every_way(tmp_path, monkeypatch):
    planted = tmp_path / "planted.py"
    planted.write_text(
        "import mtmct_reid.retrieval.metrics\n"
        "from mtmct_reid.retrieval import fusion as f\n"
        "from mtmct_reid.retrieval.protocol import _hidden\n"
        "def use(self):\n"
        "    self._mine()\n"
        "    mtmct_reid.retrieval.metrics._searchsorted_rows()\n"
        "    return f._logistic()\n"
    )
    monkeypatch.setitem(MODULES, "mtmct_reid.planted", planted)
    _, private, _ = _imports("mtmct_reid.planted")
    assert sorted(private) == [
        ("mtmct_reid.retrieval.fusion", "_logistic"),
        ("mtmct_reid.retrieval.metrics", "_searchsorted_rows"),
        ("mtmct_reid.retrieval.protocol", "_hidden"),
    ]


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_module_imports_a_later_stage_or_a_private_name(module):
    imported, private, third_party = _imports(module)
    stage = _stage(module)
    later = sorted(
        name
        for name in imported
        if _stage(name) in FORBIDDEN.get(stage, set())
        or (_stage(name) in ON_TOP and stage not in ON_TOP)
    )
    assert not later, f"{module} imports a later stage: {later}"
    assert not private, f"{module} uses private names of other modules: {private}"
    if stage == "report":
        assert not third_party & set(NOT_IN_REPORT), f"{module} imports Lightning"
