"""The layering of ``cascadewatch``: no import runs back up (see ``pipelines/__init__.py``)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# pipelines layers, top first; a module may import its own layer or any layer below it.
PIPELINE_LAYERS = [
    {"cli"},
    {"evaluation", "bench", "report"},
    {"run"},
    {"flow"},
    {"steps", "simulate"},
    {"config", "model_file"},
]


def _layer(module: str) -> int:
    part = module.split(".")[2] if module.count(".") >= 2 else ""
    return next(i for i, names in enumerate(PIPELINE_LAYERS) if part in names)


def _imports(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
    return [(line, name) for line, name in found if name.startswith("cascadewatch.")]


def _modules(top: str) -> list[tuple[str, Path]]:
    return [
        ("cascadewatch." + ".".join(p.relative_to(ROOT).with_suffix("").parts), p)
        for p in sorted((ROOT / top).rglob("*.py"))
    ]


def test_pipelines_imports_only_point_down_the_layers() -> None:
    offenders = []
    for module, path in _modules("pipelines"):
        if module.endswith("__init__") and module.count(".") == 2:
            continue
        mine = _layer(module)
        for line, target in _imports(path):
            if target.startswith("cascadewatch.pipelines.") and _layer(target) < mine:
                offenders.append(f"{path.relative_to(ROOT)}:{line} imports {target}")
    assert offenders == []


DETECTORS_MAY_IMPORT = {
    "cascadewatch.connectors.events",
    "cascadewatch.connectors.units",
    "cascadewatch.connectors.outputs",
}
"""The event model (input), its time units and the output contract (alerts): plain data, no I/O."""


def test_detectors_import_only_the_event_model_units_and_output_contract_no_pipelines() -> None:
    offenders = []
    for _, path in _modules("detectors"):
        for line, target in _imports(path):
            if not target.startswith("cascadewatch.detectors") and target not in DETECTORS_MAY_IMPORT:
                offenders.append(f"{path.relative_to(ROOT)}:{line} imports {target}")
    for _, path in _modules("connectors"):
        offenders += [
            f"{path.relative_to(ROOT)}:{line} imports {target}"
            for line, target in _imports(path)
            if target.startswith("cascadewatch.pipelines")
        ]
    assert offenders == []
