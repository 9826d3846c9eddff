"""A venue's order book on a grid of price cells, and the market makers that quote it.

Prices are integer ticks (0.1 USDT for BTC-USDT on all three venues); quantities are integer
lots of 0.001 BTC, so every venue's string form (Binance/Bybit base units with 3 decimals,
OKX contracts of 0.01 BTC) is exact. The book has at most one level per *cell* of
``cell_ticks`` ticks; the level's price inside its cell is a fixed irregular offset, so prices
look like a real book's and stay strictly ordered.

Market makers quote around the mid (the last trade price while one side is empty): every step
they refill, after a random wait, the cells next to it that a sweep emptied (the book
replenishes with a lag), refresh a few random cells toward their target depth profile, post on
empty cells of the range in a rolling sweep (the profile is rebuilt behind a move), and cancel
levels beyond ``range_cells``. The target profile scales with a liquidity factor: market makers
pull back at once when the price runs or liquidations hit the book (and when a scenario tells
them to) and come back slowly, which is the amplifier of a cascade.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

__all__ = ["Book", "MarketMaker", "Quoting", "LOT"]

LOT = 0.001  # BTC per lot


@dataclass(frozen=True, slots=True)
class Quoting:
    """How one venue's market makers quote: ``depth_usd_bps`` (resting USD per bps of distance),
    ``range_bps`` (how far from the last trade), ``nerve`` (how hard they pull back under
    stress), ``return_s`` (time constant of their return), ``refill_s`` (mean wait before a
    swept level next to the price is quoted again)."""

    depth_usd_bps: float
    range_bps: float
    nerve: float = 1.0
    return_s: float = 30.0
    refill_s: float = 1.0


class Book:
    """Bids and asks as lists of lots indexed by cell, with best-price pointers and change sets.

    ``bb`` is the best bid cell (-1 when empty), ``ba`` the best ask cell (``n`` when empty);
    ``changed_bids``/``changed_asks`` collect the cells modified since the last publication.
    """

    __slots__ = ("n", "cell_ticks", "bids", "asks", "bb", "ba", "changed_bids", "changed_asks", "last_cell", "ticks")

    def __init__(self, n_cells: int, cell_ticks: int, mid_cell: int) -> None:
        self.n = n_cells
        self.cell_ticks = cell_ticks
        self.bids = [0] * n_cells
        self.asks = [0] * n_cells
        self.bb = -1
        self.ba = n_cells
        self.changed_bids: set[int] = set()
        self.changed_asks: set[int] = set()
        self.last_cell = mid_cell
        # price of each cell's level: an irregular but fixed offset inside the cell keeps prices
        # strictly increasing and looking like a real book's
        self.ticks = [k * cell_ticks + (k * 37 + 11) % cell_ticks for k in range(n_cells)]

    # --------------------------------------------------------------- prices
    def tick(self, cell: int) -> int:
        """Price (ticks) of the level of ``cell``."""
        return self.ticks[cell]

    def avg_tick(self, fills: list[tuple[int, int]]) -> float:
        """Volume-weighted price (ticks) of ``fills`` ``[(cell, lots)]``."""
        ticks = self.ticks
        return sum(ticks[c] * q for c, q in fills) / sum(q for _, q in fills)

    def cell_of(self, ticks: float) -> int:
        """The cell holding price ``ticks``."""
        return int(ticks // self.cell_ticks)

    def mid_ticks(self) -> float:
        """The mid in ticks (the last trade's cell when a side is empty)."""
        if 0 <= self.bb and self.ba < self.n:
            return (self.ticks[self.bb] + self.ticks[self.ba]) / 2.0
        return float(self.ticks[self.last_cell])

    # --------------------------------------------------------------- edits
    def set_bid(self, cell: int, lots: int) -> None:
        """Set the bid lots of ``cell`` (ignored at or above the best ask, or outside the grid)."""
        if cell >= self.ba or cell < 0:
            return
        if self.bids[cell] != lots:
            self.bids[cell] = lots
            self.changed_bids.add(cell)
            if lots > 0 and cell > self.bb:
                self.bb = cell
            elif lots == 0 and cell == self.bb:
                self._fix_bb()

    def set_ask(self, cell: int, lots: int) -> None:
        """Set the ask lots of ``cell`` (ignored at or below the best bid, or outside the grid)."""
        if cell <= self.bb or cell >= self.n:
            return
        if self.asks[cell] != lots:
            self.asks[cell] = lots
            self.changed_asks.add(cell)
            if lots > 0 and cell < self.ba:
                self.ba = cell
            elif lots == 0 and cell == self.ba:
                self._fix_ba()

    def _fix_bb(self) -> None:
        c, bids = self.bb, self.bids
        while c >= 0 and bids[c] <= 0:
            c -= 1
        self.bb = c

    def _fix_ba(self) -> None:
        c, asks, n = self.ba, self.asks, self.n
        while c < n and asks[c] <= 0:
            c += 1
        self.ba = c

    def take(self, side: str, lots: int, max_cells: int) -> list[tuple[int, int]]:
        """A market order of ``lots`` (``side`` = aggressor ``buy``/``sell``): fills ``[(cell, lots)]``.

        Walks the opposite side from the best level, at most ``max_cells`` cells away; what is
        left unfilled is cancelled (IOC).
        """
        fills: list[tuple[int, int]] = []
        if lots <= 0:
            return fills
        if side == "sell":  # walk the bids down
            levels, changed, c, step = self.bids, self.changed_bids, self.bb, -1
            stop = max(c - max_cells, -1)
        else:  # walk the asks up
            levels, changed, c, step = self.asks, self.changed_asks, self.ba, 1
            stop = min(c + max_cells, self.n)
        while lots > 0 and c != stop:
            q = levels[c]
            if q > 0:
                f = q if q < lots else lots
                levels[c] = q - f
                changed.add(c)
                fills.append((c, f))
                lots -= f
                if q > f:
                    break
            c += step
        if side == "sell":
            self.bb = c
            self._fix_bb()
        else:
            self.ba = c
            self._fix_ba()
        if fills:
            self.last_cell = fills[-1][0]
        return fills

    def levels(self, side: str, limit: int = 100_000, max_scan: int = 4000) -> list[tuple[int, int]]:
        """Non-empty levels best-first as ``[(cell, lots)]``: at most ``limit`` of them, looking at
        most ``max_scan`` cells away from the best."""
        window = min(max_scan, 2 * limit + 8)
        while True:
            if side == "bid":
                hi = self.bb
                lo = max(hi - window, -1)
                arr = self.bids
                out = [(c, arr[c]) for c in range(hi, lo, -1) if arr[c] > 0]
            else:
                lo = self.ba
                hi = min(lo + window, self.n)
                arr = self.asks
                out = [(c, arr[c]) for c in range(lo, hi) if arr[c] > 0]
            if len(out) >= limit or window >= max_scan:
                return out[:limit]
            window = min(max_scan, window * 4)


class MarketMaker:
    """Quotes one venue's book around the last trade price (see the module docstring).

    ``depth_usd_bps`` is the resting notional per bps of distance far from the touch; near it
    the profile is thinner (``0.35 + 0.65 * (1 - exp(-d / 12 bps))``). The liquidity factor
    multiplies it: ``scenario factor * max(0.35, 1 / (1 + nerve * (0.3 * max(0, drift / 10 bps - 1)
    + forced / (5 * depth_usd_bps))))`` with ``drift`` the distance of the mid from its 10-second
    moving average and ``forced`` the 10-second EWMA of the liquidation flow they see (USD/s):
    market makers withdraw when the price runs away or liquidations hit the book; they withdraw
    at once and come back with a lag of ``return_s``. A level next to the price that a sweep
    emptied is refilled after a random wait (mean ``refill_s``):
    the book replenishes with a lag. They also lean away from one-sided flow: with ``imb`` the
    5-second EWMA of signed taker flow (USD/s, + buys), the side being hit quotes
    ``1 - min(0.4, |imb| / (3 * depth_usd_bps))`` of its target.
    """

    FRONT = 16  # cells next to the last trade refilled (after a random wait) once swept
    REFRESH = 6  # random cells refreshed per side per step
    SWEEP = 12  # cells of the rolling rebuild per side per step

    def __init__(self, book: Book, price: float, quoting: Quoting, rng: random.Random, step_s: float) -> None:
        self.book = book
        self.rng = rng
        depth_usd_bps, range_bps = quoting.depth_usd_bps, quoting.range_bps
        self.nerve = quoting.nerve
        self._forced = 0.0
        self._forced_rate = 0.0
        self._a_forced = 1.0 - math.exp(-step_s / 10.0)
        self._p_refill = 1.0 - math.exp(-step_s / quoting.refill_s)
        self._depth = depth_usd_bps
        self.range_cells = int(range_bps * 1e-4 * price * 10 / book.cell_ticks)
        cell_bps = book.cell_ticks / 10 / price * 1e4
        self._target = []
        for d in range(self.range_cells + 2):
            bps = d * cell_bps
            usd = depth_usd_bps * cell_bps * (0.35 + 0.65 * (1.0 - math.exp(-bps / 12.0)))
            self._target.append(usd / price / LOT)
        self.liquidity = 1.0
        self.imbalance = 0.0  # USD/s, + buys
        self._flow = 0.0
        self._skew_norm = 3.0 * depth_usd_bps
        self._a_flow = 1.0 - math.exp(-step_s / 5.0)
        self._step_s = step_s
        self._ema_mid: float | None = None
        self._a_mid = 1.0 - math.exp(-step_s / 10.0)
        self._a_back = 1.0 - math.exp(-step_s / quoting.return_s)
        self._sweep = 0
        self._lo = book.n  # lowest bid cell that may be non-empty
        self._hi = -1  # highest ask cell that may be non-empty

    def seed(self) -> None:
        """Fill the book around the current reference before the run starts."""
        ref = self.book.last_cell
        rng = self.rng
        for d in range(1, self.range_cells + 1):
            t = self._target[d]
            self._post_bid(ref - d, int(t * (0.6 + 0.8 * rng.random())) + 1)
            self._post_ask(ref + d, int(t * (0.6 + 0.8 * rng.random())) + 1)

    def _post_bid(self, cell: int, lots: int) -> None:
        self.book.set_bid(cell, lots)
        if cell < self._lo:
            self._lo = cell

    def _post_ask(self, cell: int, lots: int) -> None:
        self.book.set_ask(cell, lots)
        if cell > self._hi:
            self._hi = cell

    def note_forced(self, usd: float) -> None:
        """Liquidation orders of ``usd`` (absolute) hit the book since the last round."""
        self._forced += usd

    def note_flow(self, usd: float) -> None:
        """A taker order of ``usd`` (+ buy, - sell) hit the book since the last round."""
        self._flow += usd

    def step(self, scenario_liquidity: float) -> None:
        """One quoting round: update volatility and liquidity, close the spread, refresh, rebuild,
        pull back under stress, cancel beyond the range."""
        book = self.book
        self.imbalance += self._a_flow * (self._flow / self._step_s - self.imbalance)
        self._flow = 0.0
        lean = min(0.4, abs(self.imbalance) / self._skew_norm)
        bid_k = 1.0 - lean if self.imbalance < 0 else 1.0
        ask_k = 1.0 - lean if self.imbalance > 0 else 1.0
        mid = book.mid_ticks()
        if self._ema_mid is None:
            self._ema_mid = mid
        self._ema_mid += self._a_mid * (mid - self._ema_mid)
        drift = abs(mid - self._ema_mid) / mid * 1e4
        self._forced_rate += self._a_forced * (self._forced / self._step_s - self._forced_rate)
        self._forced = 0.0
        stress = 0.3 * max(0.0, drift / 10.0 - 1.0) + self._forced_rate / (5.0 * self._depth)
        want = scenario_liquidity * max(0.35, 1.0 / (1.0 + self.nerve * stress))
        pulled = want < self.liquidity * 0.97
        liq = want if want < self.liquidity else self.liquidity + self._a_back * (want - self.liquidity)
        self.liquidity = liq
        ref = book.cell_of(mid)  # quote around the mid (the last trade when one side is empty)
        self._close_spread(ref, liq, bid_k, ask_k)
        self._refresh(ref, liq, bid_k, ask_k)
        self._rebuild(ref, liq, bid_k, ask_k)
        # under stress, market makers pull the near levels down to the thinner target at once
        if pulled or lean > 0.3:
            self._pull_near(ref, liq, bid_k, ask_k)
        self._cancel_beyond(ref)

    def _close_spread(self, ref: int, liq: float, bid_k: float, ask_k: float) -> None:
        """Close the spread behind a sweep: the cells next to the mid ``ref`` that a sweep emptied
        are refilled, each after a random wait (mean ``refill_s``)."""
        book, rng, target = self.book, self.rng, self._target
        front_b = max(1, int(self.FRONT * bid_k + 0.5))
        front_a = max(1, int(self.FRONT * ask_k + 0.5))
        p_refill = self._p_refill
        for d in range(1, self.FRONT + 1):
            c = ref - d
            want = target[d] * liq * bid_k
            if d <= front_b and c < book.ba and book.bids[c] < 0.3 * want and rng.random() < p_refill:
                self._post_bid(c, int(want * (0.6 + 0.8 * rng.random())) + 1)
            c = ref + d
            want = target[d] * liq * ask_k
            if d <= front_a and c > book.bb and book.asks[c] < 0.3 * want and rng.random() < p_refill:
                self._post_ask(c, int(want * (0.6 + 0.8 * rng.random())) + 1)

    def _refresh(self, ref: int, liq: float, bid_k: float, ask_k: float) -> None:
        """Refresh random cells toward the target, denser near the touch."""
        book, rng, target = self.book, self.rng, self._target
        rc = self.range_cells
        for _ in range(self.REFRESH):
            u = rng.random()
            d = 1 + int(rc * u * u)
            lots = target[d] * liq * (0.5 + rng.random())
            if rng.random() < 0.5:
                c = ref - d
                if c < book.ba:
                    self._post_bid(c, int(lots * bid_k) + 1)
            else:
                c = ref + d
                if c > book.bb:
                    self._post_ask(c, int(lots * ask_k) + 1)

    def _cancel_beyond(self, ref: int) -> None:
        """Cancel what drifted beyond the quoting range around ``ref``."""
        book, rc = self.book, self.range_cells
        lo_keep = ref - rc
        while self._lo < lo_keep:
            if book.bids[self._lo] > 0:
                book.set_bid(self._lo, 0)
            self._lo += 1
        hi_keep = ref + rc
        while self._hi > hi_keep:
            if book.asks[self._hi] > 0:
                book.set_ask(self._hi, 0)
            self._hi -= 1

    def _rebuild(self, ref: int, liq: float, bid_k: float, ask_k: float) -> None:
        """Rebuild the profile behind a move: a rolling sweep over the range posts on empty cells."""
        book, rng, target, rc = self.book, self.rng, self._target, self.range_cells
        for _ in range(self.SWEEP):
            d = self._sweep = self._sweep % rc + 1
            c = ref - d
            if 0 <= c < book.ba and book.bids[c] == 0:
                self._post_bid(c, int(target[d] * liq * bid_k * (0.6 + 0.8 * rng.random())) + 1)
            c = ref + d
            if book.bb < c < book.n and book.asks[c] == 0:
                self._post_ask(c, int(target[d] * liq * ask_k * (0.6 + 0.8 * rng.random())) + 1)

    def _pull_near(self, ref: int, liq: float, bid_k: float, ask_k: float) -> None:
        """Cap the levels within 40 cells of ``ref`` at 1.2 times the (thinner) target."""
        book, target, rc = self.book, self._target, self.range_cells
        for d in range(1, min(40, rc)):
            cap = target[d] * liq * 1.2
            c = ref - d
            if 0 <= c < book.n and book.bids[c] > cap * bid_k + 1:
                book.set_bid(c, int(cap * bid_k) + 1)
            c = ref + d
            if 0 <= c < book.n and book.asks[c] > cap * ask_k + 1:
                book.set_ask(c, int(cap * ask_k) + 1)
