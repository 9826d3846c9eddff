"""OKX v5 perpetual swaps (``okx-swap``): raw schemas and the frame parser.

Websocket frames are ``{"arg": {"channel": ..., "instId": ...}, "action": ..., "data": [...]}``
(``arg`` carries ``instType`` instead of ``instId`` for ``liquidation-orders`` and
``instruments``); ``action`` (``snapshot`` / ``update``) exists on incremental book channels only.
Dispatch is on ``arg.channel``:

====================== ============================= ============================================
channel                kind                          events (one per ``data`` element / detail)
====================== ============================= ============================================
trades, trades-all     ``trade``                     :class:`Trade` (``px``, ``sz`` contracts,
                                                     ``side`` = taker side, ``ts``)
books, books-l2-tbt,   ``book``                      ``action == "snapshot"``: :class:`BookSnapshot`;
books50-l2-tbt         (``book_heartbeat``, below)   ``"update"``: :class:`BookDelta` (see the rule)
books5                 ``book``                      :class:`BookSnapshot` of the top 5 levels
                                                     (every push is a full snapshot; do not mix it
                                                     with a deep book channel on one instrument)
liquidation-orders     ``liquidation``               :class:`Liquidation` per ``details`` entry
mark-price             ``mark_price``                :class:`MarkPrice` (``markPx``; ``funding``
                                                     = last ``funding-rate`` seen, else ``None``)
open-interest          ``open_interest``             :class:`OpenInterest`
funding-rate           ``funding``                   none: the rate is remembered (below)
instruments            ``instruments``               none: SWAP rows refresh the catalog
tickers                ``skipped:tickers``           none
bbo-tbt                ``skipped:bbo``               none (top-of-book only: it would replace the
                                                     deep book)
index-tickers,         ``skipped:<channel>``         none
price-limit,
estimated-price
candle*/mark-price-    ``skipped:candle``            none
candle*/index-candle*
====================== ============================= ============================================

Any other channel raises ``ParseError("unknown_channel")``.

Control frames (no events): ``{"event": "subscribe" | "unsubscribe" | "login" |
"channel-conn-count" ...}`` is kind ``control``; ``{"event": "error", "code": "60012", "msg": ...}``
(a rejected subscription or request) is kind ``control:error`` and ``{"event": "notice", "code":
"64008", ...}`` (the server will close the connection for an upgrade within ~60 s: reconnect) is
kind ``control:notice`` -- both still count as control, but get their own label so they show in
the summary. The text frame ``pong`` (reply to our ``ping``) is ``control``.

Instruments that are not perpetual swaps (``FUTURES`` such as ``BTC-USD-220527``, ``SPOT`` such
as ``BTC-USDT``, ``MARGIN``/``OPTION`` liquidations) give kind ``skipped:not_swap`` and no events:
a swap is an ``instId`` ending in ``-SWAP`` (and, for ``liquidation-orders``, ``instType ==
"SWAP"``). The skipped-channel check comes first, so a ``tickers`` frame of a future is
``skipped:tickers``.

Contracts and units. Every ``sz`` / ``oi`` is a number of contracts, converted with the catalog's
contract value (:meth:`InstrumentInfo.to_base`): linear ``BTC-USDT-SWAP`` has ``ctVal`` 0.01 BTC,
so ``qty = sz * 0.01``; inverse ``BTC-USD-SWAP`` has ``ctVal`` 100 USD, so ``qty = sz * 100 /
price`` (the trade / level / bankruptcy price of the same row). Trades, books and liquidations of
a swap missing from the catalog raise ``ParseError("unknown_instrument")``; mark price, open
interest (when ``oiCcy`` is given) and funding do not need the catalog. The parser starts with the
bundled catalog (``data/okx_instruments.json``: the main USDT- and USD-margined swaps from the
recorded 2022-05-13 REST reply) and is refreshed by ``parse_rest`` on
``/api/v5/public/instruments?instType=SWAP`` (or the ``instruments`` websocket channel). A live
session must fetch that REST reply at start: ``liquidation-orders`` with ``instType: SWAP``
carries every swap of the venue, and contract values may have changed since 2022.
``ctMult`` is 1 for every swap and is not applied. Catalog rows whose ``ctType`` is not
``linear``/``inverse``, whose ``ctVal`` is not a positive number, or whose ``ctValCcy`` is not the
base (linear) / quote (inverse) currency are left out (trading them then raises
``unknown_instrument``). Canonical names come from the ``instId``: ``BTC-USDT-SWAP`` ->
``BTC-USDT-PERP``, ``BTC-USD-SWAP`` -> ``BTC-USD-PERP``.

Per channel:

- ``trades``: one frame may hold several rows; one row may aggregate several fills of one taker
  order at one price (``count``). ``side`` is the taker's side. ``ts`` is the trade time.
- ``liquidation-orders``: ``price = bkPx`` (bankruptcy price), ``qty = to_base(sz)``,
  ``notional = price * qty``, ``ts`` from the detail. ``side`` is the liquidated position:
  ``posSide`` ``long``/``short`` (hedge mode) is used as is; with ``posSide == "net"`` (one-way
  mode) or empty, the liquidation *order* side decides: ``side == "sell"`` means a long was
  liquidated, ``"buy"`` a short. OKX documents that this channel does not carry every
  liquidation (at most one order per contract per second) and that rows are not necessarily in
  time order. If a frame mixes known swaps and swaps missing from the catalog, the known ones
  are emitted with kind ``liquidation:dropped_unknown_instrument``; if none is known it raises
  ``unknown_instrument``.
- ``open-interest``: ``qty = oiCcy`` (already in coin) when present, else ``oi * ctVal`` (linear
  only; an inverse row without ``oiCcy`` is ``schema``); ``notional = oiUsd`` when present (USD,
  taken as the quote for USDT/USDC swaps), else ``None``.
- ``funding-rate``: no event; ``fundingRate`` is remembered per ``instId`` and attached as
  ``funding`` to every later :class:`MarkPrice` of that swap (this is the parser's only state
  besides the catalog; a row without ``fundingRate`` keeps the previous value).
  ``mark-price`` has no index price: ``index = None``.
- ``checksum`` on book frames is deprecated by OKX and ignored.

Order book sequence rule (OKX v5 docs, "Order book channel" / "Sequence ID"), for the book module.
It applies to ``books``, ``books-l2-tbt`` and ``books50-l2-tbt``; ``seqId`` is per ``instId``:

1. the first message after subscribing is ``action == "snapshot"`` (``prevSeqId == -1``); it is
   emitted as :class:`BookSnapshot` with ``seq = seqId``. Replace the book with it (a snapshot
   may come at any time, e.g. after a resubscribe: it always replaces the book and restarts the
   chain).
2. every following ``action == "update"`` is a :class:`BookDelta` with ``seq = seqId`` and
   ``prev_seq = prevSeqId``. It is in sequence iff ``prev_seq`` equals the ``seq`` of the
   previous message (snapshot or delta) of that instrument. Otherwise messages were lost: drop
   the book and resubscribe (OKX resends a snapshot; there is no REST splice for this stream).
3. heartbeat: after ~60 s without changes OKX sends an update with ``asks == bids == []`` and
   ``seqId == prevSeqId``, both equal to the previous message's ``seqId``. It is emitted as an
   empty :class:`BookDelta` (``seq == prev_seq``), kind ``book_heartbeat`` (when every row of
   the frame is one): it passes rule 2 and changes nothing.
4. sequence reset: during maintenance OKX may reset the sequence; the reset message is an
   update whose ``seqId`` is SMALLER than its ``prevSeqId`` (docs example: ``prevSeqId=15,
   seqId=3``), and its ``prevSeqId`` still equals the previous ``seqId``. Accept it (rule 2
   holds), apply it, and continue from the new ``seqId`` (the next update has ``prevSeqId ==
   3``). So: never require ``seq > prev_seq`` or monotonic ``seq``; only the chain
   ``prev_seq == last seq`` matters. It is worth counting resets (``seq < prev_seq``) apart.
5. sizes are absolute (contracts converted to base here); ``qty == 0`` deletes the level.
6. recordings from before OKX added ``seqId`` (e.g. the 2022-05-13 session) have neither field:
   the snapshot has ``seq = 0`` and updates have ``seq = 0, prev_seq = None``. ``prev_seq is
   None`` means the delta cannot be gap-checked: apply updates in arrival order. (``seq == 0``
   alone is not the marker: 0 is a valid ``seqId``.)

OKX does not allow ``books-l2-tbt`` together with ``books`` / ``books50-l2-tbt`` for one
instrument; the chain is per channel, so a session should use one deep book channel per swap.

``books5`` pushes are full 5-level snapshots (``seq = seqId`` or 0); the REST body of
``/api/v5/market/books?instId=...`` is a :class:`BookSnapshot` (``seq = seqId`` when the body
has it, else 0; ``ts`` from the body), useful for bootstrap checks but not spliceable with the
websocket chain.

REST bodies (``parse_rest``): ``{"code": "0", "msg": "", "data": [...]}``; a ``code`` other than
``"0"`` raises ``ParseError("rest_error")``. ``/api/v5/public/instruments`` -> kind
``instruments`` (``skipped:not_swap`` if the query asks another ``instType``);
``/api/v5/market/books`` -> ``book``; any other path raises ``ParseError("unknown_rest_path")``.

Validation: prices must be finite and > 0 (``bad_price``), quantities finite and >= 0
(``bad_qty``), numbers parseable (``bad_number`` / ``schema``); malformed JSON is
``malformed_json``, a frame of the wrong shape ``schema``; any other exception is a parser bug
(the frame decoder counts it as ``parser_exception``). Numeric strings are decoded to ``float``/``int`` by msgspec
itself (lax mode), one pass over each frame's ``data``.
"""

from __future__ import annotations

import math
import time as _time
from collections.abc import Sequence as _Sequence
from functools import lru_cache
from importlib import resources
from typing import Literal, TypeVar
from urllib.parse import parse_qs, urlsplit

import msgspec

from cascadewatch.connectors.events import (
    AnyEvent,
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
    SeqStep,
    SequenceRule,
    VenueParser,
    Verdict,
    canonical,
    checked_price,
    checked_qty,
    decode,
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

SOURCE = "okx-swap"

_INF = math.inf
_isfinite = math.isfinite

# --------------------------------------------------------------------------- raw schemas


class RawOkxArg(msgspec.Struct, frozen=True, kw_only=True):
    """``arg`` of a push or an event: the subscribed channel."""

    channel: str
    instId: str = ""
    instType: str = ""


class RawOkxEnvelope(msgspec.Struct, frozen=True, kw_only=True):
    """Every websocket JSON frame; ``data`` is kept raw and decoded by the channel's schema."""

    arg: RawOkxArg | None = None
    action: str = ""
    data: msgspec.Raw = msgspec.Raw()
    event: str = ""
    code: str | int = ""
    msg: str = ""


class RawOkxTrade(msgspec.Struct, frozen=True, kw_only=True):
    """``trades`` / ``trades-all`` data row (``count``, ``source``, ``seqId`` ignored)."""

    instId: str = ""
    tradeId: str = ""
    px: float
    sz: float
    side: Literal["buy", "sell"]
    ts: int


class RawOkxBook(msgspec.Struct, frozen=True, kw_only=True):
    """Book data row: levels ``[price, size, "0" (deprecated), numOrders]``; checksum ignored."""

    asks: list[list[float]]
    bids: list[list[float]]
    ts: int
    seqId: int | None = None
    prevSeqId: int | None = None


class RawOkxLiquidationDetail(msgspec.Struct, frozen=True, kw_only=True):
    """One ``details`` entry of ``liquidation-orders`` (``bkLoss``, ``ccy`` ignored)."""

    bkPx: float
    sz: float
    side: str = ""
    posSide: str = ""
    ts: int


class RawOkxLiquidation(msgspec.Struct, frozen=True, kw_only=True):
    """``liquidation-orders`` data row: one instrument and its liquidation details."""

    instId: str
    instType: str = ""
    details: list[RawOkxLiquidationDetail]


class RawOkxMarkPrice(msgspec.Struct, frozen=True, kw_only=True):
    """A row of the ``mark-price`` channel (price in quote currency, ``ts`` in ms)."""

    instId: str = ""
    markPx: float
    ts: int


class RawOkxOpenInterest(msgspec.Struct, frozen=True, kw_only=True):
    """``open-interest`` row; ``oiCcy`` / ``oiUsd`` are optional strings (may be absent)."""

    instId: str = ""
    oi: float
    oiCcy: str = ""
    oiUsd: str = ""
    ts: int


class RawOkxFunding(msgspec.Struct, frozen=True, kw_only=True):
    """``funding-rate`` row; only ``fundingRate`` is used."""

    instId: str = ""
    fundingRate: str = ""
    ts: int = 0


class RawOkxInstrument(msgspec.Struct, frozen=True, kw_only=True):
    """``/api/v5/public/instruments`` (and ``instruments`` channel) row, fields we use."""

    instId: str
    instType: str
    ctType: str = ""
    ctVal: str = ""
    ctValCcy: str = ""
    settleCcy: str = ""
    tickSz: str = ""
    state: str = ""


class RawOkxRestEnvelope(msgspec.Struct, frozen=True, kw_only=True):
    """Every OKX REST body: ``code == "0"`` on success."""

    code: str | int
    msg: str = ""
    data: msgspec.Raw = msgspec.Raw()


_ENVELOPE = msgspec.json.Decoder(RawOkxEnvelope)
_REST = msgspec.json.Decoder(RawOkxRestEnvelope)
# Lax mode: OKX sends numbers as strings ("42219.9"); msgspec converts them while decoding.
_TRADES = msgspec.json.Decoder(list[RawOkxTrade], strict=False)
_BOOKS = msgspec.json.Decoder(list[RawOkxBook], strict=False)
_LIQUIDATIONS = msgspec.json.Decoder(list[RawOkxLiquidation], strict=False)
_MARKS = msgspec.json.Decoder(list[RawOkxMarkPrice], strict=False)
_OPEN_INTEREST = msgspec.json.Decoder(list[RawOkxOpenInterest], strict=False)
_FUNDING = msgspec.json.Decoder(list[RawOkxFunding], strict=False)
_INSTRUMENTS = msgspec.json.Decoder(list[RawOkxInstrument])

_INCREMENTAL_BOOKS = frozenset({"books", "books-l2-tbt", "books50-l2-tbt"})
_SKIPPED = {
    "tickers": "skipped:tickers",
    "bbo-tbt": "skipped:bbo",
    "index-tickers": "skipped:index-tickers",
    "price-limit": "skipped:price-limit",
    "estimated-price": "skipped:estimated-price",
}
_SKIPPED_PREFIXES = ("candle", "mark-price-candle", "index-candle")
_CONTROL_KINDS = {"error": "control:error", "notice": "control:notice"}
_NOT_SWAP = "skipped:not_swap"
_SWAP_SUFFIX = "-SWAP"
_DATA_FILE = "okx_instruments.json"


# --------------------------------------------------------------------------- helpers


_R = TypeVar("_R")


def _number(text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ParseError(Reason.BAD_NUMBER, f"{what}={text!r}") from None
    if not _isfinite(value):
        raise ParseError(Reason.BAD_NUMBER, f"{what}={text!r}")
    return value


def _levels(raw: list[list[float]], info: InstrumentInfo) -> tuple[tuple[float, float], ...]:
    """OKX levels (contracts) -> ``((price, qty_base), ...)``, validated.

    A plain loop: on CPython 3.11 it beats comprehension + min/sum checks at every book size.
    """
    ct_val = info.ct_val
    out: list[tuple[float, float]] = []
    append = out.append
    try:
        if info.inverse:
            for entry in raw:
                price = entry[0]
                size = entry[1]
                if not 0.0 < price < _INF:  # also false for NaN
                    raise ParseError(Reason.BAD_PRICE, f"level price={price!r}")
                if not 0.0 <= size < _INF:
                    raise ParseError(Reason.BAD_QTY, f"level size={size!r}")
                append((price, size * ct_val / price))
        else:
            for entry in raw:
                price = entry[0]
                size = entry[1]
                if not 0.0 < price < _INF:
                    raise ParseError(Reason.BAD_PRICE, f"level price={price!r}")
                if not 0.0 <= size < _INF:
                    raise ParseError(Reason.BAD_QTY, f"level size={size!r}")
                append((price, size * ct_val))
    except IndexError:
        raise ParseError(Reason.BAD_LEVEL, "level with fewer than 2 fields") from None
    return tuple(out)


def instrument_info(row: RawOkxInstrument) -> InstrumentInfo | None:
    """Catalog entry of one SWAP instrument row, or ``None`` if it is unusable (see docstring)."""
    parts = row.instId.split("-")
    if row.instType != "SWAP" or len(parts) != 3 or parts[2] != "SWAP" or not parts[0] or not parts[1]:
        return None
    base, quote = parts[0], parts[1]
    if row.ctType == "linear":
        inverse = False
        if row.ctValCcy and row.ctValCcy != base:
            return None
    elif row.ctType == "inverse":
        inverse = True
        if row.ctValCcy and row.ctValCcy != quote:
            return None
    else:
        return None
    try:
        ct_val = float(row.ctVal)
    except ValueError:
        return None
    if not 0.0 < ct_val < _INF:
        return None
    try:
        tick = float(row.tickSz) if row.tickSz else 0.0
    except ValueError:
        tick = 0.0
    if not 0.0 <= tick < _INF:
        tick = 0.0
    return InstrumentInfo(
        symbol=row.instId,
        instrument=canonical(base, quote),
        base=base,
        quote=quote,
        ct_val=ct_val,
        inverse=inverse,
        tick=tick,
    )


def _rest_rows(body: bytes | str, decoder: msgspec.json.Decoder[list[_R]], what: str) -> list[_R]:
    envelope = decode(_REST, body, what)
    assert isinstance(envelope, RawOkxRestEnvelope)
    if str(envelope.code) != "0":
        raise ParseError(Reason.REST_ERROR, f"{what}: code={envelope.code} msg={envelope.msg}"[:200])
    if not envelope.data:
        raise ParseError(Reason.SCHEMA, f"{what}: no data")
    return decode(decoder, envelope.data, what)


@lru_cache(maxsize=1)
def _bundled_infos() -> tuple[InstrumentInfo, ...]:
    body = resources.files("cascadewatch.connectors.venues").joinpath("data", _DATA_FILE).read_bytes()
    rows = _rest_rows(body, _INSTRUMENTS, _DATA_FILE)
    return tuple(info for info in map(instrument_info, rows) if info is not None)


def bundled_catalog() -> Catalog:
    """A fresh catalog holding the bundled swaps (``data/okx_instruments.json``)."""
    catalog = Catalog()
    for info in _bundled_infos():
        catalog.add(info)
    return catalog


def _canonical_from_inst_id(inst_id: str) -> str:
    parts = inst_id.split("-")
    if len(parts) != 3 or not parts[0] or not parts[1]:
        raise ParseError(Reason.SCHEMA, f"instId={inst_id!r}")
    return canonical(parts[0], parts[1])


# --------------------------------------------------------------------------- book sequence


class BookSequence(SequenceRule):
    """The seqId/prevSeqId rule of the module docstring, for :class:`cascadewatch.connectors.book.BookKeeper`.

    A delta continues the book iff ``prev_seq == last_seq`` (a heartbeat has ``seq == prev_seq``;
    a maintenance reset has ``seq < prev_seq`` and still chains). ``prev_seq is None`` (old
    recordings without seqId) cannot be checked and is applied in arrival order.
    """

    def check(self, delta: SeqStep) -> Verdict:
        """OKX's rule: each update's ``prevSeqId`` equals the last ``seqId``."""
        if self.last_seq is None:
            return Verdict.SKIP
        if delta.prev_seq is not None and delta.prev_seq != self.last_seq:
            return Verdict.GAP
        self.last_seq = delta.seq
        return Verdict.APPLY


# --------------------------------------------------------------------------- parser


class Parser(VenueParser):
    """OKX v5 swaps: websocket frames and REST bootstrap bodies -> :class:`Parsed`.

    ``catalog=None`` starts from :func:`bundled_catalog`; a given catalog is used as is.
    """

    SOURCE = SOURCE

    @classmethod
    def sequence_rule(cls) -> BookSequence:
        """OKX's sequence rule (:class:`BookSequence`)."""
        return BookSequence()

    def __init__(self, catalog: Catalog | None = None) -> None:
        super().__init__(catalog if catalog is not None else bundled_catalog())
        self.funding: dict[str, float] = {}
        """Last ``fundingRate`` per ``instId`` (from ``funding-rate``), attached to mark prices."""
        self._names: dict[str, str] = {}
        self._handlers = {
            "trades": self._trades,
            "trades-all": self._trades,
            "books": self._books,
            "books-l2-tbt": self._books,
            "books50-l2-tbt": self._books,
            "books5": self._books,
            "liquidation-orders": self._liquidations,
            "mark-price": self._mark_price,
            "open-interest": self._open_interest,
            "funding-rate": self._funding,
            "instruments": self._instruments_ws,
        }

    # ---------------------------------------------------------------- entry points

    def parse_ws(self, payload: bytes | str, recv: int) -> Parsed:
        """Parse one websocket frame (or a ``pong``) into events or a skip reason."""
        if payload == b"pong" or payload == "pong":
            return Parsed("control")
        envelope = decode(_ENVELOPE, payload, "frame")
        assert isinstance(envelope, RawOkxEnvelope)
        if envelope.event:
            return Parsed(_CONTROL_KINDS.get(envelope.event, "control"))
        arg = envelope.arg
        if arg is None:
            raise ParseError(Reason.SCHEMA, "frame without arg or event")
        channel = arg.channel
        handler = self._handlers.get(channel)
        if handler is None:
            skipped = _SKIPPED.get(channel)
            if skipped is not None:
                return Parsed(skipped)
            if channel.startswith(_SKIPPED_PREFIXES):
                return Parsed("skipped:candle")
            raise ParseError(Reason.UNKNOWN_CHANNEL, channel[:80])
        if not envelope.data:
            raise ParseError(Reason.SCHEMA, f"{channel}: no data")
        return handler(envelope, arg, recv)

    def parse_rest(self, path: str, body: bytes, recv: int) -> Parsed:
        """Parse a REST response (instruments, book snapshot) into events or a skip reason."""
        url = urlsplit(path)
        query = parse_qs(url.query)
        route = url.path.rstrip("/")
        if route == "/api/v5/public/instruments":
            inst_type = query.get("instType", [""])[0]
            if inst_type and inst_type != "SWAP":
                return Parsed(_NOT_SWAP)
            rows = _rest_rows(body, _INSTRUMENTS, route)
            self._load_instruments(rows)
            return Parsed("instruments")
        if route == "/api/v5/market/books":
            symbol = query.get("instId", [""])[0]
            if not symbol:
                raise ParseError(Reason.SCHEMA, f"{path}: no instId")
            if not symbol.endswith(_SWAP_SUFFIX):
                return Parsed(_NOT_SWAP)
            info = self._info(symbol)
            book_rows = _rest_rows(body, _BOOKS, route)
            if not book_rows:
                raise ParseError(Reason.SCHEMA, f"{route}: empty data")
            row = book_rows[0]
            snapshot = BookSnapshot(
                venue=SOURCE,
                symbol=symbol,
                instrument=info.instrument,
                ts=row.ts * NS_PER_MS,
                recv=recv,
                bids=_levels(row.bids, info),
                asks=_levels(row.asks, info),
                seq=row.seqId if row.seqId is not None else 0,
            )
            return Parsed("book", [snapshot])
        raise ParseError(Reason.UNKNOWN_REST_PATH, path[:120])

    # ---------------------------------------------------------------- catalog

    def _info(self, symbol: str) -> InstrumentInfo:
        info = self.catalog.by_symbol.get(symbol)
        if info is None:
            raise ParseError(Reason.UNKNOWN_INSTRUMENT, symbol[:80])
        return info

    def _name(self, symbol: str) -> str:
        name = self._names.get(symbol)
        if name is None:
            info = self.catalog.by_symbol.get(symbol)
            name = info.instrument if info is not None else _canonical_from_inst_id(symbol)
            if len(self._names) >= 100_000:  # bounded even under garbage input
                self._names.clear()
            self._names[symbol] = name
        return name

    def _load_instruments(self, rows: list[RawOkxInstrument]) -> int:
        infos = [info for info in map(instrument_info, rows) if info is not None]
        for info in infos:
            self.catalog.add(info)
            self._names.pop(info.symbol, None)
        return len(infos)

    # ---------------------------------------------------------------- channels

    def _trades(self, envelope: RawOkxEnvelope, arg: RawOkxArg, recv: int) -> Parsed:
        symbol = arg.instId
        if not symbol.endswith(_SWAP_SUFFIX):
            return Parsed(_NOT_SWAP)
        info = self._info(symbol)
        rows: list[RawOkxTrade] = decode(_TRADES, envelope.data, "trades")
        instrument = info.instrument
        ct_val = info.ct_val
        inverse = info.inverse
        events: list[AnyEvent] = []
        for row in rows:
            price = row.px
            size = row.sz
            if not 0.0 < price < _INF:
                checked_price(price, "px")
            if not 0.0 <= size < _INF:
                checked_qty(size, "sz")
            events.append(
                Trade(
                    venue=SOURCE,
                    symbol=symbol,
                    instrument=instrument,
                    ts=row.ts * NS_PER_MS,
                    recv=recv,
                    price=price,
                    qty=size * ct_val / price if inverse else size * ct_val,
                    side=row.side,
                )
            )
        return Parsed("trade", events)

    def _books(self, envelope: RawOkxEnvelope, arg: RawOkxArg, recv: int) -> Parsed:
        symbol = arg.instId
        if not symbol.endswith(_SWAP_SUFFIX):
            return Parsed(_NOT_SWAP)
        info = self._info(symbol)
        if arg.channel in _INCREMENTAL_BOOKS:
            if envelope.action == "update":
                snapshot = False
            elif envelope.action == "snapshot":
                snapshot = True
            else:
                raise ParseError(Reason.SCHEMA, f"{arg.channel}: action={envelope.action!r}")
        else:  # books5: each push is the whole top of book
            snapshot = True
        rows: list[RawOkxBook] = decode(_BOOKS, envelope.data, arg.channel)
        instrument = info.instrument
        events: list = []
        heartbeats = 0
        for row in rows:
            bids = _levels(row.bids, info)
            asks = _levels(row.asks, info)
            ts = row.ts * NS_PER_MS
            if snapshot:
                seq = row.seqId if row.seqId is not None else 0
                events.append(
                    BookSnapshot(
                        venue=SOURCE,
                        symbol=symbol,
                        instrument=instrument,
                        ts=ts,
                        recv=recv,
                        bids=bids,
                        asks=asks,
                        seq=seq,
                    )
                )
                continue
            if row.seqId is None:  # recordings from before seqId existed: not gap-checkable
                seq, prev = 0, None
            else:
                seq, prev = row.seqId, row.prevSeqId
                if not bids and not asks and prev == seq:
                    heartbeats += 1
            events.append(
                BookDelta(
                    venue=SOURCE,
                    symbol=symbol,
                    instrument=instrument,
                    ts=ts,
                    recv=recv,
                    bids=bids,
                    asks=asks,
                    seq=seq,
                    prev_seq=prev,
                )
            )
        return Parsed("book_heartbeat" if heartbeats and heartbeats == len(events) else "book", events)

    def _liquidations(self, envelope: RawOkxEnvelope, arg: RawOkxArg, recv: int) -> Parsed:
        if arg.instType and arg.instType != "SWAP":
            return Parsed(_NOT_SWAP)
        rows: list[RawOkxLiquidation] = decode(_LIQUIDATIONS, envelope.data, "liquidation-orders")
        events: list = []
        unknown: list[str] = []
        not_swap = 0
        for row in rows:
            symbol = row.instId
            if (row.instType and row.instType != "SWAP") or not symbol.endswith(_SWAP_SUFFIX):
                not_swap += 1
                continue
            info = self.catalog.by_symbol.get(symbol)
            if info is None:
                unknown.append(symbol)
                continue
            for detail in row.details:
                price = checked_price(detail.bkPx, "bkPx")
                qty = info.to_base(checked_qty(detail.sz, "sz"), price)
                pos_side = detail.posSide
                side: Literal["long", "short"]
                if pos_side == "long":
                    side = "long"
                elif pos_side == "short":
                    side = "short"
                elif detail.side == "sell":  # net mode: a forced sell closes a long
                    side = "long"
                elif detail.side == "buy":
                    side = "short"
                else:
                    raise ParseError(Reason.SCHEMA, f"liquidation posSide={pos_side!r} side={detail.side!r}")
                events.append(
                    Liquidation(
                        venue=SOURCE,
                        symbol=symbol,
                        instrument=info.instrument,
                        ts=detail.ts * NS_PER_MS,
                        recv=recv,
                        price=price,
                        qty=qty,
                        side=side,
                        notional=price * qty,
                    )
                )
        if unknown:
            if not events:
                raise ParseError(Reason.UNKNOWN_INSTRUMENT, ",".join(unknown)[:80])
            return Parsed("liquidation:dropped_unknown_instrument", events)
        if not_swap and not events and not_swap == len(rows):
            return Parsed(_NOT_SWAP)
        return Parsed("liquidation", events)

    def _mark_price(self, envelope: RawOkxEnvelope, arg: RawOkxArg, recv: int) -> Parsed:
        symbol = arg.instId
        if not symbol.endswith(_SWAP_SUFFIX):
            return Parsed(_NOT_SWAP)
        instrument = self._name(symbol)
        funding = self.funding.get(symbol)
        rows: list[RawOkxMarkPrice] = decode(_MARKS, envelope.data, "mark-price")
        events: list[AnyEvent] = [
            MarkPrice(
                venue=SOURCE,
                symbol=symbol,
                instrument=instrument,
                ts=row.ts * NS_PER_MS,
                recv=recv,
                price=checked_price(row.markPx, "markPx"),
                index=None,
                funding=funding,
            )
            for row in rows
        ]
        return Parsed("mark_price", events)

    def _open_interest(self, envelope: RawOkxEnvelope, arg: RawOkxArg, recv: int) -> Parsed:
        symbol = arg.instId
        if not symbol.endswith(_SWAP_SUFFIX):
            return Parsed(_NOT_SWAP)
        rows: list[RawOkxOpenInterest] = decode(_OPEN_INTEREST, envelope.data, "open-interest")
        instrument = self._name(symbol)
        events: list[AnyEvent] = []
        for row in rows:
            contracts = checked_qty(row.oi, "oi")
            if row.oiCcy:
                qty = checked_qty(_number(row.oiCcy, "oiCcy"), "oiCcy")
            else:
                info = self._info(symbol)
                if info.inverse:
                    raise ParseError(Reason.SCHEMA, f"{symbol}: inverse open interest without oiCcy")
                qty = contracts * info.ct_val
            notional = checked_qty(_number(row.oiUsd, "oiUsd"), "oiUsd") if row.oiUsd else None
            events.append(
                OpenInterest(
                    venue=SOURCE,
                    symbol=symbol,
                    instrument=instrument,
                    ts=row.ts * NS_PER_MS,
                    recv=recv,
                    qty=qty,
                    notional=notional,
                )
            )
        return Parsed("open_interest", events)

    def _funding(self, envelope: RawOkxEnvelope, arg: RawOkxArg, recv: int) -> Parsed:
        symbol = arg.instId
        if not symbol.endswith(_SWAP_SUFFIX):
            return Parsed(_NOT_SWAP)
        rows: list[RawOkxFunding] = decode(_FUNDING, envelope.data, "funding-rate")
        rates = [_number(row.fundingRate, "fundingRate") for row in rows if row.fundingRate]
        if rates:
            self.funding[symbol] = rates[-1]
        return Parsed("funding")

    def _instruments_ws(self, envelope: RawOkxEnvelope, arg: RawOkxArg, recv: int) -> Parsed:
        if arg.instType != "SWAP":
            return Parsed(_NOT_SWAP)
        rows: list[RawOkxInstrument] = decode(_INSTRUMENTS, envelope.data, "instruments")
        self._load_instruments(rows)
        return Parsed("instruments")


# =============================================================================================
# Live connection: endpoints, subscriptions, symbol discovery, order-book resync.
# Used by connectors/session.py and connectors/live.py; the parser above does not use it.
# The names below are the same in every venue module (see connectors/venues/live_common.py).
#
# OKX v5 public (https://www.okx.com/docs-v5/en/#overview-websocket): ``{"op": "subscribe",
# "args": [{"channel": ..., "instId": ...}]}`` (args' total length <= 64 KB; 480 subscribe /
# unsubscribe requests per connection per hour, hence the slow token bucket); the connection is
# closed after 30 s without traffic, so the text ``ping`` goes out every 20 s (answer: ``pong``).
# ``books`` restarts with a snapshot on every subscription: a broken seqId chain is repaired by
# resubscribing. Notice 64008 ("the connection will soon be closed for a service upgrade")
# triggers an early rollover. Contract values come from REST /api/v5/public/instruments at start.
# Topics are written ``channel:instId`` (``liquidation-orders:SWAP`` carries an instType).
# =============================================================================================


LIVE = LiveDefaults(
    ws_url="wss://ws.okx.com:8443/ws/v5/public",
    ws_book_url="wss://ws.okx.com:8443/ws/v5/public",
    rest_url="https://www.okx.com",
    max_lifetime_s=0.0,  # no documented lifetime
    heartbeat_s=20.0,
    max_topics_per_connection=240,
    max_topics_per_message=50,
    subscribe_per_s=480 / 3600,  # 480 requests per hour per connection
    subscribe_burst=20,
    poll_s=0.0,  # open-interest and funding-rate channels
    book_depth=400,
    rest_weight_per_min=600,  # public instruments: 20 requests per 2 s per IP
)
MARKET_CHANNELS = ("trades", "mark-price", "open-interest", "funding-rate")
BOOK_CHANNEL = "books"
LIQUIDATIONS = "liquidation-orders:SWAP"


def native_symbol(asset: str, quote: str = "USDT") -> str:
    """``BTC`` -> ``BTC-USDT-SWAP``."""
    return f"{asset.upper()}-{quote.upper()}-SWAP"


def instruments_paths(symbols: _Sequence[str]) -> list[str]:
    """The instruments REST path (all swaps; one request covers every symbol)."""
    return ["/api/v5/public/instruments?instType=SWAP"]


class _ListedRow(msgspec.Struct):
    instId: str
    instType: str = ""
    state: str = ""


class _ListedBody(msgspec.Struct):
    code: str | int = "0"
    data: list[_ListedRow] = []


def listed_symbols(path: str, body: bytes) -> set[str]:
    """Swaps the reply lists as live; raises ``msgspec.DecodeError`` on a bad body."""
    listed = msgspec.json.decode(body, type=_ListedBody)
    if str(listed.code) != "0":
        raise msgspec.DecodeError(f"code={listed.code}")
    return {row.instId for row in listed.data if row.instType == "SWAP" and row.state in ("live", "")}


def poll_paths(symbols: _Sequence[str]) -> list[str]:
    """The REST paths polled while live: none (every channel is pushed)."""
    return []


def book_topic(symbol: str) -> str:
    """The order book topic of ``symbol`` (``books:<instId>``)."""
    return f"{BOOK_CHANNEL}:{symbol}"


def connections(symbols: _Sequence[str], settings: LiveSettings) -> list[ConnectionSpec]:
    """The websocket connections for ``symbols``: books, market channels and liquidations.

    Split into connections of at most ``max_topics_per_connection`` topics.
    """
    market = [f"{channel}:{symbol}" for symbol in symbols for channel in MARKET_CHANNELS] + [LIQUIDATIONS]
    books = [book_topic(symbol) for symbol in symbols]
    limit = settings.max_topics_per_connection
    if settings.ws_book_url == settings.ws_url:
        return plan_connections("public", settings.ws_url, books + market, limit)
    return plan_connections("public", settings.ws_url, market, limit) + plan_connections(
        "books", settings.ws_book_url, books, limit
    )


def _arg(topic: str) -> dict[str, str]:
    channel, _, target = topic.partition(":")
    return {"channel": channel, "instType" if channel == "liquidation-orders" else "instId": target}


def subscribe_messages(topics: _Sequence[str], per_message: int, first_id: int = 1) -> list[str]:
    """``{"op": "subscribe", "args": [{"channel": ..., "instId": ...}, ...]}``."""
    return _requests("subscribe", topics, per_message)


def unsubscribe_messages(topics: _Sequence[str], per_message: int, first_id: int = 1) -> list[str]:
    """The ``unsubscribe`` messages for ``topics``, at most ``per_message`` channels each."""
    return _requests("unsubscribe", topics, per_message)


def _requests(op: str, topics: _Sequence[str], per_message: int) -> list[str]:
    return [
        msgspec.json.encode({"op": op, "args": [_arg(topic) for topic in group]}).decode()
        for group in chunk(topics, per_message)
    ]


def heartbeat_message() -> str | None:
    """OKX's application ping, the text ``ping``."""
    return "ping"


def is_data(payload: bytes) -> bool:
    """A channel push (``"data": [...]``); acks, errors, notices and ``pong`` are not."""
    return b'"data":' in payload and not payload.startswith(b'{"event"')


def rollover_hint(payload: bytes) -> bool:
    """Notice 64008: the server will close this connection for an upgrade: move over now."""
    return payload.startswith(b'{"event":"notice"') and b"64008" in payload


class _ProbeArg(msgspec.Struct):
    channel: str = ""
    instId: str = ""


class _ProbeRow(msgspec.Struct):
    seqId: int | None = None
    prevSeqId: int | None = None
    tradeId: int | None = None


class _Probe(msgspec.Struct):
    arg: _ProbeArg | None = None
    action: str = ""
    data: list[_ProbeRow] = []


_probe = msgspec.json.Decoder(_Probe, strict=False)


def _probe_book(payload: bytes) -> list[BookRow] | None:
    if b'"channel":"books"' not in payload[:120]:
        return None
    try:
        frame = _probe.decode(payload)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    if frame.arg is None or frame.arg.channel != BOOK_CHANNEL:
        return None
    snapshot = frame.action == "snapshot"
    return [(frame.arg.instId, snapshot, row.seqId or 0, None if snapshot else row.prevSeqId) for row in frame.data]


def frame_key(payload: bytes) -> tuple[str, int] | None:
    """``books``: ``seqId`` of the last row; ``trades``: the largest ``tradeId``; else ``None``."""
    head = payload[:120]
    if b'"channel":"books"' in head or b'"channel":"trades"' in head:
        try:
            frame = _probe.decode(payload)
        except (msgspec.DecodeError, msgspec.ValidationError):
            return None
        if frame.arg is None or not frame.data:
            return None
        if frame.arg.channel == BOOK_CHANNEL:
            seq = frame.data[-1].seqId
            return (f"books|{frame.arg.instId}", seq) if seq is not None else None
        if frame.arg.channel == "trades":
            ids = [row.tradeId for row in frame.data if row.tradeId is not None]
            return (f"trades|{frame.arg.instId}", max(ids)) if ids else None
    return None


class LiveBooks(ResubscribeBooks):
    """OKX books: on a broken ``prevSeqId`` chain (the parser's :class:`BookSequence`), resubscribe."""

    def __init__(self, symbols: _Sequence[str], settings: LiveSettings, clock=_time.monotonic) -> None:
        super().__init__(symbols, _probe_book, book_topic, BookSequence, settings.resync_timeout_s, clock)
