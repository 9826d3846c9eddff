"""Mitigation readouts per direction: defence liquidity, suggested margin, circuit-breaker state.

What a venue or a liquidity provider could do about a cascade the other detectors see coming.
All notional in quote currency (USD), prices in quote per base, times in seconds since the
epoch (floats); ``down`` is a move that liquidates longs through the bids, ``up`` the mirror.

Defence liquidity (the dual of :mod:`cascadewatch.detectors.reach`)
--------------------------------------------------------------------
In the walk domain of :mod:`~cascadewatch.detectors.reach` (prices negated for ``down``, so the
move always goes towards larger values), with the trigger ``r0`` (the nearest dense cluster the
move is assumed to reach), ``B_0`` the book notional strictly before ``r0``, ``C(r)`` the
cumulative book notional up to ``r`` and ``F(r)`` the liquidation notional triggered by ``r``,
the walk's step ``g(r) = max(r, B(B_0 + F(r)))`` is monotone, so the walk from ``r0`` stops
before a price ``c`` (the *next* dense cluster, beyond the trigger) exactly when some
``r in [r0, c)`` is a post-fixed point, ``g(r) <= r``, i.e. when the book between the trigger
and ``r`` absorbs what ``r`` triggers:

    A(r) = C(r) - B_0 >= F(r)          for some r0 <= r < c.

A wall of ``D`` added at the trigger (the nearest place in front that the move to the trigger
does not consume: depth before ``r0`` only makes the move to ``r0`` longer, it never stops the
walk) adds ``D`` to every ``A(r)``, so the least notional that stops the walk before ``c`` is

    D* = max(0, min_{r0 <= r < c} (F(r) - A(r)))

a minimum of a step function over its breakpoints (the trigger, the book's and the levels'
prices in ``[r0, c)``): two ``searchsorted`` calls, no search over ``D``. The wall must sit
within ``band_bps`` of the price: a trigger farther than that gives no answer (``None``). When
the visible book ends before ``c`` the reach walk stops at its last level by construction (a
lower bound); ``D*`` still asks the book to *absorb* the flow, so it is the conservative figure.

Suggested margin
----------------
The maintenance margin rate a venue calibrating on the market would set: enough to cover, at
``z`` standard deviations, the price risk while it works a forced position of ``size_usd``
out (the nearest dense cluster's notional: what it would have to liquidate at once) plus the
impact of doing so through the book,

    tau  = min(liq_min_s + size_usd / (participation * volume_usd_s), liq_max_s)      seconds
    mmr  = clip(z * sigma * sqrt(tau) + impact_k * 0.01 * size_usd / depth_usd, floor, cap)
    L*   = 1 / (imr_multiple * mmr)                                                   leverage cap

``sigma``: volatility of 1 s log returns (fraction per sqrt(s)); ``volume_usd_s``: traded
notional per second (last 60 s); ``depth_usd``: resting notional within 100 bps in front
(selling ``S`` through a roughly uniform band of ``D`` within 100 bps moves the price about
``S / D * 100`` bps). Under the cap a position opened at the price ``P`` is liquidated no
nearer than ``d* = (1 / L* - mmr) * 1e4 = (imr_multiple - 1) * mmr * 1e4`` bps from its
entry, so the estimated at-risk levels nearer than ``d*`` bps to the price exist only through
leverage above the cap: their notional is what the margin would have *pushed out of reach*
(entries taken at the current price: the map does not know them; an estimate).

Circuit breaker
---------------
Per direction, at the end of each second ``t`` with price ``P_t``: tripped when the price has
moved ``band_bps`` against the direction's side within ``window_s`` seconds,

    down: (1 - P_t / max(P over [t - window_s, t])) * 1e4 >= band_bps
    up:   (P_t / min(P over [t - window_s, t]) - 1) * 1e4 >= band_bps

or when that side's liquidations over ``(t - window_s, t]`` reach ``liq_usd``. A tripped
breaker stays tripped until ``halt_s`` seconds after the last second the rule held; ``since``
is the second it tripped.
"""

from __future__ import annotations

from collections import deque

import msgspec
import numpy as np

from cascadewatch.detectors.breaker import DIRECTIONS, BreakerState, CircuitBreaker
from cascadewatch.detectors.liqmap_estimated import Cluster, nearest_dense_cluster
from cascadewatch.detectors.margin import Margin, MarginRule
from cascadewatch.detectors.reach import _as_levels, _stable_order

__all__ = [
    "BreakerState",
    "CircuitBreaker",
    "Defence",
    "Margin",
    "MarginRule",
    "MitigationConfig",
    "MitigationMonitor",
    "MitigationReadout",
    "defence_liquidity",
    "next_dense_cluster",
]


class Defence(msgspec.Struct, frozen=True):
    """Defence liquidity of one direction (module docstring): ``usd`` the least wall that stops
    the walk before ``target`` (0.0: it already stops; ``None``: no answer, see ``reason``),
    ``wall_price`` where it sits (the trigger), ``stop_price`` where the walk then stops."""

    direction: str
    usd: float | None
    wall_price: float | None
    stop_price: float | None
    target: float | None
    reason: str | None = None


def _walk(direction: str, prices: np.ndarray) -> np.ndarray:
    """Prices in the walk domain: increasing along the move."""
    return -prices if direction == "down" else prices


def defence_liquidity(
    price: float,
    book,
    levels,
    direction: str,
    trigger: float | None,
    target: float | None,
    band_bps: float = 200.0,
) -> Defence:
    """Least notional at the ``trigger`` that stops the reach walk before ``target`` (module docstring).

    ``book``/``levels`` as in :func:`cascadewatch.detectors.reach.cascade_reach` (the side in
    front; the levels of the direction); ``trigger``: the price the move is assumed to reach
    (the nearest dense cluster); ``target``: the next dense cluster beyond it; ``band_bps``: how
    far in front of ``price`` the wall may sit.

    >>> bids = [(99.0, 100.0), (98.0, 100.0), (97.0, 50.0), (95.0, 1000.0)]  # 9,900 + 9,800 + 4,850 + ...
    >>> longs = [(99.0, 15_000.0), (98.0, 10_000.0), (96.0, 50_000.0)]
    >>> d = defence_liquidity(100.0, bids, longs, "down", trigger=99.0, target=96.0)
    >>> d.usd, d.wall_price, d.stop_price          # F(97) - A(97) = 25,000 - 24,550
    (450.0, 99.0, 97.0)
    """
    if direction not in DIRECTIONS:
        raise ValueError("direction must be 'down' or 'up'")
    if trigger is None or target is None:
        return Defence(direction, None, None, None, target, "no target" if trigger is not None else "no trigger")
    sign = -1.0 if direction == "down" else 1.0
    r0 = max(sign * trigger, sign * price)
    c = sign * target
    if not c > r0:
        return Defence(direction, None, None, None, target, "target behind the trigger")
    if (r0 - sign * price) / price * 1e4 > band_bps + 1e-9:
        return Defence(direction, None, None, None, target, "trigger beyond the band")
    bp, bq = _as_levels(book)
    lp, lx = _as_levels(levels)
    a = _walk(direction, bp)
    order = _stable_order(a)
    a, notional = np.ascontiguousarray(a[order]), (bp * bq)[order]
    cum = np.zeros(a.size + 1)
    np.add.accumulate(notional, out=cum[1:])  # (np.cumsum's own call)
    b0 = cum[int(a.searchsorted(r0, side="left"))]
    lw = _walk(direction, lp)
    keep = lw >= sign * price  # levels already crossed are ignored, as in the walk
    lw, lx = lw[keep], lx[keep]
    lorder = _stable_order(lw)
    lw = np.ascontiguousarray(lw[lorder])
    lcum = np.zeros(lw.size + 1)
    np.add.accumulate(lx[lorder], out=lcum[1:])
    cand = np.unique(np.concatenate(([r0], a[(a > r0) & (a < c)], lw[(lw > r0) & (lw < c)])))
    forced = lcum[lw.searchsorted(cand, side="right")]  # F(r)
    absorbed = cum[a.searchsorted(cand, side="right")] - b0  # A(r)
    gap = forced - absorbed
    k = int(gap.argmin())
    return Defence(
        direction=direction,
        usd=max(float(gap[k]), 0.0),
        wall_price=sign * float(r0),
        stop_price=sign * float(cand[k]),
        target=target,
    )


def next_dense_cluster(
    prices,
    notionals,
    after: Cluster,
    window: int = 5,
    dense_multiple: float = 3.0,
    min_usd: float = 0.0,
) -> Cluster | None:
    """The nearest dense cluster beyond ``after`` (past its far edge, same rule and direction).

    ``prices``/``notionals``: bucket centres ascending and the direction's notionals (e.g.
    ``EstimatedMapReadout.prices`` and ``long_usd``); the rule as in
    :func:`~cascadewatch.detectors.liqmap_estimated.nearest_dense_cluster`.

    >>> from cascadewatch.detectors.liqmap_estimated import nearest_dense_cluster
    >>> c = np.array([95.0, 96.0, 97.0, 98.0, 99.0])
    >>> x = np.array([0.0, 8.0, 0.0, 9.0, 0.0])
    >>> first = nearest_dense_cluster(c, x, 100.0, "down", window=1, dense_multiple=1.0)
    >>> first.price, next_dense_cluster(c, x, first, window=1, dense_multiple=1.0).price
    (98.0, 96.0)
    """
    edge = after.lo_price if after.direction == "down" else after.hi_price
    return nearest_dense_cluster(prices, notionals, edge, after.direction, window, dense_multiple, min_usd)


class MitigationConfig(msgspec.Struct, frozen=True, kw_only=True):
    """``[detectors.mitigation]``: ``defence_bps`` (how far in front of the price a defence wall
    may sit, bps), ``margin`` (:class:`MarginRule`), the breaker rule (:class:`CircuitBreaker`:
    ``breaker_band_bps``, ``breaker_window_s``, ``breaker_liq_usd``, ``breaker_halt_s``)."""

    defence_bps: float = 200.0
    margin: MarginRule = MarginRule()
    breaker_band_bps: float = 300.0
    breaker_window_s: int = 300
    breaker_liq_usd: float = 25e6
    breaker_halt_s: float = 120.0


class MitigationReadout(msgspec.Struct, frozen=True):
    """The three readouts of one direction (module docstring): ``defence`` (:class:`Defence`),
    ``margin`` (:class:`Margin`), ``out_of_reach_usd`` (at-risk notional the margin's cap pushes
    away), ``breaker`` (:class:`BreakerState`)."""

    defence: Defence
    margin: Margin
    out_of_reach_usd: float
    breaker: BreakerState


class MitigationMonitor:
    """The breaker and the traded volume of one asset, and the readouts per direction.

    Parameters
    ----------
    config
        :class:`MitigationConfig` (defaults: the documented ones).
    volume_window_s
        Window of the traded volume behind ``volume_usd_s``, seconds.

    Examples
    --------
    >>> mm = MitigationMonitor()
    >>> for s in range(3):
    ...     _ = mm.update(float(s), 100.0, 0.0, 0.0, traded_usd=2e5)
    >>> mm.volume_usd_s
    200000.0
    >>> r = mm.readout("down", 100.0, [(99.0, 100.0)], [(99.0, 15_000.0)], sigma=1e-4, depth_usd=9900.0,
    ...                clusters=(None, None))
    >>> r.defence.usd, r.breaker.tripped, r.margin.mmr
    (None, False, 0.004)
    """

    def __init__(self, config: MitigationConfig | None = None, volume_window_s: int = 60) -> None:
        self.config = config or MitigationConfig()
        c = self.config
        self.breaker = CircuitBreaker(c.breaker_band_bps, c.breaker_window_s, c.breaker_liq_usd, c.breaker_halt_s)
        self.volume_window_s = int(volume_window_s)
        self._volume: deque[tuple[float, float]] = deque()
        self._volume_sum = 0.0

    def update(self, t: float, price: float, liq_down_usd: float, liq_up_usd: float, traded_usd: float) -> dict:
        """Second ``t`` closed at ``price`` (liquidations per side, traded notional, USD); returns
        the breaker states (:meth:`CircuitBreaker.update`)."""
        self._volume.append((t, traded_usd))
        self._volume_sum += traded_usd
        while self._volume[0][0] <= t - self.volume_window_s:
            self._volume_sum -= self._volume.popleft()[1]
        return self.breaker.update(t, price, liq_down_usd, liq_up_usd)

    @property
    def volume_usd_s(self) -> float:
        """Traded notional per second over the seconds of the window seen so far, USD/s."""
        n = len(self._volume)
        return max(self._volume_sum, 0.0) / n if n else 0.0

    def readout(
        self,
        direction: str,
        price: float,
        book,
        levels,
        sigma: float,
        depth_usd: float,
        clusters: tuple[Cluster | None, Cluster | None],
    ) -> MitigationReadout:
        """The readouts of ``direction``: ``book``/``levels`` as for the reach walk, ``sigma`` per
        sqrt(s), ``depth_usd`` within 100 bps in front, ``clusters`` = (the nearest dense cluster:
        the trigger, the next one: the target)."""
        trigger, target = clusters
        defence = defence_liquidity(
            price,
            book,
            levels,
            direction,
            trigger.price if trigger is not None else None,
            target.price if target is not None else None,
            self.config.defence_bps,
        )
        size = trigger.notional_usd if trigger is not None else 0.0
        margin = self.config.margin.suggest(sigma, self.volume_usd_s, depth_usd, size)
        return MitigationReadout(
            defence=defence,
            margin=margin,
            out_of_reach_usd=margin.out_of_reach_usd(price, levels, direction),
            breaker=self.breaker.readout()[direction],
        )
