"""What every venue module provides, and the pieces they share.

A venue module (``binance.py``, ``bybit.py``, ``okx.py``) is shaped alike:

- ``SOURCE``: the recording source token (``binance-usdm``...);
- raw schemas: ``msgspec.Struct`` classes mirroring the venue's JSON, decoded in one pass,
  named ``Raw<Venue><Thing>`` (``RawBinanceAggTrade``, ``RawBybitBook``, ``RawOkxEnvelope``);
- ``class Parser(VenueParser)``: ``parse_ws(payload, recv)`` for a websocket text frame and
  ``parse_rest(path, body, recv)`` for a REST bootstrap body, both returning :class:`Parsed`
  or raising :class:`ParseError` with a :class:`~cascadewatch.connectors.reasons.Reason`; any
  other exception is a parser bug, which the frame decoder counts as ``parser_exception``;
  optionally ``hot_event(payload, recv)``, the venue's commonest frames straight to their
  event (a replay's fast path, see :meth:`VenueParser.hot_event`).

Parsers are pure apart from instrument metadata they learn from REST bodies
(contract values, tick sizes), which is why they are objects.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

import msgspec

from cascadewatch.connectors.events import (
    PERP_SUFFIX,
    AnyEvent,
    BookDelta,
    Liquidation,
    MarkPrice,
    PositionSide,
    Trade,
)
from cascadewatch.connectors.reasons import Reason

_T = TypeVar("_T")


class ParseError(Exception):
    """A frame that cannot become events: the :class:`Reason` (counted per venue) and a detail."""

    def __init__(self, reason: Reason, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


HOT_KINDS: dict[type, str] = {Trade: "trade", BookDelta: "book", MarkPrice: "mark_price"}
"""The frame kind (:attr:`Parsed.kind`) a fast-path event counts as (:meth:`VenueParser.hot_event`)."""


class Parsed(msgspec.Struct, frozen=True):
    """The result of parsing one frame: a ``kind`` label for the summary and the events."""

    kind: str
    events: list[AnyEvent] = msgspec.field(default_factory=list)


@dataclass(frozen=True, slots=True)
class InstrumentInfo:
    """Static facts of one venue instrument.

    ``ct_val``: contract value; a size of ``n`` contracts is ``n * ct_val`` base units for a
    linear contract, or ``n * ct_val`` quote units (``n * ct_val / price`` base) for an
    inverse one. ``ct_val == 1`` and ``inverse == False`` when the venue quotes in base units.
    """

    symbol: str
    instrument: str
    base: str
    quote: str
    ct_val: float = 1.0
    inverse: bool = False
    tick: float = 0.0

    def to_base(self, contracts: float, price: float) -> float:
        """Size in contracts -> base units."""
        if self.inverse:
            return contracts * self.ct_val / price if price > 0 else 0.0
        return contracts * self.ct_val


@dataclass
class Catalog:
    """Known instruments of one venue, by venue-native symbol."""

    by_symbol: dict[str, InstrumentInfo] = field(default_factory=dict)

    def add(self, info: InstrumentInfo) -> None:
        """Add or replace the instrument ``info.symbol``."""
        self.by_symbol[info.symbol] = info

    def get(self, symbol: str) -> InstrumentInfo | None:
        """The instrument with venue symbol ``symbol``, or ``None`` if it is not known."""
        return self.by_symbol.get(symbol)


def canonical(base: str, quote: str) -> str:
    """Canonical perpetual instrument name: ``BTC``, ``USDT`` -> ``BTC-USDT-PERP``."""
    return f"{base}-{quote}{PERP_SUFFIX}"


QUOTE_ASSETS = ("USDT", "USDC", "BUSD", "FDUSD", "USD")


def split_concatenated(symbol: str) -> tuple[str, str] | None:
    """Split a concatenated perpetual symbol: ``BTCUSDT`` -> ``("BTC", "USDT")``.

    Returns ``None`` for dated contracts (``BTCUSDT_240628``) or unknown quotes.
    """
    if "_" in symbol or "-" in symbol:
        return None
    for quote in QUOTE_ASSETS:
        if symbol.endswith(quote) and len(symbol) > len(quote):
            return symbol[: -len(quote)], quote
    return None


def positive_price(value: str | float, what: str = "price") -> float:
    """Parse a price that must be finite and > 0, else :class:`ParseError` ``bad_price``."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ParseError(Reason.BAD_NUMBER, f"{what}={value!r}") from None
    if not math.isfinite(number) or number <= 0:
        raise ParseError(Reason.BAD_PRICE, f"{what}={value!r}")
    return number


def non_negative(value: str | float, what: str = "qty") -> float:
    """Parse a quantity that must be finite and >= 0, else :class:`ParseError` ``bad_qty``."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ParseError(Reason.BAD_NUMBER, f"{what}={value!r}") from None
    if not math.isfinite(number) or number < 0:
        raise ParseError(Reason.BAD_QTY, f"{what}={value!r}")
    return number


def decode(decoder: msgspec.json.Decoder[_T], payload: bytes | str | msgspec.Raw, what: str) -> _T:
    """``decoder.decode(payload)``; a payload of the wrong shape is :class:`ParseError` ``schema``, one
    that is not JSON ``malformed_json``, each naming ``what`` (the detail cut to 200 characters)."""
    try:
        return decoder.decode(payload)
    except msgspec.ValidationError as exc:
        raise ParseError(Reason.SCHEMA, f"{what}: {exc}"[:200]) from None
    except msgspec.DecodeError as exc:
        raise ParseError(Reason.MALFORMED_JSON, f"{what}: {exc}"[:200]) from None


def checked_price(value: float | None, what: str) -> float:
    """A decoded price: ``0 < value < inf`` (so not NaN), else :class:`ParseError` ``bad_price``."""
    if value is None or not 0.0 < value < math.inf:
        raise ParseError(Reason.BAD_PRICE, f"{what}={value!r}")
    return value


def checked_qty(value: float | None, what: str) -> float:
    """A decoded quantity: ``0 <= value < inf`` (so not NaN), else :class:`ParseError` ``bad_qty``."""
    if value is None or not 0.0 <= value < math.inf:
        raise ParseError(Reason.BAD_QTY, f"{what}={value!r}")
    return value


def checked_notional(price: float, qty: float) -> float:
    """``price * qty`` (quote currency); a product out of float range is :class:`ParseError` ``bad_number``."""
    value = price * qty
    if value == math.inf:
        raise ParseError(Reason.BAD_NUMBER, f"notional of {qty!r} at {price!r} out of float range")
    return value


def forced_fill(trade: Trade, side: PositionSide) -> Liquidation:
    """The liquidation a trade is (a venue that flags forced fills on its trades): the same
    instrument, time, price and quantity, ``side`` the liquidated position, ``notional = price * qty``
    (:func:`checked_notional`)."""
    return Liquidation(
        venue=trade.venue,
        symbol=trade.symbol,
        instrument=trade.instrument,
        ts=trade.ts,
        recv=trade.recv,
        price=trade.price,
        qty=trade.qty,
        side=side,
        notional=checked_notional(trade.price, trade.qty),
    )


def levels(
    raw: list[list[str]] | list[tuple[str, ...]], info: InstrumentInfo | None = None
) -> tuple[tuple[float, float], ...]:
    """Venue ``[[price, size, ...], ...]`` -> ``((price, qty_base), ...)``, validated."""
    out = []
    for entry in raw:
        if len(entry) < 2:
            raise ParseError(Reason.BAD_LEVEL, repr(entry)[:80])
        price = positive_price(entry[0])
        size = non_negative(entry[1], "size")
        out.append((price, info.to_base(size, price) if info is not None else size))
    return tuple(out)


class VenueParser:
    """Base of the per-venue parsers: frame text -> :class:`Parsed`."""

    SOURCE: str = ""

    def __init__(self, catalog: Catalog | None = None) -> None:
        self.catalog = catalog if catalog is not None else Catalog()

    def parse_ws(self, payload: bytes | str, recv: int) -> Parsed:  # pragma: no cover - abstract
        """Parse one websocket text frame received at ``recv`` (ns) into events or a skip reason."""
        raise NotImplementedError

    def parse_rest(self, path: str, body: bytes, recv: int) -> Parsed:  # pragma: no cover - abstract
        """Parse the REST response ``body`` of ``path`` received at ``recv`` (ns) into events or a skip reason."""
        raise NotImplementedError

    def hot_event(self, payload: bytes, recv: int) -> Trade | BookDelta | MarkPrice | None:
        """The venue's commonest frames, each a single trade, book delta or mark price, decoded
        straight into that event (received at ``recv``, ns); ``None`` for any other frame, good or bad.

        A fast path for replays: where it gives an event, :meth:`parse_ws` gives ``Parsed(kind,
        [the same event])`` with ``kind`` the event's :data:`HOT_KINDS`; where it gives ``None``
        (never an exception), :meth:`parse_ws` gives the events or the reason. The base class has
        none (:data:`HAS_HOT_EVENT` is false).
        """
        return None

    HAS_HOT_EVENT = False
    """Whether :meth:`hot_event` is implemented (the frame decoder calls it only then)."""

    @classmethod
    def sequence_rule(cls) -> SequenceRule:
        """A fresh order-book sequence rule for one instrument of this venue."""
        return SequenceRule()

    def instrument_of(self, symbol: str) -> str:
        """Canonical instrument of a venue-native ``symbol`` (connection events name books by
        symbol); ``""`` when the symbol is not known as a perpetual."""
        info = self.catalog.get(symbol)
        return info.instrument if info is not None else ""

    def decode(self, payload: bytes | str, schema: type) -> object:
        """Decode ``payload`` into ``schema``; any decoding problem becomes ``ParseError``."""
        try:
            return msgspec.json.decode(payload, type=schema)
        except msgspec.ValidationError as exc:
            raise ParseError(Reason.SCHEMA, str(exc)[:200]) from None
        except msgspec.DecodeError as exc:
            raise ParseError(Reason.MALFORMED_JSON, str(exc)[:200]) from None


class Verdict(enum.Enum):
    """What to do with a book delta: apply it, skip it (stale or before sync), or declare a gap."""

    APPLY = "apply"
    SKIP = "skip"
    GAP = "gap"


class SeqStart(Protocol):
    """What a sequence starts from: a :class:`BookSnapshot`, or a live mark with its ``seq``."""

    @property
    def seq(self) -> int:
        """The venue's update id the book is at."""
        ...


class SeqStep(Protocol):
    """What a sequence rule checks: a :class:`BookDelta`, or a live mark with the same fields."""

    @property
    def seq(self) -> int:
        """The update id of this message."""
        ...

    @property
    def prev_seq(self) -> int | None:
        """The id the previous message must have had, if the venue says."""
        ...

    @property
    def first_seq(self) -> int | None:
        """The first update id folded into this message, if the venue says."""
        ...


class SequenceRule:
    """A venue's order-book sequence rule; the default applies every delta after a snapshot.

    Subclasses in the venue modules implement the venue's continuity check. State is one
    integer, so a rule pickles with the book.
    """

    def __init__(self) -> None:
        self.last_seq: int | None = None

    def reset(self) -> None:
        """Forget the sequence: deltas are skipped until the next snapshot."""
        self.last_seq = None

    def on_snapshot(self, snapshot: SeqStart) -> None:
        """Start the sequence from the snapshot's ``seq``."""
        self.last_seq = snapshot.seq

    def check(self, delta: SeqStep) -> Verdict:
        """The default rule: skip deltas until a snapshot, then apply every delta."""
        if self.last_seq is None:
            return Verdict.SKIP
        self.last_seq = delta.seq
        return Verdict.APPLY

    def describe_gap(self, delta: SeqStep) -> str:
        """A human description of the gap ``delta`` opens, for the feed status."""
        return f"expected continuation of seq={self.last_seq}, got prev_seq={delta.prev_seq} seq={delta.seq}"
