"""The live Bytewax source: venue websockets -> the same items as the replay source.

::

    partition = one venue (its connections: Binance /market + /public, Bybit, OKX)
      thread:  asyncio loop -> VenueRunner -> Session per connection (connectors/session.py)
               REST bootstrap (instruments, book snapshots, polls) as <venue>!rest frames,
               connection events as <venue>!conn frames, book resyncs (venue LiveBooks)
               -> FrameQueue (bounded; a full queue drops, counts and reports)
      worker:  LivePartition.next_batch: drain the queue (never waits), parse with
               FrameDecoder, group by instrument, append Watermark -> items

Items follow the protocol of :mod:`cascadewatch.connectors.sources` exactly: ``(venue|instrument, [events...,
Watermark])``, dead letters under ``DEAD_LETTER_KEY`` (including ``queue_full``), one
``PartitionStats`` under ``STATS_KEY`` when the partition ends (``duration_s``).

Watermarks. Every frame's receive time is raised to at least the previous watermark's clock
reading (and never decreases): ``recv' = max(recv, previous recv', previous now)``. Frames held
back on purpose (Binance diffs buffered until their snapshot, a rollover's held frames) keep
their place in the stream and get a ``recv'`` no earlier than what was already promised. The
watermark after a batch that emptied the queue is ``now - allowed_lag`` (event-time seconds
close in real time even when a venue is quiet), else ``max recv' - allowed_lag``. The optional
recording tap (``record``) writes ``recv'``, so replaying it gives the same events, seconds,
snapshots and alerts as the live run.

A partition that has not seen any instrument yet (a venue down at start) still moves the
merge step forward: its watermarks also go out under ``PARTITION_KEY`` (see
:mod:`cascadewatch.pipelines.steps.watermarks`). Without this, one unreachable venue would hold back every
snapshot.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition

from cascadewatch.connectors import live_metrics as metrics
from cascadewatch.connectors.frames import DeadLetter, FrameDecoder
from cascadewatch.connectors.live_config import LiveConfig
from cascadewatch.connectors.reasons import Reason
from cascadewatch.connectors.recorder import RotatingRecorder, insert_before_suffixes
from cascadewatch.connectors.rest import Reply, http_get
from cascadewatch.connectors.rest_budget import RestLimits, RestScheduler
from cascadewatch.connectors.rest_client import RestClient
from cascadewatch.connectors.session import Session, SessionSettings
from cascadewatch.connectors.sources import (
    END_OF_TIME,
    PARTITION_KEY,
    STATS_KEY,
    InstrumentRouter,
    PartitionStats,
    Watermark,
    items_of,
)
from cascadewatch.connectors.units import NS_PER_S, ns_to_s, s_to_ns
from cascadewatch.connectors.venues.base import ParseError
from cascadewatch.connectors.venues.live_common import (
    THIS,
    Action,
    BookSync,
    Emit,
    Fetch,
    LiveSettings,
    Resubscribe,
    rest_frame,
)
from cascadewatch.connectors.venues.registry import VenueModule, venue_module

log = logging.getLogger("cascadewatch.live")


def resolve_settings(name: str, live: LiveConfig) -> LiveSettings:
    """The venue module's ``LIVE`` defaults overlaid by ``[live]`` and ``[live.<venue>]``."""
    defaults = venue_module(name).LIVE
    override = live.venue(name)

    def pick(field: str, fallback: Any) -> Any:
        value = getattr(override, field)
        return fallback if value is None else value

    ws_url = pick("ws_url", defaults.ws_url)
    book_default = (
        defaults.ws_book_url
        if override.ws_url is None
        else (ws_url if defaults.ws_book_url == defaults.ws_url else defaults.ws_book_url)
    )
    return LiveSettings(
        ws_url=ws_url,
        ws_book_url=pick("ws_book_url", book_default),
        rest_url=pick("rest_url", defaults.rest_url).rstrip("/"),
        max_lifetime_s=pick("max_lifetime_s", defaults.max_lifetime_s),
        heartbeat_s=pick("heartbeat_s", defaults.heartbeat_s),
        max_topics_per_connection=pick("max_topics_per_connection", defaults.max_topics_per_connection),
        max_topics_per_message=pick("max_topics_per_message", defaults.max_topics_per_message),
        subscribe_per_s=pick("subscribe_per_s", defaults.subscribe_per_s),
        subscribe_burst=pick("subscribe_burst", defaults.subscribe_burst),
        poll_s=pick("poll_s", defaults.poll_s),
        book_depth=pick("book_depth", defaults.book_depth),
        rest_weight_per_min=pick("rest_weight_per_min", defaults.rest_weight_per_min),
        rest_weight_header=defaults.rest_weight_header,
        staleness_s=pick("staleness_s", live.staleness_s),
        rollover_overlap_s=pick("rollover_overlap_s", live.rollover_overlap_s),
        resync_timeout_s=pick("resync_timeout_s", live.resync_timeout_s),
    )


def venue_symbols(name: str, live: LiveConfig) -> list[str]:
    """Venue-native symbols: ``[live.<venue>] symbols``, else ``[live] symbols`` mapped."""
    override = live.venue(name).symbols
    if override is not None:
        return list(override)
    module = venue_module(name)
    return [module.native_symbol(asset, live.quote) for asset in live.symbols]


# ------------------------------------------------------------------------------ hand-over


Frame = tuple[int, str, bytes]
"""``(recv_ns, source, payload)`` as handed from the socket thread to the dataflow."""


class FrameQueue:
    """Bounded single-producer single-consumer hand-over (``deque`` operations are atomic).

    A full queue drops the frame, counts it (``dropped``, metric ``dead_letters{reason=
    queue_full}``) and keeps up to ``keep_dropped`` of them for dead letters.
    """

    def __init__(self, maxsize: int, venue: str, keep_dropped: int = 1000) -> None:
        self.maxsize = maxsize
        self.venue = venue
        self._frames: deque[Frame] = deque()
        self._dropped: deque[Frame] = deque(maxlen=keep_dropped)
        self.dropped = 0
        self._reported = 0
        self._m_full = metrics.DEAD_LETTERS.labels(venue, "queue_full")

    def __len__(self) -> int:
        return len(self._frames)

    def put(self, recv: int, source: str, payload: bytes, force: bool = False) -> bool:
        """Append a frame; ``False`` (dropped, counted) when full. ``force``: connection events
        and drop markers, never dropped (they may exceed ``maxsize``)."""
        if len(self._frames) >= self.maxsize and not force:
            self.dropped += 1
            self._dropped.append((recv, source, payload))
            self._m_full.inc()
            return False
        self._frames.append((recv, source, payload))
        return True

    def reject(self, recv: int, source: str, payload: bytes) -> None:
        """Drop a frame without trying (it must wait behind a drop marker): counted as dropped."""
        self.dropped += 1
        self._dropped.append((recv, source, payload))
        self._m_full.inc()

    def offer(self, recv: int, source: str, payload: bytes) -> bool:
        """Append a frame only if there is room (``False``: full; nothing dropped or counted)."""
        if len(self._frames) >= self.maxsize:
            return False
        self._frames.append((recv, source, payload))
        return True

    def drain(self, limit: int) -> list[Frame]:
        """Take up to ``limit`` frames, oldest first."""
        frames = self._frames
        out: list[Frame] = []
        popleft = frames.popleft
        for _ in range(min(limit, len(frames))):
            out.append(popleft())
        return out

    def take_dropped(self) -> tuple[int, list[Frame]]:
        """Frames dropped since the last call: their count, and those kept for dead letters."""
        total = self.dropped
        count, self._reported = total - self._reported, total
        kept: list[Frame] = []
        while self._dropped:
            kept.append(self._dropped.popleft())
        return count, kept


# ------------------------------------------------------------------------------ venue runner


class StartupWatch:
    """The venue feeds of one process at start: :meth:`check` says the start failed (and keeps
    the reason in :attr:`error`, naming each venue's last problem) when none has connected
    ``timeout_s`` after start.

    Once one venue connected the start succeeded; later outages are the feed alerts' job.
    """

    def __init__(self, timeout_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.timeout_s = timeout_s
        self._clock = clock
        self._started = clock()
        self._feeds: list[VenueFeed] = []
        self._done = timeout_s <= 0
        self.error = ""

    def add(self, feed: VenueFeed) -> None:
        """Watch ``feed`` (started or about to be)."""
        self._feeds.append(feed)

    def check(self) -> bool:
        """Whether the start failed: no watched venue connected within ``timeout_s``."""
        if self.error:
            return True
        if self._done or not self._feeds:
            return False
        if any(feed.runner.connected for feed in self._feeds):
            self._done = True
            return False
        if self._clock() - self._started < self.timeout_s:
            return False
        problems = "; ".join(f"{f.runner.source}: {f.runner.problem or 'no answer'}" for f in self._feeds)
        self.error = f"no venue connected within {self.timeout_s:g} s ({problems})"
        log.error("%s", self.error)
        return True


class _Drop:
    """Frames dropped since the last drop marker, and the books they carried."""

    __slots__ = ("books", "frames")

    def __init__(self) -> None:
        self.frames = 0
        self.books: set[str] = set()


class VenueRunner:
    """One venue on an asyncio loop: REST bootstrap, sessions, book sync; frames to ``emit``.

    ``emit(recv_ns, source, payload, force)`` (``False`` back: dropped) receives, in order: the
    instrument REST bodies, then
    websocket frames, REST book snapshots and polls (``<venue>!rest``) and connection events
    (``<venue>!conn``), as the venue's ``LiveBooks`` orders them. ``emit_shutdown=False`` leaves
    out the ``close`` events of our own shutdown (the pipeline must not page for them).
    ``clock`` is the sessions' monotonic clock in seconds (staleness, heartbeats, lifetimes,
    backoff resets); tests pass a fake one to move time without waiting.
    """

    def __init__(
        self,
        name: str,
        live: LiveConfig,
        emit: Callable[[int, str, bytes, bool], Any],
        *,
        rest_get: Callable[[str, float], Reply] = http_get,
        rng: random.Random | None = None,
        connect: Callable[..., Any] | None = None,
        emit_shutdown: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.emit_shutdown = emit_shutdown
        self.module: VenueModule = venue_module(name)
        self.source: str = self.module.SOURCE
        self.live = live
        self.settings = resolve_settings(name, live)
        self.symbols = venue_symbols(name, live)
        self._emit_frame = emit
        self.hand_over: FrameQueue | None = None
        """The queue ``emit`` puts into (set by :class:`VenueFeed`): drop markers go in only if there is room."""
        self._rest_get = rest_get
        self._rng = rng or random.Random()
        self._connect = connect
        self._clock = clock
        self.books: BookSync = BookSync()
        self.rest = RestClient(
            self.settings.rest_url,
            RestScheduler(
                self.source,
                RestLimits(
                    self.settings.rest_weight_per_min,
                    weight_header=self.settings.rest_weight_header,
                    permanent_retry_s=live.rest_permanent_retry_s,
                ),
                live.backoff,
                self._rng,
                time.monotonic,
            ),
            rest_get,
            live.rest_timeout_s,
        )
        self.sessions: list[Session] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._reported = {"gaps": 0, "resyncs": 0}
        self._m_gaps = metrics.GAPS.labels(self.source)
        self._m_resyncs = metrics.RESYNCS.labels(self.source)
        self._m_invalid = metrics.BOOKS_INVALID.labels(self.source)
        self._paged: dict[str, float] = {}  # symbol -> the invalid-since already paged
        self._drop: _Drop | None = None  # frames dropped since the last drop marker
        self.connected = False  # a connection of this venue has opened (the start succeeded)
        self.problem = ""  # the last connection problem (error, close, stale), for start-up failures
        self.drop_causes: dict[str, int] = {}  # symbol -> frames of it dropped (queue full)

    # -- emission --------------------------------------------------------------------------

    def _emit(self, recv: int, source: str, payload: bytes) -> None:
        """Hand a frame over. A frame the queue drops restarts the books it carried (they
        resync) and is noted in a drop marker, handed over before any later frame."""
        if b"\n" in payload or b"\r" in payload:  # a frame is one line (JSON allows this rewrite)
            payload = payload.replace(b"\r", b" ").replace(b"\n", b" ")
        control = source.endswith("!conn")
        if self._drop is not None and not self._flush_drop(recv) and not control:
            if self.hand_over is not None:  # the marker must go first: still full
                self.hand_over.reject(recv, source, payload)
            self._dropped(source, payload)
        elif self._emit_frame(recv, source, payload, control) is False:
            self._dropped(source, payload)

    def _dropped(self, source: str, payload: bytes) -> None:
        drop = self._drop if self._drop is not None else _Drop()
        self._drop = drop
        drop.frames += 1
        symbols, actions = self.books.on_dropped(payload) if not source.endswith("!conn") else ([], [])
        for symbol in symbols:
            drop.books.add(symbol)
            self.drop_causes[symbol] = self.drop_causes.get(symbol, 0) + 1
        self._apply(actions)

    def _flush_drop(self, recv: int, force: bool = False) -> bool:
        """Hand over the pending drop marker (``<venue>!conn`` ``drop`` event); ``False`` if the
        queue is still full."""
        drop = self._drop
        if drop is None:
            return True
        marker = {"event": "drop", "reason": "queue full", "frames": drop.frames, "books": sorted(drop.books)}
        payload = msgspec.json.encode(marker)
        if force or self.hand_over is None:
            self._emit_frame(recv, self.source + "!conn", payload, True)
        elif not self.hand_over.offer(recv, self.source + "!conn", payload):
            return False
        log.warning(
            "%s: %d frames dropped (queue full); books to resync: %s", self.source, drop.frames, marker["books"]
        )
        self._drop = None
        return True

    def _apply(self, actions: Sequence[Action], recv: int = 0, payload: bytes = b"") -> None:
        for action in actions:
            if action is THIS:
                self._emit(recv, self.source, payload)
            elif isinstance(action, Emit):
                self._emit(action.recv, self.source + "!rest" if action.rest else self.source, action.payload)
            elif isinstance(action, Fetch):
                self._spawn(self._fetch_book(action))
            elif isinstance(action, Resubscribe):
                self._spawn(self._resubscribe(action.topics))

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- SessionHandler --------------------------------------------------------------------

    def frame(self, session: Session, recv: int, payload: bytes) -> None:
        """Session callback for a frame: hand it over, or act on what the venue's book logic asks."""
        actions = self.books.on_frame(recv, payload)
        if len(actions) == 1 and actions[0] is THIS:
            self._emit(recv, self.source, payload)
        else:
            self._apply(actions, recv, payload)

    def conn(self, session: Session, recv: int, event: dict[str, Any], rollover: bool) -> None:
        """Session callback for a connection event: record it and (re)bootstrap on a fresh open."""
        kind = event.get("event")
        if kind == "close" and event.get("reason") == "shutdown" and not self.emit_shutdown:
            return  # our own stop: not a feed problem (the recorder keeps it, the pipeline does not)
        if kind == "open":
            self.connected = True
        elif kind in ("error", "close", "stale"):
            self.problem = f"{event.get('conn', '')}: {event.get('reason', kind)}"
        if kind == "close":  # the dataflow drops only the books this connection carried
            event = {**event, "books": self.books.book_symbols(session.spec.topics)}
            # diffs held for a snapshot came before the close: they go first, the close is last
            self._apply(self.books.on_close(session.spec.topics))
        self._emit(recv, self.source + "!conn", msgspec.json.encode(event))
        if kind == "open" and not rollover:
            self._apply(self.books.on_open(session.spec.topics))

    # -- REST ------------------------------------------------------------------------------

    async def _get(self, path: str, attempts: int | None, since: float = math.inf) -> tuple[int, bytes] | None:
        """GET through the venue's REST client (budget, backoff); ``None`` after ``attempts``."""
        return await self.rest.get(path, since=since, attempts=attempts)

    async def _bootstrap_instruments(self) -> list[str]:
        """Fetch instrument metadata (emitted as ``!rest`` frames); keep the listed symbols."""
        listed: set[str] | None = None
        for path in self.module.instruments_paths(self.symbols):
            got = await self._get(path, attempts=3, since=-math.inf)
            if got is None:
                continue
            recv, body = got
            self._emit(recv, self.source + "!rest", rest_frame(path, body))
            try:
                listed = (listed or set()) | self.module.listed_symbols(path, body)
            except Exception as exc:
                log.warning("%s: cannot read the instrument list of %s: %s", self.source, path, exc)
        if listed is None:
            log.warning("%s: no instrument list; subscribing %s as configured", self.source, self.symbols)
            return list(self.symbols)
        missing = [symbol for symbol in self.symbols if symbol not in listed]
        if missing:
            log.warning("%s: not listed as trading perpetuals, skipped: %s", self.source, ", ".join(missing))
        return [symbol for symbol in self.symbols if symbol in listed]

    async def _fetch_book(self, fetch: Fetch) -> None:
        if fetch.retry:
            log.warning(
                "%s: snapshot %s could not be used (older than the stream): asking again", self.source, fetch.path
            )
        got = await self.rest.get(fetch.path, weight=fetch.weight, since=fetch.since, retry=fetch.retry)
        if got is None:
            return
        recv, body = got
        actions = self.books.on_rest(fetch.path, recv, body)
        if actions is None:
            self._emit(recv, self.source + "!rest", rest_frame(fetch.path, body))
        else:
            self._apply(actions)

    async def _resubscribe(self, topics: Sequence[str]) -> None:
        for session in self.sessions:
            mine = [topic for topic in topics if session.carries(topic)]
            if mine:
                await session.resubscribe(mine)

    async def _poll_loop(self, stop: asyncio.Event, symbols: list[str]) -> None:
        paths = self.module.poll_paths(symbols)
        if not paths or self.settings.poll_s <= 0:
            return
        while not stop.is_set():
            for path in paths:
                got = await self._get(path, attempts=1)
                if got is not None:
                    self._emit(got[0], self.source + "!rest", rest_frame(path, got[1]))
            try:
                await asyncio.wait_for(stop.wait(), timeout=self.settings.poll_s)
            except TimeoutError:
                pass

    async def _tick_loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await asyncio.wait_for(
                    stop.wait(), timeout=min(1.0, self.settings.resync_timeout_s / 2, self.live.book_alert_s / 2)
                )
            except TimeoutError:
                pass
            now = time.monotonic()
            if self._drop is not None:  # hand the drop marker over as soon as there is room
                self._flush_drop(time.time_ns())
            self._apply(self.books.tick(now))
            self._page_invalid_books(now)
            self._report_books()

    def _page_invalid_books(self, now: float) -> None:
        """A ``<venue>!conn`` ``invalid`` event for each book invalid ``book_alert_s`` (once per
        spell): the dataflow turns it into a feed alert that only a valid book resolves."""
        invalid = self.books.invalid()
        self._m_invalid.set(len(invalid))
        for symbol in [s for s, since in self._paged.items() if invalid.get(s) != since]:
            del self._paged[symbol]
            self.drop_causes.pop(symbol, None)
        for symbol, since in invalid.items():
            if symbol in self._paged or now - since < self.live.book_alert_s:
                continue
            self._paged[symbol] = since
            reason = f"book invalid for {now - since:.0f} s: {self._invalid_cause(symbol)}"
            log.warning("%s: %s %s", self.source, symbol, reason)
            event = {"event": "invalid", "symbol": symbol, "reason": reason}
            self._emit(time.time_ns(), self.source + "!conn", msgspec.json.encode(event))

    def _invalid_cause(self, symbol: str) -> str:
        """Why ``symbol``'s book waits: the snapshot request's last failure (HTTP status,
        timeout), frames dropped for a full queue, else what it waits for."""
        causes = []
        path = self.books.snapshot_path(symbol)
        failure = self.rest.scheduler.failures.get(path) if path is not None else None
        if failure is not None and path is not None:
            causes.append(f"{failure} on GET {path}")
        dropped = self.drop_causes.get(symbol)
        if dropped:
            causes.append(f"queue full, {dropped} frames dropped")
        if causes:
            return "; ".join(causes)
        if path is None:
            return "no snapshot since the subscription"
        if self.rest.scheduler.pending(path):
            return f"waiting for GET {path}"
        return "no diff received yet to start the snapshot from"

    def _report_books(self) -> None:
        for name, metric in (("gaps", self._m_gaps), ("resyncs", self._m_resyncs)):
            value = getattr(self.books, name)
            if value > self._reported[name]:
                metric.inc(value - self._reported[name])
                self._reported[name] = value

    # -- lifecycle -------------------------------------------------------------------------

    def session_settings(self) -> SessionSettings:
        """The session settings of this venue (staleness, lifetime, heartbeat, backoff, connect timeout,
        frame limit) from ``[live]`` and the venue's defaults."""
        s = self.settings
        return SessionSettings(
            staleness_s=s.staleness_s,
            max_lifetime_s=s.max_lifetime_s,
            heartbeat_s=s.heartbeat_s,
            rollover_overlap_s=s.rollover_overlap_s,
            max_topics_per_message=s.max_topics_per_message,
            subscribe_per_s=s.subscribe_per_s,
            subscribe_burst=s.subscribe_burst,
            backoff=self.live.backoff,
            open_timeout_s=self.live.connect_timeout_s,
            max_frame_bytes=self.live.max_frame_bytes,
        )

    async def run(self, stop: asyncio.Event) -> None:
        """Bootstrap, then keep every connection up until ``stop``."""
        self._loop = asyncio.get_running_loop()
        self._stop = stop
        rest = asyncio.get_running_loop().create_task(self.rest.run(stop))
        symbols = await self._bootstrap_instruments()
        self.books = self.module.LiveBooks(symbols, self.settings)
        kwargs: dict[str, Any] = {"rng": self._rng, "clock": self._clock}
        if self._connect is not None:
            kwargs["connect"] = self._connect
        settings = self.session_settings()
        self.sessions = [
            Session(self.module, self.source, spec, settings, self, **kwargs)
            for spec in self.module.connections(symbols, self.settings)
        ]
        jobs = [session.run(stop) for session in self.sessions]
        jobs += [self._tick_loop(stop), self._poll_loop(stop, symbols)]
        try:
            await asyncio.gather(*jobs)
        finally:
            for task in list(self._tasks):
                task.cancel()
            rest.cancel()
            self._flush_drop(time.time_ns(), force=True)
            self._report_books()

    def rebootstrap(self) -> None:
        """Re-send instrument metadata and fresh book snapshots (a new recording file starts)."""
        if self._loop is None:
            return

        async def again() -> None:
            for path in self.module.instruments_paths([s for s in self.symbols]):
                got = await self._get(path, attempts=3)
                if got is not None:
                    self._emit(got[0], self.source + "!rest", rest_frame(path, got[1]))
            self._apply(self.books.resync_all())

        self._loop.call_soon_threadsafe(lambda: self._spawn(again()))


class VenueFeed:
    """A :class:`VenueRunner` on its own thread and event loop, emitting into a :class:`FrameQueue`."""

    def __init__(self, name: str, live: LiveConfig, queue: FrameQueue, **runner_options: Any) -> None:
        self.name = name
        self.queue = queue
        self.runner = VenueRunner(name, live, queue.put, **runner_options)
        self.runner.hand_over = queue
        self._thread = threading.Thread(target=self._main, name=f"cascadewatch-{name}", daemon=True)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self.error: BaseException | None = None

    def _main(self) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            self._ready.set()
            await self.runner.run(self._stop)

        try:
            asyncio.run(main())
        except BaseException as exc:
            self.error = exc
            log.exception("%s: feed thread stopped", self.name)
        finally:
            self._ready.set()

    def start(self) -> VenueFeed:
        """Start the feed thread and wait (up to 5 s) until its loop runs; returns ``self``."""
        self._thread.start()
        self._ready.wait(timeout=5.0)
        return self

    @property
    def alive(self) -> bool:
        """Whether the feed thread is still running."""
        return self._thread.is_alive()

    def request_stop(self) -> None:
        """Ask the feed to close its connections (non-blocking)."""
        if self._loop is not None and self._stop is not None and not self._loop.is_closed():
            try:
                self._loop.call_soon_threadsafe(self._stop.set)
            except RuntimeError:  # the loop just closed
                pass

    def stop(self, timeout: float = 5.0) -> None:
        """Ask the feed to stop and wait up to ``timeout`` seconds for its thread."""
        self.request_stop()
        self._thread.join(timeout)

    def rebootstrap(self) -> None:
        """Fetch fresh instrument metadata and book snapshots (a rotated recording starts complete)."""
        self.runner.rebootstrap()


# ------------------------------------------------------------------------------ Bytewax source


def tap_path(path: str | Path, source: str) -> Path:
    """Recording tap of one partition: ``live.rec.zst`` -> ``live.binance-usdm.rec.zst``."""
    return insert_before_suffixes(Path(path), source)


class LivePartition(StatefulSourcePartition[tuple[str, list[Any]], None]):
    """One venue's frames -> ``(key, [values])`` batches (see the module docstring).

    ``clock`` is the wall clock, integer nanoseconds since the epoch (default ``time.time_ns``):
    it sets the watermark of an emptied queue and the end of the run (``deadline_ns``). Once
    ``stop`` is set (SIGTERM, SIGINT) the partition ends as at the deadline.
    """

    def __init__(  # noqa: PLR0913 - seven parameters plus the test clock and the keyword-only stop event
        self,
        index: int,
        name: str,
        live: LiveConfig,
        allowed_lag_ns: int,
        deadline_ns: int | None,
        record: str | None,
        feed_options: dict[str, Any],
        clock: Callable[[], int] = time.time_ns,
        *,
        stop: threading.Event | None = None,
    ) -> None:
        self._index = index
        self._clock = clock
        self._watch: StartupWatch | None = None
        self._lag = allowed_lag_ns
        self._deadline = deadline_ns
        self._stop_requested = stop
        self._batch_max = live.batch_max
        self._poll = timedelta(milliseconds=live.poll_ms)
        self._source = venue_module(name).SOURCE
        self._queue = FrameQueue(live.queue_size, self._source)
        self._decoder = FrameDecoder()
        self._dead: Counter[tuple[str, Reason]] = Counter()
        self._router = InstrumentRouter()
        self._last_wm = -1
        self._max_recv = 0
        self._floor = 0
        self._frames = 0
        self._idle = False
        self._stopping = False
        self._done = False
        self._m_depth = metrics.QUEUE_DEPTH.labels(self._source)
        self._m_lag = metrics.LAG.labels(self._source)
        self._tap: RotatingRecorder | None = None
        if record:
            self._tap = RotatingRecorder(
                tap_path(record, self._source),
                comment=f"live tap {self._source} partition={index}",
                rotate_bytes=int(live.record_rotate_mb * 1_000_000),
                rotate_s=live.record_rotate_hours * 3600.0,
                on_rotate=self._rebootstrap,
            )
        self._feed = VenueFeed(name, live, self._queue, **{"emit_shutdown": False, **feed_options}).start()

    def _rebootstrap(self) -> None:
        self._feed.rebootstrap()

    def watch_start(self, watch: StartupWatch) -> None:
        """Report this venue to ``watch``: the partition ends when no venue of the process
        connected within ``[live] startup_timeout_s``."""
        self._watch = watch
        watch.add(self._feed)

    def next_batch(self) -> list[tuple[str, list[Any]]]:
        """The next batch of frames (and watermark items) for this venue; ``StopIteration`` once done."""
        if self._done:
            raise StopIteration()
        if self._watch is not None and self._watch.check() and not self._stopping:
            self._stopping = True  # no venue ever connected: end; run_live reports the reason
            self._feed.request_stop()
        now = self._clock()
        ended = self._deadline is not None and now >= self._deadline
        if (ended or (self._stop_requested is not None and self._stop_requested.is_set())) and not self._stopping:
            self._stopping = True  # close the connections, hand over what is queued, then end
            self._feed.request_stop()
        feed_gone = not self._feed.alive  # read before draining: its last frames are queued
        frames = self._queue.drain(self._batch_max)
        drained = not len(self._queue)
        by_key: dict[str, list[Any]] = {}
        dead: list[DeadLetter] = []
        for recv0, source, payload in frames:
            self._handle(recv0, source, payload, by_key, dead)
        self._dropped(dead)
        self._m_depth.set(len(self._queue))
        if self._tap is not None:
            self._tap.tick()
        self._idle = not frames
        if feed_gone and drained and (self._stopping or self._feed.error is not None):
            return self._finish(by_key, dead)
        if drained:
            self._floor = max(self._floor, now)
            wm = max(now, self._max_recv) - self._lag
        else:
            wm = self._max_recv - self._lag
        if wm // NS_PER_S > self._last_wm // NS_PER_S:
            self._mark(by_key, wm)
        return items_of(by_key, dead)

    def _handle(
        self, recv0: int, source: str, payload: bytes, by_key: dict[str, list[Any]], dead: list[DeadLetter]
    ) -> None:
        recv = recv0
        if recv < self._max_recv:
            recv = self._max_recv
        if recv < self._floor:
            recv = self._floor
        self._max_recv = recv
        self._frames += 1
        if self._tap is not None:
            self._tap.write(recv, source, payload)
        try:
            parsed = self._decoder.decode(source, payload, recv)
        except ParseError as exc:
            dead.append(self._dead_letter(exc.reason, source, payload, exc.detail))
            return
        events = parsed.events
        if events and "!" not in source:
            ts = events[0].ts
            if ts:
                self._m_lag.observe(max(0.0, ns_to_s(recv0 - ts)))
        for event in events:
            self._router.route(event, by_key)

    def _dropped(self, dead: list[DeadLetter]) -> None:
        count, kept = self._queue.take_dropped()
        if not count:
            return
        self._dead[(self._source, Reason.QUEUE_FULL)] += count
        detail = f"queue of {self._queue.maxsize} frames full: the dataflow is behind"
        for _, source, payload in kept:
            dead.append(DeadLetter(Reason.QUEUE_FULL, source, payload.decode("utf-8", "replace"), detail))
        if count > len(kept):
            dead.append(
                DeadLetter(Reason.QUEUE_FULL, self._source, "", f"{count - len(kept)} more frames dropped; {detail}")
            )
        log.warning("%s: %d frames dropped: %s", self._source, count, detail)

    def _dead_letter(self, reason: Reason, source: str, raw: bytes, detail: str) -> DeadLetter:
        venue = source.partition("!")[0]
        self._dead[(venue, reason)] += 1
        metrics.DEAD_LETTERS.labels(venue, reason).inc()
        return DeadLetter(reason=reason, source=source, raw=raw.decode("utf-8", "replace"), detail=detail)

    def _mark(self, by_key: dict[str, list[Any]], wm: int) -> None:
        self._last_wm = wm
        mark = Watermark(self._index, wm)
        by_key.setdefault(PARTITION_KEY, []).append(mark)  # reaches the merge even with no instrument
        self._router.mark(by_key, mark)

    def _finish(self, by_key: dict[str, list[Any]], dead: list[DeadLetter]) -> list[tuple[str, list[Any]]]:
        self._done = True
        self._mark(by_key, END_OF_TIME)
        items = items_of(by_key, dead)
        stats = PartitionStats(
            partition=f"live:{self._source}",
            frames={f"{venue} {kind}": n for (venue, kind), n in sorted(self._decoder.frames.items())},
            dead_letters={f"{venue} {reason}": n for (venue, reason), n in sorted(self._dead.items())},
            lines=self._frames,
        )
        items.append((STATS_KEY, [stats]))
        self._close_tap()
        return items

    def _close_tap(self) -> None:
        if self._tap is not None:
            self._tap.close()
            self._tap = None

    def next_awake(self) -> datetime | None:
        """Poll again at once while frames flow, else after ``poll_ms`` (never a long wait)."""
        if not self._idle:
            return None
        return datetime.now(UTC) + self._poll

    def snapshot(self) -> None:
        """Nothing: a live feed cannot rewind, so there is no state to resume from."""
        return None  # a live feed cannot rewind: nothing to resume from

    def close(self) -> None:
        """Stop the feed and close the tap recording."""
        self._feed.stop()
        self._close_tap()


class LiveSource(FixedPartitionedSource[tuple[str, list[Any]], None]):
    """Live venue feeds as a Bytewax source: one partition per venue in ``live.venues``.

    :param live: the ``[live]`` config (venues, symbols, endpoints, limits).
    :param allowed_lag_s: must equal the dataflow's (``config.replay.allowed_lag_s``).
    :param duration_s: end the partitions after this long (``None``: run until stopped).
    :param record: recording tap path (default ``live.record``); one file per partition.
    :param feed_options: passed to :class:`VenueRunner` (tests inject ``rng``, ``rest_get``...).
    :param clock: the partitions' wall clock, integer nanoseconds (see :class:`LivePartition`).
    :param stop: once set (SIGTERM, SIGINT), the partitions end as at ``duration_s``: the
        connections close, what is queued is handed over, and the flow finishes normally.
    """

    def __init__(
        self,
        live: LiveConfig,
        allowed_lag_s: float = 2.0,
        duration_s: float | None = None,
        record: str | None = None,
        feed_options: dict[str, Any] | None = None,
        clock: Callable[[], int] = time.time_ns,
        stop: threading.Event | None = None,
    ) -> None:
        if not live.venues:
            raise ValueError("no venues configured ([live] venues)")
        self.live = live
        self.allowed_lag_ns = s_to_ns(allowed_lag_s)
        self.duration_s = duration_s
        self.record = record if record is not None else (live.record or None)
        self.feed_options = feed_options or {}
        self.clock = clock
        self.stop = stop
        self.watch = StartupWatch(live.startup_timeout_s)

    def list_parts(self) -> list[str]:
        """One partition per venue, ``<index>:<venue>``."""
        return [f"{index}:{name}" for index, name in enumerate(self.live.venues)]

    def build_part(self, step_id: str, for_part: str, resume_state: None) -> LivePartition:
        """The partition that runs the venue of ``for_part`` (its deadline from ``duration_s``)."""
        index_text, _, name = for_part.partition(":")
        deadline = None if self.duration_s is None else self.clock() + s_to_ns(self.duration_s)
        part = LivePartition(
            int(index_text),
            name,
            self.live,
            self.allowed_lag_ns,
            deadline,
            self.record,
            self.feed_options,
            self.clock,
            stop=self.stop,
        )
        part.watch_start(self.watch)
        return part
