"""Every module of ``cascadewatch.detectors``, found by :mod:`pkgutil` (no hand list): its
Examples run as tests (the docstrings are part of the API), and it keeps the package's
import rule (no I/O, no clock, no Bytewax, nothing from pipelines)."""

from __future__ import annotations

import ast
import doctest
import importlib
import pkgutil
import sys
from pathlib import Path

import pytest

import cascadewatch.detectors

MODULES = ["cascadewatch.detectors"] + [
    info.name for info in pkgutil.walk_packages(cascadewatch.detectors.__path__, "cascadewatch.detectors.")
]
FORBIDDEN = {"bytewax", "time", "datetime", "socket", "asyncio", "os", "io", "pathlib", "threading", "urllib"}
"""Standard-library and framework modules of I/O and the clock."""
OUTSIDE_ALLOWED = {"cascadewatch.connectors.events", "cascadewatch.connectors.outputs"}


def test_discovery_finds_every_file() -> None:
    files = sorted(Path(cascadewatch.detectors.__file__).parent.glob("*.py"))
    assert len(MODULES) == len(files) >= 12
    assert {"cascadewatch.detectors.crowding", "cascadewatch.detectors.labels"} <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name: str) -> None:
    mod = importlib.import_module(name)
    result = doctest.testmod(mod, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert result.failed == 0, f"{result.failed} doctest failure(s) in {name}"


@pytest.mark.parametrize("name", [m for m in MODULES if m.rsplit(".", 1)[-1] not in ("detectors", "_grid")])
def test_has_examples(name: str) -> None:
    """Each detector module documents at least one runnable example (the package docstring,
    which describes the protocol, and the private grid helper excepted)."""
    n = sum(len(t.examples) for t in doctest.DocTestFinder().find(importlib.import_module(name)))
    assert n > 0


def _offenders(source: str) -> list[str]:
    """The imports of ``source`` that break the rule."""
    names = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return [
        n
        for n in names
        if n.split(".")[0] in FORBIDDEN
        or (n.startswith("cascadewatch.") and not n.startswith("cascadewatch.detectors") and n not in OUTSIDE_ALLOWED)
    ]


@pytest.mark.parametrize("name", MODULES)
def test_detectors_import_rules(name: str) -> None:
    """No I/O, no clock, no Bytewax, nothing from pipelines; from connectors only the event
    model and the output contract."""
    path = importlib.import_module(name).__file__
    assert path is not None
    assert _offenders(Path(path).read_text()) == []


def test_the_rule_catches_the_clock_io_and_pipelines() -> None:
    source = (
        "import time\nimport os.path\nfrom datetime import datetime\n"
        "from cascadewatch.pipelines.flow import build_flow\nfrom cascadewatch.connectors.live import LiveSource\n"
        "from cascadewatch.connectors.events import Trade\nfrom cascadewatch.detectors.hawkes import HawkesEstimator\n"
        "import numpy as np\n"
    )
    assert _offenders(source) == [
        "time",
        "os.path",
        "datetime",
        "cascadewatch.pipelines.flow",
        "cascadewatch.connectors.live",
    ]


def test_lazy_exports_resolve_inside_the_package() -> None:
    """``cascadewatch.detectors.<Name>`` loads ``cascadewatch.detectors.<module>``, never a bare
    ``detectors`` package (which imports only when the repository root is on the path)."""
    for name in cascadewatch.detectors.__all__:
        value = getattr(cascadewatch.detectors, name)
        if isinstance(value, type) or callable(value):
            assert value.__module__.startswith("cascadewatch.detectors."), name
    assert [m for m in sys.modules if m.split(".")[0] == "detectors"] == []
