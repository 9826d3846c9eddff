"""The ordering step: outputs of all assets, in ``(ts, asset)`` order, whatever ran where.

Asset steps may run on different workers and finish a second at different times.
:class:`OutputOrderer` keeps the merge step's :class:`~cascadewatch.pipelines.steps.items.SecondManifest` items
(they arrive in ascending order, over one channel) and the assets'
:class:`~cascadewatch.pipelines.steps.items.AssetOutput` items, and emits second ``t`` (its assets in sorted
order) as soon as every asset of ``t``'s manifest has delivered and every earlier second has
been emitted. The output is therefore identical for any batch size, worker and process count.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from cascadewatch.pipelines.steps.items import AssetOutput, SecondManifest


class IncompleteOutput(RuntimeError):
    """The input ended while a released second still missed an asset's output (a dataflow bug)."""


class OutputOrderer:
    """Release per-asset outputs in manifest order.

    >>> orderer = OutputOrderer()
    >>> orderer.process([AssetOutput(1000, "ETH", ({"asset": "ETH"},)), SecondManifest(1000, ("BTC", "ETH"))])
    []
    >>> orderer.process([AssetOutput(1000, "BTC", ({"asset": "BTC"},))])
    [{'asset': 'BTC'}, {'asset': 'ETH'}]
    """

    def __init__(self) -> None:
        self.manifests: deque[SecondManifest] = deque()
        self.outputs: dict[tuple[int, str], tuple[dict[str, Any], ...]] = {}

    def process(self, values: list[SecondManifest | AssetOutput]) -> list[dict[str, Any]]:
        """Take manifests and outputs; return every second that is now complete, in order."""
        for value in values:
            if isinstance(value, SecondManifest):
                self.manifests.append(value)
            else:
                self.outputs[(value.second, value.asset)] = value.items
        out: list[dict[str, Any]] = []
        while self.manifests and all((self.manifests[0].second, a) in self.outputs for a in self.manifests[0].assets):
            manifest = self.manifests.popleft()
            for asset in manifest.assets:
                out.extend(self.outputs.pop((manifest.second, asset)))
        return out

    def check_complete(self) -> None:
        """At end of input nothing may be left waiting; raise :class:`IncompleteOutput` if it is."""
        if self.manifests or self.outputs:
            waiting = self.manifests[0] if self.manifests else None
            raise IncompleteOutput(
                f"input ended with {len(self.manifests)} released second(s) incomplete "
                f"(first: {waiting}) and {len(self.outputs)} unclaimed asset output(s)"
            )
