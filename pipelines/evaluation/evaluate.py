"""``cascadewatch evaluate``: replay recordings through the pipeline and score them against the truth.

Each recording is replayed on its own (recordings of several seeds share timestamps) with a
progress bar on stderr; its alerts and snapshots are scored against its truth file with
:func:`cascadewatch.pipelines.evaluation.scoring.score_runs` (definitions in
:mod:`cascadewatch.pipelines.evaluation.scoring`), pooled over all runs, plus the liquidation-map summary error per
run (``map``) and pooled over all runs (``map_pooled``).
"""

from __future__ import annotations

import functools
import json
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from cascadewatch.pipelines.config import Config
from cascadewatch.pipelines.evaluation.contagion_scoring import has_contagion, score_contagion
from cascadewatch.pipelines.evaluation.scoring import map_summary_error, map_summary_error_runs, score_runs
from cascadewatch.pipelines.run.replay import ReplayOptions, run_replay


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The JSON objects of a JSONL file, blank lines skipped."""
    with open(path) as lines:
        return [json.loads(line) for line in lines if line.strip()]


def recording_group(recording: Path) -> list[Path]:
    """A ``RECORDING`` argument: one file, or several joined by commas that are replayed together
    as one run (the assets of one multi-asset simulation, :mod:`cascadewatch.pipelines.simulate.cross_margin`).

    >>> [p.name for p in recording_group(Path("c1.BTC-USDT.rec.zst,c1.ETH-USDT.rec.zst"))]
    ['c1.BTC-USDT.rec.zst', 'c1.ETH-USDT.rec.zst']
    """
    return [Path(part) for part in str(recording).split(",") if part]


def scenario_name(truth: Sequence[dict[str, Any]]) -> str:
    """The family of a run: the ``name`` of its truth's ``scenario`` line (``unknown`` without one)."""
    return next((str(line.get("name")) for line in truth if line.get("type") == "scenario"), "unknown")


def evaluate(
    recordings: Sequence[Path],
    truths: Sequence[Path] | None,
    config: Config,
    progress_console: Console | None = None,
    by_family: bool = False,
) -> dict[str, Any]:
    """Replay each recording (or group of recordings, :func:`recording_group`), score all runs
    pooled; returns the ``--json`` object; with contagion alerts or truth groups in a run, also
    the grouped alert's score under ``"contagion"``
    (:func:`~cascadewatch.pipelines.evaluation.contagion_scoring.score_contagion`).

    ``by_family``: also score the runs of each scenario family (:func:`scenario_name`) on their
    own, under ``"families"``, each with its pooled map error (``"map_pooled"``). ``truths``
    ``None``: each recording is scored against the cascades the online labeller finds in its
    published liquidations (a desk's own recordings).
    """
    if truths is not None and len(recordings) != len(truths):
        raise ValueError(f"{len(recordings)} recordings but {len(truths)} truth files: give one --truth per recording")
    runs = []
    maps = []
    with tempfile.TemporaryDirectory(prefix="cascadewatch-eval-") as scratch, _progress(progress_console) as bar:
        for index, recording in enumerate(recordings):
            group = recording_group(recording)
            task = bar.add_task(", ".join(p.name for p in group), total=sum(p.stat().st_size for p in group))
            out = Path(scratch) / str(index)
            online: list[dict[str, Any]] = []
            read: dict[str, int] = {}

            def advance(path: str, done: int, task: TaskID = task, read: dict[str, int] = read) -> None:
                read[path] = done
                bar.update(task, completed=sum(read.values()))

            run_replay(
                group,
                config,
                ReplayOptions(
                    alerts_out=out / "alerts.jsonl",
                    snapshots_out=out / "snapshots.jsonl",
                    progress=advance,
                    on_sample=None if truths is not None else functools.partial(_keep_cascade, online),
                ),
            )
            alerts = read_jsonl(out / "alerts.jsonl")
            snapshots = read_jsonl(out / "snapshots.jsonl")
            truth = read_jsonl(truths[index]) if truths is not None else online
            runs.append((alerts, snapshots, truth))
            maps.append({"recording": str(recording), **map_summary_error(snapshots, truth)})
    result = score_runs(runs, horizon_s=config.detectors.horizon_s)
    result["map"] = maps
    result["map_pooled"] = map_summary_error_runs([(snapshots, truth) for _, snapshots, truth in runs])
    if any(has_contagion(alerts, truth) for alerts, _, truth in runs):
        result["contagion"] = score_contagion(
            [(alerts, truth) for alerts, _, truth in runs], horizon_s=config.detectors.horizon_s
        )
    if by_family:
        names = [scenario_name(truth) for _, _, truth in runs]
        result["families"] = {}
        for name in sorted(set(names)):
            family = [r for r, n in zip(runs, names, strict=True) if n == name]
            result["families"][name] = {
                **score_runs(family, horizon_s=config.detectors.horizon_s),
                "map_pooled": map_summary_error_runs([(snapshots, truth) for _, snapshots, truth in family]),
            }
    return result


def _keep_cascade(into: list[dict[str, Any]], item: dict[str, Any]) -> None:
    if item.get("type") == "cascade":
        into.append(item)


def _progress(console: Console | None) -> Progress:
    return Progress(
        TextColumn("replaying {task.description}"),
        BarColumn(),
        DownloadColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console or Console(stderr=True),
        disable=console is None,
        transient=False,
    )


def _fmt(value: Any, spec: str = ".3f") -> str:
    return "-" if value is None else format(value, spec)


def score_table(result: dict[str, Any], title: str = "Evaluation") -> Table:
    """The readable per-direction table of an :func:`evaluate` result."""
    table = Table(title=f"{title} (horizon {result['horizon_s']} s)", title_justify="left")
    table.add_column("")
    for column in ("overall", "down", "up"):
        table.add_column(column, justify="right")
    rows = [
        ("cascades", lambda m: str(m["cascades"])),
        ("caught", lambda m: str(m["caught"])),
        ("recall", lambda m: _fmt(m["recall"], ".0%")),
        ("lead median (s)", lambda m: _fmt(m["lead_s"]["median"], ".0f")),
        ("lead p10 (s)", lambda m: _fmt(m["lead_s"]["p10"], ".0f")),
        ("triggers", lambda m: str(m["triggers"])),
        ("false alarms", lambda m: str(m["false_alarms"])),
        ("days", lambda m: _fmt(m["days"], ".3f")),
        ("false alarms / day", lambda m: _fmt(m["false_alarms_per_day"], ".2f")),
        ("pages caught", lambda m: str(m["pages"]["caught"])),
        ("page lead median (s)", lambda m: _fmt(m["pages"]["lead_s"]["median"], ".0f")),
        ("false pages / day", lambda m: _fmt(m["pages"]["false_per_day"], ".2f")),
        ("Brier", lambda m: _fmt(m["brier"], ".4f")),
        ("Brier of base rate", lambda m: _fmt(m["brier_base_rate"], ".4f")),
    ]
    for label, render in rows:
        table.add_row(label, *(render(result[column]) for column in ("overall", "down", "up")))
    return table


def contagion_table(score: dict[str, Any]) -> Table:
    """The grouped contagion alert's score (:func:`score_contagion`) as a two-column table."""
    table = Table(title="Contagion (grouped alert)", title_justify="left")
    table.add_column("")
    table.add_column("value", justify="right")
    for label, value in (
        ("groups", str(score["groups"])),
        ("caught", str(score["caught"])),
        ("recall", _fmt(score["recall"], ".0%")),
        ("lead median (s)", _fmt(score["lead_s"]["median"], ".0f")),
        ("lead p10 (s)", _fmt(score["lead_s"]["p10"], ".0f")),
        ("openings", str(score["openings"])),
        ("false groupings", str(score["false_groupings"])),
        ("days", _fmt(score["days"], ".3f")),
        ("false groupings / day", _fmt(score["false_groupings_per_day"], ".2f")),
    ):
        table.add_row(label, value)
    return table
