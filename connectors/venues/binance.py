"""Binance USD-M futures (``binance-usdm``): raw schemas and the frame parser.

Websocket frames arrive combined-stream wrapped (``{"stream": "btcusdt@aggTrade", "data": {...}}``,
from ``/stream?streams=...``) or raw (just the ``data`` object, from ``/ws/<stream>``); both are
handled, and ``data`` may also be an array (``!markPrice@arr``): its elements are parsed alike.
Dispatch is on the event type ``data.e``:

- ``aggTrade`` -> ``trade``: :class:`Trade` (``ts`` from ``T``);
- ``trade`` -> ``trade``: :class:`Trade`, only when ``X == "MARKET"`` (else ``skipped:nonmarket_trade``);
- ``depthUpdate`` -> ``book``: :class:`BookDelta` (``ts`` from ``E``);
- ``forceOrder`` -> ``liquidation``: :class:`Liquidation` (``ts`` from ``o.T``);
- ``markPriceUpdate`` -> ``mark_price``: :class:`MarkPrice` (``ts`` from ``E``);
- ``bookTicker`` -> ``skipped:bookTicker``, ``kline`` -> ``skipped:kline``,
  ``24hrTicker`` -> ``skipped:ticker``: no events.

Other frames: ``{"result": ..., "id": ...}`` (subscribe / list acks) is kind ``control``; an
``{"error": {...}, "id": ...}`` reply raises ``ParseError("venue_error")``; an unknown or missing
``e`` raises ``ParseError("unknown_channel")``.

REST bootstrap bodies (``parse_rest``): ``/fapi/v1/exchangeInfo`` fills the catalog with the
``contractType == "PERPETUAL"`` symbols (base/quote assets, ``PRICE_FILTER.tickSize``), kind
``instruments``, no events; ``/fapi/v1/depth?symbol=X&limit=N`` is a :class:`BookSnapshot`
(``seq = lastUpdateId``, ``ts`` from the body's ``E`` if present else ``recv``, the symbol from
the query string); ``/fapi/v1/openInterest`` is :class:`OpenInterest` (``qty = openInterest`` in
base units, ``notional = None``, ``ts`` from ``time`` if present else ``recv``). Any other path
raises ``ParseError("unknown_rest_path")``.

Symbols: ``BTCUSDT`` -> ``BTC-USDT-PERP`` from the catalog (exchangeInfo) or, before it is known,
by splitting the quote asset off (:func:`split_concatenated`). Dated contracts (``BTCUSDT_240628``)
and symbols exchangeInfo lists with another ``contractType`` give kind ``skipped:not_perpetual`` and
no events; an unsplittable unknown symbol raises ``ParseError("unknown_instrument")``. USD-M
quantities are already in base units (``ct_val == 1``).

Venue semantics worth knowing:

- ``aggTrade.m`` / ``trade.m`` is "the buyer is the maker", so ``m == true`` means the aggressor
  sold (``side == "sell"``).
- Plain ``trade`` events carry ``X``: ``MARKET`` for ordinary trades, ``INSURANCE_FUND`` / ``ADL``
  (and ``NA``) for the liquidation engine's own fills, which print far off the market and would
  pollute price and aggressor flow; they are skipped (``skipped:nonmarket_trade``). Liquidations
  come from ``forceOrder``. ``aggTrade`` aggregates market trades only (Binance docs: insurance
  fund and ADL trades are not aggregated). A ``trade`` without ``X`` counts as ``MARKET``.
- ``forceOrder``: ``o.S == "SELL"`` is a forced sell, i.e. a *long* was liquidated; ``"BUY"`` a
  short. ``qty = o.z`` (filled accumulated) when > 0, else ``o.q``; ``price = o.ap`` (average fill)
  when > 0, else ``o.p``. Binance pushes at most ONE liquidation per symbol per 1000 ms (the
  latest one, as a snapshot), so this stream is a LOWER BOUND on liquidated notional, not a
  complete record.
- Partial-depth streams (``<symbol>@depth5`` / ``@depth10`` / ``@depth20``) also say
  ``e == "depthUpdate"`` but carry the top N levels, not changes; in combined frames they are
  recognised by the stream name and skipped (``skipped:partial_depth``). A raw (unwrapped)
  ``depthUpdate`` is taken as a diff: subscribe partial depth only through ``/stream``.

Order book sequence rule (Binance "How to manage a local order book correctly", USD-M futures),
implemented by :class:`BookSequence` (``Parser.sequence_rule()``). A diff has ``first_seq = U``
(first update id in the event), ``seq = u`` (final update id) and ``prev_seq = pu`` (the ``u`` of
the previous event on this stream); a snapshot (REST ``/fapi/v1/depth``) has ``seq = lastUpdateId``:

1. buffer diffs from the stream, then fetch the snapshot;
2. drop every diff with ``u < lastUpdateId``;
3. the first diff applied must have ``U <= lastUpdateId <= u``, or ``pu == lastUpdateId``
   (the snapshot is the state right before it: a quiet book's ``lastUpdateId`` is the ``u``
   of its last diff); if the first diff not dropped has neither, events were missed: fetch a
   new snapshot;
4. after that each diff's ``pu`` must equal the previous diff's ``u``; otherwise the book is
   out of sync: discard it and restart from step 1 (resync);
5. quantities are absolute; ``qty == 0`` removes the level (removing an absent level is normal).

:class:`BookSequence` skips diffs until a snapshot (rule 1's buffering is the session's job: it
must hand buffered diffs over after the snapshot), then applies rules 2-4, answering GAP where the
book must be resynced.

In the recorded 2021-07-22 session, the SUSHIUSDT snapshot has ``lastUpdateId`` 600859605926; the
two diffs received right after it have ``u`` below it (dropped by rule 2) and the next one has
``U == 600859605926`` (rule 3); ``pu`` chains from there (tests check this).

Validation: prices must be finite and > 0 (``bad_price``), quantities finite and >= 0
(``bad_qty``), numbers parseable (``bad_number``); malformed JSON is ``malformed_json`` and a
frame of the wrong shape ``schema``.
"""

from __future__ import annotations

import math
import sys
import time as _time
from collections.abc import Callable
from collections.abc import Iterable as _Iterable
from collections.abc import Sequence as _Sequence
from typing import Annotated, Any, Literal, get_args
from urllib.parse import parse_qs, urlsplit

import msgspec

from cascadewatch.connectors.events import (
    BookDelta,
    BookSnapshot,
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
    SeqStart,
    SeqStep,
    SequenceRule,
    VenueParser,
    Verdict,
    canonical,
    non_negative,
    positive_price,
    split_concatenated,
)
from cascadewatch.connectors.venues.live_common import (
    PASS,
    THIS,
    Action,
    BookSync,
    ConnectionSpec,
    Emit,
    Fetch,
    LiveDefaults,
    LiveSettings,
    SeqMark,
    chunk,
    plan_connections,
    rest_frame,
)

SOURCE = "binance-usdm"

# Hot-path numbers are decoded from their JSON strings in C (``strict=False``) with these bounds;
# a violated bound becomes bad_price / bad_qty (see ``_validation_error``). The upper bounds reject
# infinities: price uses ``<=``, qty ``<``, so the message says which one failed.
_MAX = sys.float_info.max
Price = Annotated[float, msgspec.Meta(gt=0.0, le=_MAX)]
Qty = Annotated[float, msgspec.Meta(ge=0.0, lt=_MAX)]
RawBinanceLevels = tuple[tuple[Price, Qty], ...]
"""``[["price", "qty"], ...]`` decoded straight to the event model's ``((price, qty), ...)``."""


# ---------------------------------------------------------------------------------------------
# Raw schemas: websocket ``data`` objects, tagged by ``e``. Fields we use are required; the
# other documented fields are optional so that a frame without them still parses.


class RawBinanceAggTrade(msgspec.Struct, tag_field="e", tag="aggTrade", frozen=True, gc=False):
    """``<symbol>@aggTrade``: market trades aggregated by price and taker order."""

    E: int  # event time, ms
    s: str  # symbol
    p: Price
    q: Qty
    T: int  # trade time, ms
    m: bool  # buyer is the maker
    a: int | None = None  # aggregate trade id
    f: int | None = None  # first trade id
    l: int | None = None  # noqa: E741 - last trade id


class RawBinanceTrade(msgspec.Struct, tag_field="e", tag="trade", frozen=True, gc=False):
    """``<symbol>@trade``: one trade; ``X`` is ``MARKET``, ``INSURANCE_FUND``, ``ADL`` or ``NA``."""

    E: int
    s: str
    p: Price
    q: Qty
    T: int
    m: bool
    t: int | None = None  # trade id
    X: str = "MARKET"


class RawBinanceDepthUpdate(msgspec.Struct, tag_field="e", tag="depthUpdate", frozen=True, gc=False):
    """``<symbol>@depth[@100ms|@500ms]`` diff: ``U`` first, ``u`` final, ``pu`` previous final id."""

    E: int
    s: str
    U: int
    u: int
    pu: int
    b: RawBinanceLevels
    a: RawBinanceLevels
    T: int | None = None  # transaction time, ms


class RawBinanceForceOrderDetail(msgspec.Struct, frozen=True, gc=False):
    """The ``o`` object of a ``forceOrder`` event (numbers as the venue's strings)."""

    s: str
    S: str  # "SELL": a long was liquidated; "BUY": a short
    q: str  # original quantity
    p: str  # order (bankruptcy) price
    T: int  # order trade time, ms
    ap: str = "0"  # average fill price
    z: str | None = None  # filled accumulated quantity
    l: str | None = None  # noqa: E741 - last filled quantity
    o: str = ""  # order type
    f: str = ""  # time in force
    X: str = ""  # order status
    ps: str | None = None  # pair


class RawBinanceForceOrder(msgspec.Struct, tag_field="e", tag="forceOrder", frozen=True, gc=False):
    """``<symbol>@forceOrder`` / ``!forceOrder@arr``: latest liquidation per symbol per second."""

    E: int
    o: RawBinanceForceOrderDetail


class RawBinanceMarkPrice(msgspec.Struct, tag_field="e", tag="markPriceUpdate", frozen=True, gc=False):
    """``<symbol>@markPrice[@1s]`` / ``!markPrice@arr[@1s]``; ``r`` is ``""`` for dated contracts."""

    E: int
    s: str
    p: str  # mark price
    i: str | None = None  # index price
    P: str | None = None  # estimated settle price
    r: str | None = None  # funding rate
    T: int | None = None  # next funding time, ms


class RawBinanceBookTicker(msgspec.Struct, tag_field="e", tag="bookTicker", frozen=True, gc=False):
    """``<symbol>@bookTicker``: not used (the depth diffs carry the top of book); not decoded."""


class RawBinanceKline(msgspec.Struct, tag_field="e", tag="kline", frozen=True, gc=False):
    """``<symbol>@kline_<interval>``: not used; not decoded."""


class RawBinanceTicker(msgspec.Struct, tag_field="e", tag="24hrTicker", frozen=True, gc=False):
    """``<symbol>@ticker`` / ``!ticker@arr``: not used; not decoded."""


RawBinanceData = (
    RawBinanceAggTrade
    | RawBinanceTrade
    | RawBinanceDepthUpdate
    | RawBinanceForceOrder
    | RawBinanceMarkPrice
    | RawBinanceBookTicker
    | RawBinanceKline
    | RawBinanceTicker
)
KNOWN_EVENTS = frozenset(cls.__struct_config__.tag for cls in get_args(RawBinanceData))


class RawBinanceCombinedFrame(msgspec.Struct, frozen=True, gc=False):
    """``/stream?streams=...`` wrapper."""

    stream: str
    data: RawBinanceData | list[RawBinanceData]


# REST bodies.


class RawBinanceSymbolFilter(msgspec.Struct, frozen=True, gc=False):
    """An entry of a symbol's ``filters`` in ``/fapi/v1/exchangeInfo`` (the price filter has ``tickSize``)."""

    filterType: str
    tickSize: str | None = None


class RawBinanceSymbol(msgspec.Struct, frozen=True, gc=False):
    """A symbol of ``/fapi/v1/exchangeInfo``."""

    symbol: str
    baseAsset: str
    quoteAsset: str
    contractType: str = ""
    status: str = ""
    filters: list[RawBinanceSymbolFilter] = []


class RawBinanceExchangeInfo(msgspec.Struct, frozen=True, gc=False):
    """The body of ``/fapi/v1/exchangeInfo`` (only the symbols are read)."""

    symbols: list[RawBinanceSymbol]


class RawBinanceDepth(msgspec.Struct, frozen=True, gc=False):
    """The body of ``/fapi/v1/depth``: a book snapshot at ``lastUpdateId``."""

    lastUpdateId: int
    bids: RawBinanceLevels
    asks: RawBinanceLevels
    E: int | None = None  # message output time, ms
    T: int | None = None  # transaction time, ms


class RawBinanceOpenInterest(msgspec.Struct, frozen=True, gc=False):
    """The body of ``/fapi/v1/openInterest`` (quantity in base units, time in ms)."""

    symbol: str
    openInterest: Qty
    time: int | None = None


_combined_decoder = msgspec.json.Decoder(RawBinanceCombinedFrame, strict=False)
_data_decoder = msgspec.json.Decoder(RawBinanceData, strict=False)
_exchange_info_decoder = msgspec.json.Decoder(RawBinanceExchangeInfo, strict=False)
_depth_decoder = msgspec.json.Decoder(RawBinanceDepth, strict=False)
_open_interest_decoder = msgspec.json.Decoder(RawBinanceOpenInterest, strict=False)
_any_decoder = msgspec.json.Decoder()

_NOT_PERP = ""  # instrument cache value for a symbol that is not a perpetual swap
_SKIPPED = {
    RawBinanceBookTicker: "skipped:bookTicker",
    RawBinanceKline: "skipped:kline",
    RawBinanceTicker: "skipped:ticker",
}
_LIQUIDATED: dict[str, Literal["long", "short"]] = {"SELL": "long", "BUY": "short"}


def _decode_error(exc: msgspec.DecodeError) -> ParseError:
    """A msgspec decoding error raised while parsing -> the :class:`ParseError` to raise instead."""
    if isinstance(exc, msgspec.ValidationError):  # a DecodeError subclass: test it first
        return _validation_error(str(exc))
    return ParseError(Reason.MALFORMED_JSON, str(exc)[:200])


def _validation_error(message: str) -> ParseError:
    """A msgspec validation message -> the reason it stands for (bounds: see ``Price``/``Qty``).

    A number beyond float range ("Number out of range") does not say which field it was in,
    so it is ``bad_number``.
    """
    if message.startswith("Expected `float` >= ") or message.startswith("Expected `float` < "):
        return ParseError(Reason.BAD_QTY, message[:200])
    if message.startswith("Expected `float` > ") or message.startswith("Expected `float` <= "):
        return ParseError(Reason.BAD_PRICE, message[:200])
    if message.startswith("Expected `float`, got") or message.startswith("Number out of range"):
        return ParseError(Reason.BAD_NUMBER, message[:200])
    return ParseError(Reason.SCHEMA, message[:200])


def _trade(data: RawBinanceAggTrade | RawBinanceTrade, instrument: str, recv: int) -> Trade:
    """The :class:`Trade` of an ``aggTrade`` or market ``trade``: ``ts`` from ``T``; ``m`` (the buyer is
    the maker) means the aggressor sold."""
    return Trade(SOURCE, data.s, instrument, data.T * NS_PER_MS, recv, data.p, data.q, "sell" if data.m else "buy")


def _book_delta(data: RawBinanceDepthUpdate, instrument: str, recv: int) -> BookDelta:
    """The :class:`BookDelta` of a diff: ``ts`` from ``E``; ``seq = u``, ``prev_seq = pu``, ``first_seq = U``."""
    return BookDelta(
        venue=SOURCE,
        symbol=data.s,
        instrument=instrument,
        ts=data.E * NS_PER_MS,
        recv=recv,
        bids=data.b,
        asks=data.a,
        seq=data.u,
        prev_seq=data.pu,
        first_seq=data.U,
    )


def _mark(data: RawBinanceMarkPrice, instrument: str, recv: int) -> MarkPrice:
    """The :class:`MarkPrice` of a ``markPriceUpdate``: ``ts`` from ``E``, the index ``i`` and the
    funding rate ``r`` when given (an empty string is none); bad numbers are :class:`ParseError`."""
    return MarkPrice(
        venue=SOURCE,
        symbol=data.s,
        instrument=instrument,
        ts=data.E * NS_PER_MS,
        recv=recv,
        price=positive_price(data.p, "p"),
        index=positive_price(data.i, "i") if data.i else None,
        funding=_finite(data.r, "r") if data.r else None,
    )


def _finite(value: str, what: str) -> float:
    """A finite number of either sign (funding rate), else ``bad_number``."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ParseError(Reason.BAD_NUMBER, f"{what}={value!r}") from None
    if not math.isfinite(number):
        raise ParseError(Reason.BAD_NUMBER, f"{what}={value!r}")
    return number


def _is_partial_depth(stream: str) -> bool:
    """``btcusdt@depth20@100ms`` (top-N levels, not a diff) as opposed to ``btcusdt@depth@100ms``."""
    _, found, rest = stream.partition("@depth")
    return bool(found) and rest[:1].isdigit()


def _check_event_type(item: Any) -> None:
    if not isinstance(item, dict):
        raise ParseError(Reason.SCHEMA, f"expected an event object, got {type(item).__name__}")
    if item.get("e") not in KNOWN_EVENTS:
        raise ParseError(Reason.UNKNOWN_CHANNEL, f"e={item.get('e')!r}"[:200])


def _decode_slow(payload: bytes) -> RawBinanceCombinedFrame | RawBinanceData | Parsed:
    """Control replies, non-compact JSON, and telling apart why a fast-path decode failed."""
    obj = _any_decoder.decode(payload)
    if not isinstance(obj, dict):
        raise ParseError(Reason.SCHEMA, f"expected a JSON object, got {type(obj).__name__}")
    if "stream" in obj and "data" in obj:
        data = obj["data"]
        for item in data if isinstance(data, list) else (data,):
            _check_event_type(item)
        return msgspec.convert(obj, RawBinanceCombinedFrame, strict=False)
    if "e" in obj:
        _check_event_type(obj)
        return msgspec.convert(obj, RawBinanceData, strict=False)
    if "error" in obj:
        raise ParseError(Reason.VENUE_ERROR, msgspec.json.encode(obj["error"]).decode()[:200])
    if "result" in obj and "id" in obj:
        return Parsed("control")
    raise ParseError(Reason.UNKNOWN_CHANNEL, f"keys {sorted(obj)[:8]}"[:200])


class BookSequence(SequenceRule):
    """The USD-M diff-depth rule of the module docstring, for :class:`cascadewatch.connectors.book.BookKeeper`.

    ``last_seq`` is the snapshot's ``lastUpdateId``, then the ``u`` of the last applied diff;
    ``synced`` says whether a diff has been applied since the snapshot.
    """

    def __init__(self) -> None:
        super().__init__()
        self.synced = False

    def reset(self) -> None:
        """Forget the sequence; the next diffs are skipped until a snapshot."""
        super().reset()
        self.synced = False

    def on_snapshot(self, snapshot: SeqStart) -> None:
        """Start from the snapshot's ``lastUpdateId``; the first diff must straddle it."""
        super().on_snapshot(snapshot)
        self.synced = False

    def check(self, delta: SeqStep) -> Verdict:
        """Binance's rule: skip diffs before the snapshot, sync on the one that straddles it.

        After that, each diff's ``pu`` must equal the last ``u``.
        """
        if self.last_seq is None:
            return Verdict.SKIP
        if not self.synced:
            if delta.seq < self.last_seq:  # u < lastUpdateId: already in the snapshot
                return Verdict.SKIP
            if not bridges(self.last_seq, delta.first_seq, delta.prev_seq):  # missed diffs
                return Verdict.GAP
            self.synced = True
        elif delta.prev_seq != self.last_seq:
            return Verdict.GAP
        self.last_seq = delta.seq
        return Verdict.APPLY

    def describe_gap(self, delta: SeqStep) -> str:
        """Which rule the diff broke: the sync after the snapshot or the ``pu`` continuation."""
        if not self.synced:
            return f"first diff after snapshot lastUpdateId={self.last_seq} starts at U={delta.first_seq}"
        return super().describe_gap(delta)


def bridges(last_update_id: int, first: int | None, prev: int | None) -> bool:
    """Whether a diff with ``u >= lastUpdateId`` may be the first one applied after a snapshot.

    Rule 3: ``U <= lastUpdateId`` (the snapshot falls inside the diff), or ``pu == lastUpdateId``
    (the snapshot is exactly the state before the diff: a quiet book whose ``lastUpdateId``
    equals the previous diff's ``u``).

    >>> bridges(100, 95, 94), bridges(100, 101, 100), bridges(100, 104, 103)
    (True, True, False)
    """
    return (first is not None and first <= last_update_id) or prev == last_update_id


class Parser(VenueParser):
    """Binance USD-M frames -> normalized events (see the module docstring)."""

    SOURCE = SOURCE

    @classmethod
    def sequence_rule(cls) -> BookSequence:
        """Binance's sequence rule (:class:`BookSequence`)."""
        return BookSequence()

    def __init__(self, catalog: Catalog | None = None) -> None:
        super().__init__(catalog)
        # symbol -> canonical instrument, or _NOT_PERP; filled lazily and by exchangeInfo
        self._instruments: dict[str, str] = {}

    # -- websocket -----------------------------------------------------------------------------

    HAS_HOT_EVENT = True

    def hot_event(self, payload: bytes, recv: int) -> Trade | BookDelta | MarkPrice | None:
        """A combined-stream ``aggTrade`` (nine frames in ten), diff-depth or ``markPrice`` frame of a
        known perpetual decoded straight into its :class:`Trade`, :class:`BookDelta` or
        :class:`MarkPrice`, else ``None`` (see :meth:`VenueParser.hot_event`).

        Every combined-stream frame is decoded (looking for the stream name first cost more than
        decoding the rare other frames twice); the decode and the event are :meth:`parse_ws`'s
        own, a partial-depth stream is left to it as it skips it, and a frame it cannot decode or
        parse is ``None`` (:meth:`parse_ws` then says why). ``payload`` may end with the line's
        newline (JSON whitespace).
        """
        if payload[:11] != b'{"stream":"':
            return None
        try:
            frame = _combined_decoder.decode(payload)
        except (msgspec.DecodeError, RecursionError):  # ValidationError included; too deep to skip
            return None
        data: Any = frame.data
        cls = type(data)
        if cls is not RawBinanceAggTrade and cls is not RawBinanceDepthUpdate and cls is not RawBinanceMarkPrice:
            return None
        instrument = self._instruments.get(data.s)
        if not instrument:
            return None
        if cls is RawBinanceAggTrade:
            return _trade(data, instrument, recv)
        if cls is RawBinanceDepthUpdate:
            return None if _is_partial_depth(frame.stream) else _book_delta(data, instrument, recv)
        try:
            return _mark(data, instrument, recv)
        except ParseError:
            return None

    def parse_ws(self, payload: bytes | str, recv: int) -> Parsed:
        """Parse one combined-stream (or raw) websocket frame into events or a skip reason."""
        try:
            if isinstance(payload, str):
                payload = payload.encode()
            head = payload[:9]
            frame: RawBinanceCombinedFrame | RawBinanceData | Parsed | None = None
            try:  # one-pass decoders for Binance's compact frames
                if head == b'{"stream"':
                    frame = _combined_decoder.decode(payload)
                    data = frame.data
                    if type(data) is RawBinanceAggTrade:  # nine frames in ten: straight to the Trade
                        instrument = self._instruments.get(data.s)
                        if instrument:
                            return Parsed("trade", [_trade(data, instrument, recv)])
                elif head[:6] == b'{"e":"':
                    frame = _data_decoder.decode(payload)
            except msgspec.ValidationError:
                pass  # _decode_slow says why
            if frame is None:
                frame = _decode_slow(payload)
            if isinstance(frame, RawBinanceCombinedFrame):
                data = frame.data
                if type(data) is RawBinanceDepthUpdate and _is_partial_depth(frame.stream):
                    return Parsed("skipped:partial_depth")
            elif isinstance(frame, Parsed):
                return frame
            else:
                data = frame
            if type(data) is list:
                return self._parse_list(data, recv)
            return self._parse_data(data, recv)
        except msgspec.DecodeError as exc:  # other exceptions are bugs: the frame decoder counts them
            raise _decode_error(exc) from None

    def _parse_list(self, items: list, recv: int) -> Parsed:
        """``data`` arrays (``!markPrice@arr``): the events of all elements; the kind of the first
        element that gave events, else of the first element."""
        events: list = []
        kind = None
        for item in items:
            parsed = self._parse_data(item, recv)
            if parsed.events:
                if not events:
                    kind = parsed.kind
                events.extend(parsed.events)
            elif kind is None:
                kind = parsed.kind
        return Parsed(kind or "skipped:empty", events)

    def _parse_data(self, data: Any, recv: int) -> Parsed:
        cls = type(data)
        if cls is RawBinanceDepthUpdate:
            instrument = self._instrument(data.s)
            if not instrument:
                return Parsed("skipped:not_perpetual")
            return Parsed("book", [_book_delta(data, instrument, recv)])
        if cls is RawBinanceAggTrade or cls is RawBinanceTrade:
            if cls is RawBinanceTrade and data.X != "MARKET":
                return Parsed("skipped:nonmarket_trade")
            instrument = self._instrument(data.s)
            if not instrument:
                return Parsed("skipped:not_perpetual")
            return Parsed("trade", [_trade(data, instrument, recv)])
        if cls is RawBinanceMarkPrice:
            return self._mark_price(data, recv)
        if cls is RawBinanceForceOrder:
            return self._liquidation(data.o, recv)
        return Parsed(_SKIPPED[cls])

    def _mark_price(self, data: RawBinanceMarkPrice, recv: int) -> Parsed:
        instrument = self._instrument(data.s)
        if not instrument:
            return Parsed("skipped:not_perpetual")
        return Parsed("mark_price", [_mark(data, instrument, recv)])

    def _liquidation(self, order: RawBinanceForceOrderDetail, recv: int) -> Parsed:
        instrument = self._instrument(order.s)
        if not instrument:
            return Parsed("skipped:not_perpetual")
        side = _LIQUIDATED.get(order.S)
        if side is None:
            raise ParseError(Reason.SCHEMA, f"forceOrder side S={order.S!r}")
        average = non_negative(order.ap, "ap")
        price = average if average > 0 else positive_price(order.p, "p")
        filled = non_negative(order.z, "z") if order.z is not None else 0.0
        qty = filled if filled > 0 else non_negative(order.q, "q")
        return Parsed(
            "liquidation",
            [
                Liquidation(
                    venue=SOURCE,
                    symbol=order.s,
                    instrument=instrument,
                    ts=order.T * NS_PER_MS,
                    recv=recv,
                    price=price,
                    qty=qty,
                    side=side,
                    notional=price * qty,
                )
            ],
        )

    # -- symbols -------------------------------------------------------------------------------

    def instrument_of(self, symbol: str) -> str:
        """Canonical instrument of ``symbol`` (the catalog, else the split name); ``""`` if none."""
        try:
            return self._instrument(symbol)
        except ParseError:
            return ""

    def _instrument(self, symbol: str) -> str:
        """Canonical instrument of ``symbol``, ``""`` if it is not a perpetual swap."""
        instrument = self._instruments.get(symbol)
        if instrument is not None:
            return instrument
        info = self.catalog.get(symbol)
        if info is not None:
            instrument = info.instrument
        else:
            pair = split_concatenated(symbol)
            if pair is None:
                if "_" in symbol:  # dated delivery contract, BTCUSDT_240628
                    return _NOT_PERP
                raise ParseError(Reason.UNKNOWN_INSTRUMENT, repr(symbol)[:80])
            instrument = canonical(*pair)
        self._instruments[symbol] = instrument
        return instrument

    # -- REST ----------------------------------------------------------------------------------

    def parse_rest(self, path: str, body: bytes, recv: int) -> Parsed:
        """Parse a REST response (exchange info, depth snapshot, open interest) into events or a skip reason."""
        try:
            url = urlsplit(path)
            route = url.path.rstrip("/")
            if route == "/fapi/v1/depth":
                return self._depth_snapshot(url.query, body, recv)
            if route == "/fapi/v1/openInterest":
                return self._open_interest(body, recv)
            if route == "/fapi/v1/exchangeInfo":
                return self._exchange_info(body)
            raise ParseError(Reason.UNKNOWN_REST_PATH, path[:200])
        except msgspec.DecodeError as exc:  # other exceptions are bugs: the frame decoder counts them
            raise _decode_error(exc) from None

    def _exchange_info(self, body: bytes) -> Parsed:
        info = _exchange_info_decoder.decode(body)
        for entry in info.symbols:
            if entry.contractType != "PERPETUAL":
                self._instruments[entry.symbol] = _NOT_PERP
                self.catalog.by_symbol.pop(entry.symbol, None)  # no longer a perpetual
                continue
            tick = next((f.tickSize for f in entry.filters if f.filterType == "PRICE_FILTER"), None)
            instrument = canonical(entry.baseAsset, entry.quoteAsset)
            self.catalog.add(
                InstrumentInfo(
                    symbol=entry.symbol,
                    instrument=instrument,
                    base=entry.baseAsset,
                    quote=entry.quoteAsset,
                    tick=positive_price(tick, "tickSize") if tick is not None else 0.0,
                )
            )
            self._instruments[entry.symbol] = instrument
        return Parsed("instruments")

    def _depth_snapshot(self, query: str, body: bytes, recv: int) -> Parsed:
        symbols = parse_qs(query).get("symbol")
        if not symbols:
            raise ParseError(Reason.SCHEMA, "depth path without symbol=")
        symbol = symbols[0]
        depth = _depth_decoder.decode(body)
        instrument = self._instrument(symbol)
        if not instrument:
            return Parsed("skipped:not_perpetual")
        return Parsed(
            "book",
            [
                BookSnapshot(
                    venue=SOURCE,
                    symbol=symbol,
                    instrument=instrument,
                    ts=depth.E * NS_PER_MS if depth.E is not None else recv,
                    recv=recv,
                    bids=depth.bids,
                    asks=depth.asks,
                    seq=depth.lastUpdateId,
                )
            ],
        )

    def _open_interest(self, body: bytes, recv: int) -> Parsed:
        oi = _open_interest_decoder.decode(body)
        instrument = self._instrument(oi.symbol)
        if not instrument:
            return Parsed("skipped:not_perpetual")
        return Parsed(
            "open_interest",
            [
                OpenInterest(
                    venue=SOURCE,
                    symbol=oi.symbol,
                    instrument=instrument,
                    ts=oi.time * NS_PER_MS if oi.time is not None else recv,
                    recv=recv,
                    qty=oi.openInterest,
                    notional=None,
                )
            ],
        )


# =============================================================================================
# Live connection: endpoints, subscriptions, symbol discovery, order-book bootstrap.
# Used by connectors/session.py and connectors/live.py; the parser above does not use it.
# The names below are the same in every venue module (see connectors/venues/live_common.py).
#
# Binance USD-M (2026): market streams (aggTrade, markPrice, forceOrder) are served on the
# ``/market`` path and book streams (depth, bookTicker) on ``/public``; the old root URL accepts
# subscriptions and then sends nothing, which the stale watchdog catches. The server pings every
# 3 minutes (the websockets library answers with pongs); a connection lives at most 24 h, so it
# is rolled over before; at most 10 incoming messages per second per connection (pongs count),
# and a connection carries at most 1024 streams (200 on the newer paths: the default here).
# ``forceOrder`` pushes at most one liquidation per symbol per second (a lower bound).
# =============================================================================================


LIVE = LiveDefaults(
    ws_url="wss://fstream.binance.com/market/stream",
    ws_book_url="wss://fstream.binance.com/public/stream",
    rest_url="https://fapi.binance.com",
    max_lifetime_s=23.5 * 3600,
    heartbeat_s=0.0,  # the server pings; websockets answers
    max_topics_per_connection=200,
    max_topics_per_message=50,
    subscribe_per_s=4.0,  # of the 10 messages/s allowed, leave room for pongs
    subscribe_burst=4,
    poll_s=30.0,  # /fapi/v1/openInterest per symbol (no websocket stream for it)
    book_depth=1000,
    rest_weight_per_min=2400,  # the per-IP limit; /fapi/v1/depth at 1000 levels weighs 20
    rest_weight_header="X-MBX-USED-WEIGHT-1m",
)
MARKET_STREAMS = ("aggTrade", "markPrice@1s", "forceOrder")
BOOK_STREAM = "depth@100ms"


def native_symbol(asset: str, quote: str = "USDT") -> str:
    """``BTC`` -> ``BTCUSDT`` (USD-M perpetual)."""
    return f"{asset}{quote}".upper()


def instruments_paths(symbols: _Sequence[str]) -> list[str]:
    """REST bodies that bootstrap instrument metadata (the parser reads exchangeInfo)."""
    return ["/fapi/v1/exchangeInfo"]


class _ListedSymbol(msgspec.Struct):
    symbol: str
    contractType: str = ""
    status: str = ""


class _ListedBody(msgspec.Struct):
    symbols: list[_ListedSymbol]


def listed_symbols(path: str, body: bytes) -> set[str]:
    """Perpetuals exchangeInfo lists as trading; raises ``msgspec.DecodeError`` on a bad body."""
    listed = msgspec.json.decode(body, type=_ListedBody)
    return {s.symbol for s in listed.symbols if s.contractType == "PERPETUAL" and s.status in ("TRADING", "")}


def poll_paths(symbols: _Sequence[str]) -> list[str]:
    """Open interest has no websocket stream: poll it (every ``poll_s``)."""
    return [f"/fapi/v1/openInterest?symbol={symbol}" for symbol in symbols]


def depth_path(symbol: str, limit: int = 1000) -> str:
    """The REST path of the depth snapshot of ``symbol`` with ``limit`` levels."""
    return f"/fapi/v1/depth?symbol={symbol}&limit={limit}"


def book_topic(symbol: str) -> str:
    """The stream name of ``symbol``'s diff book."""
    return f"{symbol.lower()}@{BOOK_STREAM}"


def connections(symbols: _Sequence[str], settings: LiveSettings) -> list[ConnectionSpec]:
    """Market streams on ``ws_url`` (``/market``), diff depth on ``ws_book_url`` (``/public``)."""
    market = [f"{symbol.lower()}@{stream}" for symbol in symbols for stream in MARKET_STREAMS]
    books = [book_topic(symbol) for symbol in symbols]
    limit = settings.max_topics_per_connection
    return plan_connections("market", settings.ws_url, market, limit) + plan_connections(
        "public", settings.ws_book_url, books, limit
    )


def subscribe_messages(topics: _Sequence[str], per_message: int, first_id: int = 1) -> list[str]:
    """``{"method": "SUBSCRIBE", "params": [...], "id": n}`` frames of at most ``per_message`` streams."""
    return _requests("SUBSCRIBE", topics, per_message, first_id)


def unsubscribe_messages(topics: _Sequence[str], per_message: int, first_id: int = 1) -> list[str]:
    """The ``UNSUBSCRIBE`` messages for ``topics``, at most ``per_message`` streams each, ids from ``first_id``."""
    return _requests("UNSUBSCRIBE", topics, per_message, first_id)


def _requests(method: str, topics: _Sequence[str], per_message: int, first_id: int) -> list[str]:
    return [
        msgspec.json.encode({"method": method, "params": group, "id": first_id + i}).decode()
        for i, group in enumerate(chunk(topics, per_message))
    ]


def heartbeat_message() -> str | None:
    """Binance pings us; nothing to send."""
    return None


def is_data(payload: bytes) -> bool:
    """An event frame (``{"stream":..., "data": {"e": ...}}`` or a raw ``{"e": ...}``), not an ack."""
    return b'"e":' in payload[:120]


def rollover_hint(payload: bytes) -> bool:
    """Binance announces nothing before it closes a connection at 24 h."""
    return False


class _KeyData(msgspec.Struct):
    e: str = ""
    E: int = 0
    s: str = ""
    a: int | None = None
    u: int | None = None


class _KeyFrame(msgspec.Struct):
    stream: str = ""
    data: _KeyData | list[msgspec.Raw] | None = None


_key_frame_decoder = msgspec.json.Decoder(_KeyFrame, strict=False)
_key_data_decoder = msgspec.json.Decoder(_KeyData, strict=False)
_ORDER_BY_E = frozenset({"markPriceUpdate", "forceOrder", "kline"})


def frame_key(payload: bytes) -> tuple[str, int] | None:
    """``(stream, id)`` that grows with each message of a stream: aggTrade ``a``, depthUpdate and
    bookTicker ``u``, markPrice / forceOrder (one per symbol per second) / kline ``E``."""
    try:
        if payload.startswith(b'{"stream"'):
            frame = _key_frame_decoder.decode(payload)
            data, stream = frame.data, frame.stream
        else:
            data = _key_data_decoder.decode(payload)
            stream = f"{data.s}@{data.e}"
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    if type(data) is not _KeyData:
        return None
    event = data.e
    if event == "aggTrade":
        order = data.a
    elif event == "depthUpdate" or event == "bookTicker":
        order = data.u
    elif event in _ORDER_BY_E and data.E > 0:
        order = data.E
    else:
        order = None
    return (stream, order) if order is not None else None


class _DepthProbe(msgspec.Struct):
    e: str = ""
    s: str = ""
    U: int = 0
    u: int = 0
    pu: int = 0


class _CombinedDepthProbe(msgspec.Struct):
    stream: str = ""
    data: _DepthProbe | None = None


class _SnapshotProbe(msgspec.Struct):
    lastUpdateId: int


_depth_probe = msgspec.json.Decoder(_DepthProbe, strict=False)
_combined_depth_probe = msgspec.json.Decoder(_CombinedDepthProbe, strict=False)
_snapshot_probe = msgspec.json.Decoder(_SnapshotProbe, strict=False)


def depth_weight(limit: int) -> int:
    """Request weight of ``/fapi/v1/depth`` at ``limit`` levels (Binance USD-M: 5-50 levels
    weigh 2, 100 weigh 5, 500 weigh 10, 1000 weigh 20).

    >>> depth_weight(1000), depth_weight(100), depth_weight(20)
    (20, 5, 2)
    """
    if limit <= 50:
        return 2
    if limit <= 100:
        return 5
    if limit <= 500:
        return 10
    return 20


class _RestPathProbe(msgspec.Struct):
    path: str = ""


_rest_path_probe = msgspec.json.Decoder(_RestPathProbe, strict=False)


def _dropped_symbol(payload: bytes) -> str:
    """The book symbol of a diff frame or a ``/fapi/v1/depth`` REST frame, ``""`` otherwise."""
    try:
        if payload.startswith(b'{"path"'):
            url = urlsplit(_rest_path_probe.decode(payload).path)
            return parse_qs(url.query).get("symbol", [""])[0] if url.path == "/fapi/v1/depth" else ""
        if b"depthUpdate" not in payload[:200]:
            return ""
        if payload.startswith(b'{"stream"'):
            frame = _combined_depth_probe.decode(payload)
            return frame.data.s if frame.data is not None and not _is_partial_depth(frame.stream) else ""
        return _depth_probe.decode(payload).s
    except (msgspec.DecodeError, msgspec.ValidationError):
        return ""


class _DepthBook:
    """One symbol's live side: buffering diffs until a snapshot bridges them.

    ``buffer`` holds ``(recv, payload, mark, sent)``: ``sent`` is true for the diff that broke
    the chain (already handed over, so the dataflow saw the gap). ``snapshot`` is a snapshot
    newer than every buffered diff, held until a diff reaches its ``lastUpdateId`` (since
    ``held_at``). ``invalid_since`` (clock seconds) is ``None`` while the book is in sync.
    """

    __slots__ = ("rule", "waiting", "fetching", "buffer", "snapshot", "held_at", "invalid_since")

    def __init__(self, since: float) -> None:
        self.rule = BookSequence()
        self.waiting = True  # buffering diffs until a snapshot
        self.fetching = False  # a snapshot request is queued or in flight
        self.buffer: list[tuple[int, bytes, SeqMark, bool]] = []
        self.snapshot: tuple[str, int, bytes, int] | None = None  # (path, recv, body, lastUpdateId)
        self.held_at = 0.0
        self.invalid_since: float | None = since


class LiveBooks(BookSync):
    """The USD-M local-book procedure, live side (see "Order book sequence rule" above).

    Per symbol: buffer diffs; at the first buffered diff fetch ``/fapi/v1/depth``. When the
    snapshot arrives, find the first buffered diff with ``u >= lastUpdateId``:

    - it bridges (``U <= lastUpdateId <= u`` or ``pu == lastUpdateId``): hand over the
      snapshot, then the buffered diffs (the dataflow's :class:`BookSequence` drops those
      already in it and checks the same bridge); the book is in sync;
    - it does not (the snapshot is older than the buffered stream): fetch again, as a retry
      (the REST client backs off first);
    - there is none (the snapshot is newer than every buffered diff): hold the snapshot and
      keep buffering until a diff reaches it (or fetch again after ``resync_timeout_s``).

    In sync, every diff goes straight through; one that breaks ``pu == previous u`` is handed
    over (the dataflow marks the gap), stays at the head of a new buffer (a snapshot taken
    right after it may need it, or the next diff bridges by ``pu``) and one snapshot is
    fetched. So one gap is one ``gap``, one request and one ``resync``, wherever the new
    snapshot falls. A closed connection restarts the symbols whose books it carried (its
    ``close`` event names them, and the dataflow drops those books only).
    """

    def __init__(
        self,
        symbols: _Iterable[str],
        settings: LiveSettings,
        max_buffer: int = 10_000,
        clock: Callable[[], float] = _time.monotonic,
    ) -> None:
        super().__init__()
        self._clock = clock
        now = clock()
        self._books = {symbol: _DepthBook(now) for symbol in symbols}
        self._depth = settings.book_depth
        self._weight = depth_weight(settings.book_depth)
        self._timeout = settings.resync_timeout_s
        self._max_buffer = max_buffer
        self.stale_snapshots = 0
        self.overflows = 0

    def path(self, symbol: str) -> str:
        """The depth snapshot REST path of ``symbol`` at the configured depth."""
        return depth_path(symbol, self._depth)

    def snapshot_path(self, symbol: str) -> str | None:
        """The REST snapshot path of ``symbol``."""
        return self.path(symbol)

    def _fetch(self, symbol: str, book: _DepthBook, retry: bool = False) -> Fetch:
        book.fetching = True
        since = book.invalid_since if book.invalid_since is not None else self._clock()
        return Fetch(self.path(symbol), weight=self._weight, since=since, retry=retry)

    def _restart(self, book: _DepthBook) -> list[Action]:
        """Back to buffering; frames held so far are handed over (the dataflow skips them)."""
        held: list[Action] = [Emit(recv, payload) for recv, payload, _, sent in book.buffer if not sent]
        book.rule.reset()
        book.waiting = True
        book.fetching = False
        book.buffer = []
        book.snapshot = None
        if book.invalid_since is None:
            book.invalid_since = self._clock()
        return held

    def invalid(self) -> dict[str, float]:
        """Symbol -> clock seconds since when its book has been invalid (books not in sync)."""
        return {s: b.invalid_since for s, b in self._books.items() if b.invalid_since is not None}

    def on_open(self, topics: _Iterable[str]) -> list[Action]:
        """A fresh subscription: buffer the diffs of the opened books and fetch their snapshots."""
        opened = set(topics)
        out: list[Action] = []
        for symbol, book in self._books.items():
            if book_topic(symbol) in opened:
                out.extend(self._restart(book))
        return out

    def book_symbols(self, topics: _Iterable[str]) -> list[str]:
        """The symbols whose diff-depth stream is among ``topics``."""
        carried = set(topics)
        return [symbol for symbol in self._books if book_topic(symbol) in carried]

    def on_close(self, topics: _Iterable[str]) -> list[Action]:
        """Only the books the closed connection carried start again (the market connection
        carries none: its close refetches nothing)."""
        out: list[Action] = []
        for symbol in self.book_symbols(topics):
            out.extend(self._restart(self._books[symbol]))
            self.resyncs += 1
        return out

    def resync_all(self) -> list[Action]:
        """Restart every book (buffer diffs, fetch a snapshot); returns the fetches."""
        out: list[Action] = []
        for book in self._books.values():
            out.extend(self._restart(book))
        self.resyncs += len(self._books)
        return out

    def on_frame(self, recv: int, payload: bytes) -> _Sequence[Action]:
        """Check a diff against its book's sequence: hand it over, or buffer and refetch on a gap."""
        if b"depthUpdate" not in payload[:200]:
            return PASS
        try:
            if payload.startswith(b'{"stream"'):
                frame = _combined_depth_probe.decode(payload)
                if frame.data is None or _is_partial_depth(frame.stream):
                    return PASS
                diff = frame.data
            else:
                diff = _depth_probe.decode(payload)
        except (msgspec.DecodeError, msgspec.ValidationError):
            return PASS  # the parser makes it a dead letter
        book = self._books.get(diff.s)
        if book is None:
            return PASS
        mark = SeqMark(diff.u, diff.pu, diff.U)
        if book.waiting:
            return self._buffer(diff.s, book, (recv, payload, mark, False))
        if book.rule.check(mark) is Verdict.GAP:
            self.gaps += 1
            self.resyncs += 1
            self._restart(book)
            book.buffer.append((recv, payload, mark, True))
            return [THIS, self._fetch(diff.s, book)]
        return PASS

    def _buffer(self, symbol: str, book: _DepthBook, held: tuple[int, bytes, SeqMark, bool]) -> list[Action]:
        out: list[Action] = []
        if len(book.buffer) >= self._max_buffer:  # no snapshot for a long time: keep the newest
            self.overflows += 1
            out = [Emit(recv, payload) for recv, payload, _, sent in book.buffer if not sent]
            book.buffer.clear()
        book.buffer.append(held)
        if book.snapshot is not None:
            out.extend(self._settle(symbol, book))
        elif not book.fetching:
            out.append(self._fetch(symbol, book))
        return out

    def on_dropped(self, payload: bytes) -> tuple[list[str], list[Action]]:
        """A diff or snapshot of ours dropped by the hand-over queue: a book in sync starts
        again (one gap; its next diff asks for the snapshot, as after a reconnect); one
        already waiting goes on waiting."""
        symbol = _dropped_symbol(payload)
        book = self._books.get(symbol)
        if book is None:
            return [], []
        if not book.waiting:
            self.gaps += 1
            self.resyncs += 1
            self._restart(book)  # in sync: nothing held
        return [symbol], []

    def on_rest(self, path: str, recv: int, body: bytes) -> list[Action] | None:
        """A depth snapshot arrived: the actions that sync its book, or ``None`` if the path is not a depth snapshot."""
        url = urlsplit(path)
        if url.path.rstrip("/") != "/fapi/v1/depth":
            return None
        symbol = parse_qs(url.query).get("symbol", [""])[0]
        book = self._books.get(symbol)
        if book is None:
            return None
        if not book.waiting:
            return []  # an unasked-for snapshot would only restart a good book
        book.fetching = False
        try:
            last_id = _snapshot_probe.decode(body).lastUpdateId
        except (msgspec.DecodeError, msgspec.ValidationError):  # the parser dead-letters the body
            return [Emit(recv, rest_frame(path, body), rest=True), self._fetch(symbol, book, retry=True)]
        book.snapshot = (path, recv, body, last_id)
        book.held_at = self._clock()
        return self._settle(symbol, book)

    def _settle(self, symbol: str, book: _DepthBook) -> list[Action]:
        """Use the held snapshot if a buffered diff bridges it (see the class docstring)."""
        assert book.snapshot is not None
        path, recv, body, last_id = book.snapshot
        first = next((mark for _, _, mark, _ in book.buffer if mark.seq >= last_id), None)
        if first is None:
            return []  # newer than every buffered diff: wait for the diff that reaches it
        book.snapshot = None
        if not bridges(last_id, first.first_seq, first.prev_seq):
            self.stale_snapshots += 1  # older than what we buffered: fetch again, after a backoff
            return [self._fetch(symbol, book, retry=True)]
        book.rule.on_snapshot(SeqMark(last_id))
        out: list[Action] = [Emit(recv, rest_frame(path, body), rest=True)]
        for i, (held_recv, payload, mark, sent) in enumerate(book.buffer):
            verdict = book.rule.check(mark)
            if verdict is Verdict.GAP:  # the buffered stream itself is broken: the dataflow sees it here
                out.append(Emit(held_recv, payload))
                self.gaps += 1
                self.resyncs += 1
                rest = book.buffer[i + 1 :]
                book.rule.reset()
                book.buffer = [(held_recv, payload, mark, True), *rest]
                out.append(self._fetch(symbol, book))
                return out
            if verdict is Verdict.APPLY or not sent:  # a diff handed over at the gap goes again if it applies
                out.append(Emit(held_recv, payload))
        book.buffer = []
        book.waiting = book.fetching = False
        book.invalid_since = None
        return out

    def tick(self, now: float) -> list[Action]:
        """Fetch again for a snapshot held ``resync_timeout_s`` without a diff reaching it."""
        out: list[Action] = []
        for symbol, book in self._books.items():
            if book.snapshot is not None and now - book.held_at >= self._timeout:
                book.snapshot = None
                self.stale_snapshots += 1
                out.append(self._fetch(symbol, book, retry=True))
        return out
