"""The merge step: every instrument state meets here and is released in event-time order.

:class:`SecondReleaser` buffers :class:`~cascadewatch.pipelines.steps.items.InstrumentState` items by second and
releases a second once the global watermark (:mod:`cascadewatch.pipelines.steps.watermarks`) has passed its end.
For each released second, in ascending order, it emits one
:class:`~cascadewatch.pipelines.steps.items.AssetSecond` per asset (sorted) that goes to that asset's step
(:mod:`cascadewatch.pipelines.steps.asset_risk`), and one
:class:`~cascadewatch.pipelines.steps.items.SecondManifest` that tells the ordering step
(:mod:`cascadewatch.pipelines.steps.output_ordering`) which assets to wait for. Its own work is small
(buffering and grouping, one item per venue instrument and second), so one key suffices; the
per-asset work runs wherever the assets' keys are placed. Provisional alerts
(:class:`~cascadewatch.pipelines.steps.items.ProvisionalAlert`) are held like the states and
travel with their asset's second (the instrument that made one has a state in its second).
"""

from __future__ import annotations

from typing import Any

from cascadewatch.connectors.sources import Watermark
from cascadewatch.connectors.units import MS_PER_S, NS_PER_MS, NS_PER_S
from cascadewatch.pipelines.steps.items import (
    AssetSecond,
    InstrumentState,
    ProvisionalAlert,
    SecondManifest,
)
from cascadewatch.pipelines.steps.watermarks import WatermarkTracker


class SecondReleaser:
    """Hold instrument states until every partition has passed them; release them per asset."""

    def __init__(self, n_partitions: int) -> None:
        self.watermarks = WatermarkTracker(n_partitions)
        self.pending: dict[int, list[InstrumentState]] = {}
        self.provisional: dict[int, list[ProvisionalAlert]] = {}
        self.released_before_ms = -(2**63)
        self.late = 0
        """Instrument states that arrived after their second was released (counted in the
        oldest open second; the watermark contract makes this 0)."""

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Unpickle; a releaser saved before provisional alerts existed holds none."""
        self.__dict__.update(state)
        self.__dict__.setdefault("provisional", {})

    def process(self, values: list[Any]) -> list[AssetSecond | SecondManifest]:
        """Take instrument states, provisional alerts and partition watermarks; return what was
        released, in order."""
        out: list[AssetSecond | SecondManifest] = []
        for value in values:
            if isinstance(value, Watermark):
                wm = self.watermarks.observe(value)
                if wm > self.released_before_ms * NS_PER_MS:
                    self._release(wm // NS_PER_S * MS_PER_S, out)
            else:
                second = value.second
                if second < self.released_before_ms:
                    self.late += 1
                    second = self.released_before_ms
                if isinstance(value, ProvisionalAlert):
                    self.provisional.setdefault(second, []).append(value)
                else:
                    self.pending.setdefault(second, []).append(value)
        return out

    def flush(self) -> list[AssetSecond | SecondManifest]:
        """Release everything (end of input)."""
        out: list[AssetSecond | SecondManifest] = []
        if self.pending:
            self._release(max(self.pending) + 1000, out)
        return out

    def _release(self, before_ms: int, out: list[AssetSecond | SecondManifest]) -> None:
        for second in sorted(s for s in self.pending if s < before_ms):
            by_asset: dict[str, list[InstrumentState]] = {}
            for state in sorted(self.pending.pop(second), key=lambda s: (s.asset, s.venue, s.instrument)):
                by_asset.setdefault(state.asset, []).append(state)
            alerts: dict[str, list[ProvisionalAlert]] = {}
            for alert in sorted(self.provisional.pop(second, ()), key=_alert_order):
                alerts.setdefault(alert.asset, []).append(alert)
            out.extend(
                AssetSecond(second, asset, tuple(states), tuple(alerts.get(asset, ())))
                for asset, states in by_asset.items()
            )
            out.append(SecondManifest(second, tuple(by_asset)))
        self.released_before_ms = max(self.released_before_ms, before_ms)


def _alert_order(alert: ProvisionalAlert) -> tuple[str, str, str, int, str]:
    """Provisional alerts of a second by asset, venue, instrument, checkpoint, direction."""
    return (alert.asset, alert.venue, alert.instrument, alert.alert["ts"], alert.alert["direction"])
