"""The merge step: all instrument seconds meet here, in event-time order.

:class:`RiskMerger` buffers :class:`~pipelines.model.InstrumentSecond` items by second and
releases a second once the global watermark (:mod:`pipelines.watermarks`) has passed its end.
For each released second, in ascending order, and each asset in sorted order it emits the
asset's snapshot (with the detectors' readouts, :mod:`pipelines.assets`), then that asset's
alerts. Per-second volume is small (one item per venue
instrument), so one key suffices and the output is totally ordered by ``(ts, asset)``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from connectors.sources import NS
from pipelines.config import Config
from pipelines.model import ContributorMark, InstrumentSecond
from pipelines.risk import AssetAggregator
from pipelines.assets import AssetDetectors
from pipelines.feed_policy import FeedPolicy
from pipelines.watermarks import WatermarkTracker


class RiskMerger:
    """Merge venues per asset at each second; run the alert policy; emit output dicts."""

    def __init__(self, n_partitions: int, config: Config, on_sample: Callable[[dict], None] | None = None) -> None:
        """``on_sample``: passed to every asset's detectors (``cascadewatch train``; see
        :class:`~pipelines.assets.AssetDetectors`)."""
        self.config = config
        self.on_sample = on_sample
        self.watermarks = WatermarkTracker(n_partitions)
        self.pending: dict[int, list[InstrumentSecond]] = {}
        self.released_before_ms = -(2**63)
        self.late = 0
        self.assets: dict[str, AssetAggregator] = {}
        self.detectors: dict[str, AssetDetectors] = {}
        self.feeds: dict[str, FeedPolicy] = {}

    def process(self, values: list[Any]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for value in values:
            if isinstance(value, ContributorMark):
                wm = self.watermarks.observe(value)
                if wm > self.released_before_ms * 1_000_000:
                    self._release(wm // NS * 1000, out)
            else:
                second = value.second
                if second < self.released_before_ms:
                    self.late += 1
                    second = self.released_before_ms
                self.pending.setdefault(second, []).append(value)
        return out

    def flush(self) -> list[dict[str, Any]]:
        """Release everything (end of input)."""
        out: list[dict[str, Any]] = []
        if self.pending:
            self._release(max(self.pending) + 1000, out)
        return out

    def _release(self, before_ms: int, out: list[dict[str, Any]]) -> None:
        for second in sorted(s for s in self.pending if s < before_ms):
            states = sorted(self.pending.pop(second), key=lambda s: (s.asset, s.venue, s.instrument))
            by_asset: dict[str, list[InstrumentSecond]] = {}
            for state in states:
                by_asset.setdefault(state.asset, []).append(state)
            for asset, asset_states in by_asset.items():
                aggregator = self.assets.get(asset)
                if aggregator is None:
                    aggregator = self.assets[asset] = AssetAggregator(asset)
                    self.detectors[asset] = AssetDetectors(asset, self.config.detectors, self.__dict__.get("on_sample"))
                    self.feeds[asset] = FeedPolicy(asset)
                snapshot = aggregator.update(second, asset_states)
                out.append(snapshot)
                if snapshot["price"] is not None:
                    fields, alerts = self.detectors[asset].update(
                        second, snapshot["price"], asset_states, aggregator.live(second)
                    )
                    snapshot.update(fields)
                    out.extend(alerts)
                out.extend(self.feeds[asset].update(second, asset_states))
        self.released_before_ms = max(self.released_before_ms, before_ms)
