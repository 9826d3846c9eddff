"""Per-asset merge of venue states into one risk snapshot per event-time second.

:class:`AssetAggregator` keeps the latest :class:`~cascadewatch.pipelines.steps.items.InstrumentState` of every
venue instrument of one asset and rolling 60 s sums, and builds the
:class:`~cascadewatch.connectors.outputs.RiskSnapshot` of each second (its venue part; the
detectors add theirs). Sums run over venues in sorted order and
over a fixed window, so the result is independent of arrival order.
"""

from __future__ import annotations

from collections import deque

from msgspec import UNSET

from cascadewatch.connectors.outputs import RiskSnapshot
from cascadewatch.pipelines.steps.items import DEPTH_BANDS_BPS, InstrumentState

WINDOW_S = 60
STALE_AFTER_MS = 60_000
"""A venue instrument without an update for this long no longer contributes."""


def _price_of(state: InstrumentState) -> float | None:
    """Last trade price, else the book mid, else the mark."""
    if state.price is not None:
        return state.price
    if state.best_bid is not None and state.best_ask is not None:
        return (state.best_bid + state.best_ask) / 2.0
    return state.mark


def _median(values: list[float]) -> float:
    """``statistics.median`` of a non-empty list (the same float): the middle value, or the mean of
    the two middle values, ``(a + b) / 2``."""
    data = sorted(values)
    n = len(data)
    if n % 2:
        return data[n // 2]
    return (data[n // 2 - 1] + data[n // 2]) / 2


def round_price(value: float | None) -> float | None:
    """Prices to 10 significant digits, for byte-stable output."""
    return None if value is None else float(f"{value:.10g}")


def round_usd(value: float) -> float:
    """Quote-currency amounts to cents."""
    return round(value, 2)


def _window() -> tuple[deque[int], deque[float], deque[float], deque[float]]:
    """The empty columns of :attr:`AssetAggregator.window`."""
    return deque(), deque(), deque(), deque()


class AssetAggregator:
    """Merge one asset's venue instruments second by second."""

    def __init__(self, asset: str) -> None:
        self.asset = asset
        self.latest: dict[str, InstrumentState] = {}
        self.window: tuple[deque[int], deque[float], deque[float], deque[float]] = _window()
        """Per released second, as columns (each summed in C, oldest first): second_ms, long
        liquidations USD, short liquidations USD, traded USD."""

    def __setstate__(self, state: dict) -> None:
        """Unpickle; a window pickled as one deque of ``(second_ms, long, short, traded)`` rows becomes columns."""
        window = state.get("window")
        if isinstance(window, deque):
            columns = seconds, longs, shorts, trades = _window()
            for second_ms, long_usd, short_usd, traded in window:
                seconds.append(second_ms)
                longs.append(long_usd)
                shorts.append(short_usd)
                trades.append(traded)
            state = {**state, "window": columns}
        self.__dict__.update(state)

    _live: tuple[int, list[InstrumentState]] | None = None
    """The last :meth:`live` answer and its second; :meth:`update` clears it (``latest`` changes)."""

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state.pop("_live", None)  # derived from ``latest``
        return state

    def live(self, second_ms: int) -> list[InstrumentState]:
        """Latest state of each venue instrument updated within :data:`STALE_AFTER_MS`, sorted by key
        (a new list; the answer is kept until the next :meth:`update` or another second)."""
        cached = self._live
        if cached is None or cached[0] != second_ms:
            cutoff = second_ms - STALE_AFTER_MS
            latest = self.latest
            cached = self._live = (second_ms, [latest[key] for key in sorted(latest) if latest[key].second > cutoff])
        return list(cached[1])

    def update(self, second_ms: int, states: list[InstrumentState]) -> RiskSnapshot:
        """Fold in this second's instrument states and return the asset snapshot for it."""
        liq_long = liq_short = traded = 0.0
        feed: list[str] = []
        self._live = None
        for state in states:
            key = f"{state.venue}|{state.instrument}"
            self.latest[key] = state
            liq_long += state.liq_long_usd
            liq_short += state.liq_short_usd
            traded += state.buy_usd + state.sell_usd
            feed.extend(f"{state.venue}: {entry}" for entry in state.feed)
        seconds, longs, shorts, trades = self.window
        seconds.append(second_ms)
        longs.append(liq_long)
        shorts.append(liq_short)
        trades.append(traded)
        while seconds and seconds[0] <= second_ms - WINDOW_S * 1000:
            seconds.popleft()
            longs.popleft()
            shorts.popleft()
            trades.popleft()
        live = self.live(second_ms)
        prices = [price for price in (_price_of(s) for s in live) if price is not None]
        marks = [s.mark for s in live if s.mark is not None]
        fundings = [s.funding for s in live if s.funding is not None]
        books = [s for s in live if s.book_valid]
        ois = [s.oi_usd for s in live if s.oi_usd is not None]
        coarse = sorted({s.venue for s in live if s.coarse})
        return RiskSnapshot(
            ts=second_ms,
            asset=self.asset,
            price=round_price(_median(prices)) if prices else None,
            venues=sorted({s.venue for s in live}),
            mark=round_price(_median(marks)) if marks else None,
            funding=round_price(sum(fundings) / len(fundings)) if fundings else None,
            oi_usd=round_usd(sum(ois)) if ois else None,
            liq_long_usd_1s=round_usd(liq_long),
            liq_short_usd_1s=round_usd(liq_short),
            liq_long_usd_60s=round_usd(sum(longs)),
            liq_short_usd_60s=round_usd(sum(shorts)),
            trade_usd_60s=round_usd(sum(trades)),
            depth_bid_usd={
                str(band): round_usd(sum((s.depth_bid_usd[i] for s in books), 0.0))
                for i, band in enumerate(DEPTH_BANDS_BPS)
            },
            depth_ask_usd={
                str(band): round_usd(sum((s.depth_ask_usd[i] for s in books), 0.0))
                for i, band in enumerate(DEPTH_BANDS_BPS)
            },
            depth_partial=sorted(
                {s.venue for s in books if s.book_cover_bps is not None and s.book_cover_bps < DEPTH_BANDS_BPS[-1]}
            ),
            books_valid=f"{len(books)}/{len(live)}",
            feed=feed,
            coarse=coarse if coarse else UNSET,
        )
