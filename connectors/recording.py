"""The recording format: write and read, streaming, in constant memory.

A recording is a text file, optionally compressed (``.gz`` or ``.zst`` by suffix), one
frame per line::

    # cascadewatch-recording v1 <free text>
    <recv_ns> <source> <payload>

- ``recv_ns``: local receive time, integer nanoseconds since the UTC epoch;
- ``source``: a token without spaces: ``binance-usdm``, ``bybit-linear``, ``okx-swap`` for
  websocket frames, ``<venue>!rest`` for a REST bootstrap response (payload
  ``{"path": ..., "body": ...}``), ``<venue>!conn`` for connection events (payload
  ``{"event": "open"|"close"|"error", ...}``);
- ``payload``: the exact text frame as the venue sent it (no newline inside).

Lines starting with ``#`` are metadata; blank lines are ignored. A killed writer leaves a
file that reads up to its last whole line: a final line without ``\\n`` is reported as
truncated, never parsed.
"""

from __future__ import annotations

import gzip
import io
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import zstandard

HEADER_PREFIX = b"# cascadewatch-recording v1"
REST_SUFFIX = "!rest"
CONN_SUFFIX = "!conn"


class RecordingError(ValueError):
    """A malformed recording line; the message names the file and the line number."""

    def __init__(self, path: str | os.PathLike[str], line_no: int, reason: str) -> None:
        super().__init__(f"{os.fspath(path)}:{line_no}: {reason}")
        self.path = os.fspath(path)
        self.line_no = line_no
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Frame:
    """One recorded frame: receive time (ns), source token, raw payload bytes, and its line number."""

    recv: int
    source: str
    payload: bytes
    line_no: int

    @property
    def venue(self) -> str:
        """The venue token: ``okx-swap!rest`` -> ``okx-swap``."""
        return self.source.split("!", 1)[0]

    @property
    def channel(self) -> str:
        """``ws``, ``rest`` or ``conn``."""
        _, _, tail = self.source.partition("!")
        return tail or "ws"


def _open_binary(path: Path, mode: str, raw: IO[bytes] | None = None) -> IO[bytes]:
    """Open ``path`` (or the already open file ``raw``) for binary streaming, (de)compressing by suffix."""
    raw = raw if raw is not None else open(path, mode + "b")
    if path.suffix == ".gz":
        return gzip.GzipFile(fileobj=raw, mode=mode + "b")  # type: ignore[return-value]  # a binary file; typeshed's GzipFile is not IO[bytes]
    if path.suffix == ".zst":
        if mode == "r":
            return zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True, closefd=True)
        return zstandard.ZstdCompressor(level=3).stream_writer(raw, closefd=True)
    return raw


def parse_line(line: bytes, path: str | os.PathLike[str], line_no: int) -> Frame | None:
    """Split one line into a :class:`Frame`; ``None`` for metadata/blank lines.

    Raises :class:`RecordingError` naming the file and line for a malformed line.
    """
    if not line.strip() or line.startswith(b"#"):
        return None
    parts = line.rstrip(b"\r\n").split(b" ", 2)
    if len(parts) != 3 or not parts[2]:
        raise RecordingError(path, line_no, "expected '<recv_ns> <source> <payload>'")
    recv_text, source, payload = parts
    if not recv_text.isdigit():
        raise RecordingError(path, line_no, f"receive time {recv_text[:30]!r} is not integer nanoseconds")
    return Frame(int(recv_text), source.decode("ascii", "replace"), payload, line_no)


def _readlines(stream: IO[bytes], size_hint: int) -> list[bytes]:
    return stream.readlines(size_hint)


def _gzip_block(stream: IO[bytes], size_hint: int) -> list[bytes]:
    """Lines up to ``size_hint`` bytes; a truncated stream raises only after the whole lines."""
    block: list[bytes] = []
    size = 0
    while size < size_hint:
        try:
            line = stream.readline()
        except EOFError:
            if block:
                return block  # the next call raises again, with nothing to lose
            raise
        if not line:
            break
        block.append(line)
        size += len(line)
    return block


class RecordingReader:
    """Iterate the frames of one recording, streaming.

    ``start_line`` skips that many physical lines first (used to resume a replay).
    A malformed line raises :class:`RecordingError`; use :meth:`lines` to handle them yourself.
    """

    def __init__(self, path: str | os.PathLike[str], start_line: int = 0) -> None:
        self.path = Path(path)
        self.start_line = start_line
        self.truncated = False
        if not self.path.exists():
            raise FileNotFoundError(f"recording not found: {self.path}")

    def blocks(self, size_hint: int = 1 << 18) -> Iterator[list[bytes]]:
        """Yield the whole lines after ``start_line`` in blocks of about ``size_hint`` bytes.

        Line ``n`` of the file is the ``n - start_line``-th line yielded (1-based ``n``). A final
        line without a newline, or a compressed stream cut short (a killed writer), ends the
        iteration and sets :attr:`truncated`.
        """
        self.truncated = False
        self._file = open(self.path, "rb")
        skip = self.start_line
        with self._file, _open_binary(self.path, "r", self._file) as raw:
            # GzipFile buffers itself and keeps what it decoded before a cut-off stream.
            stream = (
                raw if isinstance(raw, gzip.GzipFile) else io.BufferedReader(raw, buffer_size=1 << 20)  # type: ignore[type-var]  # any readinto() stream works; typeshed wants RawIOBase
            )
            # A cut-off gzip stream raises on the read that reaches its end, losing what that
            # read decoded, so gzip goes line by line (still in blocks).
            read_block = _gzip_block if isinstance(stream, gzip.GzipFile) else _readlines
            while True:
                try:
                    block = read_block(stream, size_hint)
                except (EOFError, zstandard.ZstdError):
                    self.truncated = True
                    return
                if not block:
                    return
                if not block[-1].endswith(b"\n"):
                    self.truncated = True
                    block.pop()
                if skip:
                    dropped = min(skip, len(block))
                    del block[:dropped]
                    skip -= dropped
                if block:
                    yield block
                if self.truncated:
                    return

    def lines(self) -> Iterator[tuple[int, bytes]]:
        """Yield ``(line_no, raw line)`` for every whole line (1-based numbers), see :meth:`blocks`."""
        line_no = self.start_line
        for block in self.blocks():
            for line in block:
                line_no += 1
                yield line_no, line

    def position(self) -> int:
        """Bytes of the (possibly compressed) file consumed so far: progress against its size."""
        file = getattr(self, "_file", None)
        return 0 if file is None or file.closed else file.tell()

    def __iter__(self) -> Iterator[Frame]:
        for line_no, line in self.lines():
            frame = parse_line(line, self.path, line_no)
            if frame is not None:
                yield frame


class RecordingWriter:
    """Append frames to a recording, compressed by suffix; a context manager.

    Each :meth:`write` emits one whole line. ``flush_every`` lines, the buffers are flushed
    so a killed process leaves a file readable up to its last flushed line.
    """

    def __init__(self, path: str | os.PathLike[str], comment: str = "", flush_every: int = 1000) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._out = _open_binary(self.path, "w")
        self._flush_every = flush_every
        self._pending = 0
        self.lines_written = 0
        header = HEADER_PREFIX + (b" " + comment.encode() if comment else b"") + b"\n"
        self._out.write(header)

    def write(self, recv_ns: int, source: str, payload: str | bytes) -> None:
        """Write one frame; ``payload`` must not contain a newline."""
        data = payload.encode() if isinstance(payload, str) else payload
        if b"\n" in data:
            raise ValueError("payload contains a newline; frames are one line each")
        if " " in source or not source:
            raise ValueError(f"source token must be non-empty without spaces: {source!r}")
        self._out.write(b"%d %s %s\n" % (recv_ns, source.encode(), data))
        self.lines_written += 1
        self._pending += 1
        if self._pending >= self._flush_every:
            self.flush()

    def flush(self) -> None:
        """Push buffered lines to the file (a zstd frame boundary for ``.zst``)."""
        if isinstance(self._out, zstandard.ZstdCompressionWriter):
            self._out.flush(zstandard.FLUSH_FRAME)
        else:
            self._out.flush()
        self._pending = 0

    def close(self) -> None:
        """Flush and close the file."""
        self.flush()
        self._out.close()

    def __enter__(self) -> RecordingWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
