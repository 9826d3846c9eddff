"""Detector state pickles (Bytewax recovery snapshots): a round-tripped detector gives the same
readouts and, fed the same further input, the same results as the original."""

from __future__ import annotations

import dataclasses
import pickle

import msgspec
import numpy as np

from cascadewatch.detectors import (
    AlertPolicy,
    AssetReadout,
    CascadeProbability,
    DepthMonitor,
    DirectionReadout,
    EstimatedLiquidationMap,
    HawkesEstimator,
    ObservedLiquidationMap,
    RealizedVolatility,
    RegimeDetector,
    simulate_hawkes,
)


def same(a, b) -> bool:
    """Deep equality for readouts (dataclasses or msgspec Structs holding numpy arrays, NaNs equal)."""
    if dataclasses.is_dataclass(a):
        return type(a) is type(b) and all(same(getattr(a, f.name), getattr(b, f.name)) for f in dataclasses.fields(a))
    if isinstance(a, msgspec.Struct):
        return type(a) is type(b) and all(same(getattr(a, f), getattr(b, f)) for f in a.__struct_fields__)
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return np.array_equal(a, b, equal_nan=True)
    if isinstance(a, float) and a != a:
        return b != b
    return a == b


def roundtrip(obj):
    return pickle.loads(pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL))


RNG = np.random.default_rng(9)
PRICES = 100 * np.exp(np.cumsum(RNG.normal(0, 5e-4, 400)))
TIMES = np.arange(400, dtype=float) + 0.5


def test_observed_map():
    m = ObservedLiquidationMap(half_life_s=30)
    m.learn_many(PRICES[:200], RNG.exponential(1e4, 200), RNG.uniform(size=200) < 0.5, TIMES[:200])
    c = roundtrip(m)
    assert same(c.readout(100.0, 250.0), m.readout(100.0, 250.0))
    for x in (m, c):
        x.learn_many(PRICES[200:], np.full(200, 1e4), np.ones(200, bool), TIMES[200:])
    assert same(c.readout(100.0, 500.0), m.readout(100.0, 500.0))


def test_estimated_map():
    m = EstimatedLiquidationMap()
    oi = 1000.0
    m.learn_oi(oi, 0.0)
    for i in range(0, 200, 10):
        m.learn_trades(PRICES[i : i + 10], np.ones(10), np.arange(10) % 3 == 0)
        oi += 5.0
        m.learn_oi(oi, TIMES[i])
        m.learn_mark(PRICES[i], TIMES[i])
    c = roundtrip(m)
    assert same(c.readout(100.0, 300.0), m.readout(100.0, 300.0))
    for x in (m, c):
        x.learn_trades(PRICES[200:210], np.ones(10), np.ones(10, bool))
        x.learn_oi(oi + 3, 301.0)
    assert same(c.readout(100.0, 302.0), m.readout(100.0, 302.0))


def test_depth_monitor():
    m = DepthMonitor(window_s=50, min_samples=5)
    for i in range(100):
        m.update([(99.9, 1.0 + i % 7)], [(100.1, 2.0)], TIMES[i])
    c = roundtrip(m)
    assert same(c.readout(), m.readout())
    a = m.update([(99.9, 3.0)], [(100.1, 2.0)], 200.0)
    b = c.update([(99.9, 3.0)], [(100.1, 2.0)], 200.0)
    assert same(a, b)


def test_hawkes():
    ts = simulate_hawkes(0.5, 0.5, 1.0, 500.0, seed=1)
    m = HawkesEstimator(beta=1.0)
    m.learn_many(ts[: len(ts) // 2])
    c = roundtrip(m)
    assert same(c.readout(250.0), m.readout(250.0))
    for x in (m, c):
        x.learn_many(ts[len(ts) // 2 :])
    assert same(c.readout(500.0), m.readout(500.0))


def test_realized_vol():
    m = RealizedVolatility()
    m.learn_many(PRICES[:200], TIMES[:200])
    c = roundtrip(m)
    for x in (m, c):
        x.learn_many(PRICES[200:], TIMES[200:])
    assert c.sigma == m.sigma


def test_cascade_probability_with_river_model():
    m = CascadeProbability(horizon_s=10, min_labels=5, min_positives=1, blend_labels=5, label_delay_s=0)
    for i in range(100):
        m.observe(float(i), {"f": float(PRICES[i] - 100)}, 0.2)
    m.add_cascade(50.0)
    m.advance(100.0)
    c = roundtrip(m)
    x = {"f": 0.3}
    assert c.predict_one(x, 0.2) == m.predict_one(x, 0.2) and c.scores() == m.scores()
    for y in (m, c):
        for i in range(100, 150):
            y.observe(float(i), {"f": float(PRICES[i] - 100)}, 0.2)
        y.add_cascade(120.0)
        y.advance(150.0)
    assert c.predict_one(x, 0.2) == m.predict_one(x, 0.2) and c.scores() == m.scores()
    assert c.labels == m.labels and list(c.pending) == list(m.pending)


def test_regime_detector():
    m = RegimeDetector(window_s=10)
    for i in range(100):
        m.update(TIMES[i], PRICES[i], 1e3, 1e3, 1e5, 1e5)
    c = roundtrip(m)
    assert same(c.readout(), m.readout())
    a = m.update(100.5, 95.0, 5e6, 0.0, 0.0, 5e6, 0.2, 1.0)
    b = c.update(100.5, 95.0, 5e6, 0.0, 0.0, 5e6, 0.2, 1.0)
    assert same(a, b) and a["down"].active


def test_policy_and_readout_structs():
    m = AlertPolicy(min_hold_s=0, calm_s=0)
    r = AssetReadout(asset="BTC-USDT", ts=1000, price=100.0, down=DirectionReadout(prob=0.5))
    assert roundtrip(r) == r
    m.update(r)
    c = roundtrip(m)
    assert c.open_incidents() == m.open_incidents()
    calm = AssetReadout(asset="BTC-USDT", ts=2000, price=100.0)
    assert c.update(calm) == m.update(calm)
