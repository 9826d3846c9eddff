"""One asset's step: venue merge, detectors and alert policies, second by second.

:class:`AssetRisk` receives the asset's :class:`~cascadewatch.pipelines.steps.items.AssetSecond`
items in ascending order (the merge step releases seconds in order, over one channel) and
returns, per second, an :class:`~cascadewatch.pipelines.steps.items.AssetOutput`: the
:class:`~cascadewatch.connectors.outputs.RiskSnapshot` (venue merge:
:class:`~cascadewatch.pipelines.steps.asset_aggregator.AssetAggregator`; the detectors' fields:
:class:`~cascadewatch.pipelines.steps.asset_detectors.AssetDetectors`), then the cascade
alerts, then the feed alerts (:class:`~cascadewatch.pipelines.steps.feed_policy.FeedPolicy`),
as the dicts of the output contract. The provisional alerts that travel with the second
(:mod:`cascadewatch.pipelines.steps.provisional`) come right after the snapshot, and the
resolves of those the policy did not confirm in time after the feed alerts. Its state is the
asset's whole analytic state and pickles for Bytewax recovery.
"""

from __future__ import annotations

from collections.abc import Callable

from cascadewatch.connectors.outputs import Alert
from cascadewatch.pipelines.config import DetectorsConfig, ProvisionalConfig
from cascadewatch.pipelines.steps.asset_aggregator import AssetAggregator
from cascadewatch.pipelines.steps.asset_detectors import AssetDetectors
from cascadewatch.pipelines.steps.feed_policy import FeedPolicy
from cascadewatch.pipelines.steps.items import AssetOutput, AssetSecond
from cascadewatch.pipelines.steps.provisional import ProvisionalWatch


class AssetRisk:
    """State of one asset key. Bytewax builds it without telling the key, so the asset's
    parts are created with its first second."""

    def __init__(
        self,
        config: DetectorsConfig,
        on_sample: Callable[[dict], None] | None = None,
        provisional: ProvisionalConfig | None = None,
    ) -> None:
        """``on_sample``: passed to the detectors (``cascadewatch train``, see
        :class:`~cascadewatch.pipelines.steps.asset_detectors.AssetDetectors`); ``provisional``:
        ``confirm_s`` of the provisional alerts (default ``[provisional]``'s)."""
        self.config = config
        self.on_sample = on_sample
        self.aggregator: AssetAggregator | None = None
        self.detectors: AssetDetectors | None = None
        self.feeds: FeedPolicy | None = None
        self.watch = ProvisionalWatch((provisional or ProvisionalConfig()).confirm_s)

    def __setstate__(self, state: dict) -> None:
        """Unpickle; a state saved before provisional alerts existed watches none."""
        self.__dict__.update(state)
        if "watch" not in state:
            self.watch = ProvisionalWatch(ProvisionalConfig().confirm_s)

    def update(self, item: AssetSecond) -> AssetOutput:
        """Fold in one released second; return its snapshot and alerts."""
        if self.aggregator is None or self.detectors is None or self.feeds is None:
            self.aggregator = AssetAggregator(item.asset)
            self.detectors = AssetDetectors(item.asset, self.config, self.on_sample)
            self.feeds = FeedPolicy(item.asset)
        states = list(item.states)
        snapshot = self.aggregator.update(item.second, states)
        alerts: list[Alert] = []
        if snapshot.price is not None:
            fields, alerts = self.detectors.update(
                item.second, snapshot.price, states, self.aggregator.live(item.second)
            )
            snapshot = snapshot.with_detectors(fields)
        alerts.extend(self.feeds.update(item.second, states))
        provisional = tuple(p.alert for p in item.provisional)
        expired = self.watch.update(item.second, item.provisional, self.detectors.policy.open_incidents())
        return AssetOutput(
            item.second,
            item.asset,
            (snapshot.to_dict(), *provisional, *(alert.to_dict() for alert in alerts), *expired),
        )
