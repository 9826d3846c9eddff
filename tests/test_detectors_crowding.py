"""Crowding monitor: OI growth, aggressor imbalance and crowding per direction, known answers."""

from __future__ import annotations

import pickle

import pytest

from cascadewatch.detectors.crowding import CrowdingMonitor


def test_growth_and_imbalance_over_full_and_partial_windows():
    cm = CrowdingMonitor(windows_s=(10, 100))
    for s in range(50):  # OI +1 BTC/s on venue a (1000 at s=0), 2 on venue b (500 at s=0)
        r = cm.update(float(s) + 0.3, {"a": 1000.0 + s, "b": 500.0 + 2 * s}, buy_usd=2e5, sell_usd=1e5)
    # full 10 s window at s = 49: (10 + 20) / (1049 + 598)
    assert r.oi_growth[10] == pytest.approx(30.0 / (1049.0 + 598.0))
    # the 100 s window is partial: growth since the first second seen
    assert r.oi_growth[100] == pytest.approx((49.0 + 98.0) / (1049.0 + 598.0))
    assert r.imbalance[10] == pytest.approx(1 / 3) and r.imbalance[100] == pytest.approx(1 / 3)
    down, up = r.features("down"), r.features("up")
    assert down["imbalance_10"] == pytest.approx(1 / 3) and up["imbalance_10"] == pytest.approx(-1 / 3)
    assert down["crowding_10_bps"] == pytest.approx(1e4 * r.oi_growth[10] / 3) and up["crowding_10_bps"] == 0.0
    assert down["oi_growth_100_pct"] == pytest.approx(100 * r.oi_growth[100])


def test_falling_oi_or_opposite_flow_is_no_crowding():
    cm = CrowdingMonitor(windows_s=(10,))
    for s in range(20):  # positions closing on aggressive buying
        r = cm.update(float(s), {"a": 1000.0 - s}, buy_usd=3e5, sell_usd=1e5)
    assert r.oi_growth[10] < 0 and r.crowding("down", 10) == 0.0 and r.crowding("up", 10) == 0.0


def test_gaps_unknown_oi_late_venue_and_old_seconds():
    cm = CrowdingMonitor(windows_s=(10,))
    cm.update(0.0, {"a": 100.0}, buy_usd=1.0, sell_usd=0.0)
    cm.update(1.0, {"a": None, "b": None}, buy_usd=0.0, sell_usd=1.0)  # unknown: a repeats 100, b unseen
    r = cm.update(5.0, {"a": 110.0, "b": 50.0}, buy_usd=0.0, sell_usd=2.0)  # seconds 2..4 had no data
    assert r.oi_growth[10] == pytest.approx(10.0 / 160.0)  # b starts at its first value: no growth yet
    assert r.imbalance[10] == pytest.approx((1.0 - 3.0) / 4.0)
    assert cm.update(4.0, {"a": 1.0}, buy_usd=1e9) is r  # an older second is ignored
    r = cm.update(11.0, {"a": 110.0, "b": 60.0})
    assert r.oi_growth[10] == pytest.approx(20.0 / 170.0)  # a: 100 at second 1 -> 110; b: 50 -> 60
    assert r.imbalance[10] == -1.0  # over (1, 11]: only second 5's sell
    r = cm.update(100.0, {"a": 110.0, "b": 60.0})  # a long gap: flat OI, no flow
    assert r.oi_growth[10] == 0.0 and r.imbalance[10] == 0.0


def test_one_by_one_equals_pickled_and_resumed():
    a = CrowdingMonitor()
    stream = [
        (float(s), {"x": 1e3 + (s % 7) - s * 0.01, "y": 2e3 + s * 0.1}, 1e5 * (1 + s % 3), 1e5) for s in range(2000)
    ]
    for s, oi, b, v in stream[:1200]:
        a.update(s, oi, b, v)
    b = pickle.loads(pickle.dumps(a))
    for s, oi, bu, v in stream[1200:]:
        ra, rb = a.update(s, oi, bu, v), b.update(s, oi, bu, v)
        assert ra == rb


def test_bad_arguments():
    with pytest.raises(ValueError):
        CrowdingMonitor(windows_s=(0,))
    with pytest.raises(ValueError):
        CrowdingMonitor().readout().features("sideways")
