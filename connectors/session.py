"""One websocket connection to a venue, kept alive for weeks (websockets, asyncio).

A :class:`Session` owns one :class:`~cascadewatch.connectors.venues.live_common.ConnectionSpec` (a URL and
its topics) and keeps it connected:

- **subscribe** after every (re)connect, in frames of at most ``max_topics_per_message``
  topics, paced by a token bucket (``subscribe_per_s``, ``subscribe_burst``: Binance allows 10
  incoming messages per second, OKX 480 subscribe requests per hour);
- **heartbeats** the venue's way: Binance pings and the websockets library answers pongs;
  Bybit gets ``{"op":"ping"}``, OKX the text ``ping``, Hyperliquid ``{"method":"ping"}`` and
  Deribit ``public/set_heartbeat`` every ``heartbeat_s``; a frame the venue wants answered at
  once gets the venue module's ``reply_to`` answer (Deribit: ``test_request`` -> ``public/test``);
- **reconnect** with capped exponential backoff and jitter
  (:class:`Backoff`: ``min(max_s, initial_s * factor**n) * (1 ± jitter)``), the count reset once
  a connection has stayed up ``reset_after_s``; an HTTP 429/418 ``Retry-After`` is honoured;
- **stale watchdog**: no data frame (acks and pongs do not count) for ``staleness_s`` while
  subscribed raises a ``stale`` event and reconnects (e.g. an old URL that accepts the
  subscription and then sends nothing);
- **rollover** before ``max_lifetime_s`` (Binance closes connections at 24 h) or when the
  venue announces a close (OKX notice 64008): open and subscribe a new connection, keep
  reading the old one for ``rollover_overlap_s``, then switch; the new connection's frames
  are held meanwhile and de-duplicated against what the old one delivered
  (:class:`~cascadewatch.connectors.venues.live_common.Overlap`), so nothing is lost or repeated.

Every connection event goes to the handler as the payload of a ``<venue>!conn`` frame
(``{"event": "open"|"close"|"error"|"stale"|"oversize", "url", "conn", "reason", "code"}``), so a
recording replays a disconnect as a disconnect. A frame over ``max_frame_bytes`` is not handed
over; an ``oversize`` event carries its ``size``, the ``limit`` and its first 256 bytes
(``head``) instead, which the decoder turns into an ``oversize`` dead letter. Up to
:attr:`SessionSettings.hard_frame_bytes` the connection stays up; past it the websocket
library closes it (code 1009) and the event says so. A rollover's ``open`` is flagged and its
planned close of the old connection is *not* sent as ``close`` (the dataflow would drop the
books for nothing): it is counted (``cascadewatch_feed_rollovers_total``) and logged.

Time sources, the random generator, ``sleep`` and ``connect`` are injectable for tests.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from cascadewatch.connectors import live_metrics as metrics
from cascadewatch.connectors.live_config import BackoffConfig
from cascadewatch.connectors.venues.live_common import ConnectionSpec, Overlap, VenueLive

log = logging.getLogger("cascadewatch.live")


class Backoff:
    """Capped exponential backoff with jitter; :meth:`reset` after a stable period.

    >>> b = Backoff(BackoffConfig(initial_s=1, max_s=8, factor=2, jitter=0), random.Random(0))
    >>> [b.next_delay() for _ in range(5)]
    [1.0, 2.0, 4.0, 8.0, 8.0]
    """

    def __init__(self, config: BackoffConfig, rng: random.Random | None = None) -> None:
        self.config = config
        self.rng = rng or random.Random()
        self.attempt = 0

    def next_delay(self) -> float:
        """The next reconnect delay in seconds: ``min(max_s, initial_s * factor**attempt)`` with +/- ``jitter``."""
        c = self.config
        base = min(c.max_s, c.initial_s * c.factor**self.attempt)
        self.attempt += 1
        return max(0.0, base * (1.0 + c.jitter * (2.0 * self.rng.random() - 1.0)))

    def reset(self) -> None:
        """Start over from ``initial_s`` (after a connection that worked)."""
        self.attempt = 0

    def connected_for(self, seconds: float) -> None:
        """A connection stayed up ``seconds``: start again from ``initial_s`` if that is stable."""
        if seconds >= self.config.reset_after_s:
            self.reset()


class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` saved; :meth:`acquire` waits for one."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = max(rate, 1e-9)
        self.burst = max(1, burst)
        self.tokens = float(self.burst)
        self.clock = clock
        self.stamp = clock()

    async def acquire(self, sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep) -> None:
        """Wait (with ``sleep``) until a token is available, then take it."""
        while True:
            now = self.clock()
            self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now
            if self.tokens >= 1.0:
                self.tokens -= 1.0
                return
            await sleep((1.0 - self.tokens) / self.rate)


@dataclass(frozen=True)
class SessionSettings:
    """What a session needs besides its spec (see ``LiveSettings`` for the meanings)."""

    staleness_s: float
    max_lifetime_s: float
    heartbeat_s: float
    rollover_overlap_s: float
    max_topics_per_message: int
    subscribe_per_s: float
    subscribe_burst: int
    backoff: BackoffConfig
    open_timeout_s: float = 10.0
    close_timeout_s: float = 2.0
    max_frame_bytes: int = 1 << 24
    """Larger frames are not handed over: an ``oversize`` connection event (a dead letter) instead."""

    @property
    def hard_frame_bytes(self) -> int:
        """The websocket library's limit: a frame past it closes the connection (code 1009).

        Between ``max_frame_bytes`` and this, a frame is read whole, so its size and head can
        be reported, and the connection stays up: ``max(4 * max_frame_bytes, 64 MiB)``.
        """
        return max(4 * self.max_frame_bytes, 1 << 26)


HEAD_BYTES = 256
"""Bytes of an oversize frame kept in its dead letter."""


class SessionHandler(Protocol):
    """Receives a session's frames and connection events (the venue runner)."""

    def frame(self, session: Session, recv: int, payload: bytes) -> None:
        """A frame to hand to the dataflow (after rollover de-duplication)."""

    def conn(self, session: Session, recv: int, event: dict[str, Any], rollover: bool) -> None:
        """A connection event: the payload of a ``<venue>!conn`` frame."""


class _Conn:
    __slots__ = ("ws", "opened", "subscribed_at", "last_data", "reader", "next_heartbeat")

    def __init__(self, ws: Any, opened: float) -> None:
        self.ws = ws
        self.opened = opened
        self.subscribed_at: float | None = None
        self.last_data = opened
        self.reader: asyncio.Task[None] | None = None
        self.next_heartbeat = float("inf")


class Session:
    """Keep one websocket connection subscribed and alive (see the module docstring).

    :param venue: the venue module (its live section: :class:`VenueLive`).
    :param source: the venue's source token (``binance-usdm``), for metrics and logs.
    :param spec: URL, name and topics of this connection.
    :param handler: receives frames and connection events, synchronously, on the loop thread.
    """

    def __init__(  # noqa: PLR0913 - five parameters plus keyword-only test seams (rng, clocks, sleep, connect)
        self,
        venue: VenueLive,
        source: str,
        spec: ConnectionSpec,
        settings: SessionSettings,
        handler: SessionHandler,
        *,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_ns: Callable[[], int] = time.time_ns,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        connect: Callable[..., Any] = ws_connect,
    ) -> None:
        self.venue = venue
        self.source = source
        self.spec = spec
        self.name = spec.name
        self.settings = settings
        self.handler = handler
        self.backoff = Backoff(settings.backoff, rng)
        self.bucket = TokenBucket(settings.subscribe_per_s, settings.subscribe_burst, clock)
        self.clock = clock
        self.wall_ns = wall_ns
        self.sleep = sleep
        self._connect = connect
        self._topics = frozenset(spec.topics)
        self._heartbeat = venue.heartbeat_message() if settings.heartbeat_s > 0 else None
        self._reply: Callable[[bytes], str | None] | None = getattr(venue, "reply_to", None)
        """Optional in a venue's live section: the request a frame asks for at once (Deribit's
        ``test_request`` -> ``public/test``)."""
        self._tick = max(0.005, min(0.25, settings.staleness_s / 5.0))
        self._next_id = 1
        self._current: _Conn | None = None
        self._rolling: _Conn | None = None
        self._overlap: Overlap | None = None
        self._tail: Overlap | None = None
        self._tail_until = 0.0
        self._rollover_requested = False
        self._retry_after: float | None = None
        self.opens = 0
        labels = (source, spec.name)
        self._m_messages = metrics.MESSAGES.labels(*labels)
        self._m_bytes = metrics.BYTES.labels(*labels)
        self._m_connected = metrics.CONNECTED.labels(*labels)
        self._m_reconnects = metrics.RECONNECTS.labels(*labels)
        self._m_stale = metrics.STALE.labels(*labels)
        self._m_rollovers = metrics.ROLLOVERS.labels(*labels)
        self._m_duplicates = metrics.DUPLICATES.labels(*labels)

    # ------------------------------------------------------------------------------ public

    @property
    def alive(self) -> bool:
        """Whether a connection is open and its reader is running."""
        conn = self._current
        return conn is not None and conn.reader is not None and not conn.reader.done()

    def carries(self, topic: str) -> bool:
        """Whether this session's connection subscribes ``topic``."""
        return topic in self._topics

    def request_rollover(self) -> None:
        """Move to a fresh connection at the next tick (as before the lifetime limit)."""
        self._rollover_requested = True

    async def run(self, stop: asyncio.Event) -> None:
        """Connect, serve, reconnect until ``stop`` is set."""
        while not stop.is_set():
            conn = await self._open("reconnect" if self.opens else "connect")
            if conn is None:
                delay = self.backoff.next_delay()
                if self._retry_after is not None:
                    delay, self._retry_after = max(delay, self._retry_after), None
                await self._pause(delay, stop)
                continue
            stable_since = conn.opened
            await self._serve(conn, stop)
            self.backoff.connected_for(self.clock() - stable_since)
            if not stop.is_set():
                await self._pause(self.backoff.next_delay(), stop)

    async def resubscribe(self, topics: Sequence[str]) -> bool:
        """Unsubscribe and subscribe ``topics`` again on the open connection (book resync)."""
        conn = self._current
        mine = [topic for topic in topics if topic in self._topics]
        if not mine or conn is None or not self.alive:
            return False
        try:
            await self._send_requests(conn, self.venue.unsubscribe_messages, mine)
            await self._send_requests(conn, self.venue.subscribe_messages, mine)
        except ConnectionClosed:
            return False
        log.info("%s/%s: resubscribed %s", self.source, self.name, ", ".join(mine[:5]))
        return True

    # ------------------------------------------------------------------------------ internals

    async def _pause(self, seconds: float, stop: asyncio.Event) -> None:
        if seconds <= 0:
            return
        try:
            await asyncio.wait_for(stop.wait(), timeout=seconds)
        except TimeoutError:
            pass

    def _event(self, event: str, rollover: bool = False, **fields: Any) -> None:
        payload: dict[str, Any] = {"event": event, "url": self.spec.url, "conn": self.name}
        payload.update({key: value for key, value in fields.items() if value is not None and value != ""})
        self.handler.conn(self, self.wall_ns(), payload, rollover)

    async def _open(self, reason: str) -> _Conn | None:
        url = self.spec.url
        try:
            ws = await self._connect(
                url,
                open_timeout=self.settings.open_timeout_s,
                close_timeout=self.settings.close_timeout_s,
                ping_interval=None,  # heartbeats are the venue's own; the server's pings get pongs
                max_size=self.settings.hard_frame_bytes,
                max_queue=1024,
            )
        except Exception as exc:
            if isinstance(exc, InvalidStatus):
                retry = exc.response.headers.get("Retry-After")
                try:
                    self._retry_after = float(retry) if retry else None
                except ValueError:
                    self._retry_after = None
            detail = f"connect failed: {type(exc).__name__}: {exc}"[:300]
            log.warning("%s/%s: %s", self.source, self.name, detail)
            self._event("error", reason=detail)
            return None
        conn = _Conn(ws, self.clock())
        if self.opens and reason != "rollover":
            self._m_reconnects.inc()
        self.opens += 1
        self._m_connected.set(1)
        log.info("%s/%s: open %s (%s)", self.source, self.name, url, reason)
        self._event("open", rollover=reason == "rollover", reason=reason)
        return conn

    async def _send_requests(self, conn: _Conn, build: Callable[..., list[str]], topics: Sequence[str]) -> None:
        messages = build(topics, self.settings.max_topics_per_message, self._next_id)
        self._next_id += len(messages)
        for message in messages:
            await self.bucket.acquire(self.sleep)
            await conn.ws.send(message)

    async def _subscribe(self, conn: _Conn) -> None:
        try:
            await self._send_requests(conn, self.venue.subscribe_messages, self.spec.topics)
        except ConnectionClosed:
            pass  # the reader sees the close
        conn.subscribed_at = conn.last_data = self.clock()
        if self._heartbeat is not None:
            conn.next_heartbeat = conn.subscribed_at + self.settings.heartbeat_s

    async def _heartbeats(self, now: float, *conns: _Conn) -> None:
        if self._heartbeat is None:
            return
        for conn in conns:
            if now >= conn.next_heartbeat:
                conn.next_heartbeat = now + self.settings.heartbeat_s
                try:
                    await conn.ws.send(self._heartbeat)
                except ConnectionClosed:
                    pass

    def _start_reader(self, conn: _Conn) -> None:
        conn.reader = asyncio.get_running_loop().create_task(self._read(conn), name=f"{self.source}/{self.name} reader")

    async def _read(self, conn: _Conn) -> None:
        ws = conn.ws
        venue = self.venue
        clock, wall_ns = self.clock, self.wall_ns
        messages, volume = self._m_messages, self._m_bytes
        limit = self.settings.max_frame_bytes
        try:
            while True:
                payload = await ws.recv(decode=False)
                recv = wall_ns()
                messages.inc()
                volume.inc(len(payload))
                if len(payload) > limit:
                    self._oversize(len(payload), payload[:HEAD_BYTES])
                    continue
                if venue.is_data(payload):
                    conn.last_data = clock()
                elif venue.rollover_hint(payload):
                    log.info("%s/%s: venue announced a close: rolling over", self.source, self.name)
                    self._rollover_requested = True
                elif self._reply is not None and (answer := self._reply(payload)) is not None:
                    await ws.send(answer)
                self._route(conn, recv, payload)
        except ConnectionClosed as exc:
            if exc.sent is not None and exc.sent.code == 1009:  # past the hard limit: we closed
                self._oversize(None, b"", f"{exc.sent.reason}; connection closed with code 1009")
            return
        except Exception:
            log.exception("%s/%s: reader stopped", self.source, self.name)
            await ws.close()

    def _oversize(self, size: int | None, head: bytes, detail: str = "") -> None:
        """A frame over ``max_frame_bytes``: an ``oversize`` event with its size and head."""
        limit = self.settings.max_frame_bytes
        log.warning(
            "%s/%s: frame of %s bytes over max_frame_bytes %d: not handed over%s",
            self.source,
            self.name,
            "?" if size is None else size,
            limit,
            f" ({detail})" if detail else "",
        )
        self._event("oversize", size=size, limit=limit, head=head.decode("utf-8", "replace"), reason=detail or None)

    def _route(self, conn: _Conn, recv: int, payload: bytes) -> None:
        overlap = self._overlap
        if overlap is not None:
            if conn is self._rolling:
                if not overlap.hold_new(recv, payload):
                    self._rollover_requested = True  # buffer full: switch at once
                return
            if conn is self._current:
                overlap.note_old(payload)
                self.handler.frame(self, recv, payload)
            return
        if conn is not self._current:
            return  # the old connection after a switch: the new one has these frames
        tail = self._tail
        if tail is not None:
            if self.clock() < self._tail_until:
                if not tail.admit(payload):
                    self._m_duplicates.inc()
                    return
            else:
                self._tail = None
        self.handler.frame(self, recv, payload)

    async def _close(self, conn: _Conn) -> None:
        try:
            await conn.ws.close()
        except Exception:
            pass
        if conn.reader is not None:
            try:
                await asyncio.wait_for(conn.reader, timeout=self.settings.close_timeout_s + 1.0)
            except (TimeoutError, asyncio.CancelledError):
                conn.reader.cancel()

    def _close_event(self, conn: _Conn, reason: str) -> None:
        self._m_connected.set(0)
        ws = conn.ws
        code = getattr(ws, "close_code", None)
        why = getattr(ws, "close_reason", None) or reason
        log.warning("%s/%s: closed (%s, code %s)", self.source, self.name, why, code)
        self._event("close", reason=why, code=code)

    async def _serve(self, conn: _Conn, stop: asyncio.Event) -> None:
        """Serve until the connection is lost, stale, or ``stop``; rolls over on the way."""
        self._current = conn
        self._start_reader(conn)
        await self._subscribe(conn)
        settings = self.settings
        lifetime = settings.max_lifetime_s
        roll_at = conn.opened + lifetime if lifetime > 0 else float("inf")
        while True:
            assert conn.reader is not None
            await asyncio.wait({conn.reader}, timeout=self._tick)
            if stop.is_set():
                await self._close(conn)
                self._close_event(conn, "shutdown")
                return
            if conn.reader.done():
                self._close_event(conn, "connection lost")
                return
            now = self.clock()
            await self._heartbeats(now, conn)
            if conn.subscribed_at is not None and now - conn.last_data > settings.staleness_s:
                self._m_stale.inc()
                detail = f"no data for {now - conn.last_data:.1f} s while subscribed"
                log.warning("%s/%s: stale: %s", self.source, self.name, detail)
                self._event("stale", reason=detail)
                await self._close(conn)
                self._close_event(conn, "stale")
                return
            if self._rollover_requested or now >= roll_at:
                self._rollover_requested = False
                new = await self._rollover(conn, stop)
                if new is not None:
                    conn = new
                    roll_at = conn.opened + lifetime if lifetime > 0 else float("inf")
                else:  # try again later, well before the venue's own limit
                    roll_at = now + max(1.0, min(60.0, lifetime / 20.0 if lifetime > 0 else 60.0))

    async def _rollover(self, old: _Conn, stop: asyncio.Event) -> _Conn | None:
        """Open and subscribe a new connection, overlap, switch; ``None`` if that failed."""
        new = await self._open("rollover")
        if new is None:
            return None
        self._tail = None
        overlap = Overlap(self.venue.frame_key)
        self._overlap, self._rolling = overlap, new
        self._start_reader(new)
        await self._subscribe(new)
        assert old.reader is not None and new.reader is not None
        deadline = self.clock() + self.settings.rollover_overlap_s
        while not (stop.is_set() or old.reader.done() or new.reader.done() or self._rollover_requested):
            remaining = deadline - self.clock()
            if remaining <= 0:
                break
            await asyncio.wait({old.reader, new.reader}, timeout=min(self._tick, remaining))
            await self._heartbeats(self.clock(), old, new)
        self._rollover_requested = False
        if new.reader.done() or stop.is_set():  # keep the old connection (or stop)
            self._overlap = self._rolling = None
            await self._close(new)
            if not stop.is_set():
                log.warning("%s/%s: rollover connection failed; keeping the old one", self.source, self.name)
                self._event("error", reason="rollover connection failed")
            return None
        # Switch, without an await in between: the readers run only at awaits.
        self._current, self._rolling, self._overlap = new, None, None
        for recv, payload in overlap.release():
            self.handler.frame(self, recv, payload)
        self._tail, self._tail_until = overlap, self.clock() + self.settings.rollover_overlap_s
        duplicates = overlap.duplicates
        self._m_duplicates.inc(duplicates)
        await self._close(old)
        self._m_connected.set(1)
        self._m_rollovers.inc()
        log.info(
            "%s/%s: rolled over to a new connection (%d repeated frames dropped so far)",
            self.source,
            self.name,
            duplicates,
        )
        return new
