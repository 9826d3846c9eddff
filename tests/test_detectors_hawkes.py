"""Known-answer tests of the Hawkes detector: a simulated stream recovers its parameters."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest

from cascadewatch.detectors.hawkes import HawkesEstimator, simulate_hawkes


@pytest.mark.parametrize(
    "mu,n,beta,horizon",
    [(0.5, 0.6, 1.0, 20_000.0), (0.2, 0.8, 0.5, 20_000.0), (0.05, 0.5, 0.1, 40_000.0), (0.5, 0.0, 1.0, 10_000.0)],
)
@pytest.mark.parametrize("seed", [0, 1])
def test_recovers_branching_ratio(mu, n, beta, horizon, seed):
    ts = simulate_hawkes(mu=mu, n=n, beta=beta, horizon_s=horizon, seed=seed)
    h = HawkesEstimator(beta=beta, window_s=math.inf)
    h.learn_many(ts)
    est_mu, est_n = h.estimate(horizon)
    assert est_n == pytest.approx(n, abs=0.05)
    assert est_mu == pytest.approx(mu, rel=0.15)


def test_windowed_estimate_recovers_within_tolerance_and_tracks_a_change():
    """With forgetting, the estimate follows the recent regime: n = 0.2 then n = 0.8."""
    a = simulate_hawkes(mu=0.3, n=0.2, beta=1.0, horizon_s=10_000.0, seed=3)
    b = 10_000.0 + simulate_hawkes(mu=0.1, n=0.8, beta=1.0, horizon_s=10_000.0, seed=4)
    h = HawkesEstimator(beta=1.0, window_s=2_000.0)
    h.learn_many(a)
    assert h.estimate(10_000.0)[1] == pytest.approx(0.2, abs=0.1)
    h.learn_many(b)
    assert h.estimate(20_000.0)[1] == pytest.approx(0.8, abs=0.1)


def test_simulator_stationary_rate():
    mu, n = 0.5, 0.6
    ts = simulate_hawkes(mu=mu, n=n, beta=1.0, horizon_s=20_000.0, seed=7)
    assert ts.size / 20_000.0 == pytest.approx(mu / (1 - n), rel=0.05)
    assert np.all(np.diff(ts) >= 0)


def test_intensity_exact_on_a_hand_made_stream():
    """R and lambda follow the closed form; the estimate before min_events is the prior."""
    h = HawkesEstimator(beta=2.0, window_s=math.inf, n0=0.25, min_events=100)
    for t in (10.0, 10.5, 12.0):
        h.learn_one(t)
    r = 2.0 * (math.exp(-2.0 * 3.0) + math.exp(-2.0 * 2.5) + math.exp(-2.0 * 1.0))
    assert h.excitation(13.0) == pytest.approx(r, rel=1e-12)
    mu, n = h.estimate(13.0)
    assert n == 0.25 and mu == pytest.approx(3 / 3.0)  # 3 events over the 3 s since the first
    assert h.intensity(13.0) == pytest.approx(mu + 0.25 * r)
    ro = h.readout(13.0)
    assert (ro.mu, ro.branching, ro.events) == (mu, 0.25, 3.0)
    assert ro.intensity == pytest.approx(h.intensity(13.0))


def test_batch_equals_one_by_one_and_readout_is_pure():
    ts = simulate_hawkes(mu=0.5, n=0.5, beta=1.0, horizon_s=2_000.0, seed=2)
    a, b = HawkesEstimator(beta=1.0, window_s=600.0), HawkesEstimator(beta=1.0, window_s=600.0)
    for t in ts:
        a.learn_one(float(t))
    for chunk in np.array_split(ts, 7):
        b.learn_many(chunk)
    assert a.estimate(2_000.0) == b.estimate(2_000.0)
    before = a.estimate(2_500.0)
    a.readout(3_000.0)
    assert a.estimate(2_500.0) == before


def test_phi_matches_quadrature():
    from cascadewatch.detectors.hawkes import _phi

    for a, b, d in [(1.0, 0.0, 2.0), (0.0, 0.001, 5.0), (2.0, 2.0, 1.5), (0.3, 1e-13 + 0.3, 4.0), (0.0, 0.0, 3.0)]:
        s = np.linspace(0.0, d, 200_001)
        f = np.exp(-a * s - b * (d - s))
        q = float(np.sum((f[1:] + f[:-1]) / 2 * np.diff(s)))
        assert _phi(a, b, d) == pytest.approx(q, rel=1e-8)


def test_advance_counts_quiet_time():
    """The same events after 1000 quiet seconds: a lower background rate once the quiet time counts."""
    ts = 1000.0 + simulate_hawkes(mu=0.5, n=0.5, beta=1.0, horizon_s=1000.0, seed=8)
    a, b = HawkesEstimator(beta=1.0, window_s=math.inf), HawkesEstimator(beta=1.0, window_s=math.inf)
    b.advance(0.0)
    a.learn_many(ts)
    b.learn_many(ts)
    mu_a, _ = a.estimate(2000.0)
    mu_b, _ = b.estimate(2000.0)
    assert mu_b < 0.75 * mu_a
    # advancing in steps equals one step up to rounding, and never goes back
    c = HawkesEstimator(beta=1.0, window_s=300.0)
    c.learn_many(ts[:50])
    d = pickle.loads(pickle.dumps(c))
    for s in np.arange(ts[49], ts[49] + 10.0, 0.5):
        c.advance(float(s))
    c.advance(float(ts[49]))
    d.advance(float(ts[49] + 9.5))
    assert c.estimate(ts[49] + 20) == pytest.approx(d.estimate(ts[49] + 20), rel=1e-9)
