"""Estimated liquidation map: where open positions would be force-closed.

Positions. New positions are inferred from open-interest changes and aggressive flow.
Between two open-interest observations the aggressive (taker) flow is accumulated per entry
bucket: buy quantity ``bq_b`` and notional ``bn_b``, sell quantity ``sq_b`` and notional
``sn_b``. When open interest (base units) rises by ``dOI > 0``, the new positions are assigned
to the aggressors:

    new long qty at entry bucket b  = dOI * bq_b / (Bq + Sq)   at entry vwap_b = bn_b / bq_b
    new short qty at entry bucket b = dOI * sq_b / (Bq + Sq)   at entry vwap_b = sn_b / sq_b

(``Bq``, ``Sq`` the totals; with no flow in between, half long and half short at the last
known price). Positions opened before the map started are seeded from the first open interest
seen: ``seed_share * OI`` per side, entries spread around the price (:class:`MapLearning`).

Levels. With leverage tiers ``L_i`` and maintenance margin rate ``mmr_i`` (a fraction of
notional, per venue and tier) a position's liquidation level is

    long:  P_liq = entry * (1 - 1/L_i + mmr_i)
    short: P_liq = entry * (1 + 1/L_i - mmr_i)

The map keeps, per side and tier, the *unweighted* level notional ``G_i``: every inferred
position in every tier, ``qty * P_liq`` (quote) per log-price bucket of ``P_liq``. The map's
levels are ``sum_i lambda_i * G_i``, with ``lambda_i`` the learned weight of tier ``i``.

The leverage mix is learned, not assumed. The prior ``m_i`` (the ``leverage`` weights) is
tilted and scaled, ``lambda_i = s * m_i * (L_i / L_ref) ** tau``, to fit the liquidations
the venue reports: each report is attributed to the tiers in proportion to the map's weighted
levels near its price (``A_i``), against the tier's unweighted levels the mark crossed
(``E_i``), a Poisson likelihood with priors on ``tau`` and ``log s`` (an online EM:
:meth:`EstimatedLiquidationMap.tier_weights`). Levels the mark crosses where nothing is
reported lower the weight of their tier; reports where the map is thin raise it.

Levels leave the map

- when the mark price crosses them (long levels at or above the mark's bucket, short levels
  at or below it): their weighted notional moves to ``consumed_*_usd``;
- when open interest falls by ``dOI < 0``: ``|dOI|`` less the quantity the mark consumed since
  the last observation is closed from the map's weighted open quantity, proportionally on both
  sides and all tiers;
- with time: levels decay with ``half_life_s`` (positions closed unseen).

A *dense cluster* is defined on one side of the price (long levels below it
for ``down``, short levels above for ``up``), within ``+-range_pct``. The *levels* are the
buckets that hold notional (an empty bucket is no level: a list of positions' liquidation
levels, such as the simulator's truth, has none). With ``x_j`` the levels' notionals ordered
outward from the price and ``s_j = sum of x over a window of w levels centred on j``
(``w = cluster_bps / bucket_bps``), level ``j`` is dense when
``s_j >= max(dense_multiple * w * mean(x), min_cluster_usd)``: the window holds
``dense_multiple`` times what the same notional spread evenly over the levels would. The
nearest dense cluster is the first run of consecutive dense levels going away from the price;
its notional is the sum over the run's levels and its price their notional-weighted centre.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import msgspec
import numpy as np

from cascadewatch.connectors.events import Liquidation, MarkPrice, OpenInterest, Trade
from cascadewatch.detectors._grid import DecayingLogGrid, add_rows, add_weighted_sum
from cascadewatch.detectors._reduce import all1, any1, sum1

__all__ = [
    "Cluster",
    "EstimatedLiquidationMap",
    "EstimatedMapReadout",
    "MapLearning",
    "nearest_dense_cluster",
    "dense_clusters",
    "DEFAULT_TIERS",
    "LOT_QTY",
]

DEFAULT_TIERS: tuple[tuple[float, float], ...] = (
    (2.0, 0.14),
    (3.0, 0.11),
    (5.0, 0.20),
    (10.0, 0.27),
    (20.0, 0.13),
    (25.0, 0.08),
    (50.0, 0.045),
    (75.0, 0.015),
    (100.0, 0.01),
)
"""Default leverage tiers ``(L, weight)``: the round leverages traders pick on the venues' sliders,
with a prior mix of retail perpetual flow (7 % at 50x or more; weights sum to 1), chosen on the
tuning families of the simulator (README, Detection quality); the map learns each market's mix
from the liquidations it observes."""


class Cluster(msgspec.Struct, frozen=True):
    """The nearest dense cluster of liquidation levels in one direction.

    ``price``: notional-weighted centre; ``distance_bps``: ``|price / ref - 1| * 1e4``;
    ``notional_usd``: levels in the cluster (quote); ``lo_price``/``hi_price``: its
    lowest/highest non-empty bucket centre.
    """

    direction: str
    price: float
    distance_bps: float
    notional_usd: float
    lo_price: float
    hi_price: float


class EstimatedMapReadout(msgspec.Struct, frozen=True):
    """The estimated map around ``price`` at time ``t``.

    ``prices[j]`` is the centre of bucket ``k_lo + j``, ``offsets_bps[j]`` its
    distance from ``price`` in bps; ``long_usd``/``short_usd`` the liquidation
    notional of longs/shorts with their level in that bucket. Totals are
    within the range: ``long_total_usd`` below the price (at risk on a move
    down), ``short_total_usd`` above it. ``consumed_*_usd`` are cumulative.
    ``cluster_*``: the nearest dense cluster per direction; ``next_*``: the next one beyond it
    (:func:`dense_clusters`); ``long_levels``/``short_levels``: :meth:`levels` ``down``/``up``.
    """

    price: float
    t: float
    k_lo: int
    prices: np.ndarray
    long_usd: np.ndarray
    short_usd: np.ndarray
    long_total_usd: float
    short_total_usd: float
    cluster_down: Cluster | None
    cluster_up: Cluster | None
    consumed_long_usd: float
    consumed_short_usd: float
    next_down: Cluster | None
    next_up: Cluster | None
    long_levels: np.ndarray
    short_levels: np.ndarray

    @property
    def offsets_bps(self) -> np.ndarray:
        """Distance of each bucket centre from ``price``, bps: ``(prices / price - 1) * 1e4``."""
        return (self.prices / self.price - 1.0) * 1e4

    def levels(self, direction: str) -> np.ndarray:
        """``(n, 2)`` array of ``(level price, notional)``: the non-empty buckets a move
        ``down`` (long levels below the price) or ``up`` (short levels above) would hit, prices
        ascending (read-only); the ``levels`` input of :func:`cascadewatch.detectors.reach.cascade_reach`."""
        return self.long_levels if direction == "down" else self.short_levels

    def cluster(self, direction: str) -> Cluster | None:
        """The nearest dense cluster in ``direction``."""
        return self.cluster_down if direction == "down" else self.cluster_up

    def next_cluster(self, direction: str) -> Cluster | None:
        """The next dense cluster beyond :meth:`cluster` in ``direction`` (by the same rule)."""
        return self.next_down if direction == "down" else self.next_up


def nearest_dense_cluster(
    centers: np.ndarray,
    notionals: np.ndarray,
    price: float,
    direction: str,
    window: int = 5,
    dense_multiple: float = 3.0,
    min_usd: float = 0.0,
) -> Cluster | None:
    """Nearest dense cluster below (``down``) or above (``up``) ``price``.

    ``centers`` are bucket centre prices, ascending, ``notionals`` the bucket
    notionals; ``window`` the smoothing window in levels (odd). Buckets that hold
    no notional (zero, or not a number) are not levels: they count neither in the
    mean nor in a window, so a grid with empty buckets gives the cluster of the list
    of its non-empty buckets. See the module docstring for the definition of *dense*.

    Below 100 the levels are 99 (1), 98 (9) and 96 (2); the empty 97 is none, so the mean
    level holds 4 (3 if 97 counted): with a window of one level, 98 is dense at 1.5 times
    the mean and not at 2.5 (it would be, at 7.5, with 97 counted).

    >>> c = np.array([96.0, 97.0, 98.0, 99.0, 101.0, 102.0])
    >>> x = np.array([2.0, 0.0, 9.0, 1.0, 0.0, 0.0])
    >>> nearest_dense_cluster(c, x, 100.0, "down", window=1, dense_multiple=1.5).price
    98.0
    >>> nearest_dense_cluster(c, x, 100.0, "down", window=1, dense_multiple=2.5) is None
    True
    >>> nearest_dense_cluster(c, x, 100.0, "up", window=1) is None
    True
    """
    x, cs_all = _side_levels(centers, notionals, price, direction)
    found = _first_dense_run(x, cs_all, price, direction, window, dense_multiple, min_usd)
    return found[0] if found is not None else None


def dense_clusters(
    centers: np.ndarray,
    notionals: np.ndarray,
    price: float,
    direction: str,
    window: int = 5,
    dense_multiple: float = 3.0,
    min_usd: float = 0.0,
) -> tuple[Cluster | None, Cluster | None]:
    """The nearest dense cluster (:func:`nearest_dense_cluster`) and the next one beyond it (the
    answer of :func:`cascadewatch.detectors.mitigation.next_dense_cluster`), from one pass over
    the levels: the levels beyond the first cluster's far edge are those after its run.

    >>> c = np.array([95.0, 96.0, 97.0, 98.0, 99.0])
    >>> x = np.array([0.0, 8.0, 0.0, 9.0, 0.0])
    >>> [k.price for k in dense_clusters(c, x, 100.0, "down", window=1, dense_multiple=1.0)]
    [98.0, 96.0]
    """
    x, cs_all = _side_levels(centers, notionals, price, direction)
    return _dense_pair(x, cs_all, price, direction, window, dense_multiple, min_usd)


def _dense_pair(
    x: np.ndarray, cs_all: np.ndarray, price: float, direction: str, window: int, dense_multiple: float, min_usd: float
) -> tuple[Cluster | None, Cluster | None]:
    """:func:`dense_clusters` of the levels ``x`` at ``cs_all`` (nearest first, :func:`_side_levels`)."""
    found = _first_dense_run(x, cs_all, price, direction, window, dense_multiple, min_usd)
    if found is None:
        return None, None
    cluster, end = found
    edge = cluster.lo_price if direction == "down" else cluster.hi_price  # its far edge, ``cs_all[end - 1]``
    after = _first_dense_run(x[end:], cs_all[end:], edge, direction, window, dense_multiple, min_usd)
    return cluster, after[0] if after is not None else None


def _side_levels(centers, notionals, price: float, direction: str) -> tuple[np.ndarray, np.ndarray]:
    """``(notionals, centres)`` of the levels on the ``direction``'s side of ``price``, nearest
    first: the buckets that hold notional (zero, negative or NaN: none) below the price for
    ``down`` (read backwards), above it for ``up``; contiguous (views or copies)."""
    centers = np.asarray(centers, dtype=np.float64)
    notionals = np.asarray(notionals, dtype=np.float64)
    if direction not in ("down", "up"):
        raise ValueError("direction must be 'down' or 'up'")
    if price != price:  # NaN: no centre is below or above it
        return notionals[:0], centers[:0]
    # the buckets on the direction's side, nearest first: centres below the price are the first
    # ``i`` (ascending centres), read backwards for ``down``; above it those from ``i`` on
    if direction == "down":
        i = int(centers.searchsorted(price, side="left"))
        x, cs_all = notionals[i - 1 :: -1] if i else notionals[:0], centers[i - 1 :: -1] if i else centers[:0]
    else:
        i = int(centers.searchsorted(price, side="right"))
        x, cs_all = notionals[i:], centers[i:]
    held = x > 0  # the levels: buckets that hold notional
    if not all1(held):
        return x[held], cs_all[held]  # (copies, in order)
    return (x.copy(), cs_all) if i and direction == "down" else (x, cs_all)


def _first_dense_run(
    x: np.ndarray, cs_all: np.ndarray, price: float, direction: str, window: int, dense_multiple: float, min_usd: float
) -> tuple[Cluster, int] | None:
    """The first run of dense levels among the levels ``x`` at ``cs_all`` (nearest first, see
    :func:`nearest_dense_cluster`) as a :class:`Cluster` measured from ``price``, and the index
    after its last level; ``None`` if no level is dense."""
    if x.size == 0:
        return None
    total = float(sum1(x))
    w = max(int(window), 1) | 1
    # window sums centred on each level (the middle of the full convolution: "same" would
    # return ``w`` sums, not one per level, when there are fewer levels than ``w``)
    s = np.convolve(x, _ones(w))[w // 2 : w // 2 + x.size] if w > 1 else x
    threshold = max(dense_multiple * w * total / x.size, min_usd, 1e-12)
    # the first run of dense levels: from the first dense one to the first one after it that is not
    dense = s >= threshold
    a = int(dense.argmax())
    if not dense[a]:
        return None
    b = a + int(dense[a:].argmin())
    if dense[b]:  # dense up to the last level
        b = dense.size
    xs = x[a:b]
    cs = cs_all[a:b]
    notional = float(sum1(xs))
    pc = float(sum1(cs * xs)) / notional
    ends = (float(cs[0]), float(cs[-1]))  # the run's nearest and farthest levels
    cluster = Cluster(
        direction=direction,
        price=pc,
        distance_bps=abs(pc / price - 1.0) * 1e4,
        notional_usd=notional,
        lo_price=min(ends),
        hi_price=max(ends),
    )
    return cluster, b


def _levels_table(x: np.ndarray, cs: np.ndarray, direction: str) -> np.ndarray:
    """The levels ``x`` at ``cs`` (nearest first, :func:`_side_levels`) as :func:`_pairs` rows,
    prices ascending."""
    return _pairs(cs[::-1], x[::-1]) if direction == "down" else _pairs(cs, x)


def _pairs(prices: np.ndarray, notionals: np.ndarray) -> np.ndarray:
    """The ``(n, 2)`` array of ``(price, notional)`` rows (read-only: readouts hand it out)."""
    out = np.empty((prices.size, 2))
    out[:, 0] = prices
    out[:, 1] = notionals
    out.flags.writeable = False
    return out


@functools.cache
def _ones(w: int) -> np.ndarray:
    """The smoothing window of :func:`nearest_dense_cluster`, ``w`` ones (read-only, shared)."""
    kernel = np.ones(w)
    kernel.flags.writeable = False
    return kernel


@dataclass(frozen=True, slots=True)
class MapLearning:
    """What the estimated map assumes before it has seen data, and how fast it learns.

    - ``seed_share``: the share of the first open interest seen (per side, base units) taken as
      leveraged positions opened before the map started (``0``: start empty);
    - ``seed_spread_bps``: standard deviation of their entry prices around the price then, bps
      of log-price (a Laplace law, see ``EstimatedLiquidationMap._seed``);
    - ``prior_share``: weight of the prior mix as pseudo-evidence, a share of each tier's levels;
    - ``learn_half_life_s``: half-life of the evidence (observed and expected liquidations), s;
    - ``match_bps``: half-width of the price window in which a liquidation is matched to the
      map's levels, bps;
    - ``burst_liquidations``: a mark step that consumes more than this many typical liquidations
      (geometric mean of the reported notionals) teaches nothing, on either side: venues report
      only a sample of a burst (one order a second on some);
    - ``max_multiple``: a tier's learned weight stays within ``[0, max_multiple * m_i]``;
    - ``tilt_sd``, ``scale_sd``: standard deviations of the priors of the mix's tilt and of the
      log of its scale (:meth:`EstimatedLiquidationMap.tier_weights`).
    """

    seed_share: float = 0.08
    seed_spread_bps: float = 50.0
    prior_share: float = 0.05
    learn_half_life_s: float = 6 * 3600.0
    match_bps: float = 20.0
    burst_liquidations: float = 3.0
    max_multiple: float = 8.0
    tilt_sd: float = 1.0
    scale_sd: float = 0.35


LOT_QTY = 0.001
"""The smallest position the venues open, base units (0.001 BTC on the USDT perpetuals of Binance
and Bybit, and in the simulator): a bucket of the estimated map holding less than one lot at its
price holds no position, so it is no level (:attr:`EstimatedLiquidationMap.lot_qty`)."""

CLUSTER_BPS = 50.0
"""Width of the window that defines a dense cluster, bps (5 levels of the 10 bps grid, the rule of ``evaluate``)."""

_SIDES = ("long", "short")
_SPENT_HALF_LIFE_S = 120.0
"""Half-life of consumed levels kept for matching liquidations reported after the mark crossed them, seconds."""
_TAUS = np.linspace(-3.0, 3.0, 61)
"""Tilts ``tau`` of the leverage mix tried by :meth:`EstimatedLiquidationMap.tier_weights`."""
_LOG_SCALES = np.linspace(-3.0, 3.0, 61)
"""Logs of the scale ``s`` of the leverage mix tried by :meth:`EstimatedLiquidationMap.tier_weights`."""
_SIZE_ALPHA = 0.05
"""Weight of a new liquidation in the running mean of log liquidation notional."""
_SEED_POINTS = np.linspace(-4.0, 4.0, 33)
"""Entry prices of the seeded positions: ``price * exp(z * spread)`` at these ``z`` (see ``_seed``)."""


class EstimatedLiquidationMap:
    """Liquidation levels of positions inferred from open interest and aggressive flow; the
    leverage mix is learned from the liquidations observed.

    Parameters
    ----------
    leverage
        Leverage tiers as ``(L, weight)`` pairs: the prior mix ``m_i``, normalized to sum 1.
    mmr
        Maintenance margin rate (fraction of notional): one value for all tiers or
        one per tier (venue-specific, e.g. 0.004 for Binance BTCUSDT's first bracket).
    bucket_bps
        Bucket width of the log-price grid, in bps.
    range_pct
        Half-width of the readout window, percent of price.
    half_life_s
        Half-life of a level (positions closed without a visible OI drop), seconds.
    dense_multiple
        A window of :data:`CLUSTER_BPS` (``w`` levels) is dense when it holds this many times ``w`` mean levels.
    min_cluster_usd
        A cluster must also hold at least this notional (quote).
    learning
        Seeding and learning rates (:class:`MapLearning`).

    Attribute ``lot_qty`` (default :data:`LOT_QTY`, base units): a readout reports no level in
    a bucket holding less than ``lot_qty * centre price`` (the expected notional of levels smeared
    over many buckets leaves dust where no position can be; the nearest dense cluster counts
    only levels, as it does on a list of true positions' levels).

    Time arguments ``t`` are seconds since the epoch as floats (``event.ts / 1e9``).

    Examples
    --------
    One tier (10x, mmr 0.5 %), no seed: 10 BTC bought aggressively at 100 while open
    interest rises by 10: new longs, liquidated at 100 * (1 - 0.1 + 0.005) = 90.5. (A map of
    one level is a dense cluster only with ``dense_multiple`` at most ``1 / w``, here 0.2: the
    window of ``w`` = 5 levels holds what ``w`` mean levels would.)

    >>> m = EstimatedLiquidationMap(leverage=[(10, 1.0)], mmr=0.005, range_pct=15, dense_multiple=0.2,
    ...                             learning=MapLearning(seed_share=0.0))
    >>> m.learn_oi(1000.0, t=0.0)                   # baseline open interest (base units)
    0.0
    >>> m.learn_trade(100.0, 10.0, "buy")
    >>> m.learn_oi(1010.0, t=1.0)                   # returns new notional at entry
    1000.0
    >>> r = m.readout(price=100.0, t=1.0)
    >>> round(r.long_total_usd, 6), round(r.cluster_down.distance_bps)
    (905.0, 949)

    Only half the positions were real: the liquidation reported while the mark crosses the
    level holds half the map's notional there. In units of the typical report that is one
    report where two were expected: weak evidence, so the tier's weight moves from 1 toward a
    half only as far as the prior on the scale (``scale_sd``) lets it.

    >>> m.learn_liquidation(90.5, 452.5, "long", t=2.0)
    >>> [round(x) for x in m.learn_mark(90.4, t=2.0)]   # the mark crosses the level
    [905, 0]
    >>> round(float(m.tier_weights("long")[0]), 3)
    0.905
    """

    def __init__(
        self,
        leverage: Sequence[tuple[float, float]] = DEFAULT_TIERS,
        mmr: float | Sequence[float] = 0.005,
        bucket_bps: float = 10.0,
        range_pct: float = 10.0,
        half_life_s: float = 8 * 3600.0,
        dense_multiple: float = 3.0,
        min_cluster_usd: float = 0.0,
        learning: MapLearning = MapLearning(),
    ) -> None:
        lev = np.array([float(L) for L, _ in leverage])
        w = np.array([float(wt) for _, wt in leverage])
        if lev.size == 0 or (lev <= 1).any() or (w < 0).any() or w.sum() <= 0:
            raise ValueError("leverage tiers need L > 1 and non-negative weights with a positive sum")
        self.leverage = lev
        self.weights = w / w.sum()
        self.mmr = np.broadcast_to(np.asarray(mmr, dtype=np.float64), lev.shape).copy()
        self.long_factor = 1.0 - 1.0 / lev + self.mmr
        self.short_factor = 1.0 + 1.0 / lev - self.mmr
        self.bucket_bps = float(bucket_bps)
        self.range_pct = float(range_pct)
        self.half_life_s = float(half_life_s)
        self.cluster_buckets = max(int(round(CLUSTER_BPS / bucket_bps)), 1) | 1
        self.dense_multiple = float(dense_multiple)
        self.min_cluster_usd = float(min_cluster_usd)
        self.learning = learning
        ref = math.exp(float((self.weights * np.log(lev)).sum()))  # prior geometric mean leverage
        self._tilt_powers = (lev[None, :] / ref) ** _TAUS[:, None]
        n = lev.size
        # unweighted level notional per side and tier: every inferred position in every tier
        self._levels = tuple([DecayingLogGrid(bucket_bps, half_life_s) for _ in range(n)] for _ in _SIDES)
        # levels consumed by the mark lately, per side and tier (for matching late liquidation reports)
        self._spent = tuple([DecayingLogGrid(bucket_bps, _SPENT_HALF_LIFE_S) for _ in range(n)] for _ in _SIDES)
        self._qty = np.zeros((2, n))  # unweighted open quantity per side and tier (base units)
        self._observed = np.zeros((2, n))  # liquidated notional attributed to each tier (decaying)
        self._expected = np.zeros((2, n))  # unweighted level notional the mark crossed (decaying)
        self._reported = np.zeros((2, n))  # attributed since the last mark (joins _observed with its exposure)
        self._t: float | None = None  # time of the last decay of the arrays above
        self._log_size: float | None = None  # EWMA of log reported liquidation notional
        self._log_trade: float | None = None  # EWMA of log trade notional (the unit before any report)
        self._lam = np.tile(self.weights, (2, 1))  # learned tier weights per side (tier_weights)
        self.unmatched_usd = [0.0, 0.0]
        """Liquidated notional (long, short) reported where the map held no level: positions it missed."""
        # pending aggressive flow since the last OI observation, per aggressor side and
        # entry bucket (of the same grid): [qty, notional], summed in arrival order
        self._flow: dict[str, dict[int, list[float]]] = {"buy": {}, "sell": {}}
        self._oi: float | None = None
        self._crossed_qty = 0.0  # weighted quantity the mark consumed since the last OI observation
        self._seeded = learning.seed_share <= 0
        self._last_price: float | None = None
        self.consumed_long_usd = 0.0
        self.consumed_short_usd = 0.0

    # ---------------------------------------------------------------- weights
    def _advance(self, t: float) -> None:
        """Decay the open quantities (``half_life_s``) and the evidence (``learn_half_life_s``) to ``t``."""
        if self._t is None or t <= self._t:
            self._t = t if self._t is None else self._t
            return
        dt = t - self._t
        self._qty *= 2.0 ** (-dt / self.half_life_s)
        f = 2.0 ** (-dt / self.learning.learn_half_life_s)
        self._observed *= f
        self._expected *= f
        self._t = t

    def tier_weights(self, side: str) -> np.ndarray:
        """Learned weight ``lambda_i`` of each tier for ``side`` (``long``/``short``), as of the last mark.

        The mix is a tilt of the prior ``m_i`` by a power of the leverage, times a scale::

            lambda_i = min(s * m_i * (L_i / L_ref) ** tau, max_multiple * m_i)

        (``L_ref`` the prior's geometric mean leverage): one number says how much more or less
        high leverage the market holds than the prior, so the liquidations near the price (high
        tiers) also move the far tiers. ``(tau, log s)`` maximize a Poisson likelihood of the
        evidence, in units of the typical liquidation ``u`` (geometric mean of the reports; of
        the trades before any report), with normal priors ``tau ~ N(0, tilt_sd)``,
        ``log s ~ N(0, scale_sd)``::

            sum_i [N_i log lambda_i - lambda_i X_i] / u - tau^2 / (2 tilt_sd^2) - (log s)^2 / (2 scale_sd^2)

        with ``N_i = A_i + k_i m_i``, ``X_i = E_i + k_i``: ``A_i`` the liquidated notional
        attributed to tier ``i``, ``E_i`` the tier's unweighted level notional the mark crossed
        (both decaying with ``learn_half_life_s``) and ``k_i = prior_share * U_i``, a share of
        the tier's unweighted levels ``U_i``, as pseudo-evidence for the prior mix (what the
        liquidations on a few levels say about a whole tier is bounded). Found on a grid of
        ``tau`` and ``log s``; with no evidence, ``lambda_i = m_i``.
        """
        return self._lam[_SIDES.index(side)].copy()

    def _refit(self, s: int, t: float) -> None:
        """Fit the tier weights of side ``s`` to its evidence at ``t`` (:meth:`tier_weights`)."""
        m = self.weights
        a, e = self._observed[s], self._expected[s]
        size = self._log_size if self._log_size is not None else self._log_trade
        if size is None or not (a.sum() > 0 or e.sum() > 0):
            self._lam[s] = m
            return
        k = self.learning.prior_share * np.array([g.total(t) for g in self._levels[s]])
        n, x = a + k * m, e + k
        g = m[None, :] * self._tilt_powers  # (tilts, tiers)
        with np.errstate(divide="ignore"):
            log_g = np.where(g > 0, np.log(np.where(g > 0, g, 1.0)), 0.0)
        n_log_g = (log_g * n[None, :]).sum(axis=1)
        gx = (g * x[None, :]).sum(axis=1)
        loglik = n_log_g[:, None] + n.sum() * _LOG_SCALES[None, :] - np.exp(_LOG_SCALES)[None, :] * gx[:, None]
        prior = (_TAUS / self.learning.tilt_sd)[:, None] ** 2 + (_LOG_SCALES / self.learning.scale_sd)[None, :] ** 2
        objective = loglik / math.exp(size) - 0.5 * prior
        i, j = np.unravel_index(int(np.argmax(objective)), objective.shape)
        self._lam[s] = np.minimum(math.exp(_LOG_SCALES[j]) * g[i], self.learning.max_multiple * m)

    # ------------------------------------------------------------------ learn
    def learn_trades(self, prices, qtys, is_buy) -> None:
        """Accumulate aggressive flow: arrays of prices, base quantities and ``is_buy`` (aggressor buy)."""
        p = np.asarray(prices, dtype=np.float64)
        q = np.asarray(qtys, dtype=np.float64)
        b = np.asarray(is_buy, dtype=bool)
        ok = np.isfinite(p) & (p > 0) & np.isfinite(q) & (q > 0)
        if not ok.all():
            p, q, b = p[ok], q[ok], b[ok]
        if p.size == 0:
            return
        self._last_price = float(p[-1])
        for price, qty, buy in zip(p.tolist(), q.tolist(), b.tolist(), strict=True):
            self._add_flow("buy" if buy else "sell", price, qty)

    def learn_trade(self, price: float, qty: float, side: str) -> None:
        """Accumulate one trade; ``side`` is the aggressor, ``"buy"`` or ``"sell"``.

        The same state as :meth:`learn_trades` with one-element arrays, without the arrays.
        """
        p, q = float(price), float(qty)
        if not (math.isfinite(p) and p > 0 and math.isfinite(q) and q > 0):
            return
        self._last_price = p
        self._add_flow("buy" if side == "buy" else "sell", p, q)

    def _add_flow(self, side: str, price: float, qty: float) -> None:
        """Add a valid trade to the pending flow of its aggressor ``side``."""
        lt = math.log(price * qty)
        self._log_trade = lt if self._log_trade is None else self._log_trade + _SIZE_ALPHA * (lt - self._log_trade)
        k = self._levels[0][0].bucket_of_one(price)
        cell = self._flow[side].get(k)
        if cell is None:
            self._flow[side][k] = [qty, price * qty]
        else:
            cell[0] += qty
            cell[1] += price * qty

    def _pending(self, side: str) -> tuple[np.ndarray, np.ndarray]:
        """(vwap per bucket, qty per bucket) of the pending flow of one side, buckets ascending."""
        flow = self._flow[side]
        if not flow:
            return np.zeros(0), np.zeros(0)
        cells = [flow[k] for k in sorted(flow)]
        qty = np.array([c[0] for c in cells])
        return np.array([c[1] for c in cells]) / qty, qty

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state.pop("_centers_cache", None)  # derived (and read-only)
        state.pop("_lots_cache", None)
        return state

    def __setstate__(self, state: dict) -> None:
        """Unpickle; a state from before the per-tier levels (one weighted grid per side) is refused."""
        if "_levels" not in state:
            raise ValueError(
                "estimated liquidation map state from before the learned leverage mix: "
                "start from an empty recovery directory"
            )
        self.__dict__.update(state)

    def learn_oi(self, oi_qty: float, t: float, price: float | None = None) -> float:
        """Observe open interest ``oi_qty`` (base units) at time ``t``; returns new notional opened.

        ``price`` is used only when no trade was seen since the last observation, and to
        seed the map (:class:`MapLearning`) at the first observation with a known price.
        A fall ``dOI < 0`` closes ``|dOI| - C`` of the map's weighted open quantity
        ``Q = sum_side sum_i lambda_i * qty_i``, ``C`` the weighted quantity the mark consumed
        since the last observation (liquidated positions leave the open interest too): every
        level is scaled by ``1 - (|dOI| - C) / Q``.
        """
        if not math.isfinite(oi_qty) or oi_qty < 0:
            return 0.0
        self._advance(t)
        ref = price if price is not None else self._last_price
        if not self._seeded and ref is not None and ref > 0:
            self._seed(float(oi_qty), float(ref), t)
        added = 0.0
        if self._oi is not None:
            d = oi_qty - self._oi
            if d > 0:
                bvw, bq = self._pending("buy")
                svw, sq = self._pending("sell")
                tot = float(bq.sum() + sq.sum())
                if tot <= 0:
                    if ref is None or not ref > 0:
                        self._oi = float(oi_qty)
                        return 0.0
                    bvw = svw = np.array([float(ref)])
                    bq = sq = np.array([0.5])
                    tot = 1.0
                added += self._open(0, bvw, d * bq / tot, t)
                added += self._open(1, svw, d * sq / tot, t)
            elif d < 0:
                self._close(-d - self._crossed_qty, t)
        self._oi = float(oi_qty)
        self._crossed_qty = 0.0
        for flow in self._flow.values():
            flow.clear()
        return added

    def _seed(self, oi_qty: float, price: float, t: float) -> None:
        """Positions opened before the map started: ``seed_share * OI`` per side; levels the price
        has already crossed are left out.

        Positions opened at a steady rate, held an exponential time and entered while the price
        diffused have log entry offsets that are a normal mixture with exponential variance: a
        Laplace law, density ``exp(-sqrt(2) |x| / spread)``, ``spread`` = ``seed_spread_bps``
        (its standard deviation), discretized at ``x = z * spread``.
        """
        self._seeded = True
        z = _SEED_POINTS
        share = np.exp(-math.sqrt(2.0) * np.abs(z))
        share /= share.sum()
        entry = price * np.exp(z * self.learning.seed_spread_bps * 1e-4)
        qty = self.learning.seed_share * oi_qty * share
        k = self._levels[0][0].bucket_of_one(price)
        for s, factor in enumerate((self.long_factor, self.short_factor)):
            for i, grid in enumerate(self._levels[s]):
                level = entry * factor[i]
                keep = grid.bucket_of(level) < k if s == 0 else grid.bucket_of(level) > k  # not already crossed
                grid.add(level[keep], (qty * level)[keep], t)
                self._qty[s, i] += float(qty[keep].sum())

    def _open(self, s: int, entry: np.ndarray, qty: np.ndarray, t: float) -> float:
        """New positions of side ``s`` at ``entry`` prices: their levels in every tier's grid."""
        if entry.size == 0:
            return 0.0
        factor = self.long_factor if s == 0 else self.short_factor
        levels = factor[:, None] * entry[None, :]  # row i: entry * factor[i], tier i's levels
        add_rows(self._levels[s], levels, qty[None, :] * levels, t)
        self._qty[s] += float(qty.sum())
        return float((qty * entry).sum())

    def _close(self, d: float, t: float) -> None:
        """Close ``d`` (base units) of the weighted open quantity, proportionally on both sides."""
        if d <= 0:
            return
        q = sum(float((self._lam[s] * self._qty[s]).sum()) for s, side in enumerate(_SIDES))
        f = max(1.0 - d / q, 0.0) if q > 0 else 1.0
        for grids in self._levels:
            for grid in grids:
                grid.scale(f)
        self._qty *= f

    def learn_liquidation(self, price: float, notional: float, side: str, t: float) -> None:
        """A liquidation of a ``side`` (``long``/``short``) position at ``price`` for ``notional`` (quote).

        Learn it *before* the mark that crossed its level (:meth:`learn_mark`); levels consumed
        in the last minutes still match. The notional is attributed to the tiers in proportion
        to the map's weighted levels within ``+-match_bps`` of ``price`` (live and recently
        consumed): ``A_i += notional * lambda_i u_i / sum_j lambda_j u_j`` (the E-step of an
        online EM for the tier weights, see :meth:`tier_weights`); it counts as evidence from the
        next :meth:`learn_mark` on, together with the levels that mark consumes. Where the map holds no level,
        the notional is counted in ``unmatched_usd``.
        """
        p, x = float(price), float(notional)
        if side not in _SIDES or not (math.isfinite(p) and p > 0 and math.isfinite(x) and x > 0):
            return
        self._advance(t)
        ls = math.log(x)
        self._log_size = ls if self._log_size is None else self._log_size + _SIZE_ALPHA * (ls - self._log_size)
        s = _SIDES.index(side)
        k = self._levels[0][0].bucket_of_one(p)
        w = max(int(round(self.learning.match_bps / self.bucket_bps)), 0)
        near = np.array(
            [
                float(a.values(k - w, k + w, t).sum() + b.values(k - w, k + w, t).sum())
                for a, b in zip(self._levels[s], self._spent[s], strict=True)
            ]
        )
        u = self._lam[s] * near
        total = float(u.sum())
        if not total > 0:
            self.unmatched_usd[s] += x
            return
        self._reported[s] += x * u / total

    def learn_mark(self, price: float, t: float) -> tuple[float, float]:
        """Consume the levels the mark price ``price`` has reached; returns ``(long_usd, short_usd)``
        consumed (weighted by the tier weights). Each tier's unweighted consumed notional adds to
        its expected liquidations ``E_i``, and the liquidations reported since the last mark to
        ``A_i``, unless the step is a burst (``burst_liquidations``)."""
        if not math.isfinite(price) or price <= 0:
            return 0.0, 0.0
        self._advance(t)
        k = self._levels[0][0].bucket_of_one(price)
        out = []
        burst = math.inf if self._log_size is None else self.learning.burst_liquidations * math.exp(self._log_size)
        # tier weights are finite (a product of finite numbers, capped at max_multiple * m_i)
        finite_weights = math.isfinite(self.learning.max_multiple)
        for s in range(2):
            if finite_weights and self._untouched(s, k) and not any1(self._reported[s]):
                out.append(0.0)  # most seconds: nothing crossed, nothing reported, nothing learned
                continue
            lam = self._lam[s].copy()
            taken = np.array([g.take_ge(k, t) if s == 0 else g.take_le(k, t) for g in self._levels[s]])
            consumed = float((lam * taken).sum())
            if taken.any():
                for i, x in enumerate(taken.tolist()):
                    if x > 0:
                        self._spent[s][i].add_one(price, x, t)
                self._qty[s] = np.maximum(self._qty[s] - taken / price, 0.0)
                self._crossed_qty += float((lam * taken).sum()) / price
            if consumed <= burst and (taken.any() or self._reported[s].any()):
                self._expected[s] += taken
                self._observed[s] += self._reported[s]
                self._refit(s, t)
            out.append(consumed)
        self._reported[:] = 0.0
        self.consumed_long_usd += out[0]
        self.consumed_short_usd += out[1]
        return out[0], out[1]

    def _untouched(self, s: int, k: int) -> bool:
        """Whether a mark in bucket ``k`` leaves every tier of side ``s`` as it is: no long level at
        or above it (``s == 0``), no short level at or below it. Each take would then return
        ``0.0`` (times a finite factor) and change nothing, so :meth:`learn_mark` consumes ``0.0``."""
        if s == 0:
            return all(k > grid._hi for grid in self._levels[0])
        return all(k < grid._lo for grid in self._levels[1])

    def learn_event(self, ev: Trade | OpenInterest | MarkPrice | Liquidation) -> None:
        """Dispatch a :class:`Trade`, :class:`OpenInterest`, :class:`MarkPrice` or :class:`Liquidation` event."""
        if isinstance(ev, Trade):
            self.learn_trade(ev.price, ev.qty, ev.side)
        elif isinstance(ev, OpenInterest):
            self.learn_oi(ev.qty, ev.ts * 1e-9)
        elif isinstance(ev, MarkPrice):
            self.learn_mark(ev.price, ev.ts * 1e-9)
        elif isinstance(ev, Liquidation):
            self.learn_liquidation(ev.price, ev.notional, ev.side, ev.ts * 1e-9)

    # ---------------------------------------------------------------- readout
    def _window(self, price: float) -> tuple[int, int]:
        r = self.range_pct / 100.0
        grid = self._levels[0][0]
        return grid.bucket_of_one(price * (1.0 - r)), grid.bucket_of_one(price * (1.0 + r))

    def _side_values(self, s: int, k_lo: int, k_hi: int, t: float, out: np.ndarray) -> np.ndarray:
        """Weighted level notional ``sum_i lambda_i * levels_i`` of side ``s`` in buckets
        ``k_lo..k_hi``, added to ``out``."""
        return add_weighted_sum(self._levels[s], self._lam[s].tolist(), k_lo, k_hi, t, out)

    def readout(self, price: float, t: float) -> EstimatedMapReadout:
        """Levels within ``+-range_pct`` of ``price`` at ``t``, totals and nearest dense clusters."""
        k_lo, k_hi = self._window(price)
        n = max(k_hi - k_lo + 1, 0)
        return self._readout(
            price,
            t,
            k_lo,
            k_hi,
            self._side_values(0, k_lo, k_hi, t, np.zeros(n)),
            self._side_values(1, k_lo, k_hi, t, np.zeros(n)),
            self.consumed_long_usd,
            self.consumed_short_usd,
        )

    def _readout(
        self,
        price: float,
        t: float,
        k_lo: int,
        k_hi: int,
        lo: np.ndarray,
        sh: np.ndarray,
        consumed_long_usd: float,
        consumed_short_usd: float,
    ) -> EstimatedMapReadout:
        """The readout of the level notionals ``lo``/``sh`` of buckets ``k_lo..k_hi`` (this map's
        cluster parameters); buckets holding less than one lot are emptied in place."""
        centers = self._centers(k_lo, k_hi)
        self._drop_dust(lo, k_lo, k_hi)
        self._drop_dust(sh, k_lo, k_hi)
        # the centres below the price are the first ``i_below``, those above it from ``i_above`` on
        if price != price:  # NaN: none on either side
            i_below, i_above = 0, centers.size
        else:
            i_below = int(centers.searchsorted(price, side="left"))
            i_above = int(centers.searchsorted(price, side="right"))
        rule = (self.cluster_buckets, self.dense_multiple, self.min_cluster_usd)  # window, multiple, min_usd
        x, c = _side_levels(centers, lo, price, "down")  # nearest first: prices descending
        cluster_down, next_down = _dense_pair(x, c, price, "down", *rule)
        long_levels = _levels_table(x, c, "down")
        x, c = _side_levels(centers, sh, price, "up")
        cluster_up, next_up = _dense_pair(x, c, price, "up", *rule)
        short_levels = _levels_table(x, c, "up")
        return EstimatedMapReadout(
            price=float(price),
            t=float(t),
            k_lo=k_lo,
            prices=centers,
            long_usd=lo,
            short_usd=sh,
            long_total_usd=float(sum1(lo[:i_below])),
            short_total_usd=float(sum1(sh[i_above:])),
            cluster_down=cluster_down,
            cluster_up=cluster_up,
            consumed_long_usd=consumed_long_usd,
            consumed_short_usd=consumed_short_usd,
            next_down=next_down,
            next_up=next_up,
            long_levels=long_levels,
            short_levels=short_levels,
        )

    _centers_cache: tuple[int, int, np.ndarray] | None = None
    _lots_cache: tuple[int, int, float, np.ndarray] | None = None

    lot_qty: float = LOT_QTY
    """Buckets holding less than this quantity (base units) at their centre price are no level."""

    def _centers(self, k_lo: int, k_hi: int) -> np.ndarray:
        """Centre prices of buckets ``k_lo..k_hi``, kept while the window stays (read-only: readouts share it)."""
        cached = self._centers_cache
        if cached is None or cached[0] != k_lo or cached[1] != k_hi:
            centers = self._levels[0][0].center(np.arange(k_lo, k_hi + 1))
            centers.flags.writeable = False
            cached = self._centers_cache = (k_lo, k_hi, centers)
        return cached[2]

    def _drop_dust(self, x: np.ndarray, k_lo: int, k_hi: int) -> None:
        """The lot rule: empty (in place) the buckets of ``x`` (``k_lo..k_hi``) that hold less than
        one lot, ``lot_qty * centre price``; such a bucket holds no position, so it is no level.
        The lots are kept while the window and ``lot_qty`` stay."""
        cached = self._lots_cache
        if cached is None or cached[0] != k_lo or cached[1] != k_hi or cached[2] != self.lot_qty:
            cached = self._lots_cache = (k_lo, k_hi, self.lot_qty, self.lot_qty * self._centers(k_lo, k_hi))
        x[x < cached[3]] = 0.0

    @staticmethod
    def combine(maps: Sequence[EstimatedLiquidationMap], price: float, t: float) -> EstimatedMapReadout:
        """One readout for an asset traded on several venues: the maps' levels summed bucket by bucket.

        The maps must share ``bucket_bps`` and ``range_pct``; the cluster
        parameters of the first map apply. Only the sum is clustered (the maps'
        own readouts are not built).
        """
        if not maps:
            raise ValueError("no maps")
        first = maps[0]
        if any(m.bucket_bps != first.bucket_bps or m.range_pct != first.range_pct for m in maps):
            raise ValueError("maps must share bucket_bps and range_pct")
        k_lo, k_hi = first._window(price)
        rows = np.zeros((2, len(maps), max(k_hi - k_lo + 1, 0)))  # long and short levels per map
        for i, m in enumerate(maps):
            m._side_values(0, k_lo, k_hi, t, rows[0, i])
            m._side_values(1, k_lo, k_hi, t, rows[1, i])
        one = len(maps) == 1  # the sum of one map's arrays is that array
        return first._readout(
            price,
            t,
            k_lo,
            k_hi,
            rows[0, 0] if one else np.add.reduce(rows[0], axis=0),  # np.sum of the maps' arrays, map by map
            rows[1, 0] if one else np.add.reduce(rows[1], axis=0),
            sum(m.consumed_long_usd for m in maps),
            sum(m.consumed_short_usd for m in maps),
        )

    def levels(self, direction: str, price: float, t: float) -> np.ndarray:
        """``(n, 2)`` array of ``(level price, notional)`` a move ``down`` (long levels) or ``up``
        (short levels) would hit: buckets holding at least one lot within the range on that side of ``price``;
        the ``levels`` input of :func:`cascadewatch.detectors.reach.cascade_reach`.
        """
        k_lo, k_hi = self._window(price)
        x = self._side_values(0 if direction == "down" else 1, k_lo, k_hi, t, np.zeros(max(k_hi - k_lo + 1, 0)))
        self._drop_dust(x, k_lo, k_hi)
        return _levels_table(*_side_levels(self._centers(k_lo, k_hi), x, price, direction), direction)

    @property
    def open_interest(self) -> float | None:
        """Last open interest seen (base units)."""
        return self._oi
