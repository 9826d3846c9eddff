"""The merge step's view of progress: which event-time seconds every partition has finished.

A source partition keeps the state of every instrument it reads
(:mod:`cascadewatch.pipelines.steps.tracked_source`): when its watermark ``wm`` arrives, each instrument closes
its seconds before ``wm``, and the partition sends those seconds and then the watermark to the
merge step in one ordered list. So partition ``p`` is complete before the latest watermark
it has sent, and the global watermark is::

    min(latest wm of p) over all n_partitions   (-inf until every partition has sent one)
"""

from __future__ import annotations

from cascadewatch.connectors.sources import Watermark

NEVER = -(2**63)


class WatermarkTracker:
    """Combine the partitions' watermarks into the global watermark (ns).

    >>> tracker = WatermarkTracker(n_partitions=2)
    >>> tracker.observe(Watermark(0, 5_000))
    -9223372036854775808
    >>> tracker.observe(Watermark(1, 4_000))
    4000
    >>> tracker.observe(Watermark(1, 3_000))  # never goes back
    4000
    """

    def __init__(self, n_partitions: int) -> None:
        self.n_partitions = n_partitions
        self.latest: dict[int, int] = {}

    def observe(self, mark: Watermark) -> int:
        """Record one partition watermark; return the global watermark after it."""
        if mark.wm > self.latest.get(mark.partition, NEVER):
            self.latest[mark.partition] = mark.wm
        if len(self.latest) < self.n_partitions:
            return NEVER
        return min(self.latest.values())
