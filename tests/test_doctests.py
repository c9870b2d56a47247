"""Every docstring example of the package runs and gives what it shows (``doctest``), so that an
example is either true or gone. Examples that write files write them under the test's folder."""

from __future__ import annotations

import doctest
import importlib
import tempfile
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "mtmct_reid"


def _modules_with_examples() -> list[str]:
    names = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "__main__.py" or ">>>" not in path.read_text(encoding="utf-8"):
            continue
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


MODULES = _modules_with_examples()


def test_examples_are_found():
    # The parametrisation below is only as good as this list.
    assert len(MODULES) > 40
    assert {"mtmct_reid.validation", "mtmct_reid.mtmc.root", "mtmct_reid.retrieval.metrics"} <= set(
        MODULES
    )


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS, verbose=False)
    assert result.failed == 0
