"""BitMEX (``bitmex``): raw schemas, the frame parser, and the live section.

Frames are BitMEX realtime tables, ``{"table": ..., "action": "partial"|"insert"|"update"|
"delete", "data": [rows...]}`` (the ``partial`` also carries ``keys``, ``types``, ``filter``...).
The connection greets with ``{"info": "Welcome to the BitMEX Realtime API.", ...}``, answers a
subscription with ``{"success": true, "subscribe": "<topic>", "request": {...}}`` and the text
``ping`` with the text ``pong``; an error is ``{"status": 400, "error": "...", ...}``.

Tables handled by :meth:`Parser.parse_ws` (``kind`` label -> events)
--------------------------------------------------------------------
- ``trade`` -> ``"trade"``: one :class:`Trade` per ``insert`` row (``side`` is the taker's,
  ``Buy`` -> ``buy``; ``ts`` from ``timestamp``). The ``partial`` sent on subscribing repeats
  trades printed *before* it (a reconnection would count them twice): ``skipped:trade_partial``.
- ``orderBookL2_25`` / ``orderBookL2`` -> ``"book"``: levels are keyed by ``id`` (one id per
  price level and side). ``partial`` -> :class:`BookSnapshot` per symbol (an empty partial names
  its symbol in ``filter``); ``insert`` (id, side, size, price), ``update`` (id, side, size; the
  price is looked up by id) and ``delete`` (id, side) -> :class:`BookDelta` per symbol, a delete
  being a level of size 0. BitMEX docs: messages may arrive before the ``partial``; "drop any
  messages received until you have received the partial" -> ``skipped:before_partial``.
  ``ts`` is the latest row ``timestamp`` (rows carry one since 2021), else the receive time.
- ``liquidation`` -> ``"liquidation"``: every liquidation order as it enters the book:
  ``orderID``, ``symbol``, ``side``, ``price``, ``leavesQty`` (contracts). ``side`` is the order's:
  ``Sell`` is a forced sell, i.e. a *long* being liquidated; ``Buy`` a short. One
  :class:`Liquidation` per order, when it is first seen (``insert``, or the ``partial`` of the
  orders resting when we subscribed), with ``qty`` = ``leavesQty`` at entry in base units,
  ``price`` the order price. ``update`` (leavesQty shrinking as it fills) and ``delete`` (done)
  give no event (``liquidation_update``): counting them would count the order twice. The table
  carries **no timestamp**: ``ts`` is the receive time, so a replay takes it from the
  ``<recv_ns>`` field of the recording line, exactly as the live run saw it.
- ``instrument`` -> ``"instrument"``: rows carry only changed fields after the ``partial``; the
  parser keeps per symbol the last ``markPrice``, ``indicativeSettlePrice`` (the index: what a
  perpetual would settle at now) and ``fundingRate``. A row with ``markPrice`` gives a
  :class:`MarkPrice` (``index`` = indicativeSettlePrice, ``funding`` = fundingRate); a row with
  ``openInterest`` (contracts) gives an :class:`OpenInterest` once a mark is known. A row that
  describes the contract (``typ``, multipliers: the ``partial`` and REST rows) refreshes the
  catalog. Index rows (``.BXBT``) are ``skipped:index``.
- ``tradeBin1m`` / ``quoteBin1m`` -> ``"bin"``: one :class:`CoarsePrice` per row (``ts`` =
  ``timestamp``, the *end* of the minute on BitMEX): the trade bin's ``close``, or the quote bin's
  mid of ``bidPrice``/``askPrice``. Long BitMEX histories are often kept only as bins; a replay of
  them gives prices (marked coarse in the snapshot) and, with ``liquidation``, liquidation
  readouts.
- ``quote``, ``orderBook10``, ``funding``, ``settlement``, ``insurance``, ``announcement``,
  ``connected``, ``publicNotifications``, ``chat``, other bin sizes -> ``skipped:<table>``;
  an unknown table -> ``ParseError("unknown_channel")``.

Contracts and notional
----------------------
A size is in contracts. From the instrument's fields (REST ``/api/v1/instrument/active`` or the
``instrument`` partial):

- inverse (``isInverse``, XBTUSD): one contract is worth ``multiplier /
  underlyingToSettleMultiplier`` quote units (XBTUSD: ``-1e8 / -1e8`` = 1 USD), so ``n``
  contracts at price ``p`` are ``n`` USD of notional and ``n / p`` BTC;
- linear and quanto: one contract is ``multiplier / quoteToSettleMultiplier`` base units
  (JTOUSDT 2024: ``1e6 / 1e6`` = 1 JTO; XBTUSDT: ``1 / 1e6`` BTC), notional ``qty * p``. For a
  quanto (settled in XBT, e.g. ETHUSD 2021) ``quoteToSettleMultiplier`` is the XBt per quote unit
  *when the instrument row was read*, so its notional is right to the BTC move since then.

The catalog starts with XBTUSD (inverse, 1 USD a contract: fixed by the contract's definition)
so that a recording without instrument rows (bins and liquidations only) still converts; any
other symbol needs an instrument row first, else ``ParseError("unknown_instrument")``.

Symbols and assets: ``XBT`` is BTC; the canonical instrument is ``<base>-<quote>-PERP``, so
``XBTUSD`` -> ``BTC-USD-PERP`` (asset ``BTC-USD``, with OKX's ``BTC-USD-SWAP``) and ``XBTUSDT`` ->
``BTC-USDT-PERP`` (asset ``BTC-USDT``, with Binance, Bybit and OKX USDT swaps). USD and USDT books
are not merged: their prices differ by the USDT basis and their depth is in different units.
Perpetuals are ``typ`` ``FFWCSX`` (and ``FFWCSF``); futures and other types are
``skipped:not_perpetual``; quotes other than USD/USDT/USDC are ``skipped:quote``.

Book sequence rule
------------------
BitMEX publishes no sequence numbers. Its rule is: the ``partial`` is the book (its ``keys``:
symbol, id, side); then every ``insert`` adds a key not in the book, every ``update``/``delete``
names a key in it; anything
else means messages were lost and the book must be fetched again (resubscribe: a new
``partial``). The parser checks that rule with the ids it tracks (:class:`LevelIds`) and writes
the verdict into the sequence fields: per symbol it numbers its book messages (``seq``), a
consistent delta gets ``prev_seq`` = the previous number, an inconsistent one (and every delta
after it until the next ``partial``) ``prev_seq = None``. :class:`BookSequence` then applies
deltas whose ``prev_seq`` continues the chain and calls anything else a gap.
"""

from __future__ import annotations

import math
import time as _time
from collections.abc import Sequence as _Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal, TypeVar
from urllib.parse import urlsplit

import msgspec

from cascadewatch.connectors.events import (
    AnyEvent,
    BookDelta,
    BookSnapshot,
    CoarsePrice,
    Level,
    Liquidation,
    MarkPrice,
    OpenInterest,
    Trade,
)
from cascadewatch.connectors.reasons import Reason
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

SOURCE = "bitmex"

PERPETUAL_TYPES = frozenset({"FFWCSX", "FFWCSF"})
"""BitMEX ``typ`` of perpetual contracts."""
QUOTES = frozenset({"USD", "USDT", "USDC"})
BOOK_TABLES = frozenset({"orderBookL2_25", "orderBookL2"})
BIN_TABLES = frozenset({"tradeBin1m", "quoteBin1m"})
_SKIPPED_TABLES = frozenset(
    {
        "quote",
        "orderBook10",
        "funding",
        "settlement",
        "insurance",
        "announcement",
        "connected",
        "publicNotifications",
        "chat",
        "tradeBin5m",
        "tradeBin1h",
        "tradeBin1d",
        "quoteBin5m",
        "quoteBin1h",
        "quoteBin1d",
    }
)
_MAX_SEEN_ORDERS = 100_000
_AGGRESSOR: dict[str, Literal["buy", "sell"]] = {"Buy": "buy", "Sell": "sell"}
_LIQUIDATED: dict[str, Literal["long", "short"]] = {"Sell": "long", "Buy": "short"}

XBTUSD = InstrumentInfo(
    symbol="XBTUSD", instrument=canonical("BTC", "USD"), base="BTC", quote="USD", ct_val=1.0, inverse=True, tick=0.5
)
"""The one contract known without an instrument row: 1 USD a contract, inverse, by definition."""


# --------------------------------------------------------------------------- raw schemas


class RawBitmexFilter(msgspec.Struct):
    """The ``filter`` of a ``partial``: the subscription's symbol."""

    symbol: str | None = None


class RawBitmexFrame(msgspec.Struct):
    """Any realtime frame: a table message, the welcome, a subscription ack or an error."""

    table: str | None = None
    action: str | None = None
    data: msgspec.Raw = msgspec.Raw()
    filter: RawBitmexFilter | None = None
    info: str | None = None
    success: bool | None = None
    subscribe: str | None = None
    unsubscribe: str | None = None
    error: str | None = None
    status: int | None = None


class RawBitmexTrade(msgspec.Struct):
    """A ``trade`` row: ``size`` in contracts, ``side`` the taker's."""

    timestamp: str
    symbol: str
    side: str
    size: float
    price: float


class RawBitmexLevel(msgspec.Struct):
    """An ``orderBookL2`` row: ``price`` on partial and insert (optional elsewhere), ``size`` in contracts."""

    symbol: str
    id: int
    side: str
    size: float | None = None
    price: float | None = None
    timestamp: str | None = None


class RawBitmexLiquidation(msgspec.Struct):
    """A ``liquidation`` row: a liquidation order; ``update``/``delete`` rows carry fewer fields."""

    orderID: str
    symbol: str
    side: str | None = None
    price: float | None = None
    leavesQty: float | None = None


class RawBitmexInstrument(msgspec.Struct):
    """An ``instrument`` row (and a REST instrument): only the fields we use, all optional but ``symbol``."""

    symbol: str
    typ: str | None = None
    state: str | None = None
    rootSymbol: str | None = None
    underlying: str | None = None
    quoteCurrency: str | None = None
    multiplier: float | None = None
    underlyingToSettleMultiplier: float | None = None
    quoteToSettleMultiplier: float | None = None
    isInverse: bool | None = None
    isQuanto: bool | None = None
    tickSize: float | None = None
    markPrice: float | None = None
    indicativeSettlePrice: float | None = None
    fundingRate: float | None = None
    openInterest: float | None = None
    timestamp: str | None = None


class RawBitmexBin(msgspec.Struct):
    """A ``tradeBin1m`` / ``quoteBin1m`` row (``timestamp``: the end of the bin)."""

    timestamp: str
    symbol: str
    close: float | None = None
    bidPrice: float | None = None
    askPrice: float | None = None


_FRAME = msgspec.json.Decoder(RawBitmexFrame)
_TRADES = msgspec.json.Decoder(list[RawBitmexTrade])
_LEVELS = msgspec.json.Decoder(list[RawBitmexLevel])
_LIQUIDATIONS = msgspec.json.Decoder(list[RawBitmexLiquidation])
_INSTRUMENTS = msgspec.json.Decoder(list[RawBitmexInstrument])
_BINS = msgspec.json.Decoder(list[RawBitmexBin])

_T = TypeVar("_T")


def _decode(decoder: msgspec.json.Decoder[_T], payload: bytes | msgspec.Raw, what: str) -> _T:
    if type(payload) is msgspec.Raw and not payload:
        raise ParseError(Reason.SCHEMA, f"{what}: missing data")
    try:
        return decoder.decode(payload)
    except msgspec.ValidationError as exc:
        raise ParseError(Reason.SCHEMA, f"{what}: {exc}"[:200]) from None
    except msgspec.DecodeError as exc:
        raise ParseError(Reason.MALFORMED_JSON, str(exc)[:200]) from None


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def timestamp_ns(text: str) -> int:
    """BitMEX ``"2019-06-01T00:00:19.163Z"`` -> integer ns since the UTC epoch (exact).

    >>> timestamp_ns("2019-06-01T00:00:19.163Z")
    1559347219163000000
    """
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ParseError(Reason.SCHEMA, f"timestamp={text!r}"[:200]) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000


def _finite(value: float, what: str) -> float:
    if not math.isfinite(value):
        raise ParseError(Reason.BAD_NUMBER, f"{what}={value!r}")
    return value


def contract_info(row: RawBitmexInstrument) -> InstrumentInfo | str:
    """The :class:`InstrumentInfo` an instrument row describes, or the skip label of a contract
    we do not follow (see "Contracts and notional" in the module docstring).

    >>> row = RawBitmexInstrument(symbol="XBTUSD", typ="FFWCSX", underlying="XBT", quoteCurrency="USD",
    ...     multiplier=-1e8, underlyingToSettleMultiplier=-1e8, isInverse=True, tickSize=0.5)
    >>> contract_info(row).ct_val, contract_info(row).instrument
    (1.0, 'BTC-USD-PERP')
    """
    if row.typ not in PERPETUAL_TYPES:
        return "skipped:not_perpetual"
    if row.quoteCurrency not in QUOTES:
        return "skipped:quote"
    underlying = row.underlying or row.rootSymbol
    if not underlying or row.multiplier is None:
        raise ParseError(Reason.SCHEMA, f"instrument {row.symbol!r} without underlying or multiplier")
    divisor = row.underlyingToSettleMultiplier if row.isInverse else row.quoteToSettleMultiplier
    ct_val = row.multiplier / divisor if divisor else math.nan
    if not 0.0 < ct_val < math.inf:
        raise ParseError(Reason.SCHEMA, f"instrument {row.symbol!r}: no contract value from its multipliers")
    base = "BTC" if underlying == "XBT" else underlying
    return InstrumentInfo(
        symbol=row.symbol,
        instrument=canonical(base, row.quoteCurrency),
        base=base,
        quote=row.quoteCurrency,
        ct_val=ct_val,
        inverse=bool(row.isInverse),
        tick=row.tickSize if row.tickSize is not None and row.tickSize > 0 else 0.0,
    )


# --------------------------------------------------------------------------- level ids


@dataclass
class _SymbolLevels:
    ids: dict[tuple[int, bool], float] = field(default_factory=dict)  # (id, is_bid) -> price
    seq: int = 0
    synced: bool = False
    broken: bool = False


@dataclass(frozen=True, slots=True)
class BookStep:
    """What one book message did to one symbol: levels as ``(price, contracts)``, the message
    number ``seq`` and ``prev_seq`` (``None``: the message broke the id rule, see the module
    docstring); ``snapshot`` for a ``partial``."""

    symbol: str
    snapshot: bool
    seq: int
    prev_seq: int | None
    bids: tuple[Level, ...]
    asks: tuple[Level, ...]
    ts: int | None


class LevelIds:
    """The level ids of each symbol's book, and the id rule (used by the parser and, in the live
    section, by the book resync). Plain data: pickles."""

    def __init__(self) -> None:
        self.books: dict[str, _SymbolLevels] = {}

    def apply(self, action: str, rows: list[RawBitmexLevel], filter_symbol: str | None) -> list[BookStep]:
        """Apply one book message; one :class:`BookStep` per symbol it touches (none before a
        symbol's ``partial``). Rows are validated before any state changes."""
        if action not in ("partial", "insert", "update", "delete"):
            raise ParseError(Reason.SCHEMA, f"book action={action!r}")
        for row in rows:
            if row.side not in ("Buy", "Sell"):
                raise ParseError(Reason.SCHEMA, f"level side={row.side!r}")
            if action in ("partial", "insert"):
                checked_price(row.price, "price")
            if action != "delete":
                checked_qty(row.size, "size")
            elif row.price is not None:
                checked_price(row.price, "price")
        by_symbol: dict[str, list[RawBitmexLevel]] = {}
        if action == "partial" and filter_symbol:
            by_symbol[filter_symbol] = []
        for row in rows:
            by_symbol.setdefault(row.symbol, []).append(row)
        steps = []
        for symbol, symbol_rows in by_symbol.items():
            step = self._apply_symbol(action, symbol, symbol_rows)
            if step is not None:
                steps.append(step)
        return steps

    def _apply_symbol(self, action: str, symbol: str, rows: list[RawBitmexLevel]) -> BookStep | None:
        book = self.books.get(symbol)
        if action == "partial":
            if book is None:
                book = self.books[symbol] = _SymbolLevels()
            book.ids = {}
            book.synced, book.broken = True, False
        elif book is None or not book.synced:
            return None
        bids: list[Level] = []
        asks: list[Level] = []
        consistent = True
        ts: int | None = None
        for row in rows:
            key = (row.id, row.side == "Buy")
            known = book.ids.get(key)
            if row.timestamp is not None:
                moment = timestamp_ns(row.timestamp)
                ts = moment if ts is None or moment > ts else ts
            if action in ("partial", "insert"):
                assert row.price is not None and row.size is not None  # validated in apply()
                if known is not None and action == "insert":
                    consistent = False
                book.ids[key] = row.price
                level = (row.price, row.size)
            elif known is None:
                consistent = False
                continue
            elif action == "update":
                assert row.size is not None
                level = (known, row.size)
            else:
                del book.ids[key]
                level = (known, 0.0)
            (bids if key[1] else asks).append(level)
        book.seq += 1
        if not consistent:
            book.broken = True
        prev = None if book.broken or action == "partial" else book.seq - 1
        return BookStep(symbol, action == "partial", book.seq, prev, tuple(bids), tuple(asks), ts)

    def forget(self, symbol: str) -> None:
        """Drop ``symbol``'s ids: its messages are skipped until its next ``partial``."""
        self.books.pop(symbol, None)


class BookSequence(SequenceRule):
    """BitMEX's book rule in sequence terms (see the module docstring): after a snapshot, apply
    each delta whose ``prev_seq`` is the last applied ``seq``; anything else is a gap."""

    def check(self, delta: SeqStep) -> Verdict:
        """Skip before a snapshot; apply a delta continuing the chain; else a gap."""
        if self.last_seq is None:
            return Verdict.SKIP
        if delta.prev_seq is None or delta.prev_seq != self.last_seq:
            return Verdict.GAP
        self.last_seq = delta.seq
        return Verdict.APPLY

    def describe_gap(self, delta: SeqStep) -> str:
        """A level id the book does not hold (or an insert of one it holds): messages were lost."""
        return f"book message {delta.seq} names a level id the book does not hold (or re-inserts one): out of sync"


# --------------------------------------------------------------------------- parser


class Parser(VenueParser):
    """BitMEX realtime frames and REST instrument bodies -> normalized events (module docstring)."""

    SOURCE = SOURCE

    @classmethod
    def sequence_rule(cls) -> BookSequence:
        """BitMEX's book rule (:class:`BookSequence`)."""
        return BookSequence()

    def __init__(self, catalog: Catalog | None = None) -> None:
        super().__init__(catalog)
        if self.catalog.get(XBTUSD.symbol) is None:
            self.catalog.add(XBTUSD)
        self._skip: dict[str, str] = {}
        self.levels = LevelIds()
        self._seen_orders: dict[str, None] = {}
        self._marks: dict[str, list[float | None]] = {}  # symbol -> [mark, index, funding]

    def resolve(self, symbol: str) -> InstrumentInfo | str:
        """The instrument of ``symbol``, or the skip label of a symbol we do not follow."""
        info = self.catalog.get(symbol)
        if info is not None:
            return info
        label = self._skip.get(symbol)
        if label is not None:
            return label
        if symbol.startswith("."):
            return "skipped:index"
        raise ParseError(Reason.UNKNOWN_INSTRUMENT, repr(symbol)[:80])

    def instrument_of(self, symbol: str) -> str:
        """Canonical instrument of ``symbol``; ``""`` when it is not a known perpetual."""
        info = self.catalog.get(symbol)
        return info.instrument if info is not None else ""

    # ------------------------------------------------------------------ websocket
    def parse_ws(self, payload: bytes | str, recv: int) -> Parsed:
        """Parse one realtime frame (or the text ``pong``) into events or a skip reason."""
        if isinstance(payload, str):
            payload = payload.encode()
        if payload == b"pong":
            return Parsed("control")
        frame = _decode(_FRAME, payload, "frame")
        table = frame.table
        if table is None:
            return self._control(frame)
        if frame.action is None:
            raise ParseError(Reason.SCHEMA, f"table {table!r} without action")
        if table in BOOK_TABLES:
            filtered = frame.filter.symbol if frame.filter is not None else None
            return self._book(frame.action, _decode(_LEVELS, frame.data, table), filtered, recv)
        if table == "trade":
            return self._trades(frame.action, frame.data, recv)
        if table == "liquidation":
            return self._liquidations(frame.action, frame.data, recv)
        if table == "instrument":
            return self._instrument(frame.action, frame.data, recv)
        if table in BIN_TABLES:
            return self._bins(table, frame.data, recv)
        if table in _SKIPPED_TABLES:
            return Parsed(f"skipped:{table}")
        raise ParseError(Reason.UNKNOWN_CHANNEL, f"table={table!r}"[:200])

    @staticmethod
    def _control(frame: RawBitmexFrame) -> Parsed:
        if frame.error is not None or frame.success is False:
            raise ParseError(Reason.VENUE_ERROR, f"status={frame.status} error={frame.error}"[:200])
        if frame.info is not None or frame.success is True:
            return Parsed("control")
        raise ParseError(Reason.UNKNOWN_CHANNEL, "frame without table")

    def _book(self, action: str, rows: list[RawBitmexLevel], filtered: str | None, recv: int) -> Parsed:
        for symbol in {row.symbol for row in rows} | ({filtered} if filtered else set()):
            self.resolve(symbol)  # an unknown symbol fails before any state changes
        events: list[AnyEvent] = []
        skipped = "skipped:before_partial"
        for step in self.levels.apply(action, rows, filtered):
            info = self.resolve(step.symbol)
            if isinstance(info, str):
                skipped = info
                continue
            events.append(_book_event(info, step, recv))
        return Parsed("book", events) if events else Parsed(skipped)

    def _trades(self, action: str, data: msgspec.Raw, recv: int) -> Parsed:
        rows = _decode(_TRADES, data, "trade")
        if action == "partial":
            return Parsed("skipped:trade_partial")
        if action != "insert":
            raise ParseError(Reason.SCHEMA, f"trade action={action!r}")
        events: list[AnyEvent] = []
        for row in rows:
            info = self.resolve(row.symbol)
            if isinstance(info, str):
                continue
            side = _AGGRESSOR.get(row.side)
            if side is None:
                raise ParseError(Reason.SCHEMA, f"trade side={row.side!r}")
            price = checked_price(row.price, "price")
            qty = info.to_base(checked_qty(row.size, "size"), price)
            events.append(
                Trade(
                    venue=SOURCE,
                    symbol=row.symbol,
                    instrument=info.instrument,
                    ts=timestamp_ns(row.timestamp),
                    recv=recv,
                    price=price,
                    qty=qty,
                    side=side,
                )
            )
        return Parsed("trade", events) if events else Parsed("skipped:not_perpetual")

    def _liquidations(self, action: str, data: msgspec.Raw, recv: int) -> Parsed:
        rows = _decode(_LIQUIDATIONS, data, "liquidation")
        if action not in ("partial", "insert", "update", "delete"):
            raise ParseError(Reason.SCHEMA, f"liquidation action={action!r}")
        entering = action in ("partial", "insert")
        checked = []
        fresh: set[str] = set()
        for row in rows:  # validate every row before remembering any order
            info = self.resolve(row.symbol)
            if isinstance(info, str) or not entering or row.orderID in self._seen_orders or row.orderID in fresh:
                continue
            fresh.add(row.orderID)
            side = _LIQUIDATED.get(row.side or "")
            if side is None:
                raise ParseError(Reason.SCHEMA, f"liquidation side={row.side!r}")
            price = checked_price(row.price, "price")
            qty = info.to_base(checked_qty(row.leavesQty, "leavesQty"), price)
            checked.append((row, info, side, price, qty))
        for row in rows:
            self._remember(row.orderID)
        events: list[AnyEvent] = [
            Liquidation(
                venue=SOURCE,
                symbol=row.symbol,
                instrument=info.instrument,
                ts=recv,
                recv=recv,
                price=price,
                qty=qty,
                side=side,
                notional=price * qty,
            )
            for row, info, side, price, qty in checked
            if qty > 0
        ]
        return Parsed("liquidation", events) if entering else Parsed("liquidation_update")

    def _remember(self, order_id: str) -> None:
        seen = self._seen_orders
        if order_id in seen:
            return
        if len(seen) >= _MAX_SEEN_ORDERS:
            del seen[next(iter(seen))]
        seen[order_id] = None

    def _instrument(self, action: str, data: msgspec.Raw, recv: int) -> Parsed:
        rows = _decode(_INSTRUMENTS, data, "instrument")
        if action not in ("partial", "insert", "update", "delete"):
            raise ParseError(Reason.SCHEMA, f"instrument action={action!r}")
        self._learn([row for row in rows if row.typ is not None])
        events: list[AnyEvent] = []
        for row in rows:
            info = self.resolve(row.symbol)
            if isinstance(info, str):
                continue
            events.extend(self._instrument_events(info, row, action == "partial", recv))
        return Parsed("instrument", events)

    def _learn(self, rows: list[RawBitmexInstrument]) -> None:
        """Refresh the catalog from instrument rows, once every row has converted."""
        infos = [(row.symbol, contract_info(row)) for row in rows]
        for symbol, info in infos:
            if isinstance(info, str):
                self.catalog.by_symbol.pop(symbol, None)
                self._skip[symbol] = info
            else:
                self.catalog.add(info)
                self._skip.pop(symbol, None)

    def _instrument_events(
        self, info: InstrumentInfo, row: RawBitmexInstrument, reset: bool, recv: int
    ) -> list[AnyEvent]:
        mark = checked_price(row.markPrice, "markPrice") if row.markPrice is not None else None
        index = checked_price(row.indicativeSettlePrice, "indicativeSettlePrice") if row.indicativeSettlePrice else None
        funding = _finite(row.fundingRate, "fundingRate") if row.fundingRate is not None else None
        oi = checked_qty(row.openInterest, "openInterest") if row.openInterest is not None else None
        ts = timestamp_ns(row.timestamp) if row.timestamp is not None else recv
        state = self._marks.get(row.symbol)
        if state is None or reset:
            state = self._marks[row.symbol] = [None, None, None]
        for i, value in enumerate((mark, index, funding)):
            if value is not None:
                state[i] = value
        events: list[AnyEvent] = []
        if mark is not None:
            events.append(
                MarkPrice(
                    venue=SOURCE,
                    symbol=row.symbol,
                    instrument=info.instrument,
                    ts=ts,
                    recv=recv,
                    price=mark,
                    index=state[1],
                    funding=state[2],
                )
            )
        reference = state[0]
        if oi is not None and reference is not None:
            qty = info.to_base(oi, reference)
            notional = oi * info.ct_val if info.inverse else qty * reference
            events.append(
                OpenInterest(
                    venue=SOURCE,
                    symbol=row.symbol,
                    instrument=info.instrument,
                    ts=ts,
                    recv=recv,
                    qty=qty,
                    notional=notional,
                )
            )
        return events

    def _bins(self, table: str, data: msgspec.Raw, recv: int) -> Parsed:
        rows = _decode(_BINS, data, table)
        events: list[AnyEvent] = []
        for row in rows:
            info = self.resolve(row.symbol)
            if isinstance(info, str):
                continue
            bid = ask = None
            if table == "tradeBin1m":
                if row.close is None:  # no trade yet in the contract's life
                    continue
                price = checked_price(row.close, "close")
            else:
                if row.bidPrice is None or row.askPrice is None:
                    continue
                bid, ask = checked_price(row.bidPrice, "bidPrice"), checked_price(row.askPrice, "askPrice")
                price = (bid + ask) / 2.0
            events.append(
                CoarsePrice(
                    venue=SOURCE,
                    symbol=row.symbol,
                    instrument=info.instrument,
                    ts=timestamp_ns(row.timestamp),
                    recv=recv,
                    price=price,
                    bin_s=60,
                    bid=bid,
                    ask=ask,
                )
            )
        return Parsed("bin", events)

    # ------------------------------------------------------------------ REST
    def parse_rest(self, path: str, body: bytes, recv: int) -> Parsed:
        """``/api/v1/instrument[/active]``: the catalog (kind ``instruments``); an error body
        ``{"error": {...}}`` is ``rest_error``; any other path ``unknown_rest_path``."""
        route = urlsplit(path).path.rstrip("/")
        if route not in ("/api/v1/instrument", "/api/v1/instrument/active"):
            raise ParseError(Reason.UNKNOWN_REST_PATH, path[:200])
        if body.lstrip()[:1] == b"{":
            raise ParseError(Reason.REST_ERROR, body[:200].decode("utf-8", "replace"))
        self._learn([row for row in _decode(_INSTRUMENTS, body, "instruments") if row.typ is not None])
        return Parsed("instruments")


def _book_event(info: InstrumentInfo, step: BookStep, recv: int) -> BookSnapshot | BookDelta:
    """One symbol's :class:`BookStep` as an event, sizes in base units (see ``InstrumentInfo.to_base``)."""
    bids = tuple((price, info.to_base(size, price)) for price, size in step.bids)
    asks = tuple((price, info.to_base(size, price)) for price, size in step.asks)
    ts = step.ts if step.ts is not None else recv
    if step.snapshot:
        return BookSnapshot(
            venue=SOURCE,
            symbol=step.symbol,
            instrument=info.instrument,
            ts=ts,
            recv=recv,
            bids=_sorted(bids, True),
            asks=_sorted(asks, False),
            seq=step.seq,
        )
    return BookDelta(
        venue=SOURCE,
        symbol=step.symbol,
        instrument=info.instrument,
        ts=ts,
        recv=recv,
        bids=bids,
        asks=asks,
        seq=step.seq,
        prev_seq=step.prev_seq,
    )


def _sorted(levels: tuple[Level, ...], bids: bool) -> tuple[Level, ...]:
    """A snapshot's levels best first (BitMEX sends sells from the highest price down)."""
    return tuple(sorted(levels, key=lambda level: -level[0] if bids else level[0]))


# =============================================================================================
# Live connection: endpoints, subscriptions, symbol discovery, order-book resync.
# Used by connectors/session.py and connectors/live.py; the parser above does not use it.
# The names below are the same in every venue module (see connectors/venues/live_common.py).
#
# BitMEX realtime (https://www.bitmex.com/app/wsAPI): one endpoint; ``{"op": "subscribe",
# "args": ["trade:XBTUSD", ...]}`` (acked per topic). Heartbeat: the docs ask clients to send
# the text ``ping`` when no message came for 5 s and to reconnect when no ``pong`` follows
# within 5 s: we ping every 5 s and the stale watchdog reconnects a silent feed. Connections
# are rate limited (the welcome reports ``limit.remaining``; about 40 per hour per IP), hence
# one connection for every topic. A subscription to ``orderBookL2_25`` starts with a
# ``partial``, so a broken book is repaired by resubscribing (no REST splice). REST: 30
# requests per minute unauthenticated; only the instrument list is fetched.
# =============================================================================================


LIVE = LiveDefaults(
    ws_url="wss://ws.bitmex.com/realtime",
    ws_book_url="wss://ws.bitmex.com/realtime",
    rest_url="https://www.bitmex.com",
    max_lifetime_s=0.0,  # no documented lifetime
    heartbeat_s=5.0,
    max_topics_per_connection=400,
    max_topics_per_message=20,
    subscribe_per_s=2.0,
    subscribe_burst=5,
    poll_s=0.0,  # open interest comes with the instrument table
    book_depth=25,
    rest_weight_per_min=30,
)
MARKET_TABLES = ("trade", "liquidation", "instrument")
BOOK_TABLE = "orderBookL2_25"


def native_symbol(asset: str, quote: str = "USDT") -> str:
    """``BTC`` -> ``XBTUSDT`` (``XBTUSD`` with quote ``USD``, the inverse contract)."""
    asset, quote = asset.upper(), quote.upper()
    return f"{'XBT' if asset == 'BTC' else asset}{quote}"


def instruments_paths(symbols: _Sequence[str]) -> list[str]:
    """The active instruments (every contract, with its multipliers)."""
    return ["/api/v1/instrument/active"]


class _Listed(msgspec.Struct):
    symbol: str
    typ: str = ""
    state: str = ""


def listed_symbols(path: str, body: bytes) -> set[str]:
    """Perpetuals the instrument list shows ``Open``; raises ``msgspec.DecodeError`` on a bad body."""
    rows = msgspec.json.decode(body, type=list[_Listed])
    return {row.symbol for row in rows if row.typ in PERPETUAL_TYPES and row.state in ("Open", "")}


def poll_paths(symbols: _Sequence[str]) -> list[str]:
    """Nothing to poll: open interest comes with the ``instrument`` table."""
    return []


def book_topic(symbol: str) -> str:
    """The book topic of ``symbol``: ``orderBookL2_25:XBTUSD``."""
    return f"{BOOK_TABLE}:{symbol}"


def connections(symbols: _Sequence[str], settings: LiveSettings) -> list[ConnectionSpec]:
    """Every topic on ``ws_url`` (BitMEX limits connections, not topics); books on
    ``ws_book_url`` when it differs."""
    market = [f"{table}:{symbol}" for symbol in symbols for table in MARKET_TABLES]
    books = [book_topic(symbol) for symbol in symbols]
    limit = settings.max_topics_per_connection
    if settings.ws_book_url == settings.ws_url:
        return plan_connections("realtime", settings.ws_url, books + market, limit)
    return plan_connections("realtime", settings.ws_url, market, limit) + plan_connections(
        "books", settings.ws_book_url, books, limit
    )


def subscribe_messages(topics: _Sequence[str], per_message: int, first_id: int = 1) -> list[str]:
    """``{"op": "subscribe", "args": [...]}`` of at most ``per_message`` topics (BitMEX has no request id)."""
    return _requests("subscribe", topics, per_message)


def unsubscribe_messages(topics: _Sequence[str], per_message: int, first_id: int = 1) -> list[str]:
    """``{"op": "unsubscribe", "args": [...]}`` of at most ``per_message`` topics."""
    return _requests("unsubscribe", topics, per_message)


def _requests(op: str, topics: _Sequence[str], per_message: int) -> list[str]:
    return [msgspec.json.encode({"op": op, "args": group}).decode() for group in chunk(topics, per_message)]


def heartbeat_message() -> str | None:
    """BitMEX's application ping: the text ``ping`` (answered by ``pong``)."""
    return "ping"


def is_data(payload: bytes) -> bool:
    """A table message; the welcome, acks and ``pong`` are not."""
    return payload[:9] == b'{"table":'


def rollover_hint(payload: bytes) -> bool:
    """Always ``False``: BitMEX does not announce a close."""
    return False


def frame_key(payload: bytes) -> tuple[str, int] | None:
    """BitMEX messages carry no per-message id: ``None`` (a rollover de-duplicates by bytes)."""
    return None


class _BookProbe(msgspec.Struct):
    table: str = ""
    action: str = ""
    data: msgspec.Raw = msgspec.Raw()
    filter: RawBitmexFilter | None = None


_book_probe = msgspec.json.Decoder(_BookProbe)


class _LiveLevels:
    """The live side's copy of the id rule: one :class:`LevelIds` over the frames handed over."""

    def __init__(self) -> None:
        self.levels = LevelIds()

    def rows(self, payload: bytes) -> list[BookRow] | None:
        """The :data:`BookRow` of each symbol a book frame touches, or ``None`` for other frames."""
        if not payload.startswith(b'{"table":"orderBookL2'):
            return None
        try:
            frame = _book_probe.decode(payload)
            if frame.table not in BOOK_TABLES or not frame.data:
                return None
            rows = _LEVELS.decode(frame.data)
            filtered = frame.filter.symbol if frame.filter is not None else None
            steps = self.levels.apply(frame.action, rows, filtered)
        except (msgspec.DecodeError, ParseError):
            return None  # the parser makes it a dead letter
        return [(step.symbol, step.snapshot, step.seq, step.prev_seq) for step in steps]


class LiveBooks(ResubscribeBooks):
    """BitMEX books: a message that breaks the id rule resubscribes the book (a new ``partial``)."""

    def __init__(self, symbols: _Sequence[str], settings: LiveSettings, clock=_time.monotonic) -> None:
        self._levels = _LiveLevels()
        super().__init__(
            symbols,
            self._levels.rows,
            book_topic,
            BookSequence,
            settings.resync_timeout_s,
            clock,
        )
