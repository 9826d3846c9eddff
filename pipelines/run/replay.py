"""Replay recordings through the dataflow, from Python or the CLI.

>>> summary = run_replay(["rec.zst"], options=ReplayOptions(alerts_out="alerts.jsonl"))  # doctest: +SKIP
>>> summary.frames[("okx-swap", "trade")]                          # doctest: +SKIP
"""

from __future__ import annotations

import json
import tempfile
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from cascadewatch.connectors.exposure import ExposureFile
from cascadewatch.connectors.recording_index import index_recording
from cascadewatch.connectors.sources import ProgressCallback, ReplaySource
from cascadewatch.pipelines.config import Config
from cascadewatch.pipelines.flow import FlowOptions, build_flow
from cascadewatch.pipelines.run.cluster import execute
from cascadewatch.pipelines.run.preflight import check_startup
from cascadewatch.pipelines.steps.audit import AuditStamp
from cascadewatch.pipelines.steps.exposure import ExposureOverlay


@dataclass
class ReplaySummary:
    """What a replay read and produced."""

    frames: Counter[tuple[str, str]] = field(default_factory=Counter)
    dead_letters: Counter[tuple[str, str]] = field(default_factory=Counter)
    lines: int = 0
    truncated: list[str] = field(default_factory=list)
    alerts: list[dict[str, Any]] = field(default_factory=list)
    snapshots: int = 0

    @classmethod
    def read(cls, summary_path: Path, alerts_path: Path | None, snapshots_path: Path | None) -> ReplaySummary:
        """Read a run's summary file and its JSONL outputs (missing files count as empty)."""
        raw = json.loads(summary_path.read_text()) if summary_path.exists() else {}

        def pairs(table: dict[str, int]) -> Counter[tuple[str, str]]:
            """``{"venue kind": n}`` -> ``{(venue, kind): n}``."""
            return Counter({_split_pair(key): n for key, n in table.items()})

        alerts = [json.loads(line) for line in alerts_path.open()] if alerts_path and alerts_path.exists() else []
        snapshots = sum(1 for _ in snapshots_path.open()) if snapshots_path and snapshots_path.exists() else 0
        return cls(
            frames=pairs(raw.get("frames", {})),
            dead_letters=pairs(raw.get("dead_letters", {})),
            lines=raw.get("lines", 0),
            truncated=raw.get("truncated", []),
            alerts=alerts,
            snapshots=snapshots,
        )


@dataclass(frozen=True)
class ReplayOptions:
    """How :func:`run_replay` reads, where it writes, and how it runs.

    Outputs that are not asked for go to a temporary directory. ``dead_letters_out``
    defaults to ``deadletters.jsonl`` beside ``alerts_out`` when that is given.
    ``batch_size``: frames per source batch. ``speed``: ``None`` as fast as possible, ``N``
    N times real time (by receive time). ``workers``: Bytewax workers in this process;
    ``addresses``/``process_id`` run this process as one member of a Bytewax cluster.
    ``deliver_alerts`` sends alerts through the outbox to ``config.alerts`` destinations;
    ``serve_riskfeed`` broadcasts on the risk feed (``config.riskfeed``) while replaying.
    ``progress(path, bytes_consumed)`` is called as the recordings are read.
    ``recovery_dir``: Bytewax recovery store (created when absent); a replay killed at any
    point resumes from its last snapshot there, and the JSONL outputs continue exactly where
    the snapshot left them (no line lost or written twice).
    ``on_sample``: receives the detectors' classifier samples and online labels
    (``cascadewatch train``; in-process, so only with one worker and no cluster).
    """

    alerts_out: str | Path | None = None
    snapshots_out: str | Path | None = None
    dead_letters_out: str | Path | None = None
    batch_size: int = 1000
    workers: int = 1
    speed: float | None = None
    addresses: list[str] | None = None
    process_id: int = 0
    deliver_alerts: bool = False
    serve_riskfeed: bool = False
    progress: ProgressCallback | None = None
    recovery_dir: str | Path | None = None
    on_sample: Callable[[dict], None] | None = None


def exposure_overlay(exposure: ExposureFile | None) -> ExposureOverlay | None:
    """The overlay of the desk's book, or None without one."""
    return ExposureOverlay(exposure) if exposure is not None else None


def _split_pair(key: str) -> tuple[str, str]:
    """``"okx-swap trade"`` -> ``("okx-swap", "trade")``: the key of a summary count."""
    first, _, second = key.partition(" ")
    return first, second


def run_replay(
    recordings: Sequence[str | Path], config: Config | None = None, options: ReplayOptions | None = None
) -> ReplaySummary:
    """Replay ``recordings`` (one source partition each) and write the JSONL outputs.

    ``config``: the pipeline configuration (default :class:`Config`); ``options``: outputs and
    how to run (:class:`ReplayOptions`; default: as fast as possible, one worker).
    """
    opts = options or ReplayOptions()
    if opts.on_sample is not None and (opts.workers != 1 or opts.addresses or opts.recovery_dir):
        raise ValueError("on_sample needs one worker in this process and no recovery")
    config = config or Config()
    with tempfile.TemporaryDirectory(prefix="cascadewatch-") as scratch:
        scratch_dir = Path(scratch)
        alerts = Path(opts.alerts_out) if opts.alerts_out else scratch_dir / "alerts.jsonl"
        snapshots = Path(opts.snapshots_out) if opts.snapshots_out else None
        if opts.dead_letters_out:
            dead = Path(opts.dead_letters_out)
        else:
            dead = alerts.parent / "deadletters.jsonl" if opts.alerts_out else scratch_dir / "deadletters.jsonl"
        summary_path = scratch_dir / "summary.json"
        check_startup(
            config,
            deliver_alerts=opts.deliver_alerts,
            serve_riskfeed=opts.serve_riskfeed,
            outputs=(alerts, snapshots, dead),
        )
        exposure = ExposureFile(config.desk.exposure) if config.desk.exposure else None
        source = ReplaySource(
            recordings,
            batch_size=opts.batch_size,
            allowed_lag_s=config.replay.allowed_lag_s,
            speed=opts.speed,
            progress=opts.progress,
        )
        flow = build_flow(
            source,
            len(source.paths),
            config,
            FlowOptions(
                alerts,
                snapshots,
                dead,
                summary_path,
                deliver_alerts=opts.deliver_alerts,
                serve_riskfeed=opts.serve_riskfeed,
                primary=opts.process_id == 0,
                recovery=opts.recovery_dir is not None,
                on_sample=opts.on_sample,
                audit=AuditStamp(
                    config, [index_recording(path, source.allowed_lag_ns) for path in source.paths], exposure=exposure
                ),
                exposure=exposure_overlay(exposure),
            ),
        )
        execute(
            flow,
            workers=opts.workers,
            addresses=opts.addresses,
            process_id=opts.process_id,
            epoch_interval=timedelta(seconds=1) if opts.speed is not None else None,
            recovery_dir=opts.recovery_dir,
        )
        return ReplaySummary.read(summary_path, alerts, snapshots)
