"""A recording that rotates files by size or age and is safe to kill at any time.

Built on :class:`~cascadewatch.connectors.recording.RecordingWriter`: lines are flushed at least every
``flush_interval_s`` (a zstd frame boundary for ``.zst``), so a killed recorder leaves files
readable up to their last flushed line (``RecordingReader`` reports the cut as truncated).

Without rotation the file is exactly ``path``. With rotation the files are numbered before
the suffixes: ``capture.rec.zst`` -> ``capture.0000.rec.zst``, ``capture.0001.rec.zst``...
Each new file calls ``on_rotate`` so the live feeds re-send their REST bootstrap and book
snapshots into it: every file replays on its own.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

from cascadewatch.connectors.recording import RecordingWriter


def insert_before_suffixes(path: Path, label: str) -> Path:
    """``dir/capture.rec.zst`` + ``0001`` -> ``dir/capture.0001.rec.zst``."""
    head, dot, tail = path.name.partition(".")
    return path.with_name(f"{head}.{label}.{tail}" if dot else f"{head}.{label}")


class RotatingRecorder:
    """Write frames to ``path``, rotating after ``rotate_bytes`` on disk or ``rotate_s`` seconds.

    Call :meth:`tick` regularly (it flushes and rotates); :meth:`close` at the end.
    ``paths`` lists every file written, in order.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        comment: str = "",
        rotate_bytes: int = 0,
        rotate_s: float = 0.0,
        on_rotate: Callable[[], None] | None = None,
        flush_interval_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = Path(path)
        self.comment = comment
        self.rotate_bytes = int(rotate_bytes)
        self.rotate_s = float(rotate_s)
        self.on_rotate = on_rotate
        self.flush_interval_s = flush_interval_s
        self.clock = clock
        self.paths: list[Path] = []
        self.lines = 0
        self._writer: RecordingWriter | None = None
        self._open()

    @property
    def rotating(self) -> bool:
        """Whether files rotate (by size or by age)."""
        return self.rotate_bytes > 0 or self.rotate_s > 0

    def _open(self) -> None:
        index = len(self.paths)
        path = insert_before_suffixes(self.path, f"{index:04d}") if self.rotating else self.path
        comment = f"{self.comment} file={index}".strip() if self.rotating else self.comment
        self._writer = RecordingWriter(path, comment=comment, flush_every=1000)
        self.paths.append(path)
        self._opened = self._flushed = self.clock()

    def write(self, recv_ns: int, source: str, payload: bytes | str) -> None:
        """Write one frame to the current file."""
        assert self._writer is not None
        self._writer.write(recv_ns, source, payload)
        self.lines += 1

    def tick(self) -> None:
        """Flush if ``flush_interval_s`` has passed; rotate if the file is big or old enough."""
        now = self.clock()
        if now - self._flushed < self.flush_interval_s:
            return
        assert self._writer is not None
        self._writer.flush()
        self._flushed = now
        if self.rotate_s > 0 and now - self._opened >= self.rotate_s:
            self.rotate()
        elif self.rotate_bytes > 0 and os.path.getsize(self.paths[-1]) >= self.rotate_bytes:
            self.rotate()

    def rotate(self) -> None:
        """Close the current file, open the next, and call ``on_rotate``."""
        assert self._writer is not None
        self._writer.close()
        self._open()
        if self.on_rotate is not None:
            self.on_rotate()

    def close(self) -> None:
        """Close the current file."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None
