"""The dataflow, top to bottom as in DESIGN.md.

::

    source partitions (one per recording or live venue): parse, batch by instrument, and
    per venue-instrument in the partition that reads it (cascadewatch.pipelines.steps.tracked_source): book,
    trades, liquidations, OI, mark -> InstrumentState per closed event-time second
      -> ("merge", [InstrumentState, ..., Watermark]) per batch
      -> stateful_batch "merge": watermark over all partitions -> per released second an
         AssetSecond per asset (keyed by asset) and a SecondManifest (to the ordering key)
      -> stateful_batch per asset: venue merge, detectors, alert policies
         -> AssetOutput (snapshot, alerts) to the ordering key
      -> stateful_batch "order": seconds in order, assets sorted -> snapshot and alert dicts
      -> stateful_batch "contagion" ([contagion]), on the same key: every asset's second seen
         together; grouped alerts when cascades begin in several assets within a window
      -> exposure ([desk] exposure): the desk's positions and orders inside the predicted reach
      -> audit: each alert gets its manifest (code, config, model, inputs, second)
      -> JSONL sink (alerts, snapshots); alert outbox -> Slack/PagerDuty/webhook/
         Alertmanager/Telegram/Discord; risk feed
    provisional alerts (cascadewatch.pipelines.steps.provisional), made in the source partitions at
    receive-time checkpoints: with the instrument states through merge and asset steps into the
    ordered output, and (runs that deliver alerts) also straight to the alert outbox
    dead letters (source parse errors, book sequence gaps) -> JSONL sink
    partition stats + gap dead letters -> summary sink

Only per-second items cross workers: events stay in the partition that parsed them, each
asset's analytics run on the worker its key is placed on, and the ordering step restores
one output order, so the output is the same for any batch size, worker or process count.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeGuard, TypeVar

import bytewax.operators as op
import msgspec
from bytewax.dataflow import Dataflow
from bytewax.inputs import FixedPartitionedSource
from bytewax.operators import StatefulBatchLogic

from cascadewatch.connectors.alerts.sink import AlertOutboxSink
from cascadewatch.connectors.reasons import Reason
from cascadewatch.connectors.riskfeed import RiskFeedSink
from cascadewatch.connectors.sinks import (
    JsonlSink,
    SnapshotMetricsSink,
    held_elsewhere,
    to_stream,
)
from cascadewatch.connectors.sources import STATS_KEY
from cascadewatch.connectors.units import s_to_ns
from cascadewatch.pipelines.config import Config, DetectorsConfig
from cascadewatch.pipelines.steps.asset_risk import AssetRisk
from cascadewatch.pipelines.steps.audit import AuditStamp
from cascadewatch.pipelines.steps.contagion import ContagionStep
from cascadewatch.pipelines.steps.exposure import ExposureOverlay
from cascadewatch.pipelines.steps.items import AssetOutput, AssetSecond, SecondManifest
from cascadewatch.pipelines.steps.output_ordering import OutputOrderer
from cascadewatch.pipelines.steps.provisional import ProvisionalRule
from cascadewatch.pipelines.steps.second_release import SecondReleaser
from cascadewatch.pipelines.steps.summary import SummarySink
from cascadewatch.pipelines.steps.tracked_source import MERGE_KEY, PROVISIONAL_KEY, ProvisionalOptions, TrackedSource

T = TypeVar("T")
ORDER_KEY = "order"
STREAM_OF = {"snapshot": "snapshots", "alert": "alerts"}
"""Output item type -> the JSONL stream (file) it is written to."""


def snapshot_of(state: T, recovery: bool) -> T | None:
    """What a step's ``snapshot`` gives Bytewax: a deep copy of ``state`` when the run keeps a
    recovery store, else ``None``.

    Bytewax asks every stateful step for a snapshot at the end of every epoch (10 s of a replay,
    1 s live) whether or not it stores them; a copy of an asset's detectors costs about 0.3 s
    here, so a run without recovery does not make one. A step resumed from ``None`` starts fresh,
    as it would without recovery.
    """
    return copy.deepcopy(state) if recovery else None


class MergeLogic(StatefulBatchLogic[Any, AssetSecond | SecondManifest, SecondReleaser | None]):
    """Bytewax wrapper of :class:`SecondReleaser`; releases everything at end of input.

    ``recovery``: whether the run keeps a recovery store (see :meth:`snapshot`).
    """

    def __init__(self, releaser: SecondReleaser, recovery: bool = True) -> None:
        self.releaser = releaser
        self.recovery = recovery

    def on_batch(self, values: list[list[Any]]) -> tuple[list[AssetSecond | SecondManifest], bool]:
        """Release the seconds that the batches' watermarks close."""
        out: list[AssetSecond | SecondManifest] = []
        for batch in values:
            out.extend(self.releaser.process(batch))
        return out, StatefulBatchLogic.RETAIN

    def on_eof(self) -> tuple[list[AssetSecond | SecondManifest], bool]:
        """At end of input, release every second still held."""
        return self.releaser.flush(), StatefulBatchLogic.RETAIN

    def snapshot(self) -> SecondReleaser | None:
        """A copy of the releaser, for recovery; ``None`` without a recovery store (see :func:`snapshot_of`)."""
        return snapshot_of(self.releaser, self.recovery)


class AssetLogic(StatefulBatchLogic[AssetSecond, AssetOutput, AssetRisk | None]):
    """Bytewax wrapper of :class:`AssetRisk`: one asset's seconds, in order.

    ``recovery``: whether the run keeps a recovery store (see :meth:`snapshot`).
    """

    def __init__(self, risk: AssetRisk, recovery: bool = True) -> None:
        self.risk = risk
        self.recovery = recovery

    def on_batch(self, values: list[AssetSecond]) -> tuple[list[AssetOutput], bool]:
        """The asset's outputs of each released second, in order."""
        return [self.risk.update(value) for value in values], StatefulBatchLogic.RETAIN

    def snapshot(self) -> AssetRisk | None:
        """A copy of the asset's state, for recovery; ``None`` without a recovery store (see :func:`snapshot_of`)."""
        return snapshot_of(self.risk, self.recovery)


class OrderLogic(StatefulBatchLogic[Any, list[dict[str, Any]], OutputOrderer | None]):
    """Bytewax wrapper of :class:`OutputOrderer`; at end of input nothing may be left waiting.

    ``recovery``: whether the run keeps a recovery store (see :meth:`snapshot`).
    """

    def __init__(self, orderer: OutputOrderer, recovery: bool = True) -> None:
        self.orderer = orderer
        self.recovery = recovery

    def on_batch(self, values: list[Any]) -> tuple[list[list[dict[str, Any]]], bool]:
        """The outputs that are complete, in output order, as one list (none if nothing is ready)."""
        out = self.orderer.process(values)
        return ([out] if out else []), StatefulBatchLogic.RETAIN

    def on_eof(self) -> tuple[list[list[dict[str, Any]]], bool]:
        """Check that nothing is left waiting at end of input."""
        self.orderer.check_complete()
        return [], StatefulBatchLogic.RETAIN

    def snapshot(self) -> OutputOrderer | None:
        """A copy of the orderer, for recovery; ``None`` without a recovery store (see :func:`snapshot_of`)."""
        return snapshot_of(self.orderer, self.recovery)


class ContagionLogic(StatefulBatchLogic[list[dict[str, Any]], list[dict[str, Any]], ContagionStep | None]):
    """Bytewax wrapper of :class:`ContagionStep`: ordered output lists in, the same with the
    grouped alerts added out.

    ``recovery``: whether the run keeps a recovery store (see :meth:`snapshot`).
    """

    def __init__(self, step: ContagionStep, recovery: bool = True) -> None:
        self.step = step
        self.recovery = recovery

    def on_batch(self, values: list[list[dict[str, Any]]]) -> tuple[list[list[dict[str, Any]]], bool]:
        """Each ordered list with its seconds' contagion alerts."""
        return [self.step(items) for items in values], StatefulBatchLogic.RETAIN

    def snapshot(self) -> ContagionStep | None:
        """A copy of the step's state, for recovery; ``None`` without a recovery store (see :func:`snapshot_of`)."""
        return snapshot_of(self.step, self.recovery)


def _route_released(key_value: tuple[str, AssetSecond | SecondManifest]) -> tuple[str, AssetSecond | SecondManifest]:
    """An asset's second goes to the asset's key, a manifest to the ordering key."""
    item = key_value[1]
    return (item.asset, item) if isinstance(item, AssetSecond) else (ORDER_KEY, item)


@dataclass(frozen=True)
class FlowOptions:
    """Where the dataflow writes, and what it serves besides its JSONL files.

    ``alerts_out``, ``snapshots_out``, ``dead_letters_out``: the JSONL outputs (``None``: not
    written); ``summary_out``: the run's counts (JSON). ``deliver_alerts``: also write alerts
    to the outbox and deliver them to the configured destinations (``[alerts]``).
    ``serve_riskfeed``: broadcast snapshots and alerts on the websocket risk feed
    (``[riskfeed]``). ``export_metrics``: per-asset Prometheus gauges. ``primary``: whether
    this process holds the single-partition outputs (process 0 of a cluster); the others hold
    none. ``on_sample``: the detectors' classifier samples and online labels go to it
    (``cascadewatch train``, one worker in this process, no recovery). ``recovery``: whether
    the run keeps a recovery store; without one the steps hand Bytewax no copies of their
    state (:func:`snapshot_of`). ``audit``: appends the audit manifest to the alerts
    (:class:`~cascadewatch.pipelines.steps.audit.AuditStamp`); ``exposure``: adds the desk's
    exposure (:class:`~cascadewatch.pipelines.steps.exposure.ExposureOverlay`).
    """

    alerts_out: Path | None
    snapshots_out: Path | None
    dead_letters_out: Path | None
    summary_out: Path
    deliver_alerts: bool = False
    serve_riskfeed: bool = False
    export_metrics: bool = False
    primary: bool = True
    on_sample: Callable[[dict], None] | None = None
    recovery: bool = True
    audit: AuditStamp | None = None
    exposure: ExposureOverlay | None = None


def _is_asset_second(
    key_value: tuple[str, AssetSecond | SecondManifest],
) -> TypeGuard[tuple[str, AssetSecond]]:
    """Whether a released item goes to its asset's key (a manifest goes to the ordering key)."""
    return key_value[0] != ORDER_KEY


def page_info(detectors: DetectorsConfig) -> dict[str, Any]:
    """What the web page shows beside the items: the alert policy's thresholds (probabilities)."""
    return {"thresholds": {k: getattr(detectors, k) for k in ("warn_enter", "warn_exit", "crit_enter")}}


def provisional_rule(config: Config) -> ProvisionalRule | None:
    """The provisional alerts' rule of ``config`` (``[provisional]`` and the liquidation cascade's
    thresholds in ``[detectors]``); ``None`` when they are off."""
    if not config.provisional.enabled:
        return None
    d = config.detectors
    return ProvisionalRule.of(
        config.provisional.checkpoint_ms,
        d.regime_window_s,
        d.regime_min_liq_usd,
        d.regime_min_move_bps,
        config.replay.allowed_lag_s,
        d.labels.onset_s,
        d.labels.onset_share,
    )


def _finisher(options: FlowOptions) -> Callable[[list[dict[str, Any]]], list[dict[str, Any]]]:
    """The output steps every output item passes: the exposure overlay, then the audit stamp."""
    exposure, audit = options.exposure, options.audit

    def finish(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if exposure is not None:
            items = exposure(items)
        return audit(items) if audit is not None else items

    return finish


def build_flow(
    source: FixedPartitionedSource[Any, Any], n_partitions: int, config: Config, options: FlowOptions
) -> Dataflow:
    """Wire the dataflow. ``n_partitions``: how many source partitions feed watermarks.

    ``options``: outputs and services (:class:`FlowOptions`).
    """

    def output(step_id: str, stream: Any, sink: Any) -> None:
        op.output(step_id, stream, sink if options.primary else held_elsewhere(sink))

    # the web page draws the estimated levels: snapshots carry them while the feed is served
    detectors = (
        msgspec.structs.replace(config.detectors, snapshot_levels=True) if options.serve_riskfeed else config.detectors
    )
    flow = Dataflow("cascadewatch")
    recovery = options.recovery
    fast = ProvisionalOptions(provisional_rule(config), direct=options.deliver_alerts)
    batches = op.input("frames", flow, TrackedSource(source, s_to_ns(config.replay.allowed_lag_s), recovery, fast))
    to_merge = op.branch("split_control", batches, lambda item: item[0] == MERGE_KEY)
    control = op.branch("split_stats", to_merge.falses, lambda item: item[0] == STATS_KEY)
    released = op.map(
        "route_released",
        op.stateful_batch(
            "merge_seconds",
            to_merge.trues,
            lambda resume: MergeLogic(resume or SecondReleaser(n_partitions), recovery),
        ),
        _route_released,
    )
    by_asset = op.branch("split_manifests", released, _is_asset_second)
    asset_outputs = op.stateful_batch(
        "asset_risk",
        by_asset.trues,
        lambda resume: AssetLogic(resume or AssetRisk(detectors, options.on_sample, config.provisional), recovery),
    )
    to_order = op.merge(
        "to_order_key",
        op.map("asset_outputs", asset_outputs, lambda key_value: (ORDER_KEY, key_value[1])),
        by_asset.falses,
    )
    merged = op.stateful_batch(
        "order_outputs", to_order, lambda resume: OrderLogic(resume or OutputOrderer(), recovery)
    )
    if config.contagion.enabled:
        merged = op.stateful_batch(
            "contagion",
            merged,
            lambda resume: ContagionLogic(resume or ContagionStep(config.contagion, detectors), recovery),
        )
    finish = _finisher(options)
    merged = op.map("finish", merged, lambda key_value: (key_value[0], finish(key_value[1])))
    ordered = op.flat_map(
        "to_lines", merged, lambda key_value: [to_stream(STREAM_OF[item["type"]], item) for item in key_value[1]]
    )
    provisional = op.branch("split_provisional", control.falses, lambda item: item[0] == PROVISIONAL_KEY)
    dead = op.flat_map("dead_letters", provisional.falses, lambda key_value: key_value[1])
    output("jsonl_out", ordered, JsonlSink({"alerts": options.alerts_out, "snapshots": options.snapshots_out}))
    if options.deliver_alerts:
        at_once = op.flat_map(
            "provisional_now",
            provisional.trues,
            lambda key_value: [to_stream("alerts", a) for a in finish(key_value[1])],
        )
        output("alert_outbox", op.merge("to_outbox", at_once, ordered), AlertOutboxSink(config.alerts))
    if options.serve_riskfeed:
        output("riskfeed", ordered, RiskFeedSink(config.riskfeed, observe_metrics=False, page=page_info(detectors)))
    if options.export_metrics:
        output("asset_metrics", ordered, SnapshotMetricsSink())
    output(
        "dead_letters_out",
        op.map("dead_stream", dead, lambda d: to_stream("dead_letters", d)),
        JsonlSink({"dead_letters": options.dead_letters_out}),
    )
    stats = op.flat_map("stats", control.trues, lambda key_value: key_value[1])
    counted = op.merge(
        "stats_and_gaps", stats, op.filter("gap_letters", dead, lambda d: d.reason == Reason.SEQUENCE_GAP)
    )
    output(
        "summary_out", op.map("summary_key", counted, lambda item: (STATS_KEY, item)), SummarySink(options.summary_out)
    )
    return flow
