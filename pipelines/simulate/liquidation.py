"""One venue's mark price and liquidation engine: orders worked over time, insurance fund, ADL.

Mark price: the spot index plus an exponential moving average of the venue's basis,

    mark = index + EMA_tau(mid - index)

(``tau`` a few seconds to tens of seconds, drawn per venue), the venues' "index + smoothed
basis": liquidations trigger on it, not on the last trade, so they follow the index and the
venue's own book with a lag and one print cannot trigger them.

Liquidation: when the mark crosses a position's liquidation price the engine takes the
position over; its size joins the engine's *inventory* of that side, with its bankruptcy
price ``entry * (1 -/+ 1/L)``. The engine then *works* the inventory: every step it sends at
most ``usd_s * dt`` (its throughput) as one IOC order limited ``slip_bps`` through the best
price, so a large inventory trades over tens of seconds and waits for the book to refill.
Each fill is settled against the bankruptcy price: a fill better than bankruptcy pays the
difference into the insurance fund, a worse one is paid by it,

    fund += (fill - bankruptcy) * qty          (longs; the mirror image for shorts).

Auto-deleveraging: when the fund cannot cover what the rest of the inventory would lose at
the mark, ``(bankruptcy - mark) * qty > fund`` (longs), after the inventory has been worked
for ``adl_after_s``, the engine closes the rest *off the book* at its bankruptcy price against
the most profitable opposite positions (:meth:`Positions.deleverage`): open interest drops
without a trade.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from cascadewatch.pipelines.simulate.agents import LONG, SHORT, Positions

__all__ = ["LiquidationEngine", "EngineOrder"]


@dataclass(frozen=True, slots=True)
class EngineOrder:
    """A slice of the engine's inventory: ``position`` (``long``/``short``) is the liquidated
    side, ``side`` the order's aggressor side, ``lots`` its size, ``limit`` its limit price
    (ticks), ``bankruptcy`` the inventory's mean bankruptcy price (ticks)."""

    position: str
    side: str
    lots: int
    limit: float
    bankruptcy: float


class LiquidationEngine:
    """Mark price, inventory, insurance fund and ADL of one venue (see the module docstring)."""

    def __init__(
        self,
        positions: Positions,
        tau_s: float,
        usd_s: float,
        slip_bps: float,
        fund_usd: float,
        adl_after_s: float = 20.0,
    ) -> None:
        self.positions = positions
        self.tau_s = tau_s
        self.usd_s = usd_s
        self.slip = slip_bps * 1e-4
        self.fund = fund_usd
        self.adl_after_s = adl_after_s
        self.basis = 0.0
        self.mark = 0.0
        self.inventory = [0, 0]  # lots held per liquidated side (LONG, SHORT)
        self._bk_lots = [0.0, 0.0]  # sum of lots * bankruptcy ticks of the inventory
        self._since = [-1.0, -1.0]  # when the side's inventory last went from empty to held (s)
        self.taken_lots = [0, 0]
        self.adl_usd = 0.0

    def update_mark(self, index: float, mid: float, dt: float) -> float:
        """Advance the basis EMA by ``dt`` seconds; returns the mark (ticks)."""
        a = 1.0 - math.exp(-dt / self.tau_s)
        self.basis += a * ((mid - index) - self.basis)
        self.mark = index + self.basis
        return self.mark

    def take_over(self, t: float) -> int:
        """Move every position the mark has crossed into the inventory; returns how many."""
        pos = self.positions
        crossed = pos.crossed(self.mark)
        for pid in crossed:
            side = pos.side[pid]
            lots = pos.lots[pid]
            if self.inventory[side] == 0:
                self._since[side] = t
            self.inventory[side] += lots
            self.taken_lots[side] += lots
            self._bk_lots[side] += lots * pos.bankruptcy_price(side, pos.entry[pid], pos.lev[pid])
        return len(crossed)

    def bankruptcy(self, side: int) -> float:
        """Mean bankruptcy price (ticks) of the side's inventory."""
        return self._bk_lots[side] / self.inventory[side] if self.inventory[side] else 0.0

    def orders(self, best_bid: float, best_ask: float, price_usd: float, dt: float, lot: float) -> list[EngineOrder]:
        """This step's slices: at most ``usd_s * dt`` per side, limited ``slip`` through the best."""
        cap = max(1, int(self.usd_s * dt / price_usd / lot))
        out = []
        for side in (LONG, SHORT):
            inv = self.inventory[side]
            if inv <= 0:
                continue
            lots = min(inv, cap)
            if side == LONG:
                out.append(EngineOrder("long", "sell", lots, best_bid * (1.0 - self.slip), self.bankruptcy(side)))
            else:
                out.append(EngineOrder("short", "buy", lots, best_ask * (1.0 + self.slip), self.bankruptcy(side)))
        return out

    def settle(self, side: int, lots: int, fill_ticks: float, lot: float) -> None:
        """``lots`` of the side's inventory traded at the mean price ``fill_ticks``: the fund takes
        the difference to bankruptcy (module docstring)."""
        if lots <= 0:
            return
        bk = self.bankruptcy(side)
        edge = (fill_ticks - bk) if side == LONG else (bk - fill_ticks)
        self.fund += edge / 10.0 * lots * lot
        self._remove(side, lots, bk)

    def _remove(self, side: int, lots: int, bk: float) -> None:
        self.inventory[side] -= lots
        self._bk_lots[side] -= lots * bk
        if self.inventory[side] <= 0:
            self.inventory[side] = 0
            self._bk_lots[side] = 0.0

    def adl_due(self, t: float, lot: float) -> list[tuple[int, int, float]]:
        """Sides whose rest the fund cannot cover (module docstring): ``[(side, lots, bankruptcy)]``,
        removed from the inventory; the caller deleverages the opposite positions."""
        out = []
        for side in (LONG, SHORT):
            inv = self.inventory[side]
            if inv <= 0 or t - self._since[side] < self.adl_after_s:
                continue
            bk = self.bankruptcy(side)
            loss = ((bk - self.mark) if side == LONG else (self.mark - bk)) / 10.0 * inv * lot
            if loss > max(self.fund, 0.0):
                self._remove(side, inv, bk)
                self.adl_usd += inv * lot * bk / 10.0
                out.append((side, inv, bk))
        return out

    @staticmethod
    def opposite(side: int) -> int:
        """The side deleveraged against a liquidated ``side``."""
        return SHORT if side == LONG else LONG
