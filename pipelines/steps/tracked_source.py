"""Per venue-instrument state kept inside the source partition that reads the instrument.

:class:`TrackedSource` wraps a source of ``(key, [values])`` batches (replay or live, see
:mod:`cascadewatch.connectors.sources`). Each of its partitions runs the
:class:`~cascadewatch.pipelines.steps.instrument_tracker.InstrumentTracker` of every instrument it reads, right after
parsing, and emits per-second state instead of raw events:

- ``(MERGE_KEY, [InstrumentState, ..., Watermark])``: the seconds the batch closed, then
  the batch's watermark (the source appends it last to each instrument's list, and live
  partitions also under ``PARTITION_KEY``), one item per batch, for the merge step. Every
  instrument has closed its seconds before ``wm`` when the watermark is sent, so the merge
  needs only the partitions' latest watermarks (:mod:`cascadewatch.pipelines.steps.watermarks`);
- ``(DEAD_LETTER_KEY, [DeadLetter, ...])``: the source's dead letters, then the books'
  sequence gaps;
- ``(STATS_KEY, [PartitionStats])``: passed through;
- with a provisional rule (:mod:`cascadewatch.pipelines.steps.provisional`), every instrument also
  has an :class:`~cascadewatch.pipelines.steps.provisional.InstrumentTrigger`; its provisional
  alerts go to the merge step with the states (before the watermark), and with ``direct``
  also as ``(PROVISIONAL_KEY, [alert dict, ...])``, for the alert outbox at once.

An instrument's events only ever come from one partition, so its book lives where its frames
are parsed: no event crosses a worker or process boundary (pickling every event for a
keyed step cost more than the book work itself), and the per-frame work is spread as evenly
as Bytewax spreads partitions, not by the hash of a few instrument keys. Only per-second state
travels between workers. A partition's snapshot holds the source position and its trackers.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition

from cascadewatch.connectors.frames import DeadLetter
from cascadewatch.connectors.sources import (
    DEAD_LETTER_KEY,
    PARTITION_KEY,
    STATS_KEY,
    Watermark,
)
from cascadewatch.pipelines.steps.instrument_tracker import InstrumentTracker
from cascadewatch.pipelines.steps.items import InstrumentState, ProvisionalAlert
from cascadewatch.pipelines.steps.provisional import InstrumentTrigger, ProvisionalRule

MERGE_KEY = "merge"
PROVISIONAL_KEY = "provisional"


@dataclass(frozen=True)
class ProvisionalOptions:
    """How a partition makes provisional alerts: ``rule`` (``None``: none), and ``direct``: also
    send them to the outbox at once (a run that delivers alerts)."""

    rule: ProvisionalRule | None = None
    direct: bool = False


class TrackedPartition(StatefulSourcePartition[tuple[str, list[Any]], dict[str, Any]]):
    """One source partition plus the trackers of the instruments it reads."""

    def __init__(
        self,
        inner: StatefulSourcePartition,
        allowed_lag_ns: int,
        trackers: dict[str, InstrumentTracker] | None = None,
        recovery: bool = True,
        provisional_options: ProvisionalOptions | None = None,
        triggers: dict[str, InstrumentTrigger] | None = None,
    ) -> None:
        self.inner = inner
        self.lag = allowed_lag_ns
        self.trackers: dict[str, InstrumentTracker] = trackers or {}
        self.recovery = recovery
        self.provisional_options = provisional_options or ProvisionalOptions()
        self.triggers: dict[str, InstrumentTrigger] = triggers or {}

    def next_batch(self) -> list[tuple[str, list[Any]]]:
        """The inner batch, its events folded into instrument states, dead letters and a watermark."""
        to_merge: list[InstrumentState | ProvisionalAlert | Watermark] = []
        dead: list[DeadLetter] = []
        rule = self.provisional_options.rule
        provisional: list[ProvisionalAlert] = []
        out: list[tuple[str, list[Any]]] = []
        mark: Watermark | None = None
        for key, values in self.inner.next_batch():
            if key == DEAD_LETTER_KEY:
                dead.extend(values)
            elif key == STATS_KEY:
                out.append((key, values))
            else:
                if key != PARTITION_KEY:
                    tracker = self.trackers.get(key)
                    if tracker is None:
                        tracker = self.trackers[key] = InstrumentTracker(self.lag)
                    for item in tracker.process(values):
                        if isinstance(item, DeadLetter):
                            dead.append(item)
                        else:
                            to_merge.append(item)
                    if rule is not None:
                        trigger = self.triggers.get(key)
                        if trigger is None:
                            trigger = self.triggers[key] = InstrumentTrigger(rule)
                        provisional.extend(trigger.process(values))
                last = values[-1]
                if isinstance(last, Watermark) and (mark is None or last.wm > mark.wm):
                    mark = last
        to_merge.extend(provisional)
        if mark is not None:
            to_merge.append(mark)
        if to_merge:
            out.insert(0, (MERGE_KEY, to_merge))
        if provisional and self.provisional_options.direct:
            out.append((PROVISIONAL_KEY, [item.alert for item in provisional]))
        if dead:
            out.append((DEAD_LETTER_KEY, dead))
        return out

    def next_awake(self) -> datetime | None:
        """When the inner partition wants to be polled next."""
        return self.inner.next_awake()

    def snapshot(self) -> dict[str, Any]:
        """The resume state: the inner source's, the instrument trackers (their books) and
        triggers; without a recovery store (``recovery=False``) neither is copied: Bytewax asks
        at every epoch and discards the answer."""
        if not self.recovery:
            return {"source": self.inner.snapshot(), "trackers": {}, "triggers": {}}
        return {
            "source": self.inner.snapshot(),
            "trackers": copy.deepcopy(self.trackers),
            "triggers": copy.deepcopy(self.triggers),
        }

    def close(self) -> None:
        """Close the inner partition."""
        self.inner.close()


class TrackedSource(FixedPartitionedSource[tuple[str, list[Any]], dict[str, Any]]):
    """``inner``'s partitions, each with its instruments' trackers (see the module docstring);
    ``recovery``: whether the run keeps a recovery store (:meth:`TrackedPartition.snapshot`);
    ``provisional_options``: provisional alerts (:class:`ProvisionalOptions`; default none)."""

    def __init__(
        self,
        inner: FixedPartitionedSource[Any, Any],
        allowed_lag_ns: int,
        recovery: bool = True,
        provisional_options: ProvisionalOptions | None = None,
    ) -> None:
        self.inner = inner
        self.allowed_lag_ns = allowed_lag_ns
        self.recovery = recovery
        self.provisional_options = provisional_options

    def list_parts(self) -> list[str]:
        """The inner source's partitions."""
        return self.inner.list_parts()

    def build_part(self, step_id: str, for_part: str, resume_state: dict[str, Any] | None) -> TrackedPartition:
        """The inner partition of ``for_part`` wrapped with its trackers, resumed from ``resume_state``."""
        state = resume_state or {}
        inner = self.inner.build_part(step_id, for_part, state.get("source"))
        return TrackedPartition(
            inner,
            self.allowed_lag_ns,
            state.get("trackers"),
            self.recovery,
            self.provisional_options,
            state.get("triggers"),
        )
