"""Order-book state of one venue instrument, kept correct by the venue's sequence rule.

Levels live in two plain dicts (price -> qty): a delta costs one dict operation per level.
Sorting happens only on readout (once per event-time second in the dataflow), never per update;
a readout re-sorts only the prices changed since the previous one (the sorted array is kept).

Integrity: every delta is checked by the venue's :class:`~cascadewatch.connectors.venues.base.SequenceRule`.
A gap marks the book invalid until the next snapshot and yields ``FeedStatus(state="gap")``;
readouts of an invalid book are empty.
"""

from __future__ import annotations

import bisect
import math
from array import array
from collections.abc import Iterable, Sequence

import numpy as np

from cascadewatch.connectors.events import (
    AnyEvent,
    BookDelta,
    BookSnapshot,
    FeedState,
    FeedStatus,
    Level,
)
from cascadewatch.connectors.venues.base import SequenceRule, Verdict


class OrderBook:
    """One instrument's book: bids and asks as ``{price: qty}``, plus an integrity flag.

    Change the levels through :meth:`replace`, :meth:`update` and :meth:`invalidate` only
    (:meth:`sides` keeps the sorted sides between readouts).

    >>> book = OrderBook()
    >>> book.replace([(99.0, 2.0), (98.0, 1.0)], [(101.0, 3.0)])
    >>> book.update([(99.0, 0.0)], [(100.5, 1.0)])
    >>> book.best_bid(), book.best_ask(), book.mid()
    (98.0, 100.5, 99.25)
    """

    __slots__ = ("bids", "asks", "valid", "_sorted")

    def __init__(self) -> None:
        self.bids: dict[float, float] = {}
        self.asks: dict[float, float] = {}
        self.valid = False
        self._sorted = (_SortedSide(), _SortedSide())  # bids, asks; derived, not pickled

    def __getstate__(self) -> tuple[None, dict]:
        return None, {"bids": self.bids, "asks": self.asks, "valid": self.valid}

    def __setstate__(self, state: tuple[None, dict]) -> None:
        for name, value in state[1].items():
            setattr(self, name, value)
        self._sorted = (_SortedSide(), _SortedSide())

    def replace(self, bids: Iterable[Level], asks: Iterable[Level]) -> None:
        """Install a full snapshot (zero quantities are dropped) and mark the book valid."""
        self.bids = {price: qty for price, qty in bids if qty > 0}
        self.asks = {price: qty for price, qty in asks if qty > 0}
        self.valid = True

    def update(self, bids: Iterable[Level], asks: Iterable[Level]) -> None:
        """Apply changed levels; ``qty == 0`` deletes the level."""
        for side, changes, changed in (
            (self.bids, bids, self._sorted[0].changed),
            (self.asks, asks, self._sorted[1].changed),
        ):
            for price, qty in changes:
                if qty > 0:
                    side[price] = qty
                else:
                    side.pop(price, None)
                changed.add(price)

    def invalidate(self) -> None:
        """Forget the levels: the book cannot be trusted until the next snapshot."""
        self.bids.clear()
        self.asks.clear()
        self.valid = False
        self._sorted = (_SortedSide(), _SortedSide())

    def best_bid(self) -> float | None:
        """The highest bid price, or ``None`` when the book is invalid or has no bids."""
        return max(self.bids) if self.valid and self.bids else None

    def best_ask(self) -> float | None:
        """The lowest ask price, or ``None`` when the book is invalid or has no asks."""
        return min(self.asks) if self.valid and self.asks else None

    def mid(self) -> float | None:
        """``(best_bid + best_ask) / 2``, or ``None`` when a side is empty or the book is invalid."""
        bid, ask = self.best_bid(), self.best_ask()
        if bid is None or ask is None:
            return None
        return (bid + ask) / 2.0

    def sides(self) -> tuple[np.ndarray, np.ndarray]:
        """Both sides sorted best-first as ``(n, 2)`` float arrays of ``(price, qty)``.

        Bids descend in price, asks ascend. Empty arrays for an invalid book.
        """
        if not self.valid:
            empty = np.empty((0, 2))
            return empty, empty
        return self._sorted[0].read(self.bids, descending=True), self._sorted[1].read(self.asks, descending=False)


def _sorted_side(levels: dict[float, float], descending: bool) -> np.ndarray:
    """``(n, 2)`` float array of ``(price, qty)`` sorted by price (prices are unique dict keys)."""
    prices = sorted(levels, reverse=descending)
    side = np.empty((len(prices), 2))
    side[:, 0] = np.array(prices, dtype=float)
    side[:, 1] = np.array(list(map(levels.__getitem__, prices)), dtype=float)
    return side


class _SortedSide:
    """One side's levels kept sorted from one readout to the next.

    ``prices`` (ascending) and ``flat`` (doubles ``p0, q0, p1, q1, ...`` in the same order, the
    readout's buffer) mirror the dict ``levels``; ``changed`` collects the prices
    :meth:`OrderBook.update` touched, and a readout moves only those (bisect, insert/delete)
    unless they are many or the dict was replaced. With a NaN price there is no order to
    keep: every readout sorts from scratch (:func:`_sorted_side`), so the arrays are always
    the sorted dict.
    """

    __slots__ = ("changed", "flat", "levels", "prices")

    def __init__(self) -> None:
        self.levels: dict[float, float] | None = None  # the dict mirrored
        self.prices: list[float] = []
        self.flat = array("d")
        self.changed: set[float] = set()

    def read(self, levels: dict[float, float], descending: bool) -> np.ndarray:
        """``levels`` sorted best-first: a new ``(n, 2)`` array."""
        changed, self.changed = self.changed, set()
        if self.levels is levels and 4 * len(changed) <= len(levels) and not any(map(math.isnan, changed)):
            self._apply(levels, sorted(changed))
        else:
            prices = sorted(levels)
            if any(map(math.isnan, prices)):  # a NaN price: no order to keep
                self.levels = None
                return _sorted_side(levels, descending)
            self.prices, self.levels = prices, levels
            self.flat = array("d", [x for p in prices for x in (p, levels[p])])
        view = np.frombuffer(self.flat, dtype=np.float64).reshape(-1, 2)
        side = (view[::-1] if descending else view).copy()
        del view  # release the buffer (``flat`` changes size later)
        return side

    def _apply(self, levels: dict[float, float], changed: list[float]) -> None:
        """Bring ``prices`` and ``flat`` up to date at the ``changed`` prices."""
        prices, flat = self.prices, self.flat
        for p in changed:
            i = bisect.bisect_left(prices, p)
            there = i < len(prices) and prices[i] == p
            qty = levels.get(p)
            if qty is None:
                if there:
                    del prices[i]
                    del flat[2 * i : 2 * i + 2]
            elif there:
                flat[2 * i + 1] = qty
            else:
                prices.insert(i, p)
                flat[2 * i : 2 * i] = array("d", (p, qty))


def depth_within(side: np.ndarray, reference: float, bands_bps: Sequence[float], is_bid: bool) -> list[float]:
    """Resting notional (quote units) within each band of ``reference`` on one side.

    A bid level at price p counts in band b when ``p >= reference * (1 - b/10_000)``; an ask
    when ``p <= reference * (1 + b/10_000)``. Notional is ``sum(price * qty)``. ``side`` is
    sorted best-first (as :meth:`OrderBook.sides` gives it): one ``cumsum``, and a
    ``searchsorted`` per band.

    >>> asks = np.array([[100.0, 1.0], [100.2, 2.0], [101.0, 1.0]])
    >>> depth_within(asks, 100.0, [10, 25, 100], is_bid=False)
    [100.0, 300.4, 401.4]
    """
    if side.size == 0:
        return [0.0] * len(bands_bps)
    prices = side[:, 0]
    notional = (prices * side[:, 1]).cumsum()
    if is_bid:
        keys = -prices
        counts = [int(keys.searchsorted(-(reference * (1.0 - band / 10_000.0)), side="right")) for band in bands_bps]
    else:
        counts = [int(prices.searchsorted(reference * (1.0 + band / 10_000.0), side="right")) for band in bands_bps]
    return [float(notional[count - 1]) if count else 0.0 for count in counts]


class BookKeeper:
    """Applies book events to an :class:`OrderBook` under a venue :class:`SequenceRule`.

    :meth:`apply` returns the ``FeedStatus`` events it produced (a gap, a resync).
    """

    __slots__ = ("book", "rule", "gaps")

    def __init__(self, rule: SequenceRule) -> None:
        self.book = OrderBook()
        self.rule = rule
        self.gaps = 0

    def apply(self, event: AnyEvent) -> list[FeedStatus]:
        """Apply any book-related event; other events are ignored."""
        if isinstance(event, BookSnapshot):
            return self.apply_snapshot(event)
        if isinstance(event, BookDelta):
            return self.apply_delta(event)
        if isinstance(event, FeedStatus):
            self.apply_status(event)
        return []

    def apply_snapshot(self, event: BookSnapshot) -> list[FeedStatus]:
        """Replace the book with a snapshot; returns a ``resync`` status if it ends a gap."""
        was_invalid = not self.book.valid and self.gaps > 0
        self.book.replace(event.bids, event.asks)
        self.rule.on_snapshot(event)
        if was_invalid:
            return [_status(event, "resync", f"snapshot seq={event.seq}")]
        return []

    def apply_delta(self, event: BookDelta) -> list[FeedStatus]:
        """Apply a delta by the sequence rule; returns the statuses it causes (a gap, a resync)."""
        verdict = self.rule.check(event)
        if verdict is Verdict.APPLY:
            self.book.update(event.bids, event.asks)
        elif verdict is Verdict.GAP and self.book.valid:
            detail = self.rule.describe_gap(event)
            self.book.invalidate()
            self.rule.reset()
            self.gaps += 1
            return [_status(event, "gap", detail)]
        return []

    def apply_status(self, event: FeedStatus) -> None:
        """A disconnect or an upstream gap: the book waits for its next snapshot.

        An upstream gap (frames of this book dropped before the dataflow) counts as a gap: the
        next snapshot is a ``resync``.
        """
        if event.state in ("disconnect", "gap"):
            if event.state == "gap" and self.book.valid:
                self.gaps += 1
            self.book.invalidate()
            self.rule.reset()


def _status(event: AnyEvent, state: FeedState, detail: str) -> FeedStatus:
    return FeedStatus(
        venue=event.venue,
        symbol=event.symbol,
        instrument=event.instrument,
        ts=event.ts,
        recv=event.recv,
        state=state,
        detail=detail,
    )
