"""The detector protocol (``cascadewatch.detectors`` docstring), checked river-style on every
detector class found by :mod:`pkgutil`: a public class of a detectors module with a learning
verb (``learn_*`` or ``update``). No detector is listed by hand."""

from __future__ import annotations

import dataclasses
import doctest
import importlib
import inspect
import io
import math
import pickle
import pkgutil
import re
from collections import deque
from typing import Any, cast

import msgspec
import numpy as np
import pytest

import cascadewatch.detectors


def _is_detector(cls: type) -> bool:
    return any(
        (verb == "update" or verb.startswith("learn_")) and callable(getattr(cls, verb, None)) for verb in dir(cls)
    )


def _detector_classes() -> list[type]:
    found = []
    for info in pkgutil.walk_packages(cascadewatch.detectors.__path__, "cascadewatch.detectors."):
        module = importlib.import_module(info.name)
        found += [
            obj
            for name, obj in vars(module).items()
            if isinstance(obj, type) and obj.__module__ == module.__name__ and not name.startswith("_")
            if _is_detector(obj)
        ]
    return sorted(found, key=lambda cls: cls.__name__)


DETECTORS = _detector_classes()
IDS = [cls.__name__ for cls in DETECTORS]


def test_the_package_docstring_tables_exactly_the_discovered_detectors() -> None:
    doc = cascadewatch.detectors.__doc__ or ""
    table = doc[doc.index("detector                   learn") :].split("\n\n")[0]
    documented = {m.group(1) for m in re.finditer(r"^([A-Z]\w+) ", table, re.M)}
    assert documented == set(IDS)
    assert len(IDS) >= 10 and {"CrowdingMonitor", "CascadeLabeler"} <= set(IDS)


@pytest.mark.parametrize("cls", DETECTORS, ids=IDS)
def test_constructible_from_defaults_or_a_documented_minimal_set(cls: type) -> None:
    """Every parameter has a default, except the ones the class docstring names."""
    required = [
        p.name
        for p in inspect.signature(cls).parameters.values()
        if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]
    undocumented = [name for name in required if f"``{name}``" not in (cls.__doc__ or "")]
    assert undocumented == []
    if not required:
        fresh = cls()
        assert type(pickle.loads(pickle.dumps(fresh))) is cls


class _RoundTrip:
    """Replaces every detector in a doctest's globals by its pickle round trip (all in one
    pickle, so shared references stay shared)."""

    def __init__(self) -> None:
        self.restored: list[type] = []

    def __call__(self, globs: dict[str, Any]) -> None:
        names = [name for name, value in globs.items() if isinstance(value, tuple(DETECTORS))]
        if names:
            copies = pickle.loads(pickle.dumps([globs[name] for name in names]))
            globs.update(zip(names, copies, strict=True))
            self.restored += [type(copy) for copy in copies]


class _Recorder(doctest.OutputChecker):
    """Keeps what every example printed, to compare two runs exactly (an example's expected
    output may be a tolerance check that a changed state still passes)."""

    def __init__(self) -> None:
        self.got: list[str] = []

    def check_output(self, want: str, got: str, optionflags: int) -> bool:
        self.got.append(got)
        return super().check_output(want, got, optionflags)


def _run(test: doctest.DocTest) -> tuple[int, str, list[str]]:
    recorder = _Recorder()
    runner = doctest.DocTestRunner(checker=recorder, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    out = io.StringIO()
    runner.run(test, out=out.write, clear_globs=False)
    return runner.failures, out.getvalue(), recorder.got


def _fields(value: object) -> dict[str, Any] | None:
    """An object's attributes, those it pickles: a derived cache its ``__getstate__`` drops
    is not state. The values are the live attributes, so a ``__getstate__`` that pickles a
    wrong value is caught."""
    if isinstance(value, msgspec.Struct):
        return msgspec.structs.asdict(value)
    if dataclasses.is_dataclass(value):
        return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    slots = [name for cls in type(value).__mro__ for name in getattr(cls, "__slots__", ()) if hasattr(value, name)]
    if not hasattr(value, "__dict__") and not slots:
        return None
    live = {**getattr(value, "__dict__", {}), **{name: getattr(value, name) for name in slots}}
    state = value.__getstate__()
    pickled = {**(state[0] or {}), **state[1]} if isinstance(state, tuple) else dict(state or {})
    return {name: v for name, v in live.items() if name in pickled}


def _same(a: object, b: object) -> bool:
    """Deep equality of plain-data state: numpy arrays, containers, objects by their fields;
    NaN equals NaN."""
    if type(a) is not type(b):
        return False
    if isinstance(a, np.ndarray):
        assert isinstance(b, np.ndarray)
        return a.shape == b.shape and bool(np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"))
    if isinstance(a, float):
        return a == b or (math.isnan(a) and math.isnan(cast(float, b)))
    if isinstance(a, dict):
        assert isinstance(b, dict)
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple | deque):
        assert isinstance(b, list | tuple | deque)
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, str | int | bytes | set | frozenset | type | type(None)) or inspect.isroutine(a):
        return a == b
    fields_a, fields_b = _fields(a), _fields(b)
    if fields_a is None or fields_b is None:
        return a == b
    return _same(fields_a, fields_b)


@pytest.mark.parametrize("cls", DETECTORS, ids=IDS)
def test_doc_example_runs_and_a_pickle_round_trip_changes_nothing(cls: type) -> None:
    """The class docstring has a runnable example (``>>>``). Run it as written, then again with
    every detector it holds pickled and unpickled between examples (river's
    ``check_pickling``): every example prints exactly the same, and every detector ends in
    the same state."""
    [test] = doctest.DocTestFinder(recurse=False).find(cls)
    assert test.examples, f"{cls.__name__} has no example in its docstring"
    failures, report, printed = _run(test)
    assert failures == 0, report
    plain = test.globs

    [test] = doctest.DocTestFinder(recurse=False).find(cls)
    round_trip = _RoundTrip()
    test.globs["__round_trip__"] = round_trip
    hook = doctest.Example("__round_trip__(globals())\n", "")
    test.examples = [step for example in test.examples for step in (example, hook)]
    failures, report, printed_after_round_trips = _run(test)
    assert failures == 0, report
    assert printed_after_round_trips[::2] == printed
    assert cls in round_trip.restored, f"the example of {cls.__name__} never holds one in a global"
    detectors = [name for name, value in plain.items() if isinstance(value, tuple(DETECTORS))]
    assert [name for name in detectors if not _same(plain[name], test.globs[name])] == []
