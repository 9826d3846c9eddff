"""The normalized event model: the contract between connectors, detectors and pipelines.

Every event is a frozen :class:`msgspec.Struct` carrying

- ``venue``: source token of the venue (``binance-usdm``, ``bybit-linear``, ``okx-swap``);
- ``symbol``: the venue-native symbol (``BTCUSDT``, ``BTC-USDT-SWAP``);
- ``instrument``: the canonical instrument (``BTC-USDT-PERP``);
- ``ts``: exchange event time, integer nanoseconds since the UTC epoch;
- ``recv``: local receive time, integer nanoseconds since the UTC epoch.

Units: prices in quote currency per base unit, quantities in base units
(contract sizes are converted with the instrument's contract value), notional in
quote currency. Floats, not Decimal, on the hot path.

Side conventions:

- :class:`Trade` ``side`` is the *aggressor*: ``"buy"`` lifted the ask, ``"sell"`` hit the bid.
- :class:`Liquidation` ``side`` is the *liquidated position*: ``"long"`` (forced sell)
  or ``"short"`` (forced buy), normalized per venue.
"""

from __future__ import annotations

from typing import Literal, TypeAlias

import msgspec

Level: TypeAlias = tuple[float, float]
"""One book level: ``(price, qty)``; ``qty == 0`` deletes the level in a delta."""

AggressorSide: TypeAlias = Literal["buy", "sell"]
PositionSide: TypeAlias = Literal["long", "short"]
FeedState: TypeAlias = Literal["connect", "disconnect", "gap", "resync", "stale", "error", "interrupted", "invalid"]
"""``interrupted``: a connection carrying none of the instrument's book closed, or frames were
dropped: trades, liquidations or marks may be missing, the book stands. ``invalid``: the book
has waited for a snapshot longer than ``[live] book_alert_s`` (the detail names the cause)."""

PERP_SUFFIX = "-PERP"


def asset_of(instrument: str) -> str:
    """Canonical asset of an instrument: ``BTC-USDT-PERP`` -> ``BTC-USDT``."""
    return instrument.removesuffix(PERP_SUFFIX)


class Event(msgspec.Struct, frozen=True, gc=False, tag_field="type"):
    """Fields common to every event (see the module docstring for units)."""

    venue: str
    symbol: str
    instrument: str
    ts: int
    recv: int


class Trade(Event, frozen=True, gc=False, tag="trade"):
    """A public trade. ``side`` is the aggressor."""

    price: float
    qty: float
    side: AggressorSide


class BookSnapshot(Event, frozen=True, gc=False, tag="book_snapshot"):
    """A full replacement of the book; ``seq`` is the venue's update id after it (0 if none)."""

    bids: tuple[Level, ...]
    asks: tuple[Level, ...]
    seq: int = 0


class BookDelta(Event, frozen=True, gc=False, tag="book_delta"):
    """Changed levels (``qty == 0`` deletes).

    Sequence fields, as the venue gives them (``None`` where it does not):

    - ``seq``: the update id of this message (Binance ``u``, Bybit ``u``, OKX ``seqId``);
    - ``prev_seq``: the id the previous message must have had (Binance ``pu``,
      OKX ``prevSeqId``);
    - ``first_seq``: the first update id folded into this message (Binance ``U``).
    """

    bids: tuple[Level, ...]
    asks: tuple[Level, ...]
    seq: int
    prev_seq: int | None = None
    first_seq: int | None = None


class Liquidation(Event, frozen=True, gc=False, tag="liquidation"):
    """A forced close. ``side`` is the liquidated position; ``notional = price * qty``."""

    price: float
    qty: float
    side: PositionSide
    notional: float


class MarkPrice(Event, frozen=True, gc=False, tag="mark_price"):
    """Mark price, with index price and current funding rate (fraction per period) when known."""

    price: float
    index: float | None = None
    funding: float | None = None


class OpenInterest(Event, frozen=True, gc=False, tag="open_interest"):
    """Open interest: ``qty`` in base units, ``notional`` in quote (``None`` when not published)."""

    qty: float
    notional: float | None = None


class CoarsePrice(Event, frozen=True, gc=False, tag="coarse_price"):
    """A price known only from a time bin (BitMEX ``tradeBin1m`` / ``quoteBin1m``): no trades,
    no flow. ``ts`` is the end of the bin; ``price`` is the bin's close (last trade) or, for a
    quote bin, the mid of ``bid`` and ``ask`` at the bin's end; ``bin_s`` the bin length, seconds.
    Used as the instrument's price only while it has no trades (the snapshot marks it coarse)."""

    price: float
    bin_s: int
    bid: float | None = None
    ask: float | None = None


class FeedStatus(Event, frozen=True, gc=False, tag="feed_status"):
    """A connection or book-integrity event.

    ``instrument == ""`` means the whole connection of ``venue`` (open/close);
    the source fans it out to the instruments it carries.
    """

    state: FeedState
    detail: str = ""


AnyEvent: TypeAlias = (
    Trade | BookSnapshot | BookDelta | Liquidation | MarkPrice | OpenInterest | CoarsePrice | FeedStatus
)
