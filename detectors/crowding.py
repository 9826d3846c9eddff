"""Leverage build-up (crowding) per direction, from open interest and aggressive flow.

A cascade needs fuel: many leveraged positions on one side, opened recently, close to the
price. The venues publish two things that show the fuel being laid down before any price
move: open interest (OI) and the aggressor side of every trade. Each new contract has a
long and a short; the side that crosses the spread to open it (pays for immediacy) is the
crowd. Rising OI with net aggressive buying is longs piling in (a fall liquidates them:
direction ``down``); rising OI with net aggressive selling is shorts piling in (``up``).

Fed once per event-time second ``s`` (``floor(t)``) with the latest OI of each venue
(base units, e.g. BTC; ``None`` when unknown) and the aggressive buy / sell notional of
the second (quote currency, summed over venues). For each window ``W`` in ``windows_s``:

- OI growth (fraction of OI):

      g_W = sum_v (OI_v(s) - OI_v(max(s - W, f_v))) / sum_v OI_v(s)

  over the venues ``v`` with a known OI, ``f_v`` the first second ``v`` published one (a
  window is partial while it fills); an unknown OI in a second repeats the venue's last one;
- aggressor imbalance (-1..1):

      imb_W = (B_W - S_W) / (B_W + S_W)

  with ``B_W``, ``S_W`` the aggressive buy and sell notional over ``(s - W, s]`` (0 without flow);
- crowding per direction (fraction; ``sgn = +1`` for ``down``, ``-1`` for ``up``):

      c_W(d) = max(g_W, 0) * max(sgn * imb_W, 0)

  zero unless OI grows *and* the aggressors lean to the side a move in ``d`` liquidates.

:meth:`CrowdingReadout.features` gives them per direction in the units of the feature names
(``oi_growth_{W}_pct`` in percent of OI, ``imbalance_{W}`` signed toward the crowd of that
direction, ``crowding_{W}_bps`` in basis points of OI).

The state is a ring of ``max(W) + 1`` seconds per venue (OI) and one of cumulative flow
sums (plain lists); an update is O(venues x windows), no scan of a window.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["CrowdingMonitor", "CrowdingReadout"]


@dataclass(frozen=True, slots=True)
class CrowdingReadout:
    """OI growth (fraction) and aggressor imbalance (-1..1, + = net buying) per window (s)."""

    oi_growth: dict[int, float]
    imbalance: dict[int, float]

    def crowding(self, direction: str, window_s: int) -> float:
        """``max(g_W, 0) * max(sgn * imb_W, 0)``, a fraction of OI (``sgn`` +1 down, -1 up)."""
        sgn = _sign(direction)
        return max(self.oi_growth[window_s], 0.0) * max(sgn * self.imbalance[window_s], 0.0)

    def features(self, direction: str) -> dict[str, float]:
        """Per window ``W``: ``oi_growth_{W}_pct`` (% of OI), ``imbalance_{W}`` (signed toward the
        crowd ``direction`` liquidates: + means net buying for ``down``, net selling for ``up``),
        ``crowding_{W}_bps`` (bps of OI)."""
        sgn = _sign(direction)
        out: dict[str, float] = {}
        growth, imbalance = self.oi_growth, self.imbalance
        for w in sorted(growth):
            g_name, imb_name, crowding_name = _feature_names(w)
            out[g_name] = 100.0 * growth[w]
            out[imb_name] = sgn * imbalance[w]
            out[crowding_name] = 1e4 * (max(growth[w], 0.0) * max(sgn * imbalance[w], 0.0))  # crowding()
        return out


@functools.cache
def _feature_names(window_s: int) -> tuple[str, str, str]:
    """The names of window ``window_s``'s features: OI growth, imbalance, crowding."""
    return f"oi_growth_{window_s}_pct", f"imbalance_{window_s}", f"crowding_{window_s}_bps"


def _sign(direction: str) -> float:
    if direction == "down":
        return 1.0
    if direction == "up":
        return -1.0
    raise ValueError("direction must be 'down' or 'up'")


class _VenueOI:
    """One venue's OI by second in a ring of ``n`` seconds, forward-filled from its first value."""

    __slots__ = ("first", "last", "ring")

    def __init__(self, n: int) -> None:
        self.ring = [0.0] * n
        self.first: int | None = None  # first second with a known OI
        self.last = math.nan  # latest known OI


class CrowdingMonitor:
    """OI growth, aggressor imbalance and crowding over trailing windows (module docstring).

    Parameters
    ----------
    windows_s
        Window lengths ``W``, seconds.

    One call per second, increasing; missing seconds in between count as seconds without
    flow and with unchanged OI; a repeated or older second is ignored.

    Examples
    --------
    >>> cm = CrowdingMonitor(windows_s=(60,))
    >>> for s in range(120):   # OI +0.1 BTC a second on 1000 BTC, aggressive buying 3:1
    ...     r = cm.update(float(s), {"binance": 1000.0 + 0.1 * s}, buy_usd=3e5, sell_usd=1e5)
    >>> round(r.oi_growth[60], 6), r.imbalance[60]          # 6 / 1011.9; (3 - 1) / (3 + 1)
    (0.005929, 0.5)
    >>> f = r.features("down")
    >>> round(f["oi_growth_60_pct"], 4), round(f["crowding_60_bps"], 2), r.features("up")["crowding_60_bps"]
    (0.5929, 29.65, 0.0)
    """

    def __init__(self, windows_s: tuple[int, ...] = (60, 300, 900)) -> None:
        self.windows_s = tuple(sorted({int(w) for w in windows_s}))
        if not self.windows_s or self.windows_s[0] < 1:
            raise ValueError("windows_s must be positive")
        self._n = self.windows_s[-1] + 1
        self._venues: dict[str, _VenueOI] = {}
        self._cum = [(0.0, 0.0)] * self._n  # cumulative (buy, sell) notional at the end of each second
        self._total = (0.0, 0.0)  # cumulative (buy, sell) notional so far
        self._start: int | None = None  # first second seen
        self._sec: int | None = None
        self._readout = CrowdingReadout({w: 0.0 for w in self.windows_s}, {w: 0.0 for w in self.windows_s})

    def _step(self, sec: int, oi: Mapping[str, float | None], buy: float, sell: float) -> None:
        """Write second ``sec``: OI per venue (forward-filled) and the cumulative flow."""
        i = sec % self._n
        self._total = (self._total[0] + buy, self._total[1] + sell)
        self._cum[i] = self._total
        for name, value in oi.items():
            if name not in self._venues and value is not None and math.isfinite(value) and value > 0:
                self._venues[name] = _VenueOI(self._n)
        for name, venue in self._venues.items():
            value = oi.get(name)
            if value is not None and math.isfinite(value) and value > 0:
                venue.last = float(value)
                if venue.first is None:
                    venue.first = sec
            venue.ring[i] = venue.last
        self._sec = sec

    def update(
        self, t: float, oi: Mapping[str, float | None], buy_usd: float = 0.0, sell_usd: float = 0.0
    ) -> CrowdingReadout:
        """Feed second ``floor(t)``: latest OI per venue (base units) and its aggressive flow (quote)."""
        sec = math.floor(t)
        if self._sec is not None and sec <= self._sec:
            return self._readout
        if self._start is None:
            self._start = sec
        if self._sec is not None:
            for gap in range(max(self._sec + 1, sec - self._n + 1), sec):  # seconds without data
                self._step(gap, {}, 0.0, 0.0)
        self._step(sec, oi, max(float(buy_usd), 0.0), max(float(sell_usd), 0.0))
        growth: dict[int, float] = {}
        imbalance: dict[int, float] = {}
        cum = self._cum[sec % self._n]
        for w in self.windows_s:
            num = den = 0.0
            for venue in self._venues.values():
                if venue.first is None:
                    continue
                now = venue.ring[sec % self._n]
                then = venue.ring[max(sec - w, venue.first) % self._n]
                num += now - then
                den += now
            growth[w] = num / den if den > 0 else 0.0
            past = self._cum[(sec - w) % self._n] if sec - w >= self._start else (0.0, 0.0)
            b, s = cum[0] - past[0], cum[1] - past[1]
            imbalance[w] = (b - s) / (b + s) if b + s > 0 else 0.0
        self._readout = CrowdingReadout(growth, imbalance)
        return self._readout

    def readout(self) -> CrowdingReadout:
        """The readout of the last :meth:`update` (zeros before the first)."""
        return self._readout
