"""Order-book state of one venue instrument, kept correct by the venue's sequence rule.

Levels live in two plain dicts (price -> qty): a delta costs one dict operation per level.
Sorting happens only on readout (once per event-time second in the dataflow), never per update;
a readout re-sorts only the prices changed since the previous one (the sorted array is kept).

Integrity: every delta is checked by the venue's :class:`~cascadewatch.connectors.venues.base.SequenceRule`.
A gap marks the book invalid until the next snapshot and yields ``FeedStatus(state="gap")``;
readouts of an invalid book are empty.
"""

from __future__ import annotations

import math
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Sequence
from typing import NamedTuple

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
        side, add = self.bids, self._sorted[0].changed.add
        for price, qty in bids:
            if qty > 0.0:
                side[price] = qty
            else:
                side.pop(price, None)
            add(price)
        side, add = self.asks, self._sorted[1].changed.add
        for price, qty in asks:
            if qty > 0.0:
                side[price] = qty
            else:
                side.pop(price, None)
            add(price)

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

    def readout(self, fallback: float | None, bands_bps: Sequence[float], range_bps: float) -> BookReadout:
        """The per-second readout of the book (:class:`BookReadout`), about ``reference``: the mid,
        or ``fallback`` (the last trade price) when a side is empty or the book is invalid.

        The same numbers as :func:`readout_of_sides` on :meth:`sides` (the definition), taken from
        the sorted prices kept between readouts: the band and range edges by bisection, the band
        sums added in the same order, one copy of the levels within ``range_bps``.
        """
        if not self.valid:
            return readout_of_sides(_EMPTY, _EMPTY, fallback, bands_bps, range_bps)
        bid_side, ask_side = self._sorted
        if not bid_side.bring_up_to_date(self.bids) or not ask_side.bring_up_to_date(self.asks):
            return readout_of_sides(*self.sides(), fallback, bands_bps, range_bps)  # a NaN price
        bid_prices, ask_prices = bid_side.prices, ask_side.prices
        n_bids, n_asks = len(bid_prices), len(ask_prices)
        best_bid = bid_prices[-1] if n_bids else None
        best_ask = ask_prices[0] if n_asks else None
        cover = None
        if best_bid is not None and best_ask is not None:
            reference: float | None = (best_bid + best_ask) / 2.0
            cover = _cover(best_bid, best_ask, bid_prices[0], ask_prices[-1])
        else:
            reference = fallback
        if reference is None:
            zeros = (0.0,) * len(bands_bps)
            return BookReadout(best_bid, best_ask, zeros, zeros, None, None, cover)
        # a bid at p is within b bps when p >= reference * (1 - b/10_000): the top n - bisect_left
        bid_counts = [n_bids - bisect_left(bid_prices, reference * (1.0 - b / 10_000.0)) for b in bands_bps]
        ask_counts = [bisect_right(ask_prices, reference * (1.0 + b / 10_000.0)) for b in bands_bps]
        near_bid = n_bids - bisect_left(bid_prices, reference * (1.0 - range_bps / 10_000.0))
        near_ask = bisect_right(ask_prices, reference * (1.0 + range_bps / 10_000.0))
        return BookReadout(
            best_bid,
            best_ask,
            _band_sums(bid_side.flat, n_bids, bid_counts, True),
            _band_sums(ask_side.flat, n_asks, ask_counts, False),
            _best_first(bid_side.flat, n_bids, near_bid, True),
            _best_first(ask_side.flat, n_asks, near_ask, False),
            cover,
        )


class BookReadout(NamedTuple):
    """One second's readout of a book (:meth:`OrderBook.readout`, defined by :func:`readout_of_sides`)."""

    best_bid: float | None
    best_ask: float | None
    depth_bid: tuple[float, ...]
    """Resting notional (quote units) within each band of the reference (:func:`depth_within`)."""
    depth_ask: tuple[float, ...]
    near_bids: np.ndarray | None
    """The levels within the range of the reference, ``(n, 2)`` best first; ``None`` without a
    reference."""
    near_asks: np.ndarray | None
    cover_bps: float | None
    """Reach of a two-sided book from its mid on its shorter side (:func:`cover_bps`)."""


_EMPTY = np.empty((0, 2))


def readout_of_sides(
    bids: np.ndarray, asks: np.ndarray, fallback: float | None, bands_bps: Sequence[float], range_bps: float
) -> BookReadout:
    """The readout of sorted sides (best first, as :meth:`OrderBook.sides` gives them): the best
    prices, the reference (their mid, else ``fallback``), :func:`depth_within` of each side, the
    levels within ``range_bps`` of the reference (``p >= reference * (1 - range/10_000)`` for a
    bid, ``<= reference * (1 + range/10_000)`` for an ask) and :func:`cover_bps`."""
    best_bid = float(bids[0, 0]) if len(bids) else None
    best_ask = float(asks[0, 0]) if len(asks) else None
    reference = (best_bid + best_ask) / 2.0 if best_bid is not None and best_ask is not None else fallback
    cover = cover_bps(bids, asks)
    if reference is None:
        zeros = (0.0,) * len(bands_bps)
        return BookReadout(best_bid, best_ask, zeros, zeros, None, None, cover)
    return BookReadout(
        best_bid,
        best_ask,
        tuple(depth_within(bids, reference, bands_bps, is_bid=True)),
        tuple(depth_within(asks, reference, bands_bps, is_bid=False)),
        bids[bids[:, 0] >= reference * (1.0 - range_bps / 10_000.0)],
        asks[asks[:, 0] <= reference * (1.0 + range_bps / 10_000.0)],
        cover,
    )


def cover_bps(bids: np.ndarray, asks: np.ndarray) -> float | None:
    """Reach of a two-sided book from its mid, bps, on its shorter side: ``min(mid - deepest
    bid, deepest ask - mid) / mid * 1e4``; ``None`` when a side is empty (invalid book).

    >>> cover_bps(np.array([[99.0, 1.0], [98.0, 1.0]]), np.array([[101.0, 1.0], [101.5, 1.0]]))
    150.0
    """
    if not len(bids) or not len(asks):
        return None
    return _cover(float(bids[0, 0]), float(asks[0, 0]), float(bids[-1, 0]), float(asks[-1, 0]))


def _cover(best_bid: float, best_ask: float, deepest_bid: float, deepest_ask: float) -> float:
    """:func:`cover_bps` of a book with these best and deepest prices."""
    mid = (best_bid + best_ask) / 2.0
    return min(mid - deepest_bid, deepest_ask - mid) / mid * 10_000.0


def _band_sums(flat: array, n: int, counts: list[int], descending: bool) -> tuple[float, ...]:
    """Notional of the best ``count`` levels for each of ``counts``, from a side's ascending
    ``flat`` (``p0, q0, p1, q1, ...``): ``np.cumsum`` of ``price * qty`` best first, as
    :func:`depth_within` adds them (a cumulative sum is sequential: its first ``k`` sums do
    not depend on the levels after them), over the levels the widest band reaches only."""
    deepest = max(counts, default=0)
    if not deepest:
        return (0.0,) * len(counts)
    top = _best_first_view(flat, n, deepest, descending)
    sums = (top[:, 0] * top[:, 1]).cumsum()
    return tuple(float(sums[count - 1]) if count else 0.0 for count in counts)


def _best_first(flat: array, n: int, count: int, descending: bool) -> np.ndarray:
    """The best ``count`` levels of a side's ascending ``flat`` as a new ``(count, 2)`` array, best first."""
    return _best_first_view(flat, n, count, descending).copy() if count else np.empty((0, 2))


def _best_first_view(flat: array, n: int, count: int, descending: bool) -> np.ndarray:
    """A ``(count, 2)`` view of the best ``count`` (>= 1) levels of a side's ascending ``flat``,
    best first (release it before ``flat`` changes size)."""
    if descending:
        return np.frombuffer(flat, np.float64, 2 * count, 16 * (n - count)).reshape(count, 2)[::-1]
    return np.frombuffer(flat, np.float64, 2 * count).reshape(count, 2)


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
        if not self.bring_up_to_date(levels):  # a NaN price: no order to keep
            return _sorted_side(levels, descending)
        view = np.frombuffer(self.flat, dtype=np.float64).reshape(-1, 2)
        side = (view[::-1] if descending else view).copy()
        del view  # release the buffer (``flat`` changes size later)
        return side

    def bring_up_to_date(self, levels: dict[float, float]) -> bool:
        """Make ``prices`` and ``flat`` the sorted ``levels``; false (and nothing kept) when a
        price is NaN."""
        changed, self.changed = self.changed, set()
        if self.levels is levels and 4 * len(changed) <= len(levels) and not any(map(math.isnan, changed)):
            self._apply(levels, sorted(changed))
            return True
        prices = sorted(levels)
        if any(map(math.isnan, prices)):
            self.levels = None
            return False
        self.prices, self.levels = prices, levels
        self.flat = array("d", [x for p in prices for x in (p, levels[p])])
        return True

    def _apply(self, levels: dict[float, float], changed: list[float]) -> None:
        """Bring ``prices`` and ``flat`` up to date at the ``changed`` prices (ascending)."""
        prices, flat = self.prices, self.flat
        get = levels.get
        i = 0
        for p in changed:
            i = bisect_left(prices, p, i)  # changed ascends: no price before the last one's place
            qty = get(p)
            if i < len(prices) and prices[i] == p:
                if qty is None:
                    del prices[i]
                    del flat[2 * i : 2 * i + 2]
                else:
                    flat[2 * i + 1] = qty
            elif qty is not None:
                prices.insert(i, p)
                flat.insert(2 * i, qty)
                flat.insert(2 * i, p)


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
