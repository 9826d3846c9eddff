"""Lazy imports: ``cascadewatch --help`` and ``cascadewatch tail`` start without the heavy modules.

Each check runs a fresh interpreter (``sys.modules`` of this one holds everything the other
tests loaded) and lists which of :data:`HEAVY` it loaded; start-up time itself is not asserted
(a busy machine makes any timed test flaky), the modules that cost it are.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

HEAVY = ("numpy", "river", "scipy", "bytewax")
"""The detectors', the classifier's and the dataflow's dependencies: about 1 s of imports together
(numpy alone about 0.12 s), none needed to parse arguments. The simulate command's lever defaults
come from :mod:`cascadewatch.detectors.margin` and :mod:`cascadewatch.detectors.breaker`, which
load no numpy."""

_REPORT = f"\nimport json, sys\nprint(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r}))))\n"


def heavy_modules_after(code: str) -> list[str]:
    """The :data:`HEAVY` top-level packages a fresh interpreter has loaded after running ``code``."""
    done = subprocess.run([sys.executable, "-c", code + _REPORT], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_check_sees_a_heavy_import() -> None:
    assert heavy_modules_after("import cascadewatch.detectors.probability") == ["numpy"]
    online = "from cascadewatch.detectors.probability import CascadeProbability\nCascadeProbability().model\n"
    assert heavy_modules_after(online) == ["numpy", "river", "scipy"]  # the online pipeline imports river


def test_help_of_every_command_loads_no_heavy_module() -> None:
    code = (
        "import argparse\n"
        "from cascadewatch.pipelines.cli.main import build_parser\n"
        "parser = build_parser()\n"
        "parser.format_help()\n"
        "commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))\n"
        "assert {'replay', 'demo', 'train', 'tail', 'run', 'record'} <= set(commands.choices)\n"
        "for sub in commands.choices.values():\n"
        "    sub.format_help()\n"
    )
    assert heavy_modules_after(code) == []


def test_tail_from_a_file_loads_no_heavy_module(tmp_path: Path) -> None:
    snapshots = tmp_path / "snapshots.jsonl"
    snapshots.write_text(json.dumps({"type": "snapshot", "ts": 1_700_000_001_000, "asset": "ETH-USDT"}) + "\n")
    code = (
        f"from cascadewatch.pipelines.cli.main import main\nassert main(['tail', '--from', {str(snapshots)!r}]) == 0\n"
    )
    assert heavy_modules_after(code) == []


def test_a_command_loads_what_it_runs(tmp_path: Path) -> None:
    code = (
        "from cascadewatch.pipelines.cli.main import main\n"
        f"main(['replay', {str(tmp_path / 'missing.rec')!r}, '--quiet'])\n"
    )
    assert heavy_modules_after(code) == ["bytewax", "numpy"]


def test_a_replay_with_the_shipped_model_imports_neither_river_nor_scipy(tmp_path: Path) -> None:
    """The shipped model is frozen: it predicts in plain Python (``cascadewatch.pipelines.model_file``
    reads it from JSON); only online learning (``model = "none"``) needs river, and it loads it."""
    replay = (
        "from cascadewatch.pipelines.cli.main import bundled_demo_recording, main\n"
        "args = ['replay', str(bundled_demo_recording()), '--quiet', '--alerts-out', {alerts!r}]\n"
        "assert main(args{extra}) == 0\n"
    )
    alerts = str(tmp_path / "a.jsonl")
    assert heavy_modules_after(replay.format(alerts=alerts, extra="")) == ["bytewax", "numpy"]
    assert '"model":"' in (tmp_path / "a.jsonl").read_text()  # the alerts name the shipped model
    (tmp_path / "none.toml").write_text('[detectors]\nmodel = "none"\n')
    online = replay.format(alerts=alerts, extra=f" + ['--config', {str(tmp_path / 'none.toml')!r}]")
    assert heavy_modules_after(online) == ["bytewax", "numpy", "river", "scipy"]
