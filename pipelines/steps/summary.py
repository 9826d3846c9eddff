"""What a replay read: frames by venue and kind, dead letters by venue and reason.

Each source partition reports a :class:`~cascadewatch.connectors.sources.PartitionStats` at its end, and
its instruments' books report sequence gaps as dead letters; :class:`SummarySink` adds them
up in one partition and writes the total as JSON on close.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from bytewax.outputs import FixedPartitionedSink, StatefulSinkPartition

from cascadewatch.connectors.frames import DeadLetter
from cascadewatch.connectors.sources import PartitionStats


def merge_stats(items: list[PartitionStats | DeadLetter]) -> dict[str, Any]:
    """Sum partition stats and flow-side dead letters (sequence gaps) into
    ``{"frames": {...}, "dead_letters": {...}, "lines": n, "truncated": [...]}``."""
    frames: Counter[str] = Counter()
    dead: Counter[str] = Counter()
    stats = [item for item in items if isinstance(item, PartitionStats)]
    for entry in stats:
        frames.update(entry.frames)
        dead.update(entry.dead_letters)
    dead.update(f"{item.source} {item.reason}" for item in items if isinstance(item, DeadLetter))
    return {
        "frames": dict(sorted(frames.items())),
        "dead_letters": dict(sorted(dead.items())),
        "lines": sum(entry.lines for entry in stats),
        "truncated": sorted(entry.partition for entry in stats if entry.truncated),
    }


class _SummaryPartition(StatefulSinkPartition[PartitionStats | DeadLetter, list[PartitionStats | DeadLetter]]):
    def __init__(self, path: Path, resume_state: list[PartitionStats | DeadLetter] | None) -> None:
        self._path = path
        self._stats = list(resume_state or [])

    def write_batch(self, items: list[PartitionStats | DeadLetter]) -> None:
        self._stats.extend(items)

    def snapshot(self) -> list[PartitionStats | DeadLetter]:
        return list(self._stats)

    def close(self) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        self._path.write_text(json.dumps(merge_stats(self._stats), indent=1))


class SummarySink(FixedPartitionedSink[PartitionStats | DeadLetter, list[PartitionStats | DeadLetter]]):
    """Collect partition stats; write the merged summary to ``path`` when the flow ends."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def list_parts(self) -> list[str]:
        """One partition: one summary file."""
        return ["summary"]

    def part_fn(self, item_key: str) -> int:
        """Every item goes to the one partition."""
        return 0

    def build_part(
        self, step_id: str, for_part: str, resume_state: list[PartitionStats | DeadLetter] | None
    ) -> _SummaryPartition:
        """The partition that counts stats and dead letters into the summary file, resuming from ``resume_state``."""
        return _SummaryPartition(self.path, resume_state)
