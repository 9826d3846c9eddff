"""What the live sections of the venue modules share.

Each venue module (``binance.py``, ``bybit.py``, ``okx.py``) ends with a *live* section,
separate from its parser, with the same names in all three:

- ``LIVE``: :class:`LiveDefaults`, the venue's endpoints and limits (every field can be
  overridden in the ``[live.<venue>]`` config table);
- ``native_symbol(asset, quote)``: ``BTC`` -> the venue's perpetual symbol;
- ``instruments_paths(symbols)`` / ``listed_symbols(path, body)``: the REST calls that
  bootstrap instrument metadata, and the perpetuals a reply lists (symbol discovery);
- ``poll_paths(symbols)``: REST paths polled periodically (Binance open interest), else ``[]``;
- ``connections(symbols, settings)``: which topics go on which websocket connection;
- ``subscribe_messages`` / ``unsubscribe_messages``: the request frames, chunked;
- ``heartbeat_message()``: the application ping to send every ``heartbeat_s``, or ``None``;
- ``is_data(payload)``: a market-data frame (not an ack or a pong), for the stale watchdog;
- ``rollover_hint(payload)``: the venue announced it will close the connection soon;
- ``frame_key(payload)``: ``(stream, order)`` for rollover de-duplication, or ``None``;
- optional, ``reply_to(payload)``: the request a frame asks for at once (Deribit answers
  ``test_request`` with ``public/test``), or ``None``;
- ``LiveBooks``: the order-book bootstrap / resync state machine (a :class:`BookSync`).

A :class:`BookSync` is pure: it sees every websocket frame that will be handed to the
dataflow (and every REST body it asked for) and answers with :data:`Action` lists: emit
this frame now (:data:`THIS`), emit another frame (:class:`Emit`), fetch a REST path
(:class:`Fetch`), resubscribe topics (:class:`Resubscribe`). The I/O is done by
``connectors/live.py``; a BookSync never blocks and never touches the network. It also says
which books a connection carries (``book_symbols``: a ``close`` restarts only those), which
books are invalid and since when (``invalid``: they page after ``[live] book_alert_s``), and
what a frame dropped by the hand-over queue means for its books (``on_dropped``).

Its sequence checks are the *same* :class:`~cascadewatch.connectors.venues.base.SequenceRule` objects the
dataflow's books use, so the live side and the dataflow agree on what a gap is.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import msgspec

from cascadewatch.connectors.venues.base import SequenceRule, Verdict


@dataclass(frozen=True)
class LiveDefaults:
    """A venue's connection defaults; all overridable per venue in the config.

    - ``ws_url``: websocket endpoint for market data (trades, liquidations, mark price...);
    - ``ws_book_url``: websocket endpoint for order-book streams (Binance ``/public``;
      the same as ``ws_url`` elsewhere);
    - ``rest_url``: REST base URL (instrument metadata, book snapshots, polls);
    - ``max_lifetime_s``: roll the connection over (new one first) after this long; 0: never;
    - ``heartbeat_s``: send :func:`heartbeat_message` this often; 0: the server pings;
    - ``max_topics_per_connection`` / ``max_topics_per_message``: subscription size limits;
    - ``subscribe_per_s`` / ``subscribe_burst``: token bucket for frames we send;
    - ``poll_s``: period of the REST polls (``poll_paths``); 0: off;
    - ``book_depth``: levels asked of REST book snapshots;
    - ``rest_weight_per_min``: REST request weight we may spend in any minute (the venue's
      per-IP limit, or less to leave room for other clients on the IP);
    - ``rest_weight_header``: the answer header reporting the weight used in the current
      minute (Binance ``X-MBX-USED-WEIGHT-1m``), ``""`` if the venue sends none.
    """

    ws_url: str
    ws_book_url: str
    rest_url: str
    max_lifetime_s: float
    heartbeat_s: float
    max_topics_per_connection: int
    max_topics_per_message: int
    subscribe_per_s: float
    subscribe_burst: int
    poll_s: float = 0.0
    book_depth: int = 1000
    rest_weight_per_min: int = 600
    rest_weight_header: str = ""


@dataclass(frozen=True)
class LiveSettings(LiveDefaults):
    """Resolved settings of one venue: :class:`LiveDefaults` overlaid by the config, plus the
    session timings that are not venue facts."""

    staleness_s: float = 30.0
    rollover_overlap_s: float = 5.0
    resync_timeout_s: float = 10.0


class VenueLive(Protocol):
    """The live-section functions of a venue module that a websocket session uses."""

    def subscribe_messages(self, topics: Sequence[str], per_message: int, first_id: int = 1) -> list[str]:
        """Subscribe request frames of at most ``per_message`` topics each."""
        ...

    def unsubscribe_messages(self, topics: Sequence[str], per_message: int, first_id: int = 1) -> list[str]:
        """Unsubscribe request frames of at most ``per_message`` topics each."""
        ...

    def heartbeat_message(self) -> str | None:
        """The application ping to send every ``heartbeat_s``, or ``None``."""
        ...

    def is_data(self, payload: bytes) -> bool:
        """A market-data frame (not an ack or a pong), for the stale watchdog."""
        ...

    def rollover_hint(self, payload: bytes) -> bool:
        """The venue announced that it will close the connection soon."""
        ...

    def frame_key(self, payload: bytes) -> tuple[str, int] | None:
        """``(stream, order)`` for rollover de-duplication, or ``None``."""
        ...


@dataclass(frozen=True)
class ConnectionSpec:
    """One websocket connection of a venue: a name (``market``, ``public``...), URL, topics."""

    name: str
    url: str
    topics: tuple[str, ...]


def chunk(items: Sequence[Any], size: int) -> list[list[Any]]:
    """``items`` in consecutive lists of at most ``size`` (``size >= 1``)."""
    size = max(1, int(size))
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


def plan_connections(name: str, url: str, topics: Sequence[str], max_per_connection: int) -> list[ConnectionSpec]:
    """Split ``topics`` over as many connections as the per-connection limit needs."""
    groups = chunk(topics, max_per_connection)
    if len(groups) == 1:
        return [ConnectionSpec(name, url, tuple(groups[0]))]
    return [ConnectionSpec(f"{name}-{i + 1}", url, tuple(group)) for i, group in enumerate(groups)]


# ----------------------------------------------------------------------------- book-sync actions


THIS = "this"
"""Action: hand the frame being processed to the dataflow now (at this point of the list)."""


@dataclass(frozen=True, slots=True)
class Emit:
    """Action: hand a frame to the dataflow; ``rest`` frames get the ``<venue>!rest`` source."""

    recv: int
    payload: bytes
    rest: bool = False


@dataclass(frozen=True, slots=True)
class Fetch:
    """Action: GET this REST path (relative to ``rest_url``) and give the body to ``on_rest``.

    ``weight``: what the request costs in the venue's REST budget; ``since``: clock seconds
    since when the book waiting for it has been invalid (the longest-invalid book goes first);
    ``retry``: the previous answer could not be used (a stale snapshot): back off before asking.
    """

    path: str
    weight: int = 1
    since: float = 0.0
    retry: bool = False


@dataclass(frozen=True, slots=True)
class Resubscribe:
    """Action: unsubscribe and subscribe these topics again (the venue resends a snapshot)."""

    topics: tuple[str, ...]


Action = str | Emit | Fetch | Resubscribe
PASS: tuple[Action, ...] = (THIS,)
"""The common answer: nothing to do but hand the frame over."""


def rest_frame(path: str, body: bytes) -> bytes:
    """The ``<venue>!rest`` payload: ``{"path": ..., "body": <the JSON body as received>}``.

    A body spread over several lines (pretty-printed JSON) is joined: JSON cannot hold a raw
    newline inside a string, so replacing line breaks by spaces keeps its meaning.
    """
    if b"\n" in body or b"\r" in body:
        body = body.replace(b"\r", b" ").replace(b"\n", b" ")
    return b'{"path":%s,"body":%s}' % (msgspec.json.encode(path), body.strip() or b"null")


class SeqMark:
    """The sequence fields a :class:`SequenceRule` reads (``seq``, ``prev_seq``, ``first_seq``)."""

    __slots__ = ("seq", "prev_seq", "first_seq")

    def __init__(self, seq: int, prev_seq: int | None = None, first_seq: int | None = None) -> None:
        self.seq = seq
        self.prev_seq = prev_seq
        self.first_seq = first_seq


class BookSync:
    """Interface of a venue's ``LiveBooks``; the default passes every frame through."""

    def __init__(self) -> None:
        self.gaps = 0
        self.resyncs = 0

    def on_open(self, topics: Iterable[str]) -> list[Action]:
        """A (re)connection carrying ``topics`` was opened and will subscribe them."""
        return []

    def on_close(self, topics: Iterable[str]) -> list[Action]:
        """A connection carrying ``topics`` closed: the dataflow drops the books it carried."""
        return []

    def book_symbols(self, topics: Iterable[str]) -> list[str]:
        """The symbols whose book topic is among ``topics`` (named in the ``close`` event)."""
        return []

    def on_frame(self, recv: int, payload: bytes) -> Sequence[Action]:
        """Hand every frame over (a venue with no book logic)."""
        return PASS

    def on_rest(self, path: str, recv: int, body: bytes) -> list[Action] | None:
        """A REST body this BookSync asked for; ``None``: not a book path, emit it as is."""
        return None

    def resync_all(self) -> list[Action]:
        """Bring every book back from a fresh snapshot (used when a recording file rotates)."""
        return []

    def invalid(self) -> dict[str, float]:
        """Symbol -> clock seconds since when its book has been invalid; ``{}`` if all are valid."""
        return {}

    def snapshot_path(self, symbol: str) -> str | None:
        """The REST path of ``symbol``'s snapshot (its failures are the cause of an invalid
        book), ``None`` when snapshots come on the websocket."""
        return None

    def on_dropped(self, payload: bytes) -> tuple[list[str], list[Action]]:
        """A frame of ours the hand-over queue dropped: the books it hit (they restart) and
        the actions that bring them back (a snapshot request, a resubscription)."""
        return [], []

    def tick(self, now: float) -> list[Action]:
        """Called about once a second (monotonic seconds): retry resyncs that took too long."""
        return []


BookRow = tuple[str, bool, int, "int | None"]
"""``(symbol, is_snapshot, seq, prev_seq)`` of one book message, as a venue probe reads it."""


class _ResubscribeBook:
    __slots__ = ("rule", "resyncing_since", "invalid_since")

    def __init__(self, rule: SequenceRule, since: float) -> None:
        self.rule = rule
        self.resyncing_since: float | None = None  # a resubscription asked at (clock seconds)
        self.invalid_since: float | None = since  # no snapshot since then (clock seconds)


class ResubscribeBooks(BookSync):
    """Books whose venue resends a snapshot on subscribe (Bybit, OKX).

    Every frame is handed over unchanged. A delta that the venue's sequence rule calls a gap
    asks for a resubscription of that book's topic (once; again after ``resync_timeout_s``
    without a snapshot); the dataflow's book, which applies the same rule, stays invalid until
    the snapshot that the resubscription brings.

    :param symbols: venue-native symbols whose books are followed.
    :param probe: payload -> the :data:`BookRow` of each book message in it, or ``None`` when
        the frame is not a book frame (must be cheap: it sees every frame).
    :param book_topic: symbol -> its book topic.
    :param rule_factory: a fresh sequence rule (the parser's ``sequence_rule``).
    """

    def __init__(
        self,
        symbols: Iterable[str],
        probe: Callable[[bytes], list[BookRow] | None],
        book_topic: Callable[[str], str],
        rule_factory: Callable[[], SequenceRule],
        resync_timeout_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        now = clock()
        self._books = {symbol: _ResubscribeBook(rule_factory(), now) for symbol in symbols}
        self._probe = probe
        self._topic = book_topic
        self._timeout = resync_timeout_s
        self._clock = clock

    def on_open(self, topics: Iterable[str]) -> list[Action]:
        """The subscription of these books (re)opened: each starts again with the snapshot it sends."""
        opened = set(topics)
        for symbol, book in self._books.items():
            if self._topic(symbol) in opened:
                book.rule.reset()  # the subscription starts with a snapshot
                book.resyncing_since = None
        return []

    def invalid(self) -> dict[str, float]:
        """Symbol -> clock seconds since when its book has been invalid (no snapshot since)."""
        return {s: b.invalid_since for s, b in self._books.items() if b.invalid_since is not None}

    def book_symbols(self, topics: Iterable[str]) -> list[str]:
        """The symbols whose book topic is among ``topics``."""
        carried = set(topics)
        return [symbol for symbol in self._books if self._topic(symbol) in carried]

    def on_close(self, topics: Iterable[str]) -> list[Action]:
        """The closed connection's books wait for the snapshot its reconnection subscribes."""
        now = self._clock()
        for symbol in self.book_symbols(topics):
            book = self._books[symbol]
            book.rule.reset()
            book.resyncing_since = now
            if book.invalid_since is None:
                book.invalid_since = now
            self.resyncs += 1
        return []

    def resync_all(self) -> list[Action]:
        """Mark every book resyncing and resubscribe them all."""
        now = self._clock()
        for book in self._books.values():
            book.resyncing_since = now
            if book.invalid_since is None:
                book.invalid_since = now
        self.resyncs += len(self._books)
        return [Resubscribe(tuple(self._topic(symbol) for symbol in self._books))] if self._books else []

    def on_dropped(self, payload: bytes) -> tuple[list[str], list[Action]]:
        """A book frame of ours dropped by the hand-over queue: resubscribe its book (once)."""
        now = self._clock()
        symbols: list[str] = []
        topics: list[str] = []
        for symbol, *_ in self._probe(payload) or []:
            book = self._books.get(symbol)
            if book is None or symbol in symbols:
                continue
            symbols.append(symbol)
            book.rule.reset()  # deltas wait for the resubscription's snapshot
            if book.resyncing_since is None:
                self.gaps += 1
                self.resyncs += 1
                book.resyncing_since = book.invalid_since = now
                topics.append(self._topic(symbol))
        return symbols, [Resubscribe(tuple(topics))] if topics else []

    def on_frame(self, recv: int, payload: bytes) -> Sequence[Action]:
        """Check the book frame's sequence; on a gap, resubscribe the book (the frame is still handed over)."""
        rows = self._probe(payload)
        if not rows:
            return PASS
        actions: list[Action] | None = None
        for symbol, snapshot, seq, prev in rows:
            book = self._books.get(symbol)
            if book is None:
                continue
            if snapshot:
                book.rule.on_snapshot(SeqMark(seq))
                book.resyncing_since = book.invalid_since = None
                continue
            if book.rule.check(SeqMark(seq, prev)) is Verdict.GAP and book.resyncing_since is None:
                self.gaps += 1
                self.resyncs += 1
                book.resyncing_since = book.invalid_since = self._clock()
                if actions is None:
                    actions = [THIS]
                actions.append(Resubscribe((self._topic(symbol),)))
        return actions or PASS

    def tick(self, now: float) -> list[Action]:
        """Resubscribe the books whose resync took longer than the timeout (``now`` in seconds)."""
        late: list[str] = []
        for symbol, book in self._books.items():
            if book.resyncing_since is not None and now - book.resyncing_since >= self._timeout:
                book.resyncing_since = now
                late.append(self._topic(symbol))
        return [Resubscribe(tuple(late))] if late else []


# ----------------------------------------------------------------------------- rollover


@dataclass
class Overlap:
    """De-duplication across a rollover (old and new connection both subscribed).

    The old connection stays the source of truth while both are open; the new one's frames
    are held in :attr:`pending`. At the switch, a held frame is handed over only if the old
    connection did not already deliver it:

    - a frame with a ``frame_key`` ``(stream, order)`` (an id that grows with every message of
      the stream: Binance ``a``/``u``/``E``, Bybit book ``u``, OKX ``seqId``/``tradeId``) goes
      through iff ``order`` is above the highest the old connection delivered on that stream;
    - any other frame goes through iff the old connection did not deliver the same bytes.

    So nothing is lost (the new connection was subscribed before the old one closed) and
    exact repeats are dropped. Known limit: a keyless stream whose venue batches messages
    differently per connection (e.g. Bybit ``publicTrade``) can repeat a trade at the switch.
    """

    key: Callable[[bytes], tuple[str, int] | None]
    max_pending: int = 200_000
    last: dict[str, int] = field(default_factory=dict)
    seen: dict[int, int] = field(default_factory=dict)
    pending: list[tuple[int, bytes]] = field(default_factory=list)
    duplicates: int = 0

    def note_old(self, payload: bytes) -> None:
        """Remember a frame the old connection delivered."""
        key = self.key(payload)
        if key is None:
            digest = hash(payload)
            self.seen[digest] = self.seen.get(digest, 0) + 1
        else:
            stream, order = key
            if order > self.last.get(stream, -(2**63)):
                self.last[stream] = order

    def hold_new(self, recv: int, payload: bytes) -> bool:
        """Hold a frame of the new connection; ``False`` when the buffer is full (switch now)."""
        self.pending.append((recv, payload))
        return len(self.pending) < self.max_pending

    def admit(self, payload: bytes) -> bool:
        """Whether a frame of the new connection is news (not delivered by the old one)."""
        key = self.key(payload)
        if key is None:
            digest = hash(payload)
            count = self.seen.get(digest, 0)
            if count:
                self.seen[digest] = count - 1
                self.duplicates += 1
                return False
            return True
        stream, order = key
        if order <= self.last.get(stream, -(2**63)):
            self.duplicates += 1
            return False
        self.last[stream] = order
        return True

    def release(self) -> list[tuple[int, bytes]]:
        """The held frames the old connection did not deliver, in arrival order.

        After the switch, :meth:`admit` keeps filtering the new connection's frames for a
        while: it may still be behind the old one on some stream.
        """
        out = [(recv, payload) for recv, payload in self.pending if self.admit(payload)]
        self.pending = []
        return out
