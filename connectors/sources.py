"""Bytewax sources. Replay: one partition per recording file, parsing in the source.

Every partition emits items ``(key, [values])``:

- ``(instrument_key, [events..., Watermark])`` where ``instrument_key = "<venue>|<instrument>"``;
  events keep their order within the partition;
- ``(DEAD_LETTER_KEY, [DeadLetter, ...])`` for frames that could not be parsed;
- ``(STATS_KEY, [PartitionStats])`` once, at the end of the partition;
- ``(PARTITION_KEY, [Watermark])``: the partition's own progress (live sources).

Watermarks make the output depend on event time only. A partition promises that every
event it emits later is assigned to a second ``>= wm`` (ns), where
``wm = max_recv - allowed_lag`` and ``max_recv`` is the largest receive time read so far;
events are assigned by the *effective time* ``max(ts, recv - allowed_lag)`` (see
:func:`effective_time`). A partition appends its watermark, last, to the list of every
instrument it has announced (emitted events for), so each instrument's state can close its
seconds. At the end of a recording the watermark jumps to :data:`END_OF_TIME`.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition

from cascadewatch.connectors.events import AnyEvent, FeedStatus, Trade
from cascadewatch.connectors.frames import DeadLetter, FrameDecoder, HotPath
from cascadewatch.connectors.reasons import Reason
from cascadewatch.connectors.recording import (
    RecordingError,
    RecordingReader,
    parse_line,
)
from cascadewatch.connectors.units import NS_PER_S, s_to_ns
from cascadewatch.connectors.venues.base import HOT_KINDS, ParseError

DEAD_LETTER_KEY = "!dead"
STATS_KEY = "!stats"
PARTITION_KEY = "!partition"
"""Key of a partition's own watermarks, passed straight to the merge step. A live partition
sends them so that a venue with no instrument yet (down since the start) cannot hold the
merge back."""
END_OF_TIME = 2**63 - 1


class Watermark(msgspec.Struct, frozen=True, gc=False, tag="watermark"):
    """Partition ``partition`` will emit nothing more before ``wm`` (ns, effective time)."""

    partition: int
    wm: int


class PartitionStats(msgspec.Struct):
    """What one partition read: frames by ``(venue, kind)``, dead letters by ``(venue, reason)``."""

    partition: str
    frames: dict[str, int]
    dead_letters: dict[str, int]
    lines: int
    truncated: bool = False


def instrument_key(event: AnyEvent) -> str:
    """The key of an instrument's state (book, per-second flow): ``"okx-swap|BTC-USDT-PERP"``."""
    return f"{event.venue}|{event.instrument}"


def effective_time(event: AnyEvent, allowed_lag_ns: int) -> int:
    """Event time used to assign an event to a second: ``max(ts, recv - allowed_lag)`` (ns).

    An event later than ``allowed_lag`` behind its receive time counts as arriving at the
    edge of the lag window, so watermarks derived from receive time stay valid.
    """
    floor = event.recv - allowed_lag_ns
    return event.ts if event.ts > floor else floor


class InstrumentRouter:
    """Per source partition: which instruments it has announced, and where each event goes.

    ``instruments``: venue -> announced ``venue|instrument`` keys, in order of appearance;
    ``connection``: venue -> its last venue-wide :class:`FeedStatus`. Plain data (pickles).
    """

    def __init__(
        self, instruments: dict[str, list[str]] | None = None, connection: dict[str, FeedStatus] | None = None
    ) -> None:
        self.instruments: dict[str, list[str]] = instruments if instruments is not None else {}
        self.connection: dict[str, FeedStatus] = connection if connection is not None else {}

    def route(self, event: AnyEvent, by_key: dict[str, list[Any]]) -> list[Any] | None:
        """Append ``event`` to its instrument's list in ``by_key`` and return that list.

        A venue-wide connection event (``instrument == ""``) goes to every announced instrument
        of its venue (returns ``None``); a new instrument first learns its connection's state.
        """
        if not event.instrument and isinstance(event, FeedStatus):
            self.connection[event.venue] = event
            for key in self.instruments.get(event.venue, ()):
                by_key.setdefault(key, []).append(_for_instrument(event, key))
            return None
        key = instrument_key(event)
        bucket = by_key.get(key)
        if bucket is None:
            bucket = by_key[key] = []
            venue_keys = self.instruments.setdefault(event.venue, [])
            if key not in venue_keys:
                venue_keys.append(key)
                connection = self.connection.get(event.venue)
                if connection is not None:
                    bucket.append(_for_instrument(connection, key))
        bucket.append(event)
        return bucket

    def announced(self) -> list[str]:
        """Every announced instrument key."""
        return [key for keys in self.instruments.values() for key in keys]

    def mark(self, by_key: dict[str, list[Any]], mark: Watermark) -> None:
        """Append ``mark`` to every announced instrument's list."""
        for key in self.announced():
            by_key.setdefault(key, []).append(mark)


_decode_int = msgspec.json.Decoder(int).decode


def _add_count(counts: dict[str, int], venue: str | None, n: int) -> None:
    """Add ``n`` frames of ``venue`` to ``counts`` (nothing when ``n`` is 0)."""
    if n and venue is not None:
        counts[venue] = counts.get(venue, 0) + n


def items_of(by_key: dict[str, list[Any]], dead: list[DeadLetter]) -> list[tuple[str, list[Any]]]:
    """A batch's items: the instrument lists, then the dead letters (if any)."""
    items = list(by_key.items())
    if dead:
        items.append((DEAD_LETTER_KEY, dead))
    return items


class _HotPaths(dict[bytes, HotPath | None]):
    """Source token -> its frame decoder's fast path (:meth:`FrameDecoder.hot_event`, ``None`` for
    none), looked up once per token."""

    def __init__(self, decoder: FrameDecoder) -> None:
        super().__init__()
        self.decoder = decoder

    def __missing__(self, source: bytes) -> HotPath | None:
        hot = self[source] = self.decoder.hot_event(source)
        return hot


ProgressCallback = Callable[[str, int], None]
"""Called after each batch with a recording's path and the bytes of it consumed so far."""


class ReplayPartition(StatefulSourcePartition[tuple[str, list[Any]], Any]):
    """Reads one recording from a line offset, parses, batches by instrument.

    A line of a source token with a fast path (:meth:`FrameDecoder.hot_event`) tries it first; a
    frame it does not take goes to :meth:`FrameDecoder.decode`. The batches are the same either
    way (``tests/test_hot_event.py``).
    """

    def __init__(
        self,
        path: Path,
        index: int,
        batch_size: int,
        allowed_lag_ns: int,
        speed: float | None,
        resume_state: Any,
        progress: ProgressCallback | None = None,
    ) -> None:
        self._path = path
        self._progress = progress
        self._index = index
        self._batch_size = batch_size
        self._lag = allowed_lag_ns
        self._speed = speed
        state = resume_state or {}
        self._line = state.get("line", 0)
        self._max_recv = state.get("max_recv", 0)
        self._decoder: FrameDecoder = state.get("decoder") or FrameDecoder()
        self._hot = _HotPaths(self._decoder)
        self._dead: Counter[tuple[str, Reason]] = state.get("dead", Counter())
        self._router = InstrumentRouter(state.get("instruments"), state.get("connection"))
        self._last_wm = state.get("last_wm", -1)
        self._reader = RecordingReader(path, start_line=self._line)
        self._blocks = self._reader.blocks()
        self._block: list[bytes] = []
        self._block_at = 0
        self._done = False
        self._pace_origin: tuple[float, int] | None = None
        self._held_recv: int | None = None
        """Receive time of the first line not yet due (``--speed N``), else ``None``."""

    def _due(self, recv: int) -> bool:
        """Pacing for ``--speed N``: has wall time caught up with this receive time?"""
        if self._speed is None:
            return True
        now = time.monotonic()
        if self._pace_origin is None:
            self._pace_origin = (now, recv)
        wall0, recv0 = self._pace_origin
        return (recv - recv0) / NS_PER_S / self._speed <= now - wall0

    def _take(self, count: int) -> list[bytes]:
        """Up to ``count`` next lines (fewer only at the end of the recording)."""
        taken: list[bytes] = []
        while len(taken) < count:
            if self._block_at >= len(self._block):
                block = next(self._blocks, None)
                if block is None:
                    break
                self._block, self._block_at = block, 0
            end = self._block_at + count - len(taken)
            taken.extend(self._block[self._block_at : end])
            self._block_at = min(end, len(self._block))
        return taken

    def _give_back(self, lines: list[bytes]) -> None:
        """Return unread lines (pacing stopped early) to the front of the buffer."""
        self._block = lines + self._block[self._block_at :]
        self._block_at = 0

    def next_batch(self) -> list[tuple[str, list[Any]]]:
        """The next batch: parsed events by instrument key, dead letters and stats.

        Raises ``StopIteration`` at the end of the recording.
        """
        if self._done:
            raise StopIteration()
        by_key: dict[str, list[Any]] = {}
        dead: list[DeadLetter] = []
        lines = self._take(self._batch_size)
        self._read(lines, by_key, dead)
        if self._held_recv is None and len(lines) < self._batch_size:
            return self._finish(by_key, dead)
        wm = self._max_recv - self._lag
        if wm // NS_PER_S > self._last_wm // NS_PER_S:
            self._mark(by_key, wm)
        if self._progress is not None:
            self._progress(str(self._path), self._reader.position())
        return items_of(by_key, dead)

    def _read(self, lines: list[bytes], by_key: dict[str, list[Any]], dead: list[DeadLetter]) -> None:
        """Parse ``lines`` into ``by_key`` and ``dead``; with ``--speed N``, stop at the first line
        not yet due (:attr:`_held_recv`) and give it and the rest back."""
        route = self._router.route
        max_recv = self._max_recv
        line_no = self._line
        paced = self._speed is not None
        hots = self._hot
        last_source, hot = None, None  # the last line's source token and its fast path
        venue: str | None = None  # the venue of the last fast event
        buckets: dict[str, list[Any] | None] = {}  # instrument of ``venue`` -> its list in ``by_key``
        trades = 0  # fast trades of ``venue`` not yet in hot_trades
        hot_trades: dict[str, int] = {}  # venue -> trade frames taken by its fast path
        hot_others: dict[tuple[str, type], int] = {}  # (venue, event class) -> other frames taken
        self._held_recv = None
        for index, line in enumerate(lines):
            parts = line.split(b" ", 2)
            if len(parts) != 3 or not parts[0].isdigit() or len(parts[2]) < 2:
                line_no += 1
                self._not_a_frame(line, line_no, dead)  # metadata, blank, or a malformed line
                continue
            recv_text, source, payload = parts
            try:
                recv = _decode_int(recv_text)  # ASCII digits: msgspec's integer parser, cheaper than int()
            except msgspec.DecodeError:  # leading zeros (not JSON)
                recv = int(recv_text)
            if paced and not self._due(recv):
                self._give_back(lines[index:])
                self._held_recv = recv
                break
            line_no += 1
            if recv < max_recv:
                recv = max_recv
            max_recv = recv
            if source != last_source:  # a byte comparison: cheaper than hashing the token again
                hot, last_source = hots[source], source
            event = hot(payload, recv) if hot is not None else None  # the commonest frames straight to events
            if event is None:
                self._parse(source, payload, recv, line_no, by_key, dead)
                continue
            if event.venue is not venue:  # (the same str object for every event of a venue)
                _add_count(hot_trades, venue, trades)
                venue, buckets, trades = event.venue, {}, 0
            if event.__class__ is Trade:
                trades += 1
            else:
                key = (venue, event.__class__)
                hot_others[key] = hot_others.get(key, 0) + 1
            bucket = buckets.get(event.instrument)  # the instrument's name is hashed once, by its parser
            if bucket is not None:
                bucket.append(event)
            else:
                buckets[event.instrument] = route(event, by_key)
        _add_count(hot_trades, venue, trades)
        self._line, self._max_recv = line_no, max_recv
        self._count_hot(hot_trades, hot_others)

    def _count_hot(self, trades: dict[str, int], others: dict[tuple[str, type], int]) -> None:
        """Count the frames a batch's fast paths took: trades by venue, other events by venue and class."""
        for venue, count in trades.items():
            self._decoder.count(venue, "trade", count)
        for (venue, cls), count in others.items():
            self._decoder.count(venue, HOT_KINDS[cls], count)

    def _not_a_frame(self, line: bytes, line_no: int, dead: list[DeadLetter]) -> None:
        """A line that is not ``<recv_ns> <source> <payload>``: metadata and blank lines pass, any
        other is a ``malformed_line`` dead letter with the reason."""
        try:
            parse_line(line, self._path, line_no)
        except RecordingError as exc:
            dead.append(self._dead_letter(Reason.MALFORMED_LINE, b"recording", line, exc.reason, line_no))

    def _parse(
        self,
        source: bytes,
        payload: bytes,
        recv: int,
        line_no: int,
        by_key: dict[str, list[Any]],
        dead: list[DeadLetter],
    ) -> None:
        """A frame by the frame decoder: its events to their instruments' lists in ``by_key``; a
        frame it cannot parse is a dead letter."""
        payload = payload.rstrip(b"\r\n")  # text frames ("pong") must arrive exactly as sent
        try:
            events = self._decoder.decode(source, payload, recv).events
        except ParseError as exc:
            dead.append(self._dead_letter(exc.reason, source, payload, exc.detail, line_no))
            return
        route = self._router.route
        for event in events:
            route(event, by_key)

    def _finish(self, by_key: dict[str, list[Any]], dead: list[DeadLetter]) -> list[tuple[str, list[Any]]]:
        self._done = True
        if self._progress is not None:
            self._progress(str(self._path), self._path.stat().st_size)
        self._mark(by_key, END_OF_TIME)
        items = items_of(by_key, dead)
        stats = PartitionStats(
            partition=str(self._path),
            frames={f"{venue} {kind}": n for (venue, kind), n in sorted(self._decoder.frames.items())},
            dead_letters={f"{venue} {reason}": n for (venue, reason), n in sorted(self._dead.items())},
            lines=self._line,
            truncated=self._reader.truncated,
        )
        items.append((STATS_KEY, [stats]))
        return items

    def _mark(self, by_key: dict[str, list[Any]], wm: int) -> None:
        """Append the partition watermark to every instrument it has announced."""
        self._last_wm = wm
        self._router.mark(by_key, Watermark(self._index, wm))

    def _dead_letter(self, reason: Reason, source_token: bytes, raw: bytes, detail: str, line_no: int) -> DeadLetter:
        source = source_token.decode("ascii", "replace")
        venue = source.partition("!")[0]
        self._dead[(venue, reason)] += 1
        return DeadLetter(
            reason=reason,
            source=source,
            raw=raw.decode("utf-8", "replace").rstrip("\n"),
            detail=detail,
            line=line_no,
            file=str(self._path),
        )

    def next_awake(self) -> datetime | None:
        """With ``--speed N``, sleep until the held frame is due; otherwise poll at once."""
        if self._held_recv is None or self._pace_origin is None or self._speed is None:
            return None
        wall0, recv0 = self._pace_origin
        delay = wall0 + (self._held_recv - recv0) / NS_PER_S / self._speed - time.monotonic()
        return datetime.now(UTC) + timedelta(seconds=max(0.0, delay))

    def snapshot(self) -> Any:
        """The resume state: line number, highest receive time, decoder state and counts so far."""
        return {
            "line": self._line,
            "max_recv": self._max_recv,
            "decoder": self._decoder,
            "dead": self._dead,
            "instruments": self._router.instruments,
            "last_wm": self._last_wm,
            "connection": self._router.connection,
        }


def _for_instrument(status: FeedStatus, key: str) -> FeedStatus:
    venue, _, instrument = key.partition("|")
    return FeedStatus(
        venue=venue,
        symbol=status.symbol,
        instrument=instrument,
        ts=status.ts,
        recv=status.recv,
        state=status.state,
        detail=status.detail,
    )


class ReplaySource(FixedPartitionedSource[tuple[str, list[Any]], Any]):
    """Replay recordings, one partition per file, as ``(key, [values])`` batches.

    :param paths: recording files (plain, ``.gz`` or ``.zst``).
    :param batch_size: frames read per ``next_batch``.
    :param allowed_lag_s: how far (s) an event's exchange time may trail its receive time
        before it is assigned to a later second (see :func:`effective_time`).
    :param speed: ``None`` for as fast as possible, else N times real time by receive time.
    :param progress: optional :data:`ProgressCallback` (e.g. a progress bar); in-process only.
    """

    def __init__(
        self,
        paths: Sequence[str | Path],
        batch_size: int = 1000,
        allowed_lag_s: float = 2.0,
        speed: float | None = None,
        progress: ProgressCallback | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        if speed is not None and speed <= 0:
            raise ValueError("speed must be > 0 (or None for as fast as possible)")
        self.paths = [Path(p) for p in paths]
        for path in self.paths:
            if not path.is_file():
                raise FileNotFoundError(f"recording not found: {path}")
        self.batch_size = batch_size
        self.allowed_lag_ns = s_to_ns(allowed_lag_s)
        self.speed = speed
        self.progress = progress

    def list_parts(self) -> list[str]:
        """One partition per recording, ``<index>:<path>``."""
        return [f"{index}:{path}" for index, path in enumerate(self.paths)]

    def build_part(self, step_id: str, for_part: str, resume_state: Any) -> ReplayPartition:
        """The partition that reads the recording of ``for_part``, resuming from ``resume_state``."""
        index = int(for_part.split(":", 1)[0])
        return ReplayPartition(
            self.paths[index], index, self.batch_size, self.allowed_lag_ns, self.speed, resume_state, self.progress
        )
