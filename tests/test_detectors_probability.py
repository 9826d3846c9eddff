"""Known-answer tests of the cascade probability: reflection principle, realized volatility,
carry, the structural combination and the delayed-label online classifier."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest

from cascadewatch.detectors.evidence import fit_evidence_model
from cascadewatch.detectors.liqmap_estimated import Cluster
from cascadewatch.detectors.probability import (
    CascadeProbability,
    RealizedVolatility,
    carry_probability,
    cascade_features,
    structural_estimate,
    structural_probability,
    touch_probability,
)


def Phi(z: float) -> float:
    return 0.5 * (1.0 + math.erf(z / math.sqrt(2.0)))


def mc_touch(a: float, sigma: float, horizon: float, paths: int, steps: int, seed: int) -> float:
    """Monte Carlo P(max W >= a) for W = sigma * Brownian motion, exact per path: between grid
    points the path is a Brownian bridge, which crosses a from x0, x1 < a with probability
    exp(-2 (a - x0)(a - x1) / (sigma^2 dt))."""
    rng = np.random.default_rng(seed)
    dt = horizon / steps
    x = np.cumsum(rng.normal(0.0, sigma * math.sqrt(dt), size=(paths, steps)), axis=1)
    x = np.concatenate([np.zeros((paths, 1)), x], axis=1)
    hit = (x >= a).any(axis=1)
    x0, x1 = np.minimum(x[:, :-1], a), np.minimum(x[:, 1:], a)
    p_cross = np.exp(-2.0 * (a - x0) * (a - x1) / (sigma**2 * dt))
    p_path = np.where(hit, 1.0, 1.0 - np.prod(1.0 - p_cross, axis=1))
    return float(p_path.mean())


@pytest.mark.parametrize("distance_bps,direction", [(20.0, "up"), (50.0, "down"), (100.0, "up"), (150.0, "down")])
def test_touch_probability_matches_monte_carlo(distance_bps, direction):
    sigma, horizon = 3e-4, 300.0  # about 52 bps over the horizon
    p = touch_probability(distance_bps, sigma, horizon, direction)
    a = math.log1p(distance_bps * 1e-4) if direction == "up" else -math.log1p(-distance_bps * 1e-4)
    assert p == pytest.approx(2 * (1 - Phi(a / (sigma * math.sqrt(horizon)))), rel=1e-12)
    mc = mc_touch(a, sigma, horizon, paths=20_000, steps=50, seed=int(distance_bps))
    se = math.sqrt(max(p * (1 - p), 1e-4) / 20_000)
    assert abs(mc - p) < 4 * se + 1e-3, (mc, p)


def test_touch_probability_edges():
    assert touch_probability(0.0, 1e-4, 300.0) == 1.0
    assert touch_probability(-5.0, 1e-4, 300.0) == 1.0
    assert touch_probability(10_000.0, 1e-4, 300.0, "down") == 0.0
    assert touch_probability(50.0, 0.0, 300.0) == 0.0
    assert touch_probability(math.inf, 1e-4, 300.0) == 0.0
    # monotone in distance and in horizon
    assert touch_probability(30.0, 1e-4, 300.0) > touch_probability(60.0, 1e-4, 300.0)
    assert touch_probability(30.0, 1e-4, 600.0) > touch_probability(30.0, 1e-4, 300.0)
    with pytest.raises(ValueError):
        touch_probability(10.0, 1e-4, 1.0, "left")


def test_carry_and_structural():
    assert carry_probability(0.0, 1e6) == 0.0
    assert carry_probability(1.0, 0.0) == 1.0
    assert carry_probability(3e6, 1e6, rho0=1.0, k=2.0) == pytest.approx(9 / 10)
    assert carry_probability(1e6, 2e6, rho0=0.5, k=1.0) == pytest.approx(0.5)
    p = structural_probability(50.0, 1e-4, 3600.0, 3e6, 1e6)
    assert p == pytest.approx(touch_probability(50.0, 1e-4, 3600.0) * 0.9)


def test_structural_estimate_without_cluster_is_zero_but_reports_reach():
    e = structural_estimate("up", 100.0, None, 1e-4, 300.0, book=[(100.1, 10)], levels=[(100.05, 500.0)], depth_usd=1e3)
    assert e.p == 0.0 and e.cluster is None and e.reach.forced_usd == 0.0
    c = Cluster("up", 100.05, 5.0, 500.0, 100.05, 100.05)
    e = structural_estimate("up", 100.0, c, 1e-4, 300.0, book=[(100.1, 10)], levels=[(100.05, 500.0)], depth_usd=1e3)
    assert e.reach.forced_usd == 500.0 and e.reach.end_price == 100.1
    assert e.p == pytest.approx(e.p_touch * carry_probability(500.0, 1e3))


# ---------------------------------------------------------------- realized volatility


def test_realized_vol_recovers_sigma_of_a_random_walk():
    sigma = 2e-4
    rng = np.random.default_rng(1)
    n = 20_000
    logp = np.cumsum(rng.normal(0, sigma, n))
    # several trades per second; the last one of each second is the second's price
    t = np.repeat(np.arange(n, dtype=float), 3) + np.tile([0.1, 0.5, 0.9], n)
    p = 100 * np.exp(np.repeat(logp, 3) + np.tile([1e-3, -1e-3, 0.0], n))
    rv = RealizedVolatility(half_life_s=5_000.0, sigma0=1e-4)
    rv.learn_many(p, t)
    assert rv.sigma == pytest.approx(sigma, rel=0.05)


def test_realized_vol_batch_equals_one_by_one_and_gaps():
    rng = np.random.default_rng(2)
    t = np.sort(rng.uniform(0, 200, 1000))
    t[100], t[101] = t[101] - 3.0, t[100]  # an event from an older second
    p = 100 * np.exp(np.cumsum(rng.normal(0, 1e-4, 1000)))
    a, b = RealizedVolatility(half_life_s=30.0), RealizedVolatility(half_life_s=30.0)
    for x, s in zip(p, t, strict=True):
        a.learn_one(float(x), float(s))
    for chunk in np.array_split(np.arange(1000), 9):
        b.learn_many(p[chunk], t[chunk])
    assert a.sigma == b.sigma and a.returns == b.returns
    # a 3-second gap: one return, spread over 3 seconds
    rv = RealizedVolatility(half_life_s=1e9, sigma0=0.0)
    for px, s in [(100.0, 0.0), (100.0, 1.0), (103.0, 4.0), (103.0, 5.0)]:
        rv.learn_one(px, s)
    lam = 2.0 ** (-1.0 / 1e9)
    r = math.log(1.03)
    assert rv.sigma == pytest.approx(math.sqrt((1 - lam**3) * r * r / 3), rel=1e-6)
    # a gap longer than max_gap_s restarts the chain
    rv = RealizedVolatility(sigma0=0.0, max_gap_s=10)
    for px, s in [(100.0, 0.0), (100.0, 1.0), (150.0, 100.0), (150.0, 101.0)]:
        rv.learn_one(px, s)
    assert rv.sigma == 0.0


# ---------------------------------------------------------------- online classifier


def test_delayed_labels_wait_for_the_horizon_and_label_by_start():
    cp = CascadeProbability(horizon_s=60, min_labels=10, min_positives=2, blend_labels=10, label_delay_s=0)
    for s in range(200):
        cp.observe(float(s), {"x": 0.0}, structural=0.1)
    assert cp.advance(100.0) == 41  # t = 0..40 have closed horizons
    cp.add_cascade(150.0)
    assert cp.advance(199.0) == 99  # t = 41..139
    assert cp.starts == [150.0]  # still needed by the pending samples
    # labels: start 150 in (t, t + 60] for t in [90, 150)
    assert cp.labels == 140 and cp.positives == 50
    # an explicit watermark holds learning back
    assert cp.advance(10_000.0, final_until=210.0) == 11  # t + 60 <= 210: t = 140..150
    assert cp.positives == 60
    # a start no pending sample can see any more (oldest pending t = 151) is pruned
    assert cp.starts == []


def test_fallback_until_enough_labels_then_blend():
    cp = CascadeProbability(horizon_s=10, min_labels=20, min_positives=3, blend_labels=40, max_weight=0.5)
    x = {"f": 1.0}
    assert cp.predict_one(x, 0.2) == 0.2 and cp.weight == 0.0
    for i in range(19):
        cp.learn_one(x, i % 4 == 0, 0.2)
    assert cp.weight == 0.0 and cp.predict_one(x, 0.2) == 0.2
    cp.learn_one(x, False, 0.2)
    assert cp.labels == 20 and cp.weight == pytest.approx(0.5 * 1 / 40)
    pm = cp.model_probability(x, 0.2)
    assert cp.predict_one(x, 0.2) == pytest.approx((1 - cp.weight) * 0.2 + cp.weight * pm)
    for i in range(100):
        cp.learn_one(x, i % 4 == 0, 0.2)
    assert cp.weight == 0.5
    # no positives at all: stays on the structural estimate
    cp2 = CascadeProbability(min_labels=5, min_positives=1)
    for _ in range(50):
        cp2.learn_one(x, False, 0.3)
    assert cp2.weight == 0.0 and cp2.predict_one(x, 0.3) == 0.3


def test_classifier_learns_and_beats_a_useless_structural_estimate():
    """Progressive validation on a stream where the feature says it all: the model's log loss
    ends well below the constant structural estimate's, and it is calibrated on average."""
    rng = np.random.default_rng(0)
    cp = CascadeProbability(horizon_s=1, min_labels=50, min_positives=5, blend_labels=500, lr=0.05)
    ys, ps = [], []
    for _ in range(4000):
        f = rng.normal()
        p_true = 1 / (1 + math.exp(-(3 * f - 2)))
        y = rng.uniform() < p_true
        ps.append(cp.predict_one({"f": f}, 0.2))
        ys.append(y)
        cp.learn_one({"f": f}, y, 0.2)
    sc = cp.scores()
    assert sc["model_logloss"] < sc["struct_logloss"] - 0.1
    assert sc["model_brier"] < sc["struct_brier"]
    tail_p, tail_y = np.array(ps[2000:]), np.array(ys[2000:], dtype=float)
    assert tail_p.mean() == pytest.approx(tail_y.mean(), abs=0.03)


def test_observe_records_blend_metrics():
    cp = CascadeProbability(horizon_s=5, min_labels=1, min_positives=0, blend_labels=1, label_delay_s=0)
    for s in range(20):
        cp.observe(float(s), {"f": 0.0}, structural=0.3)
    cp.add_cascade(12.0)
    cp.advance(20.0)
    sc = cp.scores()
    assert set(sc) == {"model_logloss", "struct_logloss", "blend_logloss", "model_brier", "struct_brier", "blend_brier"}
    assert sc["blend_logloss"] > 0 and sc["struct_brier"] > 0


def test_cascade_features_are_finite():
    f = cascade_features(
        p_struct=0.0,
        p_touch=1.0,
        p_carry=0.5,
        distance_bps=None,
        cluster_usd=0.0,
        forced_usd=1e6,
        depth_usd=0.0,
        depth_ratio=math.nan,
        branching=math.nan,
        intensity=0.2,
        liq_usd_60s=5e5,
        sigma=1e-4,
        horizon_s=300,
        in_cascade=True,
    )
    assert all(math.isfinite(v) for v in f.values())
    assert (
        f["in_cascade"] == 1.0 and f["depth_ratio"] == 1.0 and f["log_distance_bps"] == pytest.approx(math.log1p(1e4))
    )


def test_fit_recovers_a_known_logistic_model_and_installs_it_frozen():
    """Pre-training by Newton's method: without a cap the fitted model is the generating
    logistic (calibration scale 1, intercept as generated), and it no longer learns online."""
    rng = np.random.default_rng(3)
    n = 50_000
    a, b = rng.normal(2.0, 3.0, n), rng.normal(-1.0, 0.5, n)
    za, zb = (a - a.mean()) / a.std(), (b - b.mean()) / b.std()
    y = rng.uniform(size=n) < 1 / (1 + np.exp(-(1.5 * za - 0.8 * zb - 2.0)))
    cp = CascadeProbability(horizon_s=60, features=("a", "b", "unused"))
    fit = cp.fit([{"a": x, "b": v} for x, v in zip(a, b, strict=True)], y, [0.1] * n, l2=1e-6)
    m = cp.fitted
    weights = dict(zip(m.names, m.weights, strict=True))
    assert weights["a"] == pytest.approx(1.5, abs=0.08) and weights["b"] == pytest.approx(-0.8, abs=0.06)
    assert weights["unused"] == 0.0 and m.scale == pytest.approx(1.0, abs=1e-4)
    assert m.intercept == pytest.approx(-2.0, abs=0.06)
    x = {"a": 5.0, "b": -1.2}
    e = weights["a"] * (5.0 - a.mean()) / a.std() + weights["b"] * (-1.2 - b.mean()) / b.std()
    u = m.intercept + m.scale * e  # c + a * (sum of the families' evidence)
    assert cp.model_probability(x, 0.1) == pytest.approx(1 / (1 + math.exp(-u)), rel=1e-9)
    assert cp.labels == n and cp.positives == int(y.sum()) and cp.weight == 1.0
    assert cp.predict_one(x, 0.1) == cp.model_probability(x, 0.1)
    assert fit["n"] == n and fit["brier"] < fit["base_rate"] * (1 - fit["base_rate"])
    before = cp.model_probability(x, 0.1)
    for _ in range(50):
        cp.learn_one(x, True, 0.1)
    assert cp.model_probability(x, 0.1) == before and cp.labels == n + 50  # frozen, still scored
    with pytest.raises(ValueError):
        cp.fit([], [], [])


def test_family_cap_bounds_one_family_and_drivers_name_the_families():
    """Two families (crowding, liquidity); each one's evidence is capped at 1 log-odds (before
    the calibration scale), so one family alone cannot reach what both together do."""
    rng = np.random.default_rng(5)
    n = 40_000
    crowd, depth = rng.normal(size=n), rng.normal(size=n)
    y = rng.uniform(size=n) < 1 / (1 + np.exp(-(2.0 * crowd - 2.0 * depth - 3.0)))
    X = np.column_stack([crowd, depth])
    cp = CascadeProbability(features=("crowding_300_bps", "depth_ratio"))
    cp.fit_matrix(X, y, ("crowding_300_bps", "depth_ratio"), l2=1e-6, cap=1.0)
    m = cp.fitted
    assert m.families == ("crowding", "liquidity") and m.cap == 1.0
    top = 1 / (1 + math.exp(-(m.intercept + m.scale)))  # one family at its cap, the other average
    both = 1 / (1 + math.exp(-(m.intercept + 2 * m.scale)))
    one = {"crowding_300_bps": 4.0, "depth_ratio": float(depth.mean())}
    assert cp.model_probability(one, 0.0) == pytest.approx(top, rel=1e-9)
    assert cp.model_probability({"crowding_300_bps": 4.0, "depth_ratio": -4.0}, 0.0) == pytest.approx(both, rel=1e-9)
    assert [f for f, _ in cp.drivers({"crowding_300_bps": 1.0, "depth_ratio": -0.3}, 0.0)] == ["crowding", "liquidity"]
    assert cp.drivers({"crowding_300_bps": -2.0, "depth_ratio": 2.0}, 0.0) == []  # nothing raises it


def test_feature_subset_and_a_state_pickled_before_it():
    cp = CascadeProbability(features=("f", "logit_struct"))
    assert cp._x({"f": 2.0, "g": 3.0}, 0.5) == {"f": 2.0, "logit_struct": 0.0}
    assert cp._x({}, 0.5) == {"f": 0.0, "logit_struct": 0.0}
    old = CascadeProbability()
    del old.__dict__["features"]
    old = pickle.loads(pickle.dumps(old))
    assert old.features is None and set(old._x({"f": 1.0}, 0.5)) == {"f", "logit_struct"}


def test_a_weight_against_its_mechanism_is_dropped():
    """Data in which a thicker book goes with more cascades: the fit keeps depth_ratio at 0
    (a thinner book never lowers the risk) and still learns crowding; unsigned, it would not."""
    rng = np.random.default_rng(11)
    n = 30_000
    crowd, depth = rng.normal(size=n), rng.normal(size=n)
    y = rng.uniform(size=n) < 1 / (1 + np.exp(-(1.5 * crowd + 1.0 * depth - 2.0)))
    names = ("crowding_300_bps", "depth_ratio")
    signed, _ = fit_evidence_model(np.column_stack([crowd, depth]), y, names, l2=1e-6)
    free, _ = fit_evidence_model(np.column_stack([crowd, depth]), y, names, l2=1e-6, signed=False)
    assert signed.weights[1] == 0.0 and signed.weights[0] == pytest.approx(1.4, abs=0.15)
    assert free.weights[1] == pytest.approx(1.0, abs=0.1)


def test_calibration_on_natural_rate_rows_corrects_an_event_enriched_fit():
    """Case-control: the training rows keep every positive but a tenth of the negatives, so their
    base rate is about ten times the natural one. The weights come from them; the calibration
    rows (the natural rate) set the level: the calibrated model's mean probability on them is
    their base rate (the score equation of the free intercept), and its intercept sits about
    ln 10 below the enriched fit's while the slope is kept."""
    rng = np.random.default_rng(11)
    n = 200_000
    f = rng.normal(size=n)
    y = rng.uniform(size=n) < 1 / (1 + np.exp(-(1.5 * f - 5.0)))
    enriched = y | (rng.uniform(size=n) < 0.1)
    X = f[:, None]
    natural = CascadeProbability(features=("crowding_300_bps",))
    natural.fit_matrix(X[enriched], y[enriched], ("crowding_300_bps",), l2=1e-6, calibration=(X, y))
    plain = CascadeProbability(features=("crowding_300_bps",))
    plain.fit_matrix(X[enriched], y[enriched], ("crowding_300_bps",), l2=1e-6)
    m, p = natural.fitted, plain.fitted
    assert m is not None and p is not None and m.weights == p.weights
    mean_p = np.mean([m.predict({"crowding_300_bps": v}) for v in f])
    assert mean_p == pytest.approx(y.mean(), rel=1e-4)
    assert p.intercept - m.intercept == pytest.approx(math.log(10.0), abs=0.15)
    assert m.scale == pytest.approx(p.scale, abs=0.05)
    with pytest.raises(ValueError, match="calibration"):
        natural.fit_matrix(X, y, ("crowding_300_bps",), calibration=(X[:, :0], y))
