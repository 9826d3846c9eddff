"""The precursor monitor: liquidation trickle against its own norm, drift in standard deviations."""

from __future__ import annotations

import math
import pickle

import pytest

from cascadewatch.detectors.precursors import PrecursorMonitor

NONE = {"down": 0, "up": 0}


def test_steady_rate_reads_as_the_norm():
    """One liquidation every 10 s for hours: the baseline learns 0.1/s, the 60 s trickle is
    ln((6 + 1) / (60 * 0.1 + 1)) = 0."""
    pm = PrecursorMonitor(windows_s=(60,), baseline_half_life_s=600.0, prior_rate=0.0)
    for s in range(20_000):
        r = pm.update(s, {"down": int(s % 10 == 9), "up": 0}, 100.0, sigma=1e-4)
    assert r.trickle["down"][60] == pytest.approx(0.0, abs=1e-2)  # up to the EWMA ripple of a 10 s period
    assert r.trickle["up"][60] == pytest.approx(0.0, abs=1e-12)  # ln(1 / 1), no shorts ever


def test_window_does_not_raise_its_own_baseline():
    """A burst is measured against the rate before it: the seconds inside the window have not
    entered the baseline yet (prior 0.01/s, half-life short enough that they would count)."""
    pm = PrecursorMonitor(windows_s=(60,), baseline_half_life_s=30.0, prior_rate=0.01)
    for s in range(100):
        pm.update(s, NONE, 100.0, sigma=1e-4)
    for s in range(100, 110):
        r = pm.update(s, {"down": 3, "up": 0}, 100.0, sigma=1e-4)
    # the baseline folds in second s - 61 at each second s >= 61: 49 empty seconds by s = 109
    rate = 0.01 * 2.0 ** (-(109 - 60) / 30.0)
    assert r.trickle["down"][60] == pytest.approx(math.log(31.0 / (60 * rate + 1.0)), rel=1e-9)


def test_gaps_count_as_empty_seconds_with_the_last_price():
    """Seconds 10-69 missing: the 60 s window at 70 holds only second 70's count, and the price
    of 60 s ago is the last one seen (second 9)."""
    pm = PrecursorMonitor(windows_s=(60,), prior_rate=0.0, baseline_half_life_s=1e12)
    for s in range(10):
        pm.update(s, {"down": 1, "up": 0}, 100.0, sigma=1e-3)
    r = pm.update(70, {"down": 2, "up": 0}, 99.0, sigma=1e-3)
    assert r.trickle["down"][60] == pytest.approx(math.log(3.0))
    assert r.drift["down"][60] == pytest.approx(-math.log(0.99) / (1e-3 * math.sqrt(60)))
    assert r.drift["up"][60] == -r.drift["down"][60]


def test_repeated_and_older_seconds_are_ignored_and_partial_windows_have_no_drift():
    pm = PrecursorMonitor(windows_s=(60,), prior_rate=0.0, baseline_half_life_s=1e12)
    first = pm.update(5, {"down": 1, "up": 0}, 100.0, sigma=1e-4)
    assert pm.update(5, {"down": 9, "up": 0}, 50.0, sigma=1e-4) is first
    assert pm.update(4, {"down": 9, "up": 0}, 50.0, sigma=1e-4) is first
    r = pm.update(30, NONE, 90.0, sigma=1e-4)  # the window reaches back before the first second
    assert r.drift["down"][60] == 0.0 and r.trickle["down"][60] == pytest.approx(math.log(2.0))


def test_features_names_and_pickle_round_trip():
    pm = PrecursorMonitor(windows_s=(60, 300))
    for s in range(400):
        pm.update(s, {"down": int(s % 50 == 0), "up": 0}, 100.0 - 0.01 * s, sigma=2e-4)
    copy = pickle.loads(pickle.dumps(pm))
    a = pm.update(400, {"down": 1, "up": 1}, 95.0, sigma=2e-4).features("down")
    b = copy.update(400, {"down": 1, "up": 1}, 95.0, sigma=2e-4).features("down")
    assert sorted(a) == ["drift_300_z", "drift_60_z", "trickle_300", "trickle_60"] and a == b


def test_bad_windows_are_refused():
    with pytest.raises(ValueError, match="positive"):
        PrecursorMonitor(windows_s=(0, 60))
