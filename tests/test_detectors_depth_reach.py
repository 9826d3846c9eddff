"""Known-answer tests of book depth/thinning and of the cascade reach fixed point."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cascadewatch.detectors.depth import DepthMonitor, depth_within
from cascadewatch.detectors.reach import CascadeReach, _stable_order, cascade_reach

# ---------------------------------------------------------------- depth

BIDS = [(99.95, 2.0), (99.80, 5.0), (99.60, 10.0), (99.20, 20.0), (98.50, 100.0)]
ASKS = [(100.05, 1.0), (100.20, 4.0), (100.40, 8.0), (100.90, 30.0), (101.50, 50.0)]


def test_depth_hand_computed():
    bid, ask, mid = depth_within(BIDS, ASKS, (10, 25, 50, 100))
    assert mid == 100.0
    # bids >= 99.90 / 99.75 / 99.50 / 99.00
    b10 = 99.95 * 2
    b25 = b10 + 99.80 * 5
    b50 = b25 + 99.60 * 10
    b100 = b50 + 99.20 * 20
    # asks <= 100.10 / 100.25 / 100.50 / 101.00
    a10 = 100.05 * 1
    a25 = a10 + 100.20 * 4
    a50 = a25 + 100.40 * 8
    a100 = a50 + 100.90 * 30
    assert bid.tolist() == pytest.approx([b10, b25, b50, b100], rel=1e-15)
    assert ask.tolist() == pytest.approx([a10, a25, a50, a100], rel=1e-15)


def test_depth_numpy_input_boundaries_and_one_side():
    bids = np.array([[99.9, 1.0], [99.0, 1.0]])
    bid, ask, mid = depth_within(bids, np.zeros((0, 2)), (10, 100))
    assert mid == 99.9 and bid.tolist() == [99.9, 99.9 + 99.0 * 1.0] and ask.tolist() == [0.0, 0.0]
    # a level exactly on the band edge is inside
    bid, _, _ = depth_within([(99.0, 1.0)], [(101.0, 1.0)], (100,), ref=100.0)
    assert bid.tolist() == [99.0]
    bid, ask, mid = depth_within([], [], (10,))
    assert math.isnan(mid) and bid.tolist() == [0.0]


def test_depth_ratio_against_trailing_median():
    dm = DepthMonitor(bands_bps=(10, 100), window_s=5, min_samples=3)
    values = [100.0, 300.0, 200.0, 400.0, 500.0, 600.0]  # bid notional within both bands, one per second
    ratios = []
    for s, v in enumerate(values):
        r = dm.update([(99.95, v / 99.95)], [(100.05, 1.0)], t=1000.0 + s + 0.3)
        ratios.append(r.bid_ratio[0])
    assert all(math.isnan(x) for x in ratios[:3])  # fewer than 3 past seconds
    assert ratios[3] == pytest.approx(400.0 / np.median([100, 300, 200]))
    assert ratios[4] == pytest.approx(500.0 / np.median([100, 300, 200, 400]))
    # window of 5 slots: the current one and the previous 4 (the oldest, 100, dropped)
    assert ratios[5] == pytest.approx(600.0 / np.median([300, 200, 400, 500]))
    # a later update in the same second replaces that second's sample
    r = dm.update([(99.95, 50.0 / 99.95)], [(100.05, 1.0)], t=1005.9)
    assert r.bid_ratio[0] == pytest.approx(50.0 / np.median([300, 200, 400, 500]))
    # a gap repeats the last sample (the book did not change)
    r = dm.update([(99.95, 50.0 / 99.95)], [(100.05, 1.0)], t=1007.0)
    assert r.bid_ratio[0] == pytest.approx(50.0 / np.median([400, 500, 50, 50]))  # 1003..1006, 1006 filled
    d = r.to_dict()
    assert list(d) == ["depth_bid_usd", "depth_ask_usd", "depth_bid_ratio", "depth_ask_ratio"]
    assert d["depth_bid_usd"]["10"] == pytest.approx(50.0) and d["depth_ask_ratio"]["100"] == 1.0


def test_depth_incremental_median_equals_numpy_median():
    """The sorted-list median is ``np.median`` of the history, bit for bit: gaps, repeated seconds,
    NaN samples, a full ring, and a state pickled without the lists (rebuilt from the buffer)."""
    import pickle

    rng = np.random.default_rng(31)
    dm = DepthMonitor(bands_bps=(10, 100), window_s=7, min_samples=2)
    history: list[np.ndarray] = []  # one sample per second, as the ring holds them
    sec = 0
    for i in range(400):
        step = int(rng.choice([0, 1, 1, 1, 3]))
        sample = rng.choice([1.0, 2.0, 3.0, 7.5, 1e6], size=(2, 2)) * rng.uniform(0.5, 2.0)
        if rng.uniform() < 0.03:
            sample[0, 1] = math.nan
        if i and step == 0:
            history[-1] = sample
        else:
            if i:
                history.extend([history[-1]] * min(step - 1, 7))
                sec += step
            history.append(sample)
        r = dm.update_values(sample[0], sample[1], 100.0, sec + 0.5)
        past = history[-7:-1]
        if len(past) >= 2:
            med = np.median(np.array(past), axis=0)
            with np.errstate(divide="ignore", invalid="ignore"):
                want = np.where(med > 0, sample / np.where(med > 0, med, 1.0), np.nan)
            assert np.array_equal(np.stack((r.bid_ratio, r.ask_ratio)), want, equal_nan=True)
        if i == 200:
            state = dm.__dict__.copy()
            state["_hist"] = None  # as pickled before the sorted lists existed
            dm = pickle.loads(pickle.dumps(dm))
            dm.__dict__.update(state)


def test_depth_update_values_sums_venues():
    dm = DepthMonitor(bands_bps=(10, 25), window_s=10, min_samples=1)
    b1, a1, _ = depth_within(BIDS, ASKS, (10, 25))
    b2, a2, _ = depth_within([(99.99, 1.0)], [(100.01, 1.0)], (10, 25), ref=100.0)
    r = dm.update_values(b1 + b2, a1 + a2, 100.0, 0.0)
    assert r.bid_usd.tolist() == pytest.approx((b1 + b2).tolist())


# ---------------------------------------------------------------- reach

PRICE = 100.0
BOOK_BIDS = [(99.9, 10), (99.5, 20), (99.0, 50), (98.0, 100), (97.0, 100)]
# notional: 999, 1990, 4950, 9800, 9700 -> cumulative 999, 2989, 7939, 17739, 27439
LONGS = [(99.6, 1500), (99.5, 5000), (99.0, 2000), (98.5, 3000), (96.0, 50000), (100.5, 7777)]


def test_reach_hand_computed_fixed_point():
    """Trigger at 99.6: B0 = 999 (the 99.9 bid, above the trigger).
    it 1: F(99.6) = 1500 -> sell 999 + 1500 = 2499 -> cum reaches it at 99.5
    it 2: F(99.5) = 6500 -> 7499 -> 99.0
    it 3: F(99.0) = 8500 -> 9499 -> 98.0
    it 4: F(98.0) = 11500 -> 12499 -> 98.0: F(98.0) unchanged -> fixed point.
    (The 100.5 level is above the price: already crossed, ignored.)"""
    r = cascade_reach(PRICE, BOOK_BIDS, LONGS, "down", start_price=99.6)
    assert r.forced_usd == 11500.0
    assert r.end_price == 98.0
    assert r.travel_bps == pytest.approx(200.0, abs=1e-9)
    assert r.iterations == 4 and r.converged and not r.exhausted


def test_reach_no_trigger_and_trigger_without_levels():
    r = cascade_reach(PRICE, BOOK_BIDS, LONGS, "down")  # nothing at or above 100 (below the price)
    assert (r.forced_usd, r.end_price, r.iterations, r.converged) == (0.0, 100.0, 1, True)
    r = cascade_reach(PRICE, BOOK_BIDS, [], "down", start_price=99.0)
    assert r.forced_usd == 0.0 and r.end_price == 99.0 and r.travel_bps == pytest.approx(100.0)


def test_reach_exhausts_the_book():
    """Trigger at 98.0: B0 = 7939; F(98.0) = 11500 -> 19439 -> 97.0; F(97.0) = 11500 (96 not reached)."""
    r = cascade_reach(PRICE, BOOK_BIDS, LONGS, "down", start_price=98.0)
    assert (r.forced_usd, r.end_price, r.converged, r.exhausted) == (11500.0, 97.0, True, False)
    # a level at 97 pushes the sale beyond the visible book: the end is the last level, travel a lower bound
    r = cascade_reach(PRICE, BOOK_BIDS, LONGS + [(97.0, 20000)], "down", start_price=98.0)
    assert r.exhausted and r.end_price == 97.0 and r.forced_usd == 31500.0


def test_reach_up_is_the_mirror_image():
    asks = [(2 * PRICE - p, q) for p, q in BOOK_BIDS]
    # a short liquidation is a forced buy of qty; use the same notionals at mirrored prices
    shorts = [(2 * PRICE - p, x) for p, x in LONGS]
    r = cascade_reach(PRICE, asks, shorts, "up", start_price=100.4)
    # notionals of the mirrored book differ (p * q at the mirrored prices): recompute by hand
    # asks: 100.1*10=1001, 100.5*20=2010, 101*50=5050, 102*100=10200 -> cum 1001, 3011, 8061, 18261
    # it1: B0 = 1001, F(100.4) = 1500 -> 2501 -> 100.5; it2: F(100.5) = 6500 -> 7501 -> 101.0
    # it3: F(101) = 8500 -> 9501 -> 102.0; it4: F(102) = 11500 -> 12501 -> 102.0: fixed point
    assert r.forced_usd == 11500.0 and r.end_price == 102.0 and r.iterations == 4
    assert r.travel_bps == pytest.approx(200.0)


def test_reach_accepts_unsorted_concatenated_books_and_arrays():
    a = np.array(BOOK_BIDS[:2], dtype=float)
    b = np.array(BOOK_BIDS[2:], dtype=float)
    book = np.concatenate([b, a])  # two venues, not best-first
    r = cascade_reach(PRICE, book, np.array(LONGS, dtype=float)[::-1], "down", start_price=99.6)
    assert (r.forced_usd, r.end_price, r.iterations) == (11500.0, 98.0, 4)


def test_reach_max_iter_and_class():
    r = cascade_reach(PRICE, BOOK_BIDS, LONGS, "down", start_price=99.6, max_iter=2)
    assert r.iterations == 2 and not r.converged and r.end_price == 99.0
    out = CascadeReach().readout(PRICE, BOOK_BIDS, [(100.1, 1)], LONGS, [], start_down=99.6)
    assert out["down"].forced_usd == 11500.0 and out["up"].forced_usd == 0.0
    with pytest.raises(ValueError):
        cascade_reach(PRICE, BOOK_BIDS, LONGS, "sideways")
    with pytest.raises(ValueError):  # columns instead of pairs: refused, not silently re-paired
        cascade_reach(PRICE, BOOK_BIDS, (np.array([99.6, 99.5, 99.0]), np.array([1.0, 2.0, 3.0])), "down")


def test_reach_matches_a_plain_python_walk():
    """The numpy walk equals a level-by-level reference walk on random books."""
    rng = np.random.default_rng(5)
    for _ in range(50):
        n = rng.integers(1, 40)
        bp = np.sort(100 - rng.uniform(0, 5, n))[::-1]
        bq = rng.exponential(20, n)
        m = rng.integers(0, 30)
        lp = 100 - rng.uniform(0, 5, m)
        lx = rng.exponential(2000, m)
        start = 100 - rng.uniform(0, 2)
        got = cascade_reach(100.0, np.c_[bp, bq], np.c_[lp, lx], "down", start_price=start)

        # reference
        b0 = sum(p * q for p, q in zip(bp, bq, strict=True) if p > start)
        r, f_prev = start, None
        while True:
            f = sum(x for p, x in zip(lp, lx, strict=True) if p >= r)
            if f == f_prev:
                break
            f_prev = f
            need, acc, end = b0 + f, 0.0, bp[-1]
            if need > 0:
                for p, q in zip(bp, bq, strict=True):
                    acc += p * q
                    if acc >= need:
                        end = p
                        break
                r = min(r, end)
        assert got.forced_usd == pytest.approx(f_prev, rel=1e-12)
        assert got.end_price == pytest.approx(r)


def test_stable_order_is_the_stable_argsort() -> None:
    """A slice for the two orders books and map levels come in, the argsort otherwise (ties in a
    falling array, a NaN); either way ``a[order]`` is ``a[a.argsort(kind="stable")]``."""
    cases = {
        "rising": (np.array([1.0, 2.0, 2.0, 3.0]), slice(None)),
        "falling": (np.array([3.0, 2.0, 1.0]), slice(None, None, -1)),
        "falling with a tie": (np.array([3.0, 2.0, 2.0, 1.0]), None),
        "NaN": (np.array([1.0, math.nan, 2.0]), None),
        "one": (np.array([5.0]), slice(None)),
    }
    for name, (a, expected) in cases.items():
        order = _stable_order(a)
        if expected is None:
            assert not isinstance(order, slice), name
        else:
            assert order == expected, name
        assert np.array_equal(a[order], a[a.argsort(kind="stable")], equal_nan=True), name


def test_reach_is_the_same_for_a_book_and_levels_in_any_order() -> None:
    """Best-first, reversed and shuffled inputs give the same walk (the sort is skipped only
    when it would change nothing)."""
    bids, longs = np.array(BOOK_BIDS, dtype=float), np.array(LONGS, dtype=float)
    expected = cascade_reach(PRICE, bids, longs, "down", start_price=99.6)
    assert expected.forced_usd == 11500.0  # test_reach_hand_computed_fixed_point
    for book_order, level_order in (([4, 3, 2, 1, 0], [5, 4, 3, 2, 1, 0]), ([2, 0, 4, 1, 3], [3, 5, 0, 2, 4, 1])):
        assert cascade_reach(PRICE, bids[book_order], longs[level_order], "down", start_price=99.6) == expected
