"""Per venue-instrument state: the book, last trade, mark, open interest, per-second flow.

:class:`InstrumentTracker` consumes one instrument's events and watermarks, in order, and
emits one :class:`~cascadewatch.pipelines.steps.items.InstrumentState` for every event-time second in which
the instrument had events, when that second closes.

A second closes when an event of a later second arrives or a watermark passes its end.
Events are assigned by effective time (:func:`cascadewatch.connectors.sources.effective_time`) and never
to a second that has already closed (a late event counts in the open second).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec

from cascadewatch.connectors.book import BookKeeper
from cascadewatch.connectors.events import (
    BookDelta,
    BookSnapshot,
    CoarsePrice,
    FeedStatus,
    Liquidation,
    MarkPrice,
    OpenInterest,
    Trade,
    asset_of,
)
from cascadewatch.connectors.frames import DeadLetter
from cascadewatch.connectors.reasons import Reason
from cascadewatch.connectors.units import NS_PER_S
from cascadewatch.connectors.venues.base import SequenceRule
from cascadewatch.connectors.venues.registry import PARSERS
from cascadewatch.pipelines.steps.items import (
    BOOK_RANGE_BPS,
    DEPTH_BANDS_BPS,
    InstrumentState,
)


class InstrumentTracker:
    """State of one ``venue|instrument`` key; pickles for Bytewax recovery.

    The identity comes from the first event (a key's first item is always an event:
    watermarks only go to announced keys).
    """

    def __init__(self, allowed_lag_ns: int) -> None:
        self.lag = allowed_lag_ns
        self.key = self.venue = self.instrument = self.asset = ""
        self.books = BookKeeper(SequenceRule())
        self.dead_letters: list[DeadLetter] = []
        self.open_second: int | None = None
        self.closed_before = -(2**63)
        self.price: float | None = None
        self.traded = False  # a trade was seen: bins no longer set the price
        self.coarse = False  # the price comes from a time bin
        self.mark: float | None = None
        self.index: float | None = None
        self.funding: float | None = None
        self.oi_qty: float | None = None
        self.oi_usd: float | None = None
        self._reset_flow()

    def _reset_flow(self) -> None:
        self.buy_usd = 0.0
        self.sell_usd = 0.0
        self.buy_qty = 0.0
        self.sell_qty = 0.0
        self.liqs: list[tuple[int, float, float, str]] = []
        self.trades = 0
        self.liq_long_usd = 0.0
        self.liq_short_usd = 0.0
        self.liquidations = 0
        self.feed: list[str] = []

    def process(self, values: list[Any]) -> list[InstrumentState | DeadLetter]:
        """Apply a batch of events and watermarks; return closed seconds and dead letters.

        Closed seconds keep their order; a sequence gap adds a ``DeadLetter`` (reason
        ``sequence_gap``, the offending delta as raw text).
        """
        out: list[InstrumentState | DeadLetter] = []
        handlers = self._HANDLERS
        lag = self.lag
        identified = bool(self.key)
        # the open second, the first second still open and the open second's trade flow stay in
        # locals; they go back to the attributes before anything else reads or changes them
        open_second, closed_before = self.open_second, self.closed_before
        open_end = _end_of(open_second, closed_before)
        buy_usd, buy_qty, sell_usd, sell_qty, trades = self.buy_usd, self.buy_qty, self.sell_usd, self.sell_qty, 0
        price = None  # the last trade's price, once a trade is in the locals
        for value in values:
            cls = value.__class__
            handler = None
            if cls is not Trade:  # most events are trades: no handler lookup for them
                if trades:
                    self._add_trades(buy_usd, buy_qty, sell_usd, sell_qty, trades, price)
                    trades = 0
                handler = handlers.get(cls)
                if handler is None:  # a Watermark
                    self.open_second = open_second
                    self._advance(value.wm // NS_PER_S, out)
                    open_second, closed_before = self.open_second, self.closed_before
                    open_end = _end_of(open_second, closed_before)
                    buy_usd, buy_qty, sell_usd, sell_qty = self.buy_usd, self.buy_qty, self.sell_usd, self.sell_qty
                    continue
            if not identified:
                self._identify(value)
                identified = True
            # effective time max(ts, recv - lag); before open_end it counts in the open second
            floor = value.recv - lag
            effective = value.ts if value.ts > floor else floor
            if effective >= open_end:  # its second, never before a closed one
                second = effective // NS_PER_S
                if second < closed_before:
                    second = closed_before
                if open_second is None:
                    open_second = second
                elif second > open_second:
                    if trades:
                        self._add_trades(buy_usd, buy_qty, sell_usd, sell_qty, trades, price)
                        trades = 0
                    self.open_second = open_second
                    self._advance(second, out)
                    closed_before = self.closed_before
                    open_second = second
                    buy_usd, buy_qty, sell_usd, sell_qty = self.buy_usd, self.buy_qty, self.sell_usd, self.sell_qty
                open_end = _end_of(open_second, closed_before)
            if handler is None:  # a trade: _on_trade in the locals
                price = value.price
                qty = value.qty
                if value.side == "buy":
                    buy_usd += price * qty
                    buy_qty += qty
                else:
                    sell_usd += price * qty
                    sell_qty += qty
                trades += 1
                continue
            handler(self, value)
        if trades:
            self._add_trades(buy_usd, buy_qty, sell_usd, sell_qty, trades, price)
        self.open_second = open_second
        if self.dead_letters:
            out.extend(self.dead_letters)
            self.dead_letters = []
        return out

    def _add_trades(
        self, buy_usd: float, buy_qty: float, sell_usd: float, sell_qty: float, trades: int, price: float | None
    ) -> None:
        """The trade flow :meth:`process` kept in locals: the sums so far in this second, the
        ``trades`` trades added to them, the last one at ``price``."""
        self.buy_usd, self.buy_qty, self.sell_usd, self.sell_qty = buy_usd, buy_qty, sell_usd, sell_qty
        self.trades += trades
        self.price = price
        self.traded = True
        self.coarse = False

    def _identify(self, event: Any) -> None:
        self.venue, self.instrument = event.venue, event.instrument
        self.key = f"{event.venue}|{event.instrument}"
        self.asset = asset_of(event.instrument)
        parser_class = PARSERS.get(event.venue)
        if parser_class is not None:
            self.books = BookKeeper(parser_class.sequence_rule())

    def _advance(self, second: int, out: list[Any]) -> None:
        """Close the open second if it ends at or before ``second``."""
        if self.open_second is not None and self.open_second < second:
            out.append(self._close())
            self.open_second = None
        if second > self.closed_before:
            self.closed_before = second

    def _on_trade(self, event: Trade) -> None:
        notional = event.price * event.qty
        if event.side == "buy":
            self.buy_usd += notional
            self.buy_qty += event.qty
        else:
            self.sell_usd += notional
            self.sell_qty += event.qty
        self.trades += 1
        self.price = event.price
        self.traded = True
        self.coarse = False

    def _on_book_snapshot(self, event: BookSnapshot) -> None:
        self._book_statuses(self.books.apply_snapshot(event), event)

    def _on_book_delta(self, event: BookDelta) -> None:
        self._book_statuses(self.books.apply_delta(event), event)

    def _book_statuses(self, statuses: list[FeedStatus], event: BookDelta | BookSnapshot) -> None:
        for status in statuses:
            self.feed.append(f"{status.state}: {status.detail}")
            if status.state == "gap":
                self.dead_letters.append(
                    DeadLetter(
                        reason=Reason.SEQUENCE_GAP,
                        source=self.venue,
                        raw=msgspec.json.encode(event).decode(),
                        detail=status.detail,
                    )
                )

    def _on_liquidation(self, event: Liquidation) -> None:
        self.liqs.append((event.ts, event.price, event.qty, event.side))
        if event.side == "long":
            self.liq_long_usd += event.notional
        else:
            self.liq_short_usd += event.notional
        self.liquidations += 1

    def _on_mark_price(self, event: MarkPrice) -> None:
        self.mark = event.price
        if event.index is not None:
            self.index = event.index
        if event.funding is not None:
            self.funding = event.funding

    def _on_coarse_price(self, event: CoarsePrice) -> None:
        """A bin's price stands for the price only while the instrument has no trades."""
        if not self.traded:
            self.price = event.price
            self.coarse = True

    def _on_open_interest(self, event: OpenInterest) -> None:
        self.oi_qty = event.qty
        reference = self.mark or self.price
        self.oi_usd = event.notional if event.notional is not None else (event.qty * reference if reference else None)

    def _on_feed_status(self, event: FeedStatus) -> None:
        self.books.apply_status(event)
        self.feed.append(f"{event.state}: {event.detail}" if event.detail else event.state)

    _HANDLERS: dict[type, Callable[[InstrumentTracker, Any], None]] = {
        Trade: _on_trade,
        BookSnapshot: _on_book_snapshot,
        BookDelta: _on_book_delta,
        Liquidation: _on_liquidation,
        MarkPrice: _on_mark_price,
        OpenInterest: _on_open_interest,
        CoarsePrice: _on_coarse_price,
        FeedStatus: _on_feed_status,
    }

    def _close(self) -> InstrumentState:
        assert self.open_second is not None
        book = self.books.book
        readout = book.readout(self.price, DEPTH_BANDS_BPS, BOOK_RANGE_BPS)
        second = InstrumentState(
            venue=self.venue,
            instrument=self.instrument,
            asset=self.asset,
            second=self.open_second * 1000,
            price=self.price,
            mark=self.mark,
            index=self.index,
            funding=self.funding,
            oi_qty=self.oi_qty,
            oi_usd=self.oi_usd,
            buy_usd=self.buy_usd,
            sell_usd=self.sell_usd,
            trades=self.trades,
            liq_long_usd=self.liq_long_usd,
            liq_short_usd=self.liq_short_usd,
            liquidations=self.liquidations,
            book_valid=book.valid,
            best_bid=readout.best_bid,
            best_ask=readout.best_ask,
            depth_bid_usd=readout.depth_bid,
            depth_ask_usd=readout.depth_ask,
            feed=tuple(self.feed),
            buy_qty=self.buy_qty,
            sell_qty=self.sell_qty,
            liqs=tuple(self.liqs),
            bids=readout.near_bids if book.valid else None,
            asks=readout.near_asks if book.valid else None,
            book_cover_bps=readout.cover_bps,
            coarse=self.coarse,
        )
        self._reset_flow()
        return second


_NO_END = -(2**64)
"""The open second's end when an event must take the full path: below every effective time."""


def _end_of(open_second: int | None, closed_before: int) -> int:
    """The effective time (ns) from which an event falls in a later second than ``open_second``:
    ``(open_second + 1) * 1e9``; an event before it counts in the open second (a late one too, as
    its second is raised to the first one still open, ``closed_before <= open_second``).
    :data:`_NO_END` when no second is open (or ``closed_before`` is past it): every event then
    takes the full path.

    >>> _end_of(5, 3), _end_of(None, 3) == _NO_END, _end_of(5, 6) == _NO_END
    (6000000000, True, True)
    """
    if open_second is None or open_second < closed_before:
        return _NO_END
    return (open_second + 1) * NS_PER_S
