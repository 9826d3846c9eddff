"""Bybit v5 public *linear* stream (USDT and USDC perpetuals): raw schemas and parser.

Source token: ``bybit-linear``. Frames are the v5 public envelope
``{"topic": ..., "type": "snapshot"|"delta", "ts": <ms>, "data": ...}``; control frames
carry ``op``/``success``/``ret_msg`` and no ``topic``.

Channels handled by :meth:`Parser.parse_ws` (``kind`` label -> events)
-----------------------------------------------------------------------
- ``publicTrade.{symbol}`` -> ``"trade"``: one :class:`Trade` per entry of ``data``
  (``T`` ms, ``S`` ``Buy``/``Sell`` = taker side -> ``buy``/``sell``, ``v`` size, ``p`` price).
  Block trades (``BT: true``) are kept; ``L`` and ``i`` are ignored.
- ``orderbook.{depth}.{symbol}`` (depth 1/50/200/1000...) -> ``"book"``:
  ``type: snapshot`` -> :class:`BookSnapshot` ``(seq=u)``; ``type: delta`` -> :class:`BookDelta`
  ``(seq=u, prev_seq=None, first_seq=None)``, except a delta with ``u == 1``, which Bybit sends
  after a service restart and which *is* a full book: it becomes a :class:`BookSnapshot`
  ``(seq=1)``. Event time is the envelope ``ts`` (when the system generated the data; the
  matching-engine ``cts`` is ignored).
- ``allLiquidation.{symbol}`` -> ``"liquidation"``: one :class:`Liquidation` per entry
  (the venue batches them every 500 ms). Bybit v5 docs, "All Liquidation"
  (https://bybit-exchange.github.io/docs/v5/websocket/public/all-liquidation):
  ``S`` is the "Position side. ``Buy``, ``Sell``. When you receive a ``Buy`` update, this means
  that a long position has been liquidated" -> ``Buy`` = ``long``, ``Sell`` = ``short``.
  ``p`` is the *bankruptcy* price (not a fill price), ``v`` the executed size (base units),
  ``T`` the event time; ``notional = p * v``.
- ``liquidation.{symbol}`` (the older v5 stream, at most one liquidation per second per
  symbol, removed from the docs in Nov 2025) -> ``"liquidation"``: ``data`` is one object
  ``{price, side, size, symbol, updatedTime}``; same side meaning (the docs since Aug 2023:
  "Position side ... When you receive a ``Buy`` update, this means that a long position has
  been liquidated"). The table called the time field ``updateTime`` while every example and
  capture says ``updatedTime``: both are accepted, else the envelope ``ts``. Versions of the
  page from Jan to Aug 2023 called ``side`` an "Order side" without saying which; the explicit
  later definition is applied to all recordings.
  The pre-v5 (v2, 2021) liquidation shapes (``qty``/``time`` fields, or a list) are rejected
  with ``ParseError("schema")``.
- ``tickers.{symbol}`` -> ``"ticker"``: a ``snapshot`` then ``delta`` frames that carry only
  the changed fields. A frame with ``markPrice`` gives a :class:`MarkPrice`; a frame with
  ``openInterest`` gives an :class:`OpenInterest` (``qty = openInterest`` in base units,
  ``notional = openInterestValue`` of the *same* frame, else ``None``). Because deltas omit
  unchanged fields, the parser keeps, per symbol, the last known ``indexPrice`` and
  ``fundingRate`` (reset by each ``snapshot``) and fills ``MarkPrice.index``/``funding`` from
  them; this is the only state the parser keeps besides instrument metadata. Empty strings
  (e.g. ``fundingRate: ""``) count as absent. Event time is the envelope ``ts``.
- Control frames -> ``"control"`` (no events): subscribe/unsubscribe acks
  (``{"success": true, "ret_msg": "", "op": "subscribe", ...}``), public pongs
  (``{"success": true, "ret_msg": "pong", "op": "ping", ...}``), ``{"op": "pong", ...}``.
  An ack with ``success: false`` (e.g. a bad topic) raises ``ParseError("control_error")``
  so that a failed subscription is counted and logged, not silently ignored.
- Known v5 topics we do not use -> ``"skipped:<topic>"``: ``kline``, ``insurance``,
  ``priceLimit``, ``adlAlert``, ``system``, ``orderbook.rpi`` (the RPI book has 3-field levels)
  and ``orderbook.full`` (delta-only full book seeded from REST, not live for linear yet;
  its ``u == 1`` is a re-sync *signal*, not a snapshot, so it must not be parsed like
  ``orderbook.{depth}``).
- Anything else, including the legacy v2 topics in recordings (``trade.X``,
  ``orderBookL2_25.X``, ``instrument_info.100ms.X``) -> ``ParseError("unknown_channel")``.

REST bodies (:meth:`Parser.parse_rest`, ``retCode != 0`` -> ``ParseError("rest_error")``)
-------------------------------------------------------------------------------------------
- ``/v5/market/instruments-info`` -> ``"instruments"``: each ``LinearPerpetual`` entry is added
  to the catalog (``baseCoin``/``quoteCoin``, ``ct_val = 1``: linear sizes are in base units,
  ``tick = priceFilter.tickSize``); other contract types are remembered as skipped. Paginated
  replies (``nextPageCursor``) are simply several bodies. Entries without ``contractType``
  (a spot reply) are ignored.
- ``/v5/market/orderbook`` -> ``"book"``: :class:`BookSnapshot` ``(seq=u, ts=result.ts)``.
  Per the docs, REST ``u`` corresponds to ``u`` of the **1000-level** websocket book only;
  the ``u`` of ``orderbook.50``/``200`` is a different counter. Bybit's websocket book always
  starts with its own snapshot, so the REST snapshot is not needed to sync it.
- ``/v5/market/open-interest`` -> ``"open_interest"``: one :class:`OpenInterest` per entry
  of ``result.list`` (``openInterest``, ``timestamp`` ms), oldest first, ``notional=None``.

Symbols
-------
``instrument`` comes from the catalog when the symbol is there, else from the name:
``BTCUSDT`` -> ``BTC-USDT-PERP``; ``BTCPERP`` (USDC perpetual) -> ``BTC-USDC-PERP`` (and
``BTCUSDC``, should it appear, -> the same); inverse perpetuals (``BTCUSD``) and inverse
futures (``BTCUSDU23``) -> ``"skipped:not_linear"``; linear dated futures (``BTCUSDT-26DEC25``,
USDC ``BTC-26DEC25``) -> ``"skipped:not_perp"``; anything else ->
``ParseError("unknown_instrument")``. Skipped frames carry no events and are not decoded further.

Book sequence rule (for ``connectors/book.py``), ``orderbook.{depth}.{symbol}``, linear
---------------------------------------------------------------------------------------
What the v5 docs promise (https://bybit-exchange.github.io/docs/v5/websocket/public/orderbook):

1. After subscribing the first message is a ``snapshot``. Any later ``snapshot`` resets the
   book ("If you receive a new snapshot message, you will have to reset your local
   orderbook"; Bybit re-sends one when it has a problem on its side).
2. ``delta`` messages are applied in arrival order: size ``0`` deletes the level, an unknown
   price inserts it, a known price replaces its size.
3. ``u == 1`` means the service restarted and the message is a full book: the parser already
   emits it as a :class:`BookSnapshot` with ``seq == 1``, so rule 1 covers it. After any
   snapshot the "last applied u" is the snapshot's ``seq`` (after a restart ``u`` counts again
   from 1, i.e. it goes *down*).
4. Level 1 (``orderbook.1``) is snapshot-only, and when nothing changes for 3 s the same
   snapshot is pushed again **with the same u** as the previous message: a snapshot whose
   ``seq`` equals the current one is normal, not a duplicate error.
5. ``seq`` (cross sequence) orders data across depths: "for the smaller seq, then it means the
   data is generated earlier" - i.e. it is monotonic, not consecutive.

What the docs do **not** promise: that ``u`` of ``orderbook.{depth}`` grows by exactly one per
message. The page says only "Update ID" (2023 versions: "Is a sequence" / "is always in
sequence"). Bybit documents ``next u == previous u + 1`` only for two *other* streams (the
delta-only ``orderbook.full`` and the private SBE ``ob.50.sbe``); the captured fixtures do step
by one (``7003305 -> 7003306``, ``20683568 -> 20683569``). Hence: no documented gap check is
possible beyond the reset rules above. A book module may safely (a) drop or flag a delta whose
``u`` is not greater than the last applied ``u`` (out of order / duplicate), and (b) treat
``u != last_u + 1`` as a *suspected* gap (metric, log, optional resubscribe), not as a proven
one. The ``seq`` monotonicity cross-check cannot be done downstream today because
:class:`BookDelta` has no field for Bybit's ``seq``; the parser validates nothing across
frames (it keeps no book state). ``prev_seq`` and ``first_seq`` are always ``None``.

Units: linear sizes (trades, levels, liquidations, open interest) are in base units; prices in
quote; timestamps are ms in the frames and converted to ns.
"""

from __future__ import annotations

import math
import re
import time as _time
from collections.abc import Sequence as _Sequence
from typing import Literal, TypeVar
from urllib.parse import urlsplit

import msgspec

from cascadewatch.connectors.events import (
    AnyEvent,
    BookDelta,
    BookSnapshot,
    Level,
    Liquidation,
    MarkPrice,
    OpenInterest,
    Trade,
)
from cascadewatch.connectors.reasons import Reason
from cascadewatch.connectors.units import NS_PER_MS
from cascadewatch.connectors.venues.base import (
    Catalog,
    InstrumentInfo,
    Parsed,
    ParseError,
    SeqStep,
    SequenceRule,
    VenueParser,
    Verdict,
    canonical,
    checked_price,
    checked_qty,
    non_negative,
    positive_price,
    split_concatenated,
)
from cascadewatch.connectors.venues.live_common import (
    BookRow,
    ConnectionSpec,
    LiveDefaults,
    LiveSettings,
    ResubscribeBooks,
    chunk,
    plan_connections,
)

SOURCE = "bybit-linear"

_INF = math.inf

# --------------------------------------------------------------------------- raw schemas
# Mirrors of the venue JSON. Unknown fields are ignored by msgspec. Numeric strings are
# decoded straight to float/int (``strict=False`` coerces "123.4" -> 123.4), then validated.

BybitSide = Literal["Buy", "Sell"]


class RawBybitEnvelope(msgspec.Struct):
    """Any v5 public frame: a topic push, or a control frame (op/success/ret_msg)."""

    topic: str | None = None
    type: str | None = None
    ts: int | None = None
    data: msgspec.Raw = msgspec.Raw()
    op: str | None = None
    success: bool | None = None
    ret_msg: str | None = None


class RawBybitTrade(msgspec.Struct):
    """``publicTrade`` entry."""

    T: int
    s: str
    S: BybitSide
    v: float
    p: float


class RawBybitBook(msgspec.Struct):
    """``orderbook.{depth}`` data, also the REST ``/v5/market/orderbook`` result."""

    s: str
    b: list[tuple[float, float]]
    a: list[tuple[float, float]]
    u: int
    seq: int | None = None
    ts: int | None = None  # REST only
    cts: int | None = None


class RawBybitAllLiquidation(msgspec.Struct):
    """``allLiquidation`` entry."""

    T: int
    s: str
    S: BybitSide
    v: float
    p: float


class RawBybitLiquidation(msgspec.Struct):
    """Older v5 ``liquidation`` data object."""

    symbol: str
    side: BybitSide
    size: float
    price: float
    updatedTime: int | None = None
    updateTime: int | None = None


class RawBybitTicker(msgspec.Struct):
    """``tickers`` data (linear): only the fields we use; all optional on deltas."""

    symbol: str
    markPrice: str | None = None
    indexPrice: str | None = None
    fundingRate: str | None = None
    openInterest: str | None = None
    openInterestValue: str | None = None


class RawBybitRestEnvelope(msgspec.Struct):
    """The envelope of every v5 REST response: ``retCode`` 0 is success, ``result`` is decoded per route."""

    retCode: int
    retMsg: str = ""
    result: msgspec.Raw = msgspec.Raw()


class RawBybitPriceFilter(msgspec.Struct):
    """An instrument's ``priceFilter`` (the tick size)."""

    tickSize: str = ""


class RawBybitInstrument(msgspec.Struct):
    """An instrument of ``/v5/market/instruments-info``."""

    symbol: str
    baseCoin: str
    quoteCoin: str
    contractType: str = ""
    status: str = ""
    settleCoin: str = ""
    priceFilter: RawBybitPriceFilter | None = None


class RawBybitInstruments(msgspec.Struct):
    """The ``result`` of ``/v5/market/instruments-info``: instruments and the next page's cursor."""

    category: str = ""
    items: list[RawBybitInstrument] = msgspec.field(default_factory=list, name="list")
    nextPageCursor: str = ""


class RawBybitOpenInterestEntry(msgspec.Struct):
    """One open-interest reading: contracts (base units) at ``timestamp`` (ms)."""

    openInterest: float
    timestamp: int


class RawBybitOpenInterest(msgspec.Struct):
    """The ``result`` of ``/v5/market/open-interest``."""

    symbol: str
    items: list[RawBybitOpenInterestEntry] = msgspec.field(default_factory=list, name="list")
    category: str = ""


_ENVELOPE = msgspec.json.Decoder(RawBybitEnvelope, strict=False)
_TRADES = msgspec.json.Decoder(list[RawBybitTrade], strict=False)
_BOOK = msgspec.json.Decoder(RawBybitBook, strict=False)
_ALL_LIQ = msgspec.json.Decoder(list[RawBybitAllLiquidation], strict=False)
_LIQ = msgspec.json.Decoder(RawBybitLiquidation, strict=False)
_TICKER = msgspec.json.Decoder(RawBybitTicker, strict=False)
_REST = msgspec.json.Decoder(RawBybitRestEnvelope, strict=False)
_INSTRUMENTS = msgspec.json.Decoder(RawBybitInstruments, strict=False)
_OPEN_INTEREST = msgspec.json.Decoder(RawBybitOpenInterest, strict=False)

_AGGRESSOR: dict[str, Literal["buy", "sell"]] = {"Buy": "buy", "Sell": "sell"}
# Bybit: "Buy" = a long position was liquidated
_LIQUIDATED: dict[str, Literal["long", "short"]] = {"Buy": "long", "Sell": "short"}

# Known v5 public topics that carry nothing we use.
_SKIPPED_TOPICS = {
    "kline": "skipped:kline",
    "insurance": "skipped:insurance",
    "priceLimit": "skipped:priceLimit",
    "adlAlert": "skipped:adlAlert",
    "system": "skipped:system",
}
_SKIPPED_BOOKS = {"rpi": "skipped:orderbook_rpi", "full": "skipped:orderbook_full"}

_NOT_LINEAR = "skipped:not_linear"
_NOT_PERP = "skipped:not_perp"
_INVERSE_FUTURE = re.compile(r"^[A-Z0-9]+USD[FGHJKMNQUVXZ]\d{2}$")
_MAX_CACHED_SYMBOLS = 10_000


_T = TypeVar("_T")


def _decode(decoder: msgspec.json.Decoder[_T], payload: bytes | str | msgspec.Raw, what: str) -> _T:
    if type(payload) is msgspec.Raw and not payload:
        raise ParseError(Reason.SCHEMA, f"{what}: missing data")
    try:
        return decoder.decode(payload)
    except msgspec.ValidationError as exc:
        raise ParseError(Reason.SCHEMA, f"{what}: {exc}"[:200]) from None
    except msgspec.DecodeError as exc:
        raise ParseError(Reason.MALFORMED_JSON, str(exc)[:200]) from None


def _levels(raw: list[tuple[float, float]], side: str) -> tuple[Level, ...]:
    """Validate decoded ``[(price, size), ...]``: price finite > 0, size finite >= 0."""
    for price, size in raw:
        if not 0.0 < price < _INF:
            raise ParseError(Reason.BAD_PRICE, f"{side} price={price!r}")
        if not 0.0 <= size < _INF:
            raise ParseError(Reason.BAD_QTY, f"{side} size={size!r}")
    return tuple(raw)


def _finite(value: str, what: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ParseError(Reason.BAD_NUMBER, f"{what}={value!r}") from None
    if not math.isfinite(number):
        raise ParseError(Reason.BAD_NUMBER, f"{what}={value!r}")
    return number


def classify_symbol(symbol: str) -> InstrumentInfo | str:
    """Name-only classification of a Bybit symbol (used when the catalog does not know it).

    Returns the :class:`InstrumentInfo` of a linear perpetual, or a ``"skipped:..."`` label;
    raises ``ParseError("unknown_instrument")`` for a name it cannot read.
    """
    if not symbol:
        raise ParseError(Reason.UNKNOWN_INSTRUMENT, "empty symbol")
    if "-" in symbol:  # BTCUSDT-26DEC25 (USDT futures), BTC-26DEC25 (USDC futures)
        return _NOT_PERP
    if symbol.endswith("PERP") and len(symbol) > 4:  # BTCPERP: USDC perpetual
        base = symbol[:-4]
        return InstrumentInfo(symbol=symbol, instrument=canonical(base, "USDC"), base=base, quote="USDC")
    if _INVERSE_FUTURE.match(symbol):  # BTCUSDU23: inverse quarterly future
        return _NOT_LINEAR
    split = split_concatenated(symbol)
    if split is None:
        raise ParseError(Reason.UNKNOWN_INSTRUMENT, symbol[:80])
    base, quote = split
    if quote == "USD":  # BTCUSD: inverse perpetual (sizes in USD contracts)
        return _NOT_LINEAR
    return InstrumentInfo(symbol=symbol, instrument=canonical(base, quote), base=base, quote=quote)


class BookSequence(SequenceRule):
    """``orderbook.{depth}`` continuity for :class:`cascadewatch.connectors.book.BookKeeper`.

    Bybit's update id ``u`` steps by one per message on a depth stream (as every recorded
    frame does); a delta with ``u <= last`` is stale and skipped, ``u == last + 1`` applies,
    and a jump is a gap: the book stays invalid until the next snapshot (the live session
    resubscribes to get one). ``u == 1`` arrives as a snapshot from the parser.
    """

    def check(self, delta: SeqStep) -> Verdict:
        """Bybit's rule: after a snapshot, each delta's ``u`` is the last one plus 1; older ones are skipped."""
        if self.last_seq is None or delta.seq <= self.last_seq:
            return Verdict.SKIP
        if delta.seq != self.last_seq + 1:
            return Verdict.GAP
        self.last_seq = delta.seq
        return Verdict.APPLY

    def describe_gap(self, delta: SeqStep) -> str:
        """The ``u`` that was expected and the one that came."""
        return f"expected u={self.last_seq + 1 if self.last_seq is not None else '?'}, got u={delta.seq}"


class Parser(VenueParser):
    """Bybit v5 linear parser. See the module docstring for channels, labels and rules."""

    SOURCE = SOURCE

    @classmethod
    def sequence_rule(cls) -> BookSequence:
        """Bybit's sequence rule (:class:`BookSequence`)."""
        return BookSequence()

    def __init__(self, catalog: Catalog | None = None) -> None:
        super().__init__(catalog)
        self._skip: dict[str, str] = {}  # symbols the instruments REST reply says are not linear perps
        self._by_name: dict[str, InstrumentInfo | str] = {}  # name-based classification cache
        # tickers state: symbol -> [last indexPrice, last fundingRate]
        self._ticker_state: dict[str, list[float | None]] = {}

    # ------------------------------------------------------------------ instruments
    def instrument_of(self, symbol: str) -> str:
        """Canonical instrument of ``symbol`` (:meth:`resolve`); ``""`` if not a linear perpetual."""
        info = self.resolve(symbol)
        return info.instrument if isinstance(info, InstrumentInfo) else ""

    def resolve(self, symbol: str) -> InstrumentInfo | str:
        """Catalog entry, else a remembered skip, else the name-based classification."""
        info = self.catalog.by_symbol.get(symbol)
        if info is not None:
            return _NOT_LINEAR if info.inverse else info
        label = self._skip.get(symbol)
        if label is not None:
            return label
        cached = self._by_name.get(symbol)
        if cached is None:
            cached = classify_symbol(symbol)
            if len(self._by_name) >= _MAX_CACHED_SYMBOLS:
                self._by_name.clear()
            self._by_name[symbol] = cached
        return cached

    # ------------------------------------------------------------------ websocket
    def parse_ws(self, payload: bytes | str, recv: int) -> Parsed:
        """Parse one websocket frame into events or a skip reason; a bad frame raises ``ParseError``."""
        env = _decode(_ENVELOPE, payload, "envelope")
        topic = env.topic
        if topic is None:
            return self._control(env)
        head, _, rest = topic.partition(".")
        if head == "publicTrade":
            return self._trades(env, rest, recv)
        if head == "orderbook":
            depth, _, symbol = rest.partition(".")
            if depth.isdigit():
                return self._book(env, symbol, recv)
            label = _SKIPPED_BOOKS.get(depth)
            if label is not None:
                return Parsed(label)
            raise ParseError(Reason.UNKNOWN_CHANNEL, topic[:80])
        if head == "allLiquidation":
            return self._all_liquidation(env, rest, recv)
        if head == "liquidation":
            return self._liquidation(env, rest, recv)
        if head == "tickers":
            return self._ticker(env, rest, recv)
        label = _SKIPPED_TOPICS.get(head)
        if label is not None:
            return Parsed(label)
        raise ParseError(Reason.UNKNOWN_CHANNEL, topic[:80])

    @staticmethod
    def _control(env: RawBybitEnvelope) -> Parsed:
        if env.op is None and env.success is None and env.ret_msg != "pong":
            raise ParseError(Reason.UNKNOWN_CHANNEL, "frame without topic or op")
        if env.success is False:
            raise ParseError(Reason.CONTROL_ERROR, f"op={env.op} ret_msg={env.ret_msg}"[:200])
        return Parsed("control")

    def _trades(self, env: RawBybitEnvelope, symbol: str, recv: int) -> Parsed:
        info = self.resolve(symbol)
        if isinstance(info, str):
            return Parsed(info)
        rows = _decode(_TRADES, env.data, "publicTrade")
        instrument = info.instrument
        events: list[AnyEvent] = []
        for row in rows:
            if row.s != symbol:
                raise ParseError(Reason.SCHEMA, f"trade symbol {row.s!r} in topic {symbol!r}")
            events.append(
                Trade(
                    venue=SOURCE,
                    symbol=symbol,
                    instrument=instrument,
                    ts=row.T * NS_PER_MS,
                    recv=recv,
                    price=checked_price(row.p, "price"),
                    qty=checked_qty(row.v, "qty"),
                    side=_AGGRESSOR[row.S],
                )
            )
        return Parsed("trade", events)

    def _book(self, env: RawBybitEnvelope, symbol: str, recv: int) -> Parsed:
        info = self.resolve(symbol)
        if isinstance(info, str):
            return Parsed(info)
        if env.ts is None:
            raise ParseError(Reason.SCHEMA, "orderbook frame without ts")
        book = _decode(_BOOK, env.data, "orderbook")
        if book.s != symbol:
            raise ParseError(Reason.SCHEMA, f"book symbol {book.s!r} in topic {symbol!r}")
        bids = _levels(book.b, "bid")
        asks = _levels(book.a, "ask")
        kind = env.type
        if kind == "snapshot" or (kind == "delta" and book.u == 1):
            event: AnyEvent = BookSnapshot(
                venue=SOURCE,
                symbol=symbol,
                instrument=info.instrument,
                ts=env.ts * NS_PER_MS,
                recv=recv,
                bids=bids,
                asks=asks,
                seq=book.u,
            )
        elif kind == "delta":
            event = BookDelta(
                venue=SOURCE,
                symbol=symbol,
                instrument=info.instrument,
                ts=env.ts * NS_PER_MS,
                recv=recv,
                bids=bids,
                asks=asks,
                seq=book.u,
            )
        else:
            raise ParseError(Reason.SCHEMA, f"orderbook type={kind!r}")
        return Parsed("book", [event])

    def _all_liquidation(self, env: RawBybitEnvelope, symbol: str, recv: int) -> Parsed:
        info = self.resolve(symbol)
        if isinstance(info, str):
            return Parsed(info)
        rows = _decode(_ALL_LIQ, env.data, "allLiquidation")
        events: list[AnyEvent] = []
        for row in rows:
            if row.s != symbol:
                raise ParseError(Reason.SCHEMA, f"liquidation symbol {row.s!r} in topic {symbol!r}")
            events.append(self._liq_event(info, row.T, row.p, row.v, row.S, recv))
        return Parsed("liquidation", events)

    def _liquidation(self, env: RawBybitEnvelope, symbol: str, recv: int) -> Parsed:
        info = self.resolve(symbol)
        if isinstance(info, str):
            return Parsed(info)
        row = _decode(_LIQ, env.data, "liquidation")
        if row.symbol != symbol:
            raise ParseError(Reason.SCHEMA, f"liquidation symbol {row.symbol!r} in topic {symbol!r}")
        when = row.updatedTime if row.updatedTime is not None else row.updateTime
        if when is None:
            when = env.ts
        if when is None:
            raise ParseError(Reason.SCHEMA, "liquidation without time")
        return Parsed("liquidation", [self._liq_event(info, when, row.price, row.size, row.side, recv)])

    @staticmethod
    def _liq_event(info: InstrumentInfo, ms: int, price: float, size: float, side: str, recv: int) -> Liquidation:
        price = checked_price(price, "price")
        qty = info.to_base(checked_qty(size, "size"), price)
        notional = price * qty
        if not math.isfinite(notional):
            raise ParseError(Reason.BAD_QTY, f"notional overflow {price!r}*{qty!r}")
        return Liquidation(
            venue=SOURCE,
            symbol=info.symbol,
            instrument=info.instrument,
            ts=ms * NS_PER_MS,
            recv=recv,
            price=price,
            qty=qty,
            side=_LIQUIDATED[side],
            notional=notional,
        )

    def _ticker(self, env: RawBybitEnvelope, symbol: str, recv: int) -> Parsed:
        info = self.resolve(symbol)
        if isinstance(info, str):
            return Parsed(info)
        if env.ts is None:
            raise ParseError(Reason.SCHEMA, "tickers frame without ts")
        if env.type not in ("snapshot", "delta"):
            raise ParseError(Reason.SCHEMA, f"tickers type={env.type!r}")
        tick = _decode(_TICKER, env.data, "tickers")
        if tick.symbol != symbol:
            raise ParseError(Reason.SCHEMA, f"ticker symbol {tick.symbol!r} in topic {symbol!r}")
        # Validate everything before touching the state, so a bad frame changes nothing.
        mark = positive_price(tick.markPrice, "markPrice") if tick.markPrice else None
        index = positive_price(tick.indexPrice, "indexPrice") if tick.indexPrice else None
        funding = _finite(tick.fundingRate, "fundingRate") if tick.fundingRate else None
        oi = non_negative(tick.openInterest, "openInterest") if tick.openInterest else None
        oi_value = non_negative(tick.openInterestValue, "openInterestValue") if tick.openInterestValue else None

        state = self._ticker_state.get(symbol)
        if env.type == "snapshot" or state is None:
            if state is None and len(self._ticker_state) >= _MAX_CACHED_SYMBOLS:
                self._ticker_state.clear()
            state = self._ticker_state[symbol] = [index, funding]
        else:
            if index is not None:
                state[0] = index
            if funding is not None:
                state[1] = funding
        ts = env.ts * NS_PER_MS
        events: list[AnyEvent] = []
        if mark is not None:
            events.append(
                MarkPrice(
                    venue=SOURCE,
                    symbol=symbol,
                    instrument=info.instrument,
                    ts=ts,
                    recv=recv,
                    price=mark,
                    index=state[0],
                    funding=state[1],
                )
            )
        if oi is not None:
            events.append(
                OpenInterest(
                    venue=SOURCE,
                    symbol=symbol,
                    instrument=info.instrument,
                    ts=ts,
                    recv=recv,
                    qty=oi,
                    notional=oi_value,
                )
            )
        return Parsed("ticker", events)

    # ------------------------------------------------------------------ REST
    def parse_rest(self, path: str, body: bytes, recv: int) -> Parsed:
        """Parse a REST response into events or a skip reason; a bad frame raises ``ParseError``."""
        route = urlsplit(path).path.rstrip("/")
        if route not in ("/v5/market/instruments-info", "/v5/market/orderbook", "/v5/market/open-interest"):
            raise ParseError(Reason.UNKNOWN_CHANNEL, f"rest {path[:80]}")
        env = _decode(_REST, body, "rest envelope")
        if env.retCode != 0:
            raise ParseError(Reason.REST_ERROR, f"retCode={env.retCode} retMsg={env.retMsg}"[:200])
        if not env.result:
            raise ParseError(Reason.SCHEMA, "rest reply without result")
        if route == "/v5/market/instruments-info":
            return self._instruments(env.result)
        if route == "/v5/market/orderbook":
            return self._rest_book(env.result, recv)
        return self._rest_open_interest(env.result, recv)

    def _instruments(self, raw: msgspec.Raw) -> Parsed:
        reply = _decode(_INSTRUMENTS, raw, "instruments-info")
        infos: list[InstrumentInfo] = []
        skips: dict[str, str] = {}
        for item in reply.items:
            kind = item.contractType
            if not kind:  # spot / option replies: not ours
                continue
            if kind != "LinearPerpetual":
                skips[item.symbol] = _NOT_PERP if kind == "LinearFutures" else _NOT_LINEAR
                continue
            tick_text = item.priceFilter.tickSize if item.priceFilter is not None else ""
            tick = positive_price(tick_text, f"{item.symbol} tickSize") if tick_text else 0.0
            if not item.symbol or not item.baseCoin or not item.quoteCoin:
                raise ParseError(Reason.SCHEMA, f"instrument without symbol/baseCoin/quoteCoin: {item.symbol!r}")
            infos.append(
                InstrumentInfo(
                    symbol=item.symbol,
                    instrument=canonical(item.baseCoin, item.quoteCoin),
                    base=item.baseCoin,
                    quote=item.quoteCoin,
                    ct_val=1.0,
                    inverse=False,
                    tick=tick,
                )
            )
        # Apply only once the whole page is valid.
        for info in infos:
            self.catalog.add(info)
            self._skip.pop(info.symbol, None)
            self._by_name.pop(info.symbol, None)
        for symbol, label in skips.items():
            self.catalog.by_symbol.pop(symbol, None)
            self._skip[symbol] = label
        return Parsed("instruments")

    def _rest_book(self, raw: msgspec.Raw, recv: int) -> Parsed:
        book = _decode(_BOOK, raw, "orderbook")
        info = self.resolve(book.s)
        if isinstance(info, str):
            return Parsed(info)
        if book.ts is None:
            raise ParseError(Reason.SCHEMA, "rest orderbook without ts")
        event = BookSnapshot(
            venue=SOURCE,
            symbol=book.s,
            instrument=info.instrument,
            ts=book.ts * NS_PER_MS,
            recv=recv,
            bids=_levels(book.b, "bid"),
            asks=_levels(book.a, "ask"),
            seq=book.u,
        )
        return Parsed("book", [event])

    def _rest_open_interest(self, raw: msgspec.Raw, recv: int) -> Parsed:
        reply = _decode(_OPEN_INTEREST, raw, "open-interest")
        info = self.resolve(reply.symbol)
        if isinstance(info, str):
            return Parsed(info)
        events: list[AnyEvent] = [
            OpenInterest(
                venue=SOURCE,
                symbol=info.symbol,
                instrument=info.instrument,
                ts=row.timestamp * NS_PER_MS,
                recv=recv,
                qty=checked_qty(row.openInterest, "openInterest"),
                notional=None,
            )
            for row in sorted(reply.items, key=lambda r: r.timestamp)
        ]
        return Parsed("open_interest", events)


# =============================================================================================
# Live connection: endpoints, subscriptions, symbol discovery, order-book resync.
# Used by connectors/session.py and connectors/live.py; the parser above does not use it.
# The names below are the same in every venue module (see connectors/venues/live_common.py).
#
# Bybit v5 public linear (https://bybit-exchange.github.io/docs/v5/ws/connect): one endpoint
# for every public topic; ``{"op": "subscribe", "args": [...]}`` with at most 10 args per
# request (the documented spot limit, applied here too; linear caps the args' total length);
# the client sends ``{"op": "ping"}`` every 20 s (the server answers ``ret_msg: "pong"``) or the
# connection is cut after 10 minutes of silence. ``orderbook.{depth}`` starts with a snapshot on
# every subscription, so a gap is repaired by resubscribing the book topic (no REST splice:
# REST ``u`` matches only the 1000-level websocket book).
# =============================================================================================


LIVE = LiveDefaults(
    ws_url="wss://stream.bybit.com/v5/public/linear",
    ws_book_url="wss://stream.bybit.com/v5/public/linear",
    rest_url="https://api.bybit.com",
    max_lifetime_s=0.0,  # no documented lifetime
    heartbeat_s=20.0,
    max_topics_per_connection=200,
    max_topics_per_message=10,
    subscribe_per_s=5.0,
    subscribe_burst=10,
    poll_s=0.0,  # open interest comes with tickers
    book_depth=50,
    rest_weight_per_min=6000,  # 600 requests per 5 s per IP, each weight 1; leave a sixth spare
)
MARKET_TOPICS = ("publicTrade", "allLiquidation", "tickers")


def native_symbol(asset: str, quote: str = "USDT") -> str:
    """``BTC`` -> ``BTCUSDT``; USDC perpetuals are named ``BTCPERP``."""
    asset, quote = asset.upper(), quote.upper()
    return f"{asset}PERP" if quote == "USDC" else f"{asset}{quote}"


def instruments_paths(symbols: _Sequence[str]) -> list[str]:
    """The instruments-info REST paths, one per symbol."""
    return [f"/v5/market/instruments-info?category=linear&symbol={symbol}" for symbol in symbols]


class _ListedItem(msgspec.Struct):
    symbol: str
    contractType: str = ""
    status: str = ""


class _ListedResult(msgspec.Struct):
    items: list[_ListedItem] = msgspec.field(default_factory=list, name="list")


class _ListedBody(msgspec.Struct):
    retCode: int
    result: _ListedResult | None = None


def listed_symbols(path: str, body: bytes) -> set[str]:
    """Linear perpetuals the reply lists as trading; raises ``msgspec.DecodeError`` on a bad body."""
    listed = msgspec.json.decode(body, type=_ListedBody)
    if listed.retCode != 0 or listed.result is None:
        raise msgspec.DecodeError(f"retCode={listed.retCode}")
    return {
        i.symbol for i in listed.result.items if i.contractType == "LinearPerpetual" and i.status in ("Trading", "")
    }


def poll_paths(symbols: _Sequence[str]) -> list[str]:
    """The REST paths polled while live: none (open interest comes with the tickers)."""
    return []


def book_topic(symbol: str, depth: int = 50) -> str:
    """The order book topic of ``symbol`` at ``depth`` levels."""
    return f"orderbook.{depth}.{symbol}"


def connections(symbols: _Sequence[str], settings: LiveSettings) -> list[ConnectionSpec]:
    """The websocket connections for ``symbols``: books and market topics, split by ``max_topics_per_connection``."""
    market = [f"{topic}.{symbol}" for symbol in symbols for topic in MARKET_TOPICS]
    books = [book_topic(symbol, settings.book_depth) for symbol in symbols]
    limit = settings.max_topics_per_connection
    if settings.ws_book_url == settings.ws_url:
        return plan_connections("public", settings.ws_url, books + market, limit)
    return plan_connections("public", settings.ws_url, market, limit) + plan_connections(
        "books", settings.ws_book_url, books, limit
    )


def subscribe_messages(topics: _Sequence[str], per_message: int, first_id: int = 1) -> list[str]:
    """``{"op": "subscribe", "args": [...], "req_id": "n"}`` of at most ``per_message`` topics."""
    return _requests("subscribe", topics, per_message, first_id)


def unsubscribe_messages(topics: _Sequence[str], per_message: int, first_id: int = 1) -> list[str]:
    """The ``unsubscribe`` messages for ``topics``, at most ``per_message`` topics each."""
    return _requests("unsubscribe", topics, per_message, first_id)


def _requests(op: str, topics: _Sequence[str], per_message: int, first_id: int) -> list[str]:
    return [
        msgspec.json.encode({"op": op, "args": group, "req_id": str(first_id + i)}).decode()
        for i, group in enumerate(chunk(topics, per_message))
    ]


def heartbeat_message() -> str | None:
    """Bybit's application ping, ``{"op":"ping"}``."""
    return '{"op":"ping"}'


def is_data(payload: bytes) -> bool:
    """A topic push; acks and pongs carry no ``topic``."""
    return b'"topic"' in payload


def rollover_hint(payload: bytes) -> bool:
    """Always ``False``: Bybit does not announce a close."""
    return False


class _BookProbeData(msgspec.Struct):
    u: int = 0
    s: str = ""


class _BookProbe(msgspec.Struct):
    topic: str = ""
    type: str = ""
    data: _BookProbeData | None = None


_book_probe = msgspec.json.Decoder(_BookProbe, strict=False)


def _probe_book(payload: bytes) -> list[BookRow] | None:
    if b"orderbook." not in payload[:80]:
        return None
    try:
        frame = _book_probe.decode(payload)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    head, depth, symbol = (frame.topic.split(".", 2) + ["", ""])[:3]
    if head != "orderbook" or not depth.isdigit() or frame.data is None:
        return None
    u = frame.data.u
    return [(symbol, frame.type == "snapshot" or (frame.type == "delta" and u == 1), u, None)]


def frame_key(payload: bytes) -> tuple[str, int] | None:
    """Book frames: ``(topic, u)``; other topics have no per-message id (``None``)."""
    rows = _probe_book(payload)
    if not rows:
        return None
    symbol, _, u, _ = rows[0]
    return f"orderbook|{symbol}", u


class LiveBooks(ResubscribeBooks):
    """Bybit books: on a ``u`` gap (the parser's :class:`BookSequence`), resubscribe the topic."""

    def __init__(self, symbols: _Sequence[str], settings: LiveSettings, clock=_time.monotonic) -> None:
        depth = settings.book_depth
        super().__init__(
            symbols,
            _probe_book,
            lambda symbol: book_topic(symbol, depth),
            BookSequence,
            settings.resync_timeout_s,
            clock,
        )
