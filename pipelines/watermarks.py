"""The merge step's view of progress: which event-time seconds every partition has finished.

Partition ``p``'s watermarks reach the merge step only through its instruments' trackers,
as :class:`~pipelines.model.ContributorMark` items in the same ordered lists as the seconds
they follow (:mod:`pipelines.tracked_source`), so they can never overtake that data. Partition ``p`` is complete before::

    done(p) = min(forwarded wm of k for k in announced(p))

where ``announced(p)`` is the union of the ``announced`` lists of ``p``'s forwarded marks and
an announced key that has not forwarded yet counts as ``-inf``. An instrument that is not yet
in ``announced(p)`` was announced after every forwarded mark, so its events lie at or after
those marks. The global watermark is ``min(done(p))`` over all ``n_partitions``.
"""

from __future__ import annotations

from pipelines.model import ContributorMark

NEVER = -(2**63)


class WatermarkTracker:
    """Combine forwarded marks into the global watermark (ns).

    >>> tracker = WatermarkTracker(n_partitions=1)
    >>> tracker.observe(ContributorMark(0, "a", 5_000, ("a", "b")))
    -9223372036854775808
    >>> tracker.observe(ContributorMark(0, "b", 4_000, ("a", "b")))
    4000
    """

    def __init__(self, n_partitions: int) -> None:
        self.n_partitions = n_partitions
        self.forwarded: dict[int, dict[str, int]] = {}
        self.announced: dict[int, set[str]] = {}

    def observe(self, mark: ContributorMark) -> int:
        """Record one mark; return the global watermark after it."""
        forwarded = self.forwarded.setdefault(mark.partition, {})
        if mark.wm > forwarded.get(mark.key, NEVER):
            forwarded[mark.key] = mark.wm
        self.announced.setdefault(mark.partition, set()).update(mark.announced)
        return self.global_watermark()

    def partition_done(self, partition: int) -> int:
        forwarded = self.forwarded.get(partition)
        if not forwarded:
            return NEVER
        return min(forwarded.get(key, NEVER) for key in self.announced[partition])

    def global_watermark(self) -> int:
        if len(self.forwarded) < self.n_partitions:
            return NEVER
        return min(self.partition_done(p) for p in self.forwarded)
