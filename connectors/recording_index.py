"""Which first lines of a recording can have led to an event-time second, and their hash.

An event is assigned to a second by its effective time ``max(ts, recv - allowed_lag)``
(:func:`cascadewatch.connectors.sources.effective_time`), so a frame received at or after
``S + 1 s + allowed_lag`` belongs to a later second than ``S``. The *prefix* of a recording
for second ``S`` is its whole lines before the first frame received at or after that
cutoff (metadata and malformed lines included): replaying only the prefix gives the same
outputs up to second ``S`` as replaying the whole file.

:func:`index_recording` reads a recording once and keeps, per second where the prefix
grows, the prefix's line count and the SHA-256 of its bytes; :meth:`RecordingIndex.prefix`
answers for any second. ``cascadewatch explain`` replays exactly such a prefix.
"""

from __future__ import annotations

import bisect
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

from cascadewatch.connectors.recording import RecordingReader
from cascadewatch.connectors.units import NS_PER_S

DIGEST_HEX = 16
"""Hex digits of the SHA-256 kept for a prefix."""


@dataclass(frozen=True)
class Prefix:
    """The first ``lines`` whole lines of a recording, and the SHA-256 of their bytes (16 hex)."""

    lines: int
    sha256: str


@dataclass
class RecordingIndex:
    """Prefixes of one recording by event-time second (see the module doc)."""

    name: str
    """The recording's file name (no directory: outputs do not depend on where it lies)."""
    seconds: list[int] = field(default_factory=list)
    """Ascending: ``seconds[i]`` (ms) is the last second whose prefix is ``prefixes[i]``."""
    prefixes: list[Prefix] = field(default_factory=list)
    whole: Prefix = Prefix(0, hashlib.sha256().hexdigest()[:DIGEST_HEX])
    """Every whole line: the prefix of any second after the last frame."""

    def prefix(self, second_ms: int) -> Prefix:
        """The lines that can have led to second ``second_ms`` (ms) and their hash."""
        i = bisect.bisect_left(self.seconds, second_ms)
        return self.prefixes[i] if i < len(self.prefixes) else self.whole


def first_later_second(recv_ns: int, allowed_lag_ns: int) -> int:
    """The last second (ms) whose prefix ends before a frame received at ``recv_ns``.

    A frame received at ``r`` belongs to seconds after ``S`` exactly when
    ``r >= S + 1 s + lag``, that is ``floor((r - lag) / 1 s) - 1 >= S / 1000``.

    >>> first_later_second(1_700_000_003_500_000_000, 2 * 10**9)
    1700000000000
    """
    return ((recv_ns - allowed_lag_ns) // NS_PER_S - 1) * 1000


def index_recording(path: str | os.PathLike[str], allowed_lag_ns: int) -> RecordingIndex:
    """Read ``path`` once: the prefix (line count, SHA-256) of every second (see the module doc).

    Block by block: a line is looked at only for its receive time, against ``due``, the first
    receive time that opens a second after the last one indexed (:func:`first_later_second`
    ``> covered`` exactly when ``recv >= (covered / 1000 + 2) s + lag``); the lines between
    two such frames go to the hash in one piece. Most lines are passed over by comparing their
    bytes with ``due``'s digits, without splitting them or reading a number.
    """
    index = RecordingIndex(Path(path).name)
    digest = hashlib.sha256()
    due: int | None = None  # a frame received at or after this opens a later second; None: any frame
    due_digits = b""  # due in decimal: no line sorts before it
    width = 0
    lines = 0
    for block in RecordingReader(path).blocks():
        start = 0
        for i, line in enumerate(block):
            # Passed over exactly when it sorts before due's digits with a space at column width:
            # its first field is then at most width bytes; of width digits it is below due as a
            # number exactly when it sorts before it, of fewer digits below due anyway (due has no
            # leading zero), not all digits it is no frame (metadata included). Others: in full.
            if line < due_digits and line[width : width + 1] == b" ":
                continue
            if line[:1] == b"#":
                continue
            head = line.split(b" ", 1)[0]
            if not head.isdigit():
                continue
            recv = int(head)
            if due is not None and recv < due:
                continue
            digest.update(b"".join(block[start:i]))
            start = i
            later = first_later_second(recv, allowed_lag_ns)
            index.seconds.append(later)
            index.prefixes.append(Prefix(lines + i, digest.hexdigest()[:DIGEST_HEX]))
            due = (later // 1000 + 2) * NS_PER_S + allowed_lag_ns
            due_digits, width = _digits(due)
        digest.update(b"".join(block[start:]))
        lines += len(block)
    index.whole = Prefix(lines, digest.hexdigest()[:DIGEST_HEX])
    return index


def _digits(due: int) -> tuple[bytes, int]:
    """``due``'s decimal digits and their count (:func:`index_recording` passes over the lines
    that sort before them); ``(b"", 0)`` (no line sorts before it) when ``due`` is not positive.

    >>> _digits(1_700_000_002_000_000_000), _digits(-5)
    ((b'1700000002000000000', 19), (b'', 0))
    """
    if due <= 0:
        return b"", 0
    digits = b"%d" % due
    return digits, len(digits)


def prefix_of(path: str | os.PathLike[str], lines: int) -> tuple[bytes, Prefix]:
    """The first ``lines`` whole lines of ``path`` (fewer if it is shorter) and their :class:`Prefix`."""
    taken: list[bytes] = []
    for _, line in RecordingReader(path).lines():
        if len(taken) == lines:
            break
        taken.append(line)
    data = b"".join(taken)
    return data, Prefix(len(taken), hashlib.sha256(data).hexdigest()[:DIGEST_HEX])
