"""Run the Examples of every detector module as tests (the docstrings are part of the API)."""

import doctest
import importlib

import pytest

MODULES = [
    "detectors",
    "cascadewatch.detectors._grid",
    "cascadewatch.detectors.liqmap_observed",
    "cascadewatch.detectors.liqmap_estimated",
    "cascadewatch.detectors.depth",
    "cascadewatch.detectors.reach",
    "cascadewatch.detectors.hawkes",
    "cascadewatch.detectors.probability",
    "cascadewatch.detectors.regime",
    "cascadewatch.detectors.policy",
]


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name):
    mod = importlib.import_module(name)
    result = doctest.testmod(mod, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert result.failed == 0, f"{result.failed} doctest failure(s) in {name}"


@pytest.mark.parametrize("name", MODULES[1:])
def test_has_examples(name):
    """Each detector module documents at least one runnable example (the grid helper excepted)."""
    mod = importlib.import_module(name)
    n = sum(len(t.examples) for t in doctest.DocTestFinder().find(mod))
    assert name == "cascadewatch.detectors._grid" or n > 0


def test_detectors_import_rules():
    """No I/O, no clock, no bytewax, nothing from pipelines, only cascadewatch.connectors.events from connectors."""
    import ast
    import pathlib

    root = pathlib.Path(importlib.import_module("detectors").__file__).parent
    mine = [m.split(".")[-1] for m in MODULES[1:]] + ["__init__"]
    for stem in mine:
        tree = ast.parse((root / f"{stem}.py").read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for n in names:
                top = n.split(".")[0]
                assert top not in {"bytewax", "pipelines", "time", "datetime", "socket", "asyncio", "os", "io"}, (
                    stem,
                    n,
                )
                if top == "connectors":
                    assert n == "cascadewatch.connectors.events", (stem, n)
