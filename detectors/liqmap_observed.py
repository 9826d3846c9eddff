"""Observed liquidation map: realized liquidation notional by price bucket and side, decaying.

Every :class:`~cascadewatch.connectors.events.Liquidation` deposits its notional (quote
currency, e.g. USD) in the bucket of its price on an absolute log-price grid
(bucket ``k`` covers ``[exp(k*delta), exp((k+1)*delta))`` with
``delta = bucket_bps * 1e-4``), separately for liquidated longs and shorts.
Deposits decay exponentially:

    M_side(k, t) = sum_i  notional_i * 2 ** (-(t - t_i) / half_life_s)
                   over liquidations i of that side with price in bucket k

Buckets are absolute, so they do not shift when the price moves; the readout
expresses them relative to a given price, in basis points of that price, over
``+-range_pct`` percent.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cascadewatch.connectors.events import Liquidation
from cascadewatch.detectors._grid import DecayingLogGrid

__all__ = ["ObservedLiquidationMap", "ObservedMapReadout"]


@dataclass(frozen=True, slots=True)
class ObservedMapReadout:
    """The observed map around ``price`` at time ``t``.

    ``offsets_bps[j]`` is the centre of bucket ``k_lo + j`` in bps from ``price``
    (negative below); ``long_usd[j]``/``short_usd[j]`` the decayed notional of
    liquidated longs/shorts there (quote currency). ``long_total_usd`` and
    ``short_total_usd`` sum the range.
    """

    price: float
    t: float
    k_lo: int
    offsets_bps: np.ndarray
    long_usd: np.ndarray
    short_usd: np.ndarray
    long_total_usd: float
    short_total_usd: float


class ObservedLiquidationMap:
    """Realized liquidation notional by log-price bucket and liquidated side.

    Parameters
    ----------
    bucket_bps
        Bucket width in basis points (default 10 bps).
    half_life_s
        Half-life of a liquidation's weight, in seconds (default 900 s).
    range_pct
        Half-width of the readout window around the price, in percent (default 5 %).

    Time arguments ``t`` are seconds since the epoch as floats (``event.ts / 1e9``).

    Examples
    --------
    >>> m = ObservedLiquidationMap(bucket_bps=10, half_life_s=60, range_pct=1)
    >>> m.learn_one(price=99.5, notional=20_000.0, side="long", t=0.0)
    >>> m.learn_one(price=99.52, notional=10_000.0, side="long", t=0.0)
    >>> m.learn_one(price=100.6, notional=5_000.0, side="short", t=0.0)
    >>> r = m.readout(price=100.0, t=60.0)          # one half-life later
    >>> round(r.long_total_usd), round(r.short_total_usd)
    (15000, 2500)
    >>> j = int(np.argmax(r.long_usd)); round(float(r.offsets_bps[j]))
    -47
    """

    def __init__(self, bucket_bps: float = 10.0, half_life_s: float = 900.0, range_pct: float = 5.0) -> None:
        if not 0 < range_pct < 100:
            raise ValueError("range_pct must be in (0, 100)")
        self.bucket_bps = float(bucket_bps)
        self.half_life_s = float(half_life_s)
        self.range_pct = float(range_pct)
        self._long = DecayingLogGrid(bucket_bps, half_life_s)
        self._short = DecayingLogGrid(bucket_bps, half_life_s)

    # ------------------------------------------------------------------ learn
    def learn_one(self, price: float, notional: float, side: str, t: float) -> None:
        """Add one liquidation: ``side`` is the liquidated position, ``"long"`` or ``"short"``."""
        grid = self._long if side == "long" else self._short if side == "short" else None
        if grid is None:
            raise ValueError(f"side must be 'long' or 'short', not {side!r}")
        grid.add_one(price, notional, t)

    def learn_many(self, prices, notionals, is_long, t) -> None:
        """Add a batch: arrays of prices, notionals, a boolean ``is_long`` and times ``t`` (or a scalar)."""
        p = np.asarray(prices, dtype=np.float64)
        x = np.asarray(notionals, dtype=np.float64)
        lg = np.asarray(is_long, dtype=bool)
        tt = np.broadcast_to(np.asarray(t, dtype=np.float64), p.shape)
        if lg.any():
            self._long.add(p[lg], x[lg], tt[lg])
        if (~lg).any():
            self._short.add(p[~lg], x[~lg], tt[~lg])

    def learn_event(self, ev: Liquidation) -> None:
        """Add a :class:`~cascadewatch.connectors.events.Liquidation` (time from ``ev.ts``, ns)."""
        self.learn_one(ev.price, ev.notional, ev.side, ev.ts * 1e-9)

    # ---------------------------------------------------------------- readout
    def readout(self, price: float, t: float) -> ObservedMapReadout:
        """Buckets within ``+-range_pct`` of ``price`` at time ``t`` (see :class:`ObservedMapReadout`)."""
        g = self._long
        r = self.range_pct / 100.0
        k_lo = int(g.bucket_of(price * (1.0 - r)))
        k_hi = int(g.bucket_of(price * (1.0 + r)))
        ks = np.arange(k_lo, k_hi + 1)
        offsets = (g.center(ks) / price - 1.0) * 1e4
        lo = self._long.values(k_lo, k_hi, t)
        sh = self._short.values(k_lo, k_hi, t)
        return ObservedMapReadout(
            price=float(price),
            t=float(t),
            k_lo=k_lo,
            offsets_bps=offsets,
            long_usd=lo,
            short_usd=sh,
            long_total_usd=float(lo.sum()),
            short_total_usd=float(sh.sum()),
        )

    def total(self, side: str, t: float) -> float:
        """Decayed notional of one side over all prices at time ``t``."""
        return (self._long if side == "long" else self._short).total(t)
