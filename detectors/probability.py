"""Probability of a cascade per direction within a horizon: structural estimate and online classifier.

Structural estimate. The log-price is taken as a driftless Brownian motion
with volatility ``sigma`` (per sqrt(second)). By the reflection principle the
chance that it touches a level at log-distance ``a > 0`` within ``T`` seconds is

    P_touch = P(max_{t<=T} W_t >= a) = 2 * (1 - Phi(a / (sigma sqrt T))) = erfc(a / (sigma sqrt(2 T)))

with ``a = -ln(1 - d/1e4)`` for a level ``d`` bps below the price and
``a = ln(1 + d/1e4)`` above it. ``sigma`` comes from :class:`RealizedVolatility`,
an EWMA of squared one-second log returns.

Given a touch of the nearest dense cluster, the cascade carries on when the
forced flow it triggers overwhelms the book in front. With ``F`` the forced
notional of the reach walk started at the cluster (:mod:`cascadewatch.detectors.reach`)
and ``D`` the resting notional in front (e.g. within 100 bps), ``rho = F / D``:

    P_carry = rho^k / (rho^k + rho0^k)          (a logistic in ln rho: 1/2 at rho = rho0)

and the structural probability is ``P_struct = P_touch * P_carry``.

Online classifier. :class:`CascadeProbability` keeps a river pipeline
(``StandardScaler`` then ``LogisticRegression``, trained on log loss, a proper
scoring rule, so its outputs are calibrated on the stream it learns from) on the
detectors' features plus ``logit(P_struct)``; river is imported when that pipeline is first
needed, never for a pre-trained (frozen) classifier, which predicts in plain Python. Labels are delayed: each
second's feature vector waits in a deque until its horizon has closed and the
label source is final for it, then it is learned with label "a cascade
started in this direction within ``(t, t + horizon]``" (cascade starts are fed
in by the caller, e.g. from :class:`cascadewatch.detectors.labels.CascadeLabeler`). Before
learning, the model predicts the sample (progressive validation) and log loss
and Brier score are tracked for the model, the structural estimate and the
blend. Until ``min_labels`` labels with ``min_positives`` of each class exist
the output is the structural estimate; then the blend weight of the model ramps
linearly to ``max_weight`` over ``blend_labels`` more labels:

    p = (1 - w) P_struct + w P_model
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from cascadewatch.detectors.evidence import EvidenceModel, fit_evidence_model
from cascadewatch.detectors.liqmap_estimated import Cluster
from cascadewatch.detectors.reach import Reach, cascade_reach

__all__ = [
    "CascadeProbability",
    "DEFAULT_FEATURES",
    "RealizedVolatility",
    "StructuralEstimate",
    "carry_probability",
    "cascade_features",
    "feature_names",
    "structural_estimate",
    "structural_probability",
    "touch_probability",
]

_EPS = 1e-6


def touch_probability(distance_bps: float, sigma: float, horizon_s: float, direction: str = "down") -> float:
    """Chance a driftless log-price with volatility ``sigma`` (per sqrt s) touches a level within ``horizon_s``.

    ``distance_bps``: distance of the level from the price in bps, below it for
    ``down``, above for ``up``. ``erfc(a / (sigma sqrt(2 T)))`` (see the module docstring).

    >>> round(touch_probability(100.0, 1e-3, 1.0, "up"), 4)     # a = ln 1.01 ~ 10 sigma
    0.0
    >>> round(touch_probability(0.0, 1e-4, 300.0), 4)
    1.0
    >>> round(touch_probability(50.0, 1e-4, 300.0, "down"), 4), round(touch_probability(50.0, 1e-4, 3600.0), 4)
    (0.0038, 0.4035)
    """
    if not math.isfinite(distance_bps):
        return 0.0
    if distance_bps <= 0:
        return 1.0
    if direction == "down":
        if distance_bps >= 1e4:
            return 0.0
        a = -math.log1p(-distance_bps * 1e-4)
    elif direction == "up":
        a = math.log1p(distance_bps * 1e-4)
    else:
        raise ValueError("direction must be 'down' or 'up'")
    s = sigma * math.sqrt(horizon_s)
    if not s > 0:
        return 0.0
    return math.erfc(a / (s * math.sqrt(2.0)))


def carry_probability(forced_usd: float, depth_usd: float, rho0: float = 1.0, k: float = 2.0) -> float:
    """``rho^k / (rho^k + rho0^k)`` with ``rho = forced_usd / depth_usd`` (quote currency both).

    >>> carry_probability(1e6, 1e6), carry_probability(0.0, 1e6), carry_probability(2e6, 1e6)
    (0.5, 0.0, 0.8)
    """
    if not forced_usd > 0:
        return 0.0
    if not depth_usd > 0:
        return 1.0
    rho = forced_usd / depth_usd
    return 1.0 / (1.0 + (rho0 / rho) ** k)


def structural_probability(
    distance_bps: float,
    sigma: float,
    horizon_s: float,
    forced_usd: float,
    depth_usd: float,
    direction: str = "down",
    rho0: float = 1.0,
    k: float = 2.0,
) -> float:
    """``P_touch(distance_bps) * P_carry(forced_usd / depth_usd)``."""
    return touch_probability(distance_bps, sigma, horizon_s, direction) * carry_probability(
        forced_usd, depth_usd, rho0, k
    )


@dataclass(frozen=True, slots=True)
class StructuralEstimate:
    """Structural probability of one direction and its parts.

    ``p_touch``: chance to touch the cluster within the horizon; ``p_carry``:
    chance the reach carries on from there; ``p = p_touch * p_carry``;
    ``reach``: the walk started at the cluster (at the price when there is no
    cluster); ``cluster``: the nearest dense cluster or ``None`` (then ``p = 0``).
    """

    direction: str
    p_touch: float
    p_carry: float
    p: float
    reach: Reach
    cluster: Cluster | None


def structural_estimate(  # noqa: PLR0913 - the formula's inputs (market state) and its three constants
    direction: str,
    price: float,
    cluster: Cluster | None,
    sigma: float,
    horizon_s: float,
    book,
    levels,
    depth_usd: float,
    rho0: float = 1.0,
    k: float = 2.0,
    max_iter: int = 100,
) -> StructuralEstimate:
    """Touch the nearest dense ``cluster``, walk the reach from it, combine.

    ``book``: the side in front (bids for ``down``, asks for ``up``) as ``(price, qty)``;
    ``levels``: liquidation levels ``(price, notional)`` of that direction (e.g.
    :meth:`cascadewatch.detectors.liqmap_estimated.EstimatedMapReadout.levels`); ``depth_usd``:
    resting notional in front (e.g. within 100 bps), the ``D`` of ``rho = F / D``.

    >>> from cascadewatch.detectors.liqmap_estimated import Cluster
    >>> c = Cluster("down", 99.0, 100.0, 5e5, 99.0, 99.0)
    >>> e = structural_estimate("down", 100.0, c, 2e-4, 3600.0,
    ...                         book=[(99.5, 2000.0), (98.0, 5000.0)], levels=[(99.0, 5e5)], depth_usd=2e5)
    >>> round(e.p_touch, 4), round(e.p_carry, 4), e.reach.forced_usd, e.reach.end_price
    (0.4023, 0.8621, 500000.0, 98.0)
    """
    start = cluster.price if cluster is not None else None
    reach = cascade_reach(price, book, levels, direction, start_price=start, max_iter=max_iter)
    if cluster is None:
        return StructuralEstimate(direction, 0.0, 0.0, 0.0, reach, None)
    pt = touch_probability(cluster.distance_bps, sigma, horizon_s, direction)
    pc = carry_probability(reach.forced_usd, depth_usd, rho0, k)
    return StructuralEstimate(direction, pt, pc, pt * pc, reach, cluster)


class RealizedVolatility:
    """EWMA realized volatility of one-second log returns, per sqrt(second).

    The price of second ``s`` is the last price seen with ``floor(t) == s``. When
    second ``s`` closes after the previous closed second ``s'`` (``g = s - s'``
    seconds earlier), with ``r = ln(P_s / P_s')`` and ``lam = 2^(-1/half_life_s)``:

        v <- lam^g v + (1 - lam^g) r^2 / g,       sigma = sqrt(v)

    starting from ``v = sigma0^2``. Gaps longer than ``max_gap_s`` restart the
    return chain (no return across them).

    Parameters
    ----------
    half_life_s
        Half-life of the EWMA, seconds.
    sigma0
        Prior volatility per sqrt(s) (1e-4 ~ 56 % a year).
    max_gap_s
        Longest gap bridged by one return, seconds.

    Examples
    --------
    >>> rv = RealizedVolatility(half_life_s=1e9, sigma0=0.0)
    >>> rv.learn_many([100.0, 101.0, 100.0], [0.5, 1.5, 2.5])   # closes seconds 0 and 1
    >>> unit = abs(math.log(1.01)) * math.sqrt(math.log(2) / 1e9)   # |r| sqrt(1 - lam)
    >>> round(rv.sigma / unit, 3)                                   # one return
    1.0
    >>> rv.learn_one(100.0, 3.0)                                    # closes second 2
    >>> round(rv.sigma / unit, 3)                                   # two returns of size |r|
    1.414
    """

    def __init__(self, half_life_s: float = 600.0, sigma0: float = 1e-4, max_gap_s: int = 300) -> None:
        self.half_life_s = float(half_life_s)
        self.lam = 2.0 ** (-1.0 / self.half_life_s)
        self.max_gap_s = int(max_gap_s)
        self._v = float(sigma0) ** 2
        self._cur_sec: int | None = None
        self._cur_price = 0.0
        self._prev_sec: int | None = None
        self._prev_price = 0.0
        self.returns = 0

    def _close_second(self) -> None:
        assert self._cur_sec is not None  # called only once a second is open
        if self._prev_sec is not None:
            g = self._cur_sec - self._prev_sec
            if g <= self.max_gap_s:
                r = math.log(self._cur_price / self._prev_price)
                lg = self.lam**g
                self._v = lg * self._v + (1.0 - lg) * r * r / g
                self.returns += 1
        self._prev_sec, self._prev_price = self._cur_sec, self._cur_price

    def _second(self, sec: int, price: float) -> None:
        if self._cur_sec is None:
            self._cur_sec, self._cur_price = sec, price
        elif sec > self._cur_sec:
            self._close_second()
            self._cur_sec, self._cur_price = sec, price
        elif sec == self._cur_sec:
            self._cur_price = price

    def learn_one(self, price: float, t: float) -> None:
        """Observe a price at time ``t`` (s); earlier seconds than the current one are ignored."""
        if price > 0 and math.isfinite(price):
            self._second(math.floor(t), float(price))

    def learn_many(self, prices, ts) -> None:
        """Observe a batch of prices with times ``ts`` (s); same result as one by one."""
        p = np.asarray(prices, dtype=np.float64)
        tt = np.asarray(ts, dtype=np.float64)
        ok = np.isfinite(p) & (p > 0) & np.isfinite(tt)
        p, tt = p[ok], tt[ok]
        if p.size == 0:
            return
        sec = np.floor(tt).astype(np.int64)
        run = np.maximum.accumulate(sec)
        if self._cur_sec is not None:
            run = np.maximum(run, self._cur_sec)
        keep = sec == run  # events of an earlier second than already seen are ignored
        sec, p = sec[keep], p[keep]
        if sec.size == 0:
            return
        last = np.r_[sec[1:] != sec[:-1], True]  # the last price of each second
        for s, q in zip(sec[last].tolist(), p[last].tolist(), strict=True):
            self._second(s, q)

    @property
    def sigma(self) -> float:
        """Volatility of the log-price per sqrt(second)."""
        return math.sqrt(self._v)


def _logit(p: float) -> float:
    p = min(max(p, _EPS), 1.0 - _EPS)
    return math.log(p / (1.0 - p))


def cascade_features(  # noqa: PLR0913 - keyword-only, one keyword per named feature input of the model
    *,
    p_struct: float,
    p_touch: float,
    p_carry: float,
    distance_bps: float | None,
    cluster_usd: float,
    forced_usd: float,
    depth_usd: float,
    depth_ratio: float | None,
    branching: float,
    intensity: float,
    liq_usd_60s: float,
    sigma: float,
    horizon_s: float,
    in_cascade: bool,
    direction: str = "down",
    crowding: Mapping[str, float] | None = None,
    precursors: Mapping[str, float] | None = None,
    vol_ratio: float = 1.0,
) -> dict[str, float]:
    """The feature dict of one direction for :class:`CascadeProbability` (finite floats only).

    Units: bps, quote currency, 1/s; ``depth_ratio`` is the thinning ratio in
    front (1 when unknown); ``distance_bps`` ``None`` when there is no dense cluster
    (then 1e4 bps). Besides the raw readouts (``log_*_usd`` depend on the market's size),
    scale-free ones that carry from one asset to another:

    - ``log_z_cluster`` = ``ln(1 + a / (sigma sqrt(horizon_s)))``: the log-distance ``a`` to
      the cluster (as in :func:`touch_probability`) in standard deviations of the move over
      the horizon;
    - ``log_cluster_depth`` = ``ln(1 + cluster_usd / D)``, ``log_reach_depth`` =
      ``ln(1 + forced_usd / D)``, ``log_liq_depth`` = ``ln(1 + 100 liq_usd_60s / D)``, with
      ``D = max(depth_usd, 1)`` the depth in front: cluster, reach and the last minute's
      liquidations against the book that has to absorb them;
    - ``log_vol_ratio`` = ``ln(vol_ratio)``, the fast over the slow realized volatility (0 when
      unknown): volatility picking up against its own recent norm;
    - ``crowding``: passed through (e.g. :meth:`cascadewatch.detectors.crowding.CrowdingReadout.features`);
    - ``precursors``: passed through (e.g. :meth:`cascadewatch.detectors.precursors.PrecursorReadout.features`:
      the liquidation trickle and the drift toward the levels).

    >>> f = cascade_features(p_struct=0.0, p_touch=0.0, p_carry=0.5, distance_bps=100.0, cluster_usd=2e6,
    ...                      forced_usd=4e6, depth_usd=1e6, depth_ratio=0.5, branching=0.2, intensity=0.1,
    ...                      liq_usd_60s=0.0, sigma=1e-4, horizon_s=100.0, in_cascade=False, direction="up",
    ...                      crowding={"crowding_300_bps": 12.5})
    >>> round(f["log_z_cluster"], 4), round(f["log_cluster_depth"], 4), f["crowding_300_bps"]   # a = ln 1.01: 9.95 sd
    (2.3934, 1.0986, 12.5)
    """
    d = 1e4 if distance_bps is None or not math.isfinite(distance_bps) else max(distance_bps, 0.0)
    dr = 1.0 if depth_ratio is None or not math.isfinite(depth_ratio) else depth_ratio
    if direction == "down":
        a = -math.log1p(-min(d, 9999.0) * 1e-4)
    elif direction == "up":
        a = math.log1p(d * 1e-4)
    else:
        raise ValueError("direction must be 'down' or 'up'")
    spread = sigma * math.sqrt(horizon_s) if math.isfinite(sigma) and sigma > 0 else 0.0
    z = a / spread if spread > 0 else 1e4
    floor_depth = max(depth_usd, 1.0) if math.isfinite(depth_usd) else 1.0
    out = {
        "logit_struct": _logit(p_struct),
        "logit_touch": _logit(p_touch),
        "logit_carry": _logit(p_carry),
        "log_distance_bps": math.log1p(d),
        "log_cluster_usd": math.log1p(max(cluster_usd, 0.0)),
        "log_forced_usd": math.log1p(max(forced_usd, 0.0)),
        "log_depth_usd": math.log1p(max(depth_usd, 0.0)),
        "depth_ratio": min(dr, 10.0),
        "branching": branching if math.isfinite(branching) else 0.0,
        "log_intensity": math.log1p(max(intensity, 0.0)),
        "log_liq_usd_60s": math.log1p(max(liq_usd_60s, 0.0)),
        "vol_bps": sigma * math.sqrt(horizon_s) * 1e4 if math.isfinite(sigma) else 0.0,
        "in_cascade": 1.0 if in_cascade else 0.0,
        "log_z_cluster": math.log1p(min(z, 1e4)),
        "log_cluster_depth": math.log1p(max(cluster_usd, 0.0) / floor_depth),
        "log_reach_depth": math.log1p(max(forced_usd, 0.0) / floor_depth),
        "log_liq_depth": math.log1p(100.0 * max(liq_usd_60s, 0.0) / floor_depth),
        "log_vol_ratio": math.log(min(max(vol_ratio, 1e-3), 1e3)) if math.isfinite(vol_ratio) else 0.0,
    }
    for name, value in {**(crowding or {}), **(precursors or {})}.items():
        out[name] = float(value) if math.isfinite(value) else 0.0
    return out


def feature_names(
    crowding_windows_s: Sequence[int] = (60, 300, 900), precursor_windows_s: Sequence[int] = (60, 300)
) -> frozenset[str]:
    """Every feature name :func:`cascade_features` gives with crowding windows ``crowding_windows_s``
    and precursor windows ``precursor_windows_s`` (what a model file may use).

    >>> sorted(n for n in feature_names((300,), (60,)) if n.startswith(("oi_", "trickle_", "drift_")))
    ['drift_60_z', 'oi_growth_300_pct', 'trickle_60']
    """
    base = cascade_features(
        p_struct=0.0,
        p_touch=0.0,
        p_carry=0.0,
        distance_bps=None,
        cluster_usd=0.0,
        forced_usd=0.0,
        depth_usd=0.0,
        depth_ratio=None,
        branching=0.0,
        intensity=0.0,
        liq_usd_60s=0.0,
        sigma=0.0,
        horizon_s=1.0,
        in_cascade=False,
    )
    crowd = {
        f"{p}_{w}{u}"
        for w in crowding_windows_s
        for p, u in (("oi_growth", "_pct"), ("imbalance", ""), ("crowding", "_bps"))
    }
    precursor = {name for w in precursor_windows_s for name in (f"trickle_{w}", f"drift_{w}_z")}
    return frozenset(base) | frozenset(crowd) | frozenset(precursor)


DEFAULT_FEATURES: tuple[str, ...] = (
    "oi_growth_300_pct",
    "imbalance_300",
    "crowding_300_bps",
    "crowding_900_bps",
    "depth_ratio",
    "log_z_cluster",
    "log_cluster_depth",
    "log_reach_depth",
    "logit_struct",
    "log_liq_depth",
    "in_cascade",
    "trickle_60",
    "trickle_300",
    "log_vol_ratio",
    "drift_60_z",
    "drift_300_z",
)
"""The classifier's default features, few and scale-free (percent, bps, ratios, logs of ratios,
counts against their norm, moves in standard deviations) so a model trained on one market carries
to another, one or more per mechanism (:data:`cascadewatch.detectors.evidence.FAMILIES`): crowding
(from :meth:`cascadewatch.detectors.crowding.CrowdingReadout.features`, windows 300 and 900 s),
levels (distance to the nearest dense cluster in standard deviations of the move, cluster and
reach against the depth in front, the structural estimate), liquidity (depth thinning),
liquidations (the last minute's against the depth, a cascade in progress, the trickle of
liquidation orders over 60 and 300 s against their norm from
:mod:`cascadewatch.detectors.precursors`), volatility (fast over slow) and momentum (the drift
toward the levels over 60 and 300 s).
The Hawkes branching ratio is left out: it carries no information at either end."""


@dataclass(slots=True)
class _Pending:
    t: float
    x: dict
    p_struct: float
    p_out: float


_CLAMP = 1e-15


@dataclass(slots=True)
class _RunningLoss:
    """Running mean of a per-sample loss of probability forecasts: ``kind`` ``"logloss"`` or ``"brier"``.

    Per sample with label ``y`` and forecast ``p``: log loss ``-ln p`` (``y``) or ``-ln(1 - p)``
    (not ``y``) with ``p`` clamped to ``[1e-15, 1 - 1e-15]``; Brier ``(y - p)^2``. The mean is
    updated as ``n <- n + 1``, ``mean <- mean + (1 / n) (loss - mean)``: river's ``LogLoss``
    and ``MSE`` in the same floating-point operations (the same scores to the bit), without
    importing river.

    >>> m = _RunningLoss("logloss")     # river's LogLoss example
    >>> for y, p in ((True, 0.9), (False, 0.1), (False, 0.2), (True, 0.65)):
    ...     m.update(y, p)
    >>> round(m.get(), 6)
    0.216162
    """

    kind: str
    n: float = 0.0
    mean: float = 0.0

    def update(self, y: bool, p: float) -> None:
        """Add the loss of forecast ``p`` for label ``y``."""
        if self.kind == "logloss":
            q = max(min(p, 1 - _CLAMP), _CLAMP)
            loss = -math.log(q) if y else -math.log(1 - q)
        else:
            loss = ((1.0 if y else 0.0) - p) ** 2
        self.n += 1.0
        self.mean += (1.0 / self.n) * (loss - self.mean)

    def get(self) -> float:
        """The mean loss so far (0 before any sample)."""
        return self.mean


def _online_pipeline(lr: float, l2: float) -> Any:
    """river's ``StandardScaler`` then ``LogisticRegression`` (SGD step ``lr``, penalty ``l2``)."""
    from river import compose, linear_model, optim, preprocessing  # river (and scipy) only for online learning

    return compose.Pipeline(
        preprocessing.StandardScaler(),
        linear_model.LogisticRegression(optimizer=optim.SGD(lr), l2=l2),
    )


class CascadeProbability:
    """Online calibrated probability of a cascade in one direction within ``horizon_s``.

    Parameters
    ----------
    horizon_s
        Prediction horizon, seconds (default 300).
    min_labels
        Labels needed before the model is used at all.
    min_positives
        ... and at least this many labels of each class.
    blend_labels
        Labels over which the model weight ramps from 0 to ``max_weight``.
    max_weight
        Final weight of the model in the blend.
    label_delay_s
        Extra wait after a sample's horizon closes before its label is taken as
        final, when :meth:`advance` gets no explicit ``final_until``. The default
        covers the default label definition (60 s window + 60 s merge gap) with
        slack, but a long cascade is reported only when it closes: for exact
        labels pass ``final_until`` (the earliest time a not-yet-reported
        cascade could still start, e.g. an open episode's window start).
    lr, l2
        SGD learning rate and L2 penalty of the logistic regression.
    max_pending
        Cap on waiting samples (oldest dropped beyond it).
    features
        Names of the features the model uses (``logit_struct`` included or not), in
        this order; a missing one counts as 0. ``None``: every key it is given.

    Time arguments ``t`` are seconds since the epoch as floats.

    Pre-training: :meth:`fit` fits a frozen :class:`cascadewatch.detectors.evidence.EvidenceModel`
    on a batch of labelled samples (e.g. replayed recordings, ``cascadewatch train``); from then
    on it gives the probability (weight :attr:`max_weight`) and nothing is learned online.

    Examples
    --------
    >>> cp = CascadeProbability(horizon_s=10, min_labels=4, min_positives=1, blend_labels=1, label_delay_s=0)
    >>> cp.observe(0.0, {"x": 0.0}, structural=0.2)      # no labels yet: structural
    0.2
    >>> for s in range(1, 30):
    ...     _ = cp.observe(float(s), {"x": float(s % 2)}, structural=0.2)
    >>> cp.add_cascade(25.0)                              # a cascade started at t = 25
    >>> cp.advance(30.0)                                  # horizons of t <= 20 closed
    21
    >>> cp.labels, cp.positives                           # t = 15..20 saw the start in (t, t + 10]
    (21, 6)
    >>> 0.0 < cp.predict_one({"x": 1.0}, structural=0.2) < 1.0
    True
    """

    def __init__(  # noqa: PLR0913 - river-style estimator: each hyperparameter is a constructor keyword with a default
        self,
        horizon_s: float = 300.0,
        min_labels: int = 50,
        min_positives: int = 5,
        blend_labels: int = 3600,
        max_weight: float = 1.0,
        label_delay_s: float = 180.0,
        lr: float = 0.01,
        l2: float = 1e-4,
        max_pending: int = 100_000,
        features: Sequence[str] | None = None,
    ) -> None:
        self.horizon_s = float(horizon_s)
        self.features: tuple[str, ...] | None = None if features is None else tuple(features)
        self.lr = float(lr)
        self.l2 = float(l2)
        self.min_labels = int(min_labels)
        self.min_positives = int(min_positives)
        self.blend_labels = max(int(blend_labels), 1)
        self.max_weight = float(max_weight)
        self.label_delay_s = float(label_delay_s)
        self._online: Any = None
        self.fitted: EvidenceModel | None = None
        """The pre-trained model (:meth:`fit`), frozen; ``None``: the online river pipeline."""
        self.pending: deque[_Pending] = deque(maxlen=max_pending)
        self.starts: list[float] = []
        self.labels = 0
        self.positives = 0
        self.metrics = {
            name: _RunningLoss(name.rsplit("_", 1)[1])
            for name in (
                "model_logloss",
                "struct_logloss",
                "blend_logloss",
                "model_brier",
                "struct_brier",
                "blend_brier",
            )
        }

    def settings(self) -> dict[str, Any]:
        """The constructor keywords that make a classifier with these settings (no learned state)."""
        return {
            "horizon_s": self.horizon_s,
            "min_labels": self.min_labels,
            "min_positives": self.min_positives,
            "blend_labels": self.blend_labels,
            "max_weight": self.max_weight,
            "label_delay_s": self.label_delay_s,
            "lr": self.lr,
            "l2": self.l2,
            "max_pending": self.pending.maxlen,
            "features": None if self.features is None else list(self.features),
        }

    @property
    def model(self) -> Any:
        """The online river pipeline (``StandardScaler`` then ``LogisticRegression``), made (and river
        imported) at first use: a fitted classifier never uses it."""
        if self._online is None:
            self._online = _online_pipeline(self.lr, self.l2)
        return self._online

    # ---------------------------------------------------------------- predict
    @property
    def weight(self) -> float:
        """Current weight of the model in the blend."""
        if self.fitted is not None:
            return self.max_weight
        neg = self.labels - self.positives
        if self.labels < self.min_labels or self.positives < self.min_positives or neg < self.min_positives:
            return 0.0
        ramp = (self.labels - self.min_labels + 1) / self.blend_labels
        return self.max_weight * min(ramp, 1.0)

    def __setstate__(self, state: dict) -> None:
        """Unpickle; a state from before ``features`` (or ``fitted``) existed uses every feature
        (and learns online); one from before the online pipeline was made lazily holds it as ``model``."""
        state.setdefault("features", None)
        state.setdefault("fitted", None)
        if "model" in state:
            state["_online"] = state.pop("model")
        self.__dict__.update(state)

    def _x(self, x: dict, structural: float) -> dict:
        full = {**x, "logit_struct": _logit(structural)}
        if self.features is None:
            return full
        return {name: full.get(name, 0.0) for name in self.features}

    def model_probability(self, x: dict, structural: float) -> float:
        """The classifier alone (0.5 before any learning): the fitted model when there is one."""
        if self.fitted is not None:
            return self.fitted.predict(self._x(x, structural))
        return float(self.model.predict_proba_one(self._x(x, structural)).get(True, 0.0))

    def predict_one(self, x: dict, structural: float) -> float:
        """Blended probability for features ``x`` and structural estimate ``structural``."""
        w = self.weight
        if w <= 0.0:
            return float(structural)
        return (1.0 - w) * float(structural) + w * self.model_probability(x, structural)

    # ------------------------------------------------------------------ learn
    def observe(self, t: float, x: dict, structural: float) -> float:
        """Predict for second ``t``, queue the sample for its delayed label, return the probability."""
        p = self.predict_one(x, structural)
        self.pending.append(_Pending(float(t), dict(x), float(structural), p))
        return p

    def add_cascade(self, start_t: float) -> None:
        """A cascade of this direction started at ``start_t`` (s)."""
        bisect.insort(self.starts, float(start_t))

    def _label(self, t: float) -> bool:
        i = bisect.bisect_right(self.starts, t)
        return i < len(self.starts) and self.starts[i] <= t + self.horizon_s

    def learn_one(self, x: dict, y: bool, structural: float) -> None:
        """Learn one labelled sample directly (offline pre-training), with progressive metrics."""
        self._learn(x, bool(y), float(structural), None)

    def _learn(self, x: dict, y: bool, structural: float, p_out: float | None) -> None:
        xs = self._x(x, structural)
        pm = self.model_probability(x, structural)
        self.metrics["model_logloss"].update(y, pm)
        self.metrics["struct_logloss"].update(y, structural)
        self.metrics["model_brier"].update(y, pm)
        self.metrics["struct_brier"].update(y, structural)
        if p_out is not None:
            self.metrics["blend_logloss"].update(y, p_out)
            self.metrics["blend_brier"].update(y, p_out)
        if self.fitted is None:
            self.model.learn_one(xs, y)
        self.labels += 1
        self.positives += int(y)

    def fit(
        self,
        xs: Sequence[dict],
        ys: Sequence[bool],
        structural: Sequence[float],
        l2: float = 1e-3,
        cap: float = math.inf,
    ) -> dict[str, float]:
        """Fit the model on a batch of labelled samples and install it (pre-training).

        The features (:attr:`features`, or every key of the samples plus ``logit_struct``) are
        fitted by :func:`cascadewatch.detectors.evidence.fit_evidence_model` (standardised,
        L2-penalised logistic regression with penalty ``l2``, each feature family's evidence
        capped at ``cap`` log-odds, then recalibrated). The fitted model is frozen: it predicts
        from then on without learning online (its outputs are what was evaluated, and the model
        version names them); progressive scores are still kept. The labels count toward
        :attr:`labels` and :attr:`positives`. Returns the in-sample ``logloss``, ``brier``,
        ``base_rate``, ``iterations`` and ``n``.

        >>> rng = np.random.default_rng(0)
        >>> f = rng.normal(size=4000)
        >>> y = rng.uniform(size=4000) < 1 / (1 + np.exp(-(2 * f - 1)))
        >>> cp = CascadeProbability(features=("f",))
        >>> fit = cp.fit([{"f": v} for v in f], y, [0.0] * 4000)
        >>> round(cp.model_probability({"f": 0.5}, 0.0), 1), cp.labels, cp.weight    # true: 1 / (1 + e^0) = 0.5
        (0.5, 4000, 1.0)
        """
        if not (len(xs) == len(ys) == len(structural)) or not len(xs):
            raise ValueError("xs, ys and structural must have the same, non-zero length")
        rows = [self._x(x, float(p)) for x, p in zip(xs, structural, strict=True)]
        names = list(self.features) if self.features is not None else sorted({k for r in rows for k in r})
        X = np.array([[r.get(k, 0.0) for k in names] for r in rows], dtype=np.float64)
        y = np.array([bool(v) for v in ys])
        return self.fit_matrix(X, y, names, l2=l2, cap=cap)

    def fit_matrix(
        self,
        X: np.ndarray,
        y: np.ndarray,
        names: Sequence[str],
        l2: float = 1e-3,
        cap: float = math.inf,
        calibration: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> dict[str, float]:
        """:meth:`fit` on a matrix ``X`` whose columns are the features ``names`` (any order);
        ``calibration``: rows and labels the calibration is fitted on instead of ``X``, ``y``
        (:func:`cascadewatch.detectors.evidence.fit_evidence_model`)."""
        fitted, stats = fit_evidence_model(X, y, names, l2=l2, cap=cap, calibration=calibration)
        self.fitted = fitted
        self.features = tuple(names)
        self.labels += int(stats["n"])
        self.positives += int(np.sum(y))
        return stats

    def drivers(self, x: dict, structural: float, n: int = 3) -> list[tuple[str, float]]:
        """The feature families that raise the fitted model's probability most, ``(family, log-odds)``
        (:meth:`cascadewatch.detectors.evidence.EvidenceModel.drivers`); empty without a fitted model."""
        if self.fitted is None:
            return []
        return self.fitted.drivers(self._x(x, structural), n=n)

    def advance(self, t: float, final_until: float | None = None) -> int:
        """Learn the samples whose label is final; returns how many were learned.

        A sample at ``t_i`` is learned once ``t_i + horizon_s <= final_until``
        (default ``t - label_delay_s``): the caller passes the time up to which
        every cascade start has been reported via :meth:`add_cascade`.
        """
        until = t - self.label_delay_s if final_until is None else final_until
        n = 0
        while self.pending and self.pending[0].t + self.horizon_s <= until:
            s = self.pending.popleft()
            self._learn(s.x, self._label(s.t), s.p_struct, s.p_out)
            n += 1
        if n:
            keep_from = self.pending[0].t if self.pending else until - self.horizon_s
            i = bisect.bisect_right(self.starts, keep_from)
            if i:
                del self.starts[:i]
        return n

    def scores(self) -> dict[str, float]:
        """Progressive-validation scores (log loss and Brier) of model, structural estimate and blend."""
        return {k: float(m.get()) for k, m in self.metrics.items()}
