"""The dataflow, top to bottom as in DESIGN.md.

::

    ReplaySource partitions (one per recording): parse in the source, batch by instrument
      -> (venue|instrument, [events..., Watermark])
      -> stateful_batch per venue-instrument: book, trades, liquidations, OI, mark
         -> InstrumentSecond per closed event-time second, ContributorMark per watermark
      -> re-key everything to one merge key
      -> stateful_batch "merge": watermark over all partitions, per-asset snapshot each
         second, alert policy -> ordered snapshot and alert dicts
      -> JSONL sink (alerts, snapshots); alert outbox -> Slack/PagerDuty/webhook; risk feed
    dead letters (source parse errors, book sequence gaps) -> JSONL sink
    partition stats + gap dead letters -> summary sink
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import bytewax.operators as op
from bytewax.dataflow import Dataflow
from bytewax.inputs import Source
from bytewax.operators import StatefulBatchLogic

from connectors.alerts.sink import AlertOutboxSink
from connectors.frames import DeadLetter
from connectors.riskfeed import RiskFeedSink
from connectors.sinks import JsonlSink, SnapshotMetricsSink, held_elsewhere, to_stream
from connectors.sources import NS, PARTITION_KEY, STATS_KEY
from pipelines.config import Config
from pipelines.instrument import InstrumentTracker
from pipelines.merge import RiskMerger
from pipelines.model import ContributorMark
from pipelines.summary import SummarySink

MERGE_KEY = "merge"
STREAM_OF = {"snapshot": "snapshots", "alert": "alerts"}
"""Output item type -> the JSONL stream (file) it is written to."""


class InstrumentLogic(StatefulBatchLogic[list[Any], Any, InstrumentTracker]):
    """Bytewax wrapper of :class:`InstrumentTracker`; emits everything to the merge key."""

    def __init__(self, tracker: InstrumentTracker) -> None:
        self.tracker = tracker

    def on_batch(self, values: list[list[Any]]) -> tuple[list[Any], bool]:
        out: list[Any] = []
        for batch in values:
            out.extend(self.tracker.process(batch))
        return out, StatefulBatchLogic.RETAIN

    def snapshot(self) -> InstrumentTracker:
        return copy.deepcopy(self.tracker)


class MergeLogic(StatefulBatchLogic[Any, list[dict[str, Any]], RiskMerger]):
    """Bytewax wrapper of :class:`RiskMerger`; flushes at end of input."""

    def __init__(self, merger: RiskMerger) -> None:
        self.merger = merger

    def on_batch(self, values: list[Any]) -> tuple[list[list[dict[str, Any]]], bool]:
        out = self.merger.process(values)
        return ([out] if out else []), StatefulBatchLogic.RETAIN

    def on_eof(self) -> tuple[list[list[dict[str, Any]]], bool]:
        out = self.merger.flush()
        return ([out] if out else []), StatefulBatchLogic.RETAIN

    def snapshot(self) -> RiskMerger:
        return copy.deepcopy(self.merger)


def build_flow(
    source: Source[Any],
    n_partitions: int,
    config: Config,
    alerts_out: Path | None,
    snapshots_out: Path | None,
    dead_letters_out: Path | None,
    summary_out: Path,
    deliver_alerts: bool = False,
    serve_riskfeed: bool = False,
    export_metrics: bool = False,
    primary: bool = True,
    on_sample: Callable[[dict], None] | None = None,
) -> Dataflow:
    """Wire the dataflow. ``n_partitions``: how many source partitions feed watermarks.

    ``deliver_alerts``: also write alerts to the outbox and deliver them to the configured
    destinations (``[alerts]``). ``serve_riskfeed``: broadcast snapshots and alerts on the
    websocket risk feed (``[riskfeed]``). ``export_metrics``: per-asset Prometheus gauges.
    ``primary``: whether this process holds the single-partition outputs (process 0 of a
    cluster); the others hold none. ``on_sample``: the detectors' classifier samples and
    online labels go to it (``cascadewatch train``, one worker in this process, no recovery).
    """

    def output(step_id: str, stream: Any, sink: Any) -> None:
        op.output(step_id, stream, sink if primary else held_elsewhere(sink))

    lag_ns = int(config.replay.allowed_lag_s * NS)
    flow = Dataflow("cascadewatch")
    batches = op.input("frames", flow, source)
    split = op.branch("split_control", batches, lambda item: not item[0].startswith("!"))
    marks = op.branch("split_partition_marks", split.falses, lambda item: item[0] == PARTITION_KEY)
    control = op.branch("split_stats", marks.falses, lambda item: item[0] == STATS_KEY)
    partition_marks = op.flat_map(
        "partition_marks",
        marks.trues,
        lambda key_value: [
            (MERGE_KEY, ContributorMark(mark.partition, PARTITION_KEY, mark.wm, mark.announced)) for mark in key_value[1]
        ],
    )

    per_instrument = op.stateful_batch(
        "instrument_state",
        split.trues,
        lambda resume: InstrumentLogic(resume or InstrumentTracker(lag_ns)),
    )
    gaps = op.branch("split_gaps", per_instrument, lambda key_value: isinstance(key_value[1], DeadLetter))
    to_merge = op.merge(
        "to_merge_key",
        op.map("instrument_items", gaps.falses, lambda key_value: (MERGE_KEY, key_value[1])),
        partition_marks,
    )
    merged = op.stateful_batch(
        "merge_assets",
        to_merge,
        lambda resume: MergeLogic(resume or RiskMerger(n_partitions, config, on_sample)),
    )
    ordered = op.flat_map("to_lines", merged, lambda key_value: [to_stream(STREAM_OF[item["type"]], item) for item in key_value[1]])
    source_dead = op.flat_map("source_dead_letters", control.falses, lambda key_value: key_value[1])
    dead = op.merge("all_dead_letters", source_dead, op.map("gap_dead_letters", gaps.trues, lambda kv: kv[1]))
    output("jsonl_out", ordered, JsonlSink({"alerts": alerts_out, "snapshots": snapshots_out}))
    if deliver_alerts:
        output("alert_outbox", ordered, AlertOutboxSink(config.alerts))
    if serve_riskfeed:
        output("riskfeed", ordered, RiskFeedSink(config.riskfeed, observe_metrics=False))
    if export_metrics:
        output("asset_metrics", ordered, SnapshotMetricsSink())
    output("dead_letters_out", op.map("dead_stream", dead, lambda d: to_stream("dead_letters", d)),
              JsonlSink({"dead_letters": dead_letters_out}))
    stats = op.flat_map("stats", control.trues, lambda key_value: key_value[1])
    counted = op.merge("stats_and_gaps", stats, op.filter("gap_letters", dead, lambda d: d.reason == "sequence_gap"))
    output("summary_out", op.map("summary_key", counted, lambda item: (STATS_KEY, item)), SummarySink(summary_out))
    return flow
