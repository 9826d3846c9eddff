"""Known-answer tests of the observed and estimated liquidation maps."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cascadewatch.connectors.events import Liquidation, MarkPrice, OpenInterest, Trade
from cascadewatch.detectors._grid import EPOCH_HALF_LIVES, DecayingLogGrid, add_rows, add_weighted_sum
from cascadewatch.detectors.liqmap_estimated import (
    LOT_QTY,
    EstimatedLiquidationMap,
    MapLearning,
    dense_clusters,
    nearest_dense_cluster,
)
from cascadewatch.detectors.liqmap_observed import ObservedLiquidationMap
from cascadewatch.detectors.mitigation import next_dense_cluster

NO_SEED = MapLearning(seed_share=0.0)
"""The map starts empty: the tests of the flow rules see only the positions they open."""

DELTA = 10e-4  # 10 bps buckets


def bucket(p: float) -> int:
    return math.floor(math.log(p) / DELTA)


# ---------------------------------------------------------------- the grid


def test_grid_buckets_are_absolute_log_price():
    g = DecayingLogGrid(10.0, None)
    assert g.bucket_of(100.0) == bucket(100.0)
    assert g.bucket_of(100.0 * math.exp(DELTA)) == bucket(100.0) + 1
    c = float(g.center(bucket(100.0)))
    assert math.exp(bucket(100.0) * DELTA) <= c < math.exp((bucket(100.0) + 1) * DELTA)


def test_grid_ignores_bad_input():
    g = DecayingLogGrid(10.0, 60.0)
    g.add([100.0, -1.0, 0.0, math.nan, 100.0], [1.0, 5.0, 5.0, 5.0, math.inf], 0.0)
    assert g.total(0.0) == 1.0


def test_grid_batch_equals_one_by_one_across_epochs():
    """Same bits whether deposits come one by one or in batches (epochs, out-of-order times)."""
    rng = np.random.default_rng(3)
    h = 10.0
    t = np.cumsum(rng.exponential(3.0, 400))  # spans several epochs of 16 half-lives
    t[50], t[51] = t[51], t[50]  # out of order
    p = 100 * np.exp(np.cumsum(rng.normal(0, 1e-3, 400)))
    x = rng.exponential(1e4, 400)
    a, b = DecayingLogGrid(10.0, h), DecayingLogGrid(10.0, h)
    for i in range(400):
        a.add(p[i : i + 1], x[i : i + 1], t[i])
    for s in range(0, 400, 37):
        b.add(p[s : s + 37], x[s : s + 37], t[s : s + 37])
    assert t[-1] > 3 * EPOCH_HALF_LIVES * h
    ka, va = a.nonzero(t[-1])
    kb, vb = b.nonzero(t[-1])
    assert np.array_equal(ka, kb) and np.array_equal(va, vb)


# ---------------------------------------------------------------- observed


def test_observed_halves_after_one_half_life():
    m = ObservedLiquidationMap(bucket_bps=10, half_life_s=30.0, range_pct=5)
    m.learn_one(99.0, 1_000_000.0, "long", t=1_700_000_000.0)
    m.learn_one(101.0, 400_000.0, "short", t=1_700_000_000.0)
    r0 = m.readout(100.0, 1_700_000_000.0)
    r1 = m.readout(100.0, 1_700_000_030.0)
    r2 = m.readout(100.0, 1_700_000_060.0)
    assert r0.long_total_usd == pytest.approx(1_000_000.0, rel=1e-12)
    assert r1.long_total_usd == pytest.approx(500_000.0, rel=1e-12)
    assert r2.long_total_usd == pytest.approx(250_000.0, rel=1e-12)
    assert r1.short_total_usd == pytest.approx(200_000.0, rel=1e-12)
    # decay is a readout: reading does not change the state
    assert m.readout(100.0, 1_700_000_000.0).long_total_usd == pytest.approx(1_000_000.0, rel=1e-12)


def test_observed_buckets_stable_as_price_moves():
    m = ObservedLiquidationMap(bucket_bps=10, half_life_s=600.0, range_pct=5)
    m.learn_one(99.0, 1000.0, "long", t=0.0)
    m.learn_one(99.02, 500.0, "long", t=0.0)  # same 10 bps bucket as 99.0
    assert bucket(99.0) == bucket(99.02)
    for price in (100.0, 101.3, 98.0):
        r = m.readout(price, 0.0)
        j = bucket(99.0) - r.k_lo
        assert r.long_usd[j] == pytest.approx(1500.0)
        assert r.long_usd.sum() == pytest.approx(1500.0)
        centre = math.exp((bucket(99.0) + 0.5) * DELTA)
        assert r.offsets_bps[j] == pytest.approx((centre / price - 1) * 1e4)
        assert r.short_usd.sum() == 0.0


def test_observed_range_and_events():
    m = ObservedLiquidationMap(bucket_bps=10, half_life_s=600.0, range_pct=1)
    ev = Liquidation(
        venue="binance-usdm",
        symbol="BTCUSDT",
        instrument="BTC-USDT-PERP",
        ts=5_000_000_000,
        recv=0,
        price=99.5,
        qty=2.0,
        side="long",
        notional=199.0,
    )
    m.learn_event(ev)
    m.learn_one(90.0, 1e6, "long", t=5.0)  # outside +-1 %
    r = m.readout(100.0, 5.0)
    assert r.long_total_usd == pytest.approx(199.0)
    assert m.total("long", 5.0) == pytest.approx(199.0 + 1e6)
    with pytest.raises(ValueError):
        m.learn_one(100.0, 1.0, "buy", 0.0)


def test_observed_learn_many_equals_learn_one():
    a = ObservedLiquidationMap(half_life_s=20.0)
    b = ObservedLiquidationMap(half_life_s=20.0)
    p = [100.0, 99.0, 101.0, 98.5]
    x = [1e4, 2e4, 3e4, 4e4]
    s = [True, True, False, True]
    t = [0.0, 1.0, 400.0, 401.0]
    for i in range(4):
        a.learn_one(p[i], x[i], "long" if s[i] else "short", t[i])
    b.learn_many(p, x, s, t)
    ra, rb = a.readout(100.0, 402.0), b.readout(100.0, 402.0)
    assert np.array_equal(ra.long_usd, rb.long_usd) and np.array_equal(ra.short_usd, rb.short_usd)


# ---------------------------------------------------------------- estimated


def test_estimated_levels_known_answer():
    """Longs from aggressive buys, shorts from sells, spread over tiers at entry*(1 -+ 1/L +- mmr)."""
    tiers = [(10.0, 0.5), (20.0, 0.5)]
    m = EstimatedLiquidationMap(leverage=tiers, mmr=0.005, range_pct=20, half_life_s=1e12, learning=NO_SEED)
    m.learn_oi(500.0, t=0.0)
    m.learn_trades([100.0, 100.0, 102.0], [3.0, 3.0, 4.0], [True, True, False])  # buys 6 @100, sells 4 @102
    added = m.learn_oi(510.0, t=1.0)  # dOI = 10 = all the flow
    assert added == pytest.approx(6 * 100.0 + 4 * 102.0)
    r = m.readout(101.0, 1.0)
    expected_long = {}
    expected_short = {}
    for L, w in tiers:
        lv = 100.0 * (1 - 1 / L + 0.005)
        expected_long[bucket(lv)] = expected_long.get(bucket(lv), 0.0) + 6.0 * w * lv
        sv = 102.0 * (1 + 1 / L - 0.005)
        expected_short[bucket(sv)] = expected_short.get(bucket(sv), 0.0) + 4.0 * w * sv
    for k, v in expected_long.items():
        assert r.long_usd[k - r.k_lo] == pytest.approx(v, rel=1e-9)
    for k, v in expected_short.items():
        assert r.short_usd[k - r.k_lo] == pytest.approx(v, rel=1e-9)
    assert r.long_total_usd == pytest.approx(sum(expected_long.values()), rel=1e-9)
    assert r.short_total_usd == pytest.approx(sum(expected_short.values()), rel=1e-9)
    # the levels handed to the reach are the same buckets
    lv = m.levels("down", 101.0, 1.0)
    assert lv.shape == (len(expected_long), 2)
    assert sorted(bucket(p) for p in lv[:, 0]) == sorted(expected_long)
    assert lv[:, 1].sum() == pytest.approx(sum(expected_long.values()))
    assert np.array_equal(r.levels("down"), lv)
    assert r.levels("up")[:, 1].sum() == pytest.approx(sum(expected_short.values()))


def test_estimated_split_by_flow_share():
    """dOI smaller than the flow: each side gets dOI * its share of the aggressive quantity."""
    m = EstimatedLiquidationMap(leverage=[(10.0, 1.0)], mmr=0.0, range_pct=20, half_life_s=1e12, learning=NO_SEED)
    m.learn_oi(100.0, 0.0)
    m.learn_trade(100.0, 30.0, "buy")
    m.learn_trade(100.0, 10.0, "sell")
    m.learn_oi(104.0, 1.0)  # 4 new: 3 long, 1 short
    r = m.readout(100.0, 1.0)
    assert r.long_total_usd == pytest.approx(3.0 * 90.0)
    assert r.short_total_usd == pytest.approx(1.0 * 110.0)


def test_estimated_oi_decrease_and_consumption_and_decay():
    m = EstimatedLiquidationMap(leverage=[(10.0, 1.0)], mmr=0.005, range_pct=20, half_life_s=100.0, learning=NO_SEED)
    m.learn_oi(0.0, 0.0)
    m.learn_trade(100.0, 10.0, "buy")
    m.learn_trade(100.0, 10.0, "sell")
    m.learn_oi(20.0, 0.0)
    r = m.readout(100.0, 0.0)
    long0, short0 = r.long_total_usd, r.short_total_usd
    assert long0 == pytest.approx(10 * 90.5) and short0 == pytest.approx(10 * 109.5)
    m.learn_oi(15.0, 0.0)  # a quarter of the positions closed
    r = m.readout(100.0, 0.0)
    assert r.long_total_usd == pytest.approx(0.75 * long0) and r.short_total_usd == pytest.approx(0.75 * short0)
    assert m.readout(100.0, 100.0).long_total_usd == pytest.approx(0.375 * long0)  # one half-life
    cl, cs = m.learn_mark(91.0, 0.0)  # above the long level: nothing
    assert (cl, cs) == (0.0, 0.0)
    cl, cs = m.learn_mark(90.45, 0.0)  # inside the level's bucket: consumed
    assert cl == pytest.approx(0.75 * long0) and cs == 0.0
    cl, cs = m.learn_mark(110.0, 0.0)
    assert cs == pytest.approx(0.75 * short0)
    r = m.readout(100.0, 0.0)
    assert r.long_total_usd == 0.0 and r.short_total_usd == 0.0
    assert r.consumed_long_usd == pytest.approx(0.75 * long0) and r.consumed_short_usd == pytest.approx(0.75 * short0)


def test_estimated_no_flow_splits_half_at_price():
    m = EstimatedLiquidationMap(leverage=[(10.0, 1.0)], mmr=0.0, range_pct=20, learning=NO_SEED)
    m.learn_oi(0.0, 0.0)
    assert m.learn_oi(2.0, 0.0) == 0.0  # no trade and no price: nothing to place
    m.learn_oi(4.0, 0.0, price=100.0)
    r = m.readout(100.0, 0.0)
    assert r.long_total_usd == pytest.approx(90.0) and r.short_total_usd == pytest.approx(110.0)


def test_estimated_events_dispatch():
    m = EstimatedLiquidationMap(leverage=[(10.0, 1.0)], mmr=0.0, range_pct=20, learning=NO_SEED)
    base = dict(venue="bybit-linear", symbol="BTCUSDT", instrument="BTC-USDT-PERP", recv=0)
    m.learn_event(OpenInterest(**base, ts=0, qty=100.0))
    m.learn_event(Trade(**base, ts=1, price=100.0, qty=1.0, side="buy"))
    m.learn_event(OpenInterest(**base, ts=2_000_000_000, qty=101.0))
    assert m.readout(100.0, 2.0).long_total_usd == pytest.approx(90.0)
    m.learn_event(MarkPrice(**base, ts=3_000_000_000, price=89.0))
    assert m.consumed_long_usd == pytest.approx(90.0, rel=1e-3)


def test_dense_cluster_definition():
    centers = 100.0 * np.exp(DELTA * (np.arange(-20, 21) + 0.5))
    x = np.full(centers.size, 1.0)
    # uniform: no cluster
    assert nearest_dense_cluster(centers, x, 100.0, "down", window=3, dense_multiple=3.0) is None
    x[5] = 200.0  # far below
    x[12] = 60.0  # nearer below
    c = nearest_dense_cluster(centers, x, 100.0, "down", window=1, dense_multiple=3.0)
    # mean of the 20 buckets below is (18 + 260) / 20 = 13.9: both are dense, the nearer one wins
    assert c.price == pytest.approx(centers[12]) and c.notional_usd == pytest.approx(60.0)
    assert c.distance_bps == pytest.approx((1 - centers[12] / 100.0) * 1e4)
    c = nearest_dense_cluster(centers, x, 100.0, "down", window=1, dense_multiple=3.0, min_usd=100.0)
    assert c.price == pytest.approx(centers[5])
    # with a 3-bucket window the peak's neighbours are dense too: the run is 4..6
    c = nearest_dense_cluster(centers, x, 100.0, "down", window=3, dense_multiple=3.0, min_usd=100.0)
    assert c.notional_usd == pytest.approx(202.0)
    assert (c.lo_price, c.hi_price) == (pytest.approx(centers[4]), pytest.approx(centers[6]))
    assert c.price == pytest.approx((centers[4] + 200 * centers[5] + centers[6]) / 202)


def test_estimated_map_tracks_simulated_positions():
    """Positions opened by aggressors with leverage drawn from the tier weights: the map's levels
    match the true levels (histogram on the same grid) within a small L1 error."""
    rng = np.random.default_rng(11)
    tiers = [(5.0, 0.25), (10.0, 0.30), (25.0, 0.25), (50.0, 0.12), (100.0, 0.08)]
    lev = np.array([L for L, _ in tiers])
    w = np.array([x for _, x in tiers])
    mmr = 0.004
    m = EstimatedLiquidationMap(leverage=tiers, mmr=mmr, range_pct=30, half_life_s=1e12, learning=NO_SEED)
    wrong = EstimatedLiquidationMap(leverage=[(10.0, 1.0)], mmr=mmr, range_pct=30, half_life_s=1e12, learning=NO_SEED)
    price, oi = 100.0, 1000.0
    m.learn_oi(oi, 0.0)
    wrong.learn_oi(oi, 0.0)
    true_long: dict[int, float] = {}
    true_short: dict[int, float] = {}
    for i in range(10_000):
        price *= math.exp(rng.normal(0, 5e-4))
        qty = rng.exponential(1.0)
        L = lev[rng.choice(lev.size, p=w)]
        is_long = rng.uniform() < 0.5
        for mm in (m, wrong):
            mm.learn_trade(price, qty, "buy" if is_long else "sell")
        oi += qty
        m.learn_oi(oi, float(i))
        wrong.learn_oi(oi, float(i))
        if is_long:
            lv = price * (1 - 1 / L + mmr)
            true_long[bucket(lv)] = true_long.get(bucket(lv), 0.0) + qty * lv
        else:
            lv = price * (1 + 1 / L - mmr)
            true_short[bucket(lv)] = true_short.get(bucket(lv), 0.0) + qty * lv

    def l1_error(mm):
        r = mm.readout(100.0, 1e4)
        errs = []
        for est, true in ((r.long_usd, true_long), (r.short_usd, true_short)):
            t = np.zeros_like(est)
            for k, v in true.items():
                t[k - r.k_lo] += v
            assert est.sum() == pytest.approx(t.sum(), rel=0.01)
            # on 50 bps blocks (5 buckets): the map spreads each position over all tiers
            n = est.size // 5 * 5
            e5, t5 = est[:n].reshape(-1, 5).sum(1), t[:n].reshape(-1, 5).sum(1)
            errs.append(np.abs(e5 - t5).sum() / t5.sum())
        return max(errs)

    assert l1_error(m) < 0.12
    assert l1_error(wrong) > 1.0  # the error measure does tell a wrong leverage model apart


# ---------------------------------------------------------------- fast paths give the same bits


def test_grid_bucket_of_one_equals_bucket_of():
    """The scalar bucket (``math.log`` away from bucket edges) is NumPy's bucket, edges included."""
    rng = np.random.default_rng(21)
    g = DecayingLogGrid(10.0, None)
    prices = np.concatenate(
        (
            np.exp(rng.uniform(-12, 14, 20_000)),
            g.center(np.arange(11_000, 11_600)) * np.exp(-0.5 * g.delta),  # bucket edges
            np.nextafter(np.exp(np.arange(11_000, 11_600) * g.delta), 0),
        )
    )
    assert [g.bucket_of_one(p) for p in prices.tolist()] == g.bucket_of(prices).tolist()


def test_grid_add_one_and_empty_takes_equal_the_batched_path():
    """``add_one``, one-time batches and the take/scale shortcuts on empty ranges leave the same bits."""
    rng = np.random.default_rng(22)
    a, b = DecayingLogGrid(10.0, 60.0), DecayingLogGrid(10.0, 60.0)
    t = np.cumsum(rng.exponential(20.0, 300))
    p = 100 * np.exp(np.cumsum(rng.normal(0, 2e-3, 300)))
    x = rng.exponential(1e4, 300)
    for i in range(300):
        a.add_one(p[i], x[i], t[i])
        b.add(p[i : i + 1], x[i : i + 1], np.full(1, t[i]))  # the per-item path
        if i % 7 == 0:
            k = int(b.bucket_of(p[i] * rng.uniform(0.97, 1.03)))
            assert a.take_ge(k, t[i]) == b.take_ge(k, t[i]) and a.take_le(k - 3, t[i]) == b.take_le(k - 3, t[i])
        if i % 50 == 0:
            a.scale(0.0)
            b.scale(0.0)
            assert a.take_ge(0, t[i]) == 0.0 and a.total(t[i]) == b.total(t[i]) == 0.0
    for g in (a, b):
        g.add([99.0, -1.0, 101.0], [5.0, 1.0, math.nan], t[-1])
    assert np.array_equal(a._v, b._v) and a._k0 == b._k0 and a.total(t[-1]) == b.total(t[-1])


def test_estimated_learn_trade_and_combine_equal_the_array_paths():
    """One trade at a time equals ``learn_trades``; ``combine`` equals the sum of the maps' readouts."""
    rng = np.random.default_rng(23)
    maps = [EstimatedLiquidationMap(dense_multiple=2.0) for _ in range(3)]
    twins = [EstimatedLiquidationMap(dense_multiple=2.0) for _ in range(3)]
    price = 100.0
    for s in range(400):
        price *= math.exp(rng.normal(0, 2e-3))
        for m, w in zip(maps, twins, strict=True):
            q = rng.exponential(1.0, 2)
            m.learn_trade(price * 1.0001, q[0], "buy")
            m.learn_trade(price * 0.9999, q[1], "sell")
            w.learn_trades(np.array([price * 1.0001, price * 0.9999]), q, np.array([True, False]))
            oi = 1000.0 + 20 * math.sin(s / 17) + s * 0.1
            assert m.learn_oi(oi, s + 0.9, price) == w.learn_oi(oi, s + 0.9, price)
            assert m.learn_mark(price, s + 0.9) == w.learn_mark(price, s + 0.9)
    t = 400.0
    r = EstimatedLiquidationMap.combine(maps, price, t)
    for w in twins:
        w.lot_qty = 0.0  # each twin's levels as they are, sub-lot buckets included
    rs = [w.readout(price, t) for w in twins]
    lo = np.sum([x.long_usd for x in rs], axis=0)
    sh = np.sum([x.short_usd for x in rs], axis=0)
    lot = LOT_QTY * r.prices  # the sum's buckets under one lot at their price hold no position
    assert np.concatenate([(x > 0) & (x < lot) for x in (lo, sh)]).any()  # (this map has some)
    lo[lo < lot], sh[sh < lot] = 0.0, 0.0
    assert np.array_equal(r.long_usd, lo) and np.array_equal(r.short_usd, sh)
    assert np.array_equal(r.prices, rs[0].prices) and r.k_lo == rs[0].k_lo
    assert r.cluster_down == nearest_dense_cluster(r.prices, lo, price, "down", 5, 2.0)
    assert r.cluster_up == nearest_dense_cluster(r.prices, sh, price, "up", 5, 2.0)
    assert r.cluster_down is not None and r.cluster_up is not None
    assert r.long_total_usd == float(lo[r.prices < price].sum())
    assert r.consumed_long_usd == sum(x.consumed_long_usd for x in rs)


def test_estimated_state_from_before_the_tier_grids_is_refused():
    """A map pickled with one weighted grid per side (``_long``/``_short``) cannot be split into
    tiers: unpickling it is a clear error, not a silently wrong map."""
    import pickle

    m = EstimatedLiquidationMap()
    state = m.__getstate__()
    for key in ("_levels", "_spent"):
        state.pop(key)
    state["_long"] = state["_short"] = DecayingLogGrid(10.0, None)
    old = EstimatedLiquidationMap.__new__(EstimatedLiquidationMap)
    with pytest.raises(ValueError, match="empty recovery directory"):
        old.__setstate__(state)
    assert pickle.loads(pickle.dumps(m)).readout(100.0, 0.0).long_total_usd == 0.0


# ------------------------------------------------------------ learned leverage mix


def _opened_at_100(learning: MapLearning = NO_SEED) -> EstimatedLiquidationMap:
    """100 BTC of longs bought at 100 (and no shorts); prior tiers 10x and 50x half and half, mmr 0.5 %."""
    m = EstimatedLiquidationMap(
        leverage=[(10.0, 0.5), (50.0, 0.5)], mmr=0.005, range_pct=20, half_life_s=1e12, learning=learning
    )
    m.learn_oi(1000.0, 0.0)
    m.learn_trade(100.0, 100.0, "buy")
    m.learn_oi(1100.0, 1.0)
    return m


def _known_stream(learning: MapLearning) -> tuple[EstimatedLiquidationMap, np.ndarray, float, float]:
    """Longs opened at known prices with a known leverage mix (the prior below tilted toward low
    leverage, tau = -1), their true liquidations reported as the mark walks through their levels.
    Returns the map, the true mix and the true long levels within 20 % and within 2 % below
    the price at the end (notional / price)."""
    rng = np.random.default_rng(5)
    tiers = [(10.0, 0.4), (20.0, 0.3), (50.0, 0.2), (100.0, 0.1)]
    lev = np.array([L for L, _ in tiers])
    prior = np.array([w for _, w in tiers])
    true_mix = prior * (lev / math.exp(float((prior * np.log(lev)).sum()))) ** -1.0
    true_mix /= true_mix.sum()
    m = EstimatedLiquidationMap(leverage=tiers, mmr=0.005, range_pct=20, half_life_s=1e12, learning=learning)
    open_long: list[tuple[float, float]] = []  # (true level, qty) of the open longs
    price, oi = 100.0, 1000.0
    m.learn_oi(oi, 0.0, price)
    for t in range(1, 6001):
        price *= math.exp(rng.normal(0.0, 8e-4))
        qty = float(rng.exponential(1.0))
        L = float(rng.choice(lev, p=true_mix))
        m.learn_trade(price, qty, "buy")
        open_long.append((price * (1 - 1 / L + 0.005), qty))
        oi += qty
        m.learn_oi(oi, t + 0.5)
        k = bucket(price)
        hit = [(lv, q) for lv, q in open_long if bucket(lv) >= k]  # what the mark crosses (the map's rule)
        for lv, q in hit:
            m.learn_liquidation(lv, lv * q, "long", t + 0.8)
        open_long = [(lv, q) for lv, q in open_long if bucket(lv) < k]
        oi -= sum(q for _, q in hit)
        m.learn_mark(price, t + 0.9)
        m.learn_oi(oi, t + 0.95)
    within = [sum(lv * q for lv, q in open_long if price * (1 - r) <= lv < price) / price for r in (0.2, 0.02)]
    return m, true_mix, within[0], within[1]


def test_learned_mix_from_a_known_stream():
    """With a weak prior (``prior_share`` 0.1 %) the learned weights of the crossed tiers match the
    known mix within 5 points, the map's at-risk notional (within 20 %) and its levels within 2 %
    of the price match the truth within 30 %; with the prior mix alone, the levels near the price
    are off by more than 1.5x."""
    learning = MapLearning(seed_share=0.0, prior_share=0.001, burst_liquidations=1e9, learn_half_life_s=1e12)
    m, true_mix, true_at_risk, true_near = _known_stream(learning)
    learned = m.tier_weights("long")
    assert learned[1:] == pytest.approx(true_mix[1:], abs=0.05)
    assert learned[0] == pytest.approx(true_mix[0], rel=0.4)  # 10x: levels 950 bps away, seldom crossed
    price = m._last_price
    r = m.readout(price, 6001.0)
    assert r.long_total_usd / price == pytest.approx(true_at_risk, rel=0.3)

    def near(r) -> float:
        return float(r.long_usd[(r.prices < price) & (r.prices >= price * 0.98)].sum()) / price

    assert near(r) == pytest.approx(true_near, rel=0.3)
    fixed = MapLearning(seed_share=0.0, burst_liquidations=1e9, tilt_sd=1e-9, scale_sd=1e-9)
    m, _, _, _ = _known_stream(fixed)
    assert m.tier_weights("long") == pytest.approx([0.4, 0.3, 0.2, 0.1])  # nothing learned: the prior
    assert near(m.readout(price, 6001.0)) / true_near > 1.5


def test_learning_skips_bursts():
    """A step that consumes more than ``burst_liquidations`` typical reports teaches nothing."""
    m = _opened_at_100(MapLearning(seed_share=0.0, burst_liquidations=3.0))
    for i in range(5):  # typical report: 100 (quote)
        m.learn_liquidation(98.5, 100.0, "long", 1.5 + 0.1 * i)
    m.learn_mark(98.4, 2.0)  # consumes 0.5 * 9850 = 4925 > 3 * 100: a burst
    assert m.tier_weights("long") == pytest.approx([0.5, 0.5])


def test_seed_from_first_open_interest_known_answer():
    """``seed_share`` of the first OI per side, Laplace entries around the price; crossed levels left out."""
    learning = MapLearning(seed_share=0.1, seed_spread_bps=50.0)
    m = EstimatedLiquidationMap(leverage=[(10.0, 1.0)], mmr=0.0, range_pct=20, half_life_s=1e12, learning=learning)
    m.learn_oi(1000.0, 0.0, price=100.0)
    r = m.readout(100.0, 0.0)
    # 100 BTC per side at entries 100 * exp(z * 50 bps), z = -4..4 by 0.25, Laplace weights
    z = np.linspace(-4, 4, 33)
    w = np.exp(-math.sqrt(2) * np.abs(z)) / np.exp(-math.sqrt(2) * np.abs(z)).sum()
    mean_entry = float((w * 100.0 * np.exp(z * 50e-4)).sum())
    assert r.long_total_usd == pytest.approx(100 * 0.9 * mean_entry, rel=1e-12)
    assert r.short_total_usd == pytest.approx(100 * 1.1 * mean_entry, rel=1e-12)
    # a 100x tier: entries above ~100.5 would already be liquidated; those levels are not seeded
    m = EstimatedLiquidationMap(leverage=[(100.0, 1.0)], mmr=0.005, range_pct=20, half_life_s=1e12, learning=learning)
    m.learn_oi(1000.0, 0.0, price=100.0)
    entries = 100.0 * np.exp(z * 50e-4)
    kept = np.array([bucket(e * 0.995) < bucket(100.0) for e in entries])
    assert 0 < kept.sum() < kept.size
    expected = float((100 * w * entries * 0.995)[kept].sum())
    assert m.readout(100.0, 0.0).long_total_usd == pytest.approx(expected, rel=1e-12)
    assert m.learn_mark(100.0, 0.0) == (0.0, 0.0)  # nothing seeded beyond the price


def test_open_interest_fall_closes_the_maps_own_quantity():
    """OI includes positions the map does not hold: a fall of 5 closes 5 of the map's 20, not 5/1020 of it."""
    m = EstimatedLiquidationMap(leverage=[(10.0, 1.0)], mmr=0.0, range_pct=20, half_life_s=1e12, learning=NO_SEED)
    m.learn_oi(1000.0, 0.0)
    m.learn_trade(100.0, 10.0, "buy")
    m.learn_trade(100.0, 10.0, "sell")
    m.learn_oi(1020.0, 1.0)
    m.learn_oi(1015.0, 2.0)
    r = m.readout(100.0, 2.0)
    assert r.long_total_usd == pytest.approx(0.75 * 10 * 90.0) and r.short_total_usd == pytest.approx(0.75 * 10 * 110.0)


def test_a_quiet_mark_changes_nothing_and_a_report_without_a_crossing_still_teaches():
    """A mark that crosses no level with no report since the last one consumes 0 and learns
    nothing (learn_mark's shortcut); a report is still learned at a mark that crosses nothing."""
    m = _opened_at_100(MapLearning(seed_share=0.0))  # long levels at 98.5 (50x) and 90.5 (10x)
    qty, expected, observed = m._qty.copy(), m._expected.copy(), m._observed.copy()
    assert m.learn_mark(99.0, 1.0) == (0.0, 0.0)  # at the time of the last OI: nothing decays either
    assert (m._qty == qty).all() and (m._expected == expected).all() and (m._observed == observed).all()
    assert m.tier_weights("long").tolist() == [0.5, 0.5]
    m.learn_liquidation(98.5, 100.0, "long", 1.0)  # matched to the 50x levels, all attributed to that tier
    assert m.learn_mark(99.0, 1.0) == (0.0, 0.0)  # crosses nothing, but the report counts
    assert m._observed[0].tolist() == pytest.approx([0.0, 100.0])
    low, high = m.tier_weights("long").tolist()
    assert high > 0.5 and low <= 0.5


def test_grid_add_rows_equals_one_add_per_grid():
    """``add_rows`` leaves every grid as its own ``add`` does, bad input (a row with a NaN or a
    negative price) included."""
    rng = np.random.default_rng(24)
    for bad in (False, True):
        rows, grids, reference = 5, [], []
        for _ in range(rows):
            grids.append(DecayingLogGrid(10.0, 60.0))
            reference.append(DecayingLogGrid(10.0, 60.0))
        for step in range(40):
            t = 10.0 * step
            prices = 100 * np.exp(rng.normal(0, 0.02, (rows, 3)))
            values = rng.exponential(1e4, (rows, 3))
            if bad and step % 9 == 0:
                prices[1, 2], values[3, 0] = -1.0, math.nan
            add_rows(grids, prices, values, t)
            for grid, p, x in zip(reference, prices, values, strict=True):
                grid.add(p, x, t)
        for a, b in zip(grids, reference, strict=True):
            assert np.array_equal(a._v, b._v) and (a._k0, a._lo, a._hi, a._t_ref) == (b._k0, b._lo, b._hi, b._t_ref)


def test_grid_add_weighted_sum_equals_one_call_per_grid():
    """``add_weighted_sum`` adds what each grid's ``add_weighted_values`` adds, in the same order, bit
    for bit: grids with other reference times (a deposit in a later epoch), another half-life, no
    decay, an empty grid, a zero, a negative and an infinite weight, windows across the edges."""
    rng = np.random.default_rng(7)
    span = EPOCH_HALF_LIVES * 60.0
    grids = [DecayingLogGrid(10.0, 60.0) for _ in range(4)] + [DecayingLogGrid(10.0, 30.0), DecayingLogGrid(10.0, None)]
    grids.append(DecayingLogGrid(10.0, 60.0))  # stays empty
    for i, grid in enumerate(grids[:-1]):
        grid.add(100 * np.exp(rng.normal(0, 0.01, 30)), rng.exponential(1e4, 30), 5.0)
        if i == 1:  # a later epoch: this grid's reference time moves, the others' stay
            grid.add_one(100.0, 7.0, span + 1.0)
    k = grids[0].bucket_of_one(100.0)
    assert len({g._t_ref for g in grids[:4]}) == 2
    for weights in ([0.3, 0.2, 0.1, 0.4, 0.5, 0.6, 0.7], [0.0, -1.0, 0.5, 0.25, 0.0, 2.0, 1.0], [math.inf] + [0.1] * 6):
        for k_lo, k_hi in ((k - 40, k + 40), (k - 3, k + 2), (k + 30, k + 60), (k - 200, k - 100)):
            t = span + 50.0
            expected = np.zeros(k_hi - k_lo + 1)
            with np.errstate(invalid="ignore"):  # an infinite weight times an empty bucket
                for w, grid in zip(weights, grids, strict=True):
                    if w > 0:
                        grid.add_weighted_values(k_lo, k_hi, t, w, expected)
                got = add_weighted_sum(grids, weights, k_lo, k_hi, t, np.zeros(k_hi - k_lo + 1))
            assert got.tobytes() == expected.tobytes()


def test_dense_clusters_are_the_nearest_and_the_next_cluster():
    """``dense_clusters`` answers what ``nearest_dense_cluster`` and then ``next_dense_cluster``
    beyond it answer, the same floats: on random grids with empty, NaN and negative buckets, every
    window and multiple; and a map's readout carries them (``next_cluster``)."""
    rng = np.random.default_rng(11)
    found_next = 0
    for _ in range(2000):
        n = int(rng.integers(0, 40))
        centers = np.sort(rng.random(n) * 20 + 90)
        x = rng.random(n) * 10.0 ** rng.integers(0, 6, n)
        x[rng.random(n) < 0.4] = 0.0
        if n and rng.random() < 0.1:
            x[rng.integers(0, n)] = math.nan if rng.random() < 0.5 else -5.0
        direction = "down" if rng.random() < 0.5 else "up"
        rule = (int(rng.integers(1, 8)), float(rng.random() * 3), float(rng.random() * 100))
        nearest = nearest_dense_cluster(centers, x, 100.0, direction, *rule)
        after = next_dense_cluster(centers, x, nearest, *rule) if nearest is not None else None
        assert dense_clusters(centers, x, 100.0, direction, *rule) == (nearest, after)
        found_next += after is not None
    assert found_next > 100
    # seeded positions around 100: the 20x-25x levels near 96 and 104 are the nearest clusters at a
    # multiple of one, the 10x levels near 90.5 and 109.5 the next ones
    m = EstimatedLiquidationMap(dense_multiple=1.0, learning=MapLearning(seed_share=0.5))
    m.learn_oi(1000.0, 0.0, 100.0)
    r = m.readout(100.0, 1.0)
    for d, x, nearest, after in (("down", r.long_usd, 95.8, 90.5), ("up", r.short_usd, 104.1, 109.5)):
        assert (round(r.cluster(d).price, 1), round(r.next_cluster(d).price, 1)) == (nearest, after)
        assert r.next_cluster(d) == next_dense_cluster(r.prices, x, r.cluster(d), m.cluster_buckets, m.dense_multiple)
        # the levels come from the same pass: the side's buckets holding notional, prices ascending
        keep = (x > 0) & ((r.prices < 100.0) if d == "down" else (r.prices > 100.0))
        assert r.levels(d).tolist() == np.column_stack((r.prices[keep], x[keep])).tolist()
        assert len(r.levels(d)) > 20 and not r.levels(d).flags.writeable


def test_dense_cluster_run_up_to_the_last_level():
    """A run of dense levels that goes on to the farthest level ends there: two levels above the
    price, both dense with a window of one at the mean (5 each), the cluster holds both."""
    c = np.array([99.0, 101.0, 102.0])
    x = np.array([3.0, 5.0, 5.0])
    cluster = nearest_dense_cluster(c, x, 100.0, "up", window=1, dense_multiple=1.0)
    assert cluster is not None
    assert (cluster.price, cluster.notional_usd, cluster.lo_price, cluster.hi_price) == (101.5, 10.0, 101.0, 102.0)
    x[2] = 4.0  # now only the nearer one reaches the mean of 4.5
    cluster = nearest_dense_cluster(c, x, 100.0, "up", window=1, dense_multiple=1.0)
    assert (cluster.price, cluster.notional_usd) == (101.0, 5.0)


def test_dense_cluster_with_fewer_levels_than_the_window():
    """Two levels below the price (the empty bucket 97 is none), a window of five (np.convolve
    swaps its inputs): every window holds all 10, the mean level 5, so both are dense at
    ``10 >= dense_multiple * 5 * 5`` only up to ``dense_multiple`` 0.4 (0.5 would do were 97 a
    level, with a mean of 10 / 3); the run covers them, the cluster is their notional-weighted
    centre, (99 * 1 + 98 * 9) / 10."""
    c = np.array([97.0, 98.0, 99.0, 101.0, 102.0])
    x = np.array([0.0, 9.0, 1.0, 0.0, 0.0])
    assert nearest_dense_cluster(c, x, 100.0, "down", window=5, dense_multiple=0.5) is None
    cluster = nearest_dense_cluster(c, x, 100.0, "down", window=5, dense_multiple=0.4)
    assert cluster is not None
    assert (cluster.price, cluster.notional_usd, cluster.lo_price, cluster.hi_price) == (98.1, 10.0, 98.0, 99.0)
    assert nearest_dense_cluster(c, x, math.nan, "down", window=1) is None  # no centre is below NaN
    assert nearest_dense_cluster(c, x, 96.0, "down", window=1) is None  # none below the first centre


def test_readout_levels_and_totals_leave_out_the_bucket_at_the_price():
    """A centre equal to the price is on neither side: not in ``levels`` nor in the totals."""
    m = EstimatedLiquidationMap(learning=NO_SEED)
    k = m._levels[0][0].bucket_of_one(100.0)
    centers = m._centers(k - 2, k + 2)
    price = float(centers[2])  # exactly the centre of bucket k
    usd = np.array([1.0, 0.0, 4.0, 8.0, 16.0])
    readout = m._readout(price, 0.0, k - 2, k + 2, usd, usd, 0.0, 0.0)
    assert (readout.long_total_usd, readout.short_total_usd) == (1.0, 24.0)
    assert readout.levels("down").tolist() == [[float(centers[0]), 1.0]]  # the empty bucket left out too
    assert readout.levels("up").tolist() == [[float(centers[3]), 8.0], [float(centers[4]), 16.0]]


def test_a_bucket_under_one_lot_is_no_level():
    """One 10x long of 10 BTC at 100: its level, 905 USD at 90.5, is one bucket (centre within
    5 bps of 90.5). With a lot of 9.9 BTC (about 896 USD there) it is a level and, the only one,
    the cluster at ``dense_multiple`` 0.2; with a lot of 10.1 BTC (about 914 USD) it is dust: no
    level, no notional at risk, no cluster."""
    m = EstimatedLiquidationMap(leverage=[(10, 1.0)], mmr=0.005, range_pct=15, dense_multiple=0.2, learning=NO_SEED)
    m.learn_oi(1000.0, t=0.0)
    m.learn_trade(100.0, 10.0, "buy")
    m.learn_oi(1010.0, t=1.0)
    m.lot_qty = 9.9
    r = m.readout(price=100.0, t=1.0)
    assert r.long_total_usd == pytest.approx(905.0) and r.cluster_down.notional_usd == pytest.approx(905.0)
    assert m.levels("down", 100.0, 1.0)[:, 1].tolist() == pytest.approx([905.0])
    m.lot_qty = 10.1
    r = m.readout(price=100.0, t=1.0)
    assert (r.long_total_usd, r.cluster_down, r.levels("down").size) == (0.0, None, 0)
    assert m.levels("down", 100.0, 1.0).size == 0
