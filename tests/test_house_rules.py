"""House rule: every ``noqa`` and ``type: ignore`` names what it silences and says why.

Accepted forms (the reason is free text after the codes)::

    x = 1  # noqa: E741 - the venue's field name
    y = f()  # type: ignore[arg-type]  # the library's stubs lack the overload

A bare ``# noqa`` or ``# type: ignore`` (no code) silences everything on its line, so it is
refused too. Only real comments count (``tokenize``), not the words inside strings.
"""

from __future__ import annotations

import io
import re
import tokenize
from pathlib import Path

import pytest

REPO = Path(__file__).parents[1]
CHECKED = ("connectors", "detectors", "pipelines", "tests")

_PRAGMA = re.compile(r"#\s*(noqa|type:\s*ignore)\b")
_NOQA = re.compile(r"#\s*noqa:\s*[A-Z]+[0-9]+(?:\s*,\s*[A-Z]+[0-9]+)*\s*(?:-|#)\s*\S")
_IGNORE = re.compile(r"#\s*type:\s*ignore\[[a-z0-9-]+(?:\s*,\s*[a-z0-9-]+)*\]\s*(?:#|-)\s*\S")


def unexplained(source: str) -> list[tuple[int, str]]:
    """The ``(line, comment)`` of every pragma in ``source`` that lacks a code or a reason."""
    bad = []
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type != tokenize.COMMENT:
            continue
        text = token.string
        for match in _PRAGMA.finditer(text):
            rule = _NOQA if match.group(1) == "noqa" else _IGNORE
            if not rule.match(text, match.start()):
                bad.append((token.start[0], text))
    return bad


def python_files() -> list[Path]:
    """The project's Python files under the checked folders (fixtures are data, not code)."""
    return sorted(
        path
        for folder in CHECKED
        for path in (REPO / folder).rglob("*.py")
        if "fixtures" not in path.relative_to(REPO).parts
    )


@pytest.mark.parametrize(
    "line",
    [
        "x = 1  # noqa: E741 - last trade id",
        "def f(  # noqa: PLR0913 - river-style estimator\n    a: int,\n) -> None: ...",
        "x = 1  # noqa: E501, B905 - both on purpose",
        "y = f()  # type: ignore[arg-type]  # slack_sdk annotates int",
        "y = f()  # type: ignore[arg-type, union-attr]  # two reasons, one line",
        "s = '# noqa'  # a string is not a comment",
    ],
)
def test_a_pragma_with_code_and_reason_passes(line: str) -> None:
    assert unexplained(line + "\n") == []


@pytest.mark.parametrize(
    "line",
    [
        "x = 1  # noqa",
        "x = 1  # noqa: E741",
        "x = 1  # noqa: E741 -",
        "x = 1  # noqa - no code",
        "y = f()  # type: ignore",
        "y = f()  # type: ignore[arg-type]",
        "y = f()  # type: ignore  # a reason but no code",
        "y = f()  # type: ignore[arg-type]  # noqa: E501",
    ],
)
def test_a_pragma_without_code_or_reason_is_reported(line: str) -> None:
    assert unexplained(line + "\n") == [(1, line[line.index("#") :])]


def test_every_noqa_and_type_ignore_carries_a_reason() -> None:
    files = python_files()
    assert len(files) > 100  # the scan sees the project, not an empty folder
    bad = [
        f"{path.relative_to(REPO)}:{line}: {comment}"
        for path in files
        for line, comment in unexplained(path.read_text(encoding="utf-8"))
    ]
    assert bad == [], "noqa / type: ignore without a code and a reason:\n" + "\n".join(bad)
