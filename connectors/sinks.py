"""Bytewax sinks that write JSON lines to files, exactly once under recovery.

Items are ``(stream, (stream, value))`` (see :func:`to_stream`): ``stream`` names the output
file (``"alerts"``, ``"snapshots"``, ``"dead_letters"``...), ``value`` is a dict or a
msgspec Struct. All
streams go to one partition, so lines keep the order in which the dataflow's single
ordering step produced them. As in Bytewax's own file sink, the resume state is the byte offset of each
file, and a resumed run truncates to it before appending: no line is written twice.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import msgspec
from bytewax.outputs import FixedPartitionedSink, StatefulSinkPartition

from cascadewatch.connectors.alerts.metrics import observe_snapshot

_encoder = msgspec.json.Encoder()


def to_stream(stream: str, value: Any) -> tuple[str, tuple[str, Any]]:
    """Wrap ``value`` as a sink item for ``stream`` (Bytewax hands partitions values only)."""
    return stream, (stream, value)


def encode_line(value: Any) -> bytes:
    """One JSON object and a newline; dict key order is kept."""
    return _encoder.encode(value) + b"\n"


class SnapshotMetricsSink(FixedPartitionedSink[tuple[str, Any], None]):
    """Update the per-asset Prometheus gauges from every snapshot (one partition)."""

    def list_parts(self) -> list[str]:
        """One partition: the metrics registry is one per process."""
        return ["metrics"]

    def part_fn(self, item_key: str) -> int:
        """Every item goes to the one partition."""
        return 0

    def build_part(self, step_id: str, for_part: str, resume_state: None) -> _MetricsPartition:
        """The partition that sets the per-asset gauges."""
        return _MetricsPartition()


class _MetricsPartition(StatefulSinkPartition[tuple[str, Any], None]):
    def write_batch(self, items: list[tuple[str, Any]]) -> None:
        for stream, value in items:
            if stream == "snapshots":
                observe_snapshot(value)

    def snapshot(self) -> None:
        return None


def held_elsewhere(sink: FixedPartitionedSink[Any, Any]) -> FixedPartitionedSink[Any, Any]:
    """Make this process list none of ``sink``'s partitions, so they live on process 0.

    Single-partition outputs (files, outbox, risk feed, metrics) belong to one known process:
    the one whose volume and Service the deployment points at.
    """
    sink.list_parts = list  # type: ignore[method-assign]  # on this instance only: this process lists none of its parts
    return sink


class OutputError(OSError):
    """An output file cannot be written (a full disk); the message names the file."""


class _JsonlPartition(StatefulSinkPartition[tuple[str, Any], dict[str, int]]):
    def __init__(self, paths: dict[str, Path], offsets: dict[str, int] | None) -> None:
        self._files = {}
        self._paths = paths
        self._failed = False
        for stream, path in paths.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            handle = open(path, "r+b" if offsets and path.exists() else "wb")
            handle.seek(0, os.SEEK_SET)
            handle.truncate((offsets or {}).get(stream, 0))
            handle.seek(0, os.SEEK_END)
            self._files[stream] = handle

    def write_batch(self, items: list[tuple[str, Any]]) -> None:
        for stream, value in items:
            handle = self._files.get(stream)
            if handle is not None:
                self._guard(stream, handle.write, encode_line(value))
        for stream, handle in self._files.items():
            self._guard(stream, handle.flush)

    def _guard(self, stream: str, call: Any, *args: Any) -> None:
        """``call(*args)``; an OSError (a full disk) is re-raised naming the output file."""
        try:
            call(*args)
        except OSError as exc:
            self._failed = True
            error = OutputError(f"{self._paths[stream]}: cannot write ({exc.strerror or exc})")
            error.errno = exc.errno
            raise error from exc

    def snapshot(self) -> dict[str, int]:
        return {stream: handle.tell() for stream, handle in self._files.items()}

    def close(self) -> None:
        for stream, handle in self._files.items():
            if self._failed:  # the write error is already raised; closing would raise it again
                try:
                    handle.close()
                except OSError:
                    pass
            else:
                self._guard(stream, handle.close)


class JsonlSink(FixedPartitionedSink[tuple[str, Any], dict[str, int]]):
    """Write each stream to its file; streams without a path are discarded.

    :param paths: stream name -> output file (``None`` to discard that stream).
    """

    def __init__(self, paths: dict[str, str | Path | None]) -> None:
        self.paths = {stream: Path(path) for stream, path in paths.items() if path is not None}

    def list_parts(self) -> list[str]:
        """One partition: the JSONL files are written in output order by one writer."""
        return ["jsonl"]

    def part_fn(self, item_key: str) -> int:
        """Every item goes to the one partition."""
        return 0

    def build_part(self, step_id: str, for_part: str, resume_state: dict[str, int] | None) -> _JsonlPartition:
        """The partition that appends to the files, resuming at the byte offsets of ``resume_state``."""
        return _JsonlPartition(self.paths, resume_state)
