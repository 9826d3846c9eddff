"""One venue's mark price and liquidation engine.

Mark price: the spot index plus an exponential moving average of the venue's basis,

    mark = index + EMA_tau(mid - index)

(``tau`` a few seconds), a simplified form of the venues' "index + smoothed basis" marks: it
follows the venue's own book with a short lag and cannot be moved by one print.

Liquidation: when the mark crosses a position's liquidation price the engine takes the
position over and sends an IOC order for its whole size into the book, limited at the
position's bankruptcy price (a forced *sell* for a long, a forced *buy* for a short). Whatever
the book cannot fill down to that price is absorbed by the insurance fund (no market impact).
The fills move the venue's price, hence its mark, hence the next positions: a cascade.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from cascadewatch.pipelines.simulate.agents import LONG, Positions

__all__ = ["LiquidationEngine", "LiquidationOrder"]


@dataclass(frozen=True, slots=True)
class LiquidationOrder:
    """A forced close: ``position`` is the liquidated side (``long``/``short``), ``side`` the
    order's aggressor side, ``lots`` its size, ``bankruptcy`` its limit price (ticks)."""

    pid: int
    position: str
    side: str
    lots: int
    bankruptcy: float
    leverage: float


class LiquidationEngine:
    """Mark price and forced closes of one venue (see the module docstring)."""

    def __init__(self, positions: Positions, tau_s: float = 5.0) -> None:
        self.positions = positions
        self.tau_s = tau_s
        self.basis = 0.0
        self.mark = 0.0

    def update_mark(self, index: float, mid: float, dt: float) -> float:
        """Advance the basis EMA by ``dt`` seconds; returns the mark (ticks)."""
        a = 1.0 - math.exp(-dt / self.tau_s)
        self.basis += a * ((mid - index) - self.basis)
        self.mark = index + self.basis
        return self.mark

    def liquidations(self) -> list[LiquidationOrder]:
        """Take over every position the current mark has crossed, nearest to the price first."""
        pos = self.positions
        out = []
        for pid in pos.crossed(self.mark):
            side = pos.side[pid]
            out.append(
                LiquidationOrder(
                    pid=pid,
                    position="long" if side == LONG else "short",
                    side="sell" if side == LONG else "buy",
                    lots=pos.lots[pid],
                    bankruptcy=pos.bankruptcy_price(side, pos.entry[pid], pos.lev[pid]),
                    leverage=pos.lev[pid],
                )
            )
        return out
