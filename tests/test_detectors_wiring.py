"""All detectors composed per asset-second, as the dataflow wires them (a reference for the
integrator and a smoke test of the chain): longs pile up with leverage above a thin bid book,
the structural probability of a down cascade rises above the up one, then the price breaks,
the mark consumes the levels, liquidations self-excite, the regime says liquidation-driven
and the policy pages, escalates and later resolves."""

from __future__ import annotations

import math

import numpy as np

from cascadewatch.detectors import (
    AlertPolicy,
    AssetReadout,
    CascadeProbability,
    DepthMonitor,
    DirectionReadout,
    EstimatedLiquidationMap,
    HawkesEstimator,
    MapLearning,
    ObservedLiquidationMap,
    RealizedVolatility,
    RegimeDetector,
    cascade_features,
    structural_estimate,
)

HORIZON = 300.0


class AssetDetectors:
    """One asset on one venue: what the stateful step of the flow holds."""

    def __init__(self) -> None:
        self.est = EstimatedLiquidationMap(
            leverage=[(25.0, 0.5), (100.0, 0.5)],
            mmr=0.005,
            range_pct=5,
            dense_multiple=3.0,
            min_cluster_usd=1e5,
            learning=MapLearning(seed_share=0.0),
        )
        self.obs = ObservedLiquidationMap(half_life_s=300)
        self.depth = DepthMonitor(window_s=120, min_samples=10)
        self.vol = RealizedVolatility(half_life_s=120, sigma0=1e-4)
        self.hawkes = HawkesEstimator(beta=0.5, window_s=600)
        self.regime = RegimeDetector(window_s=30, min_liq_usd=2e5, min_move_bps=30)
        self.prob = {d: CascadeProbability(horizon_s=HORIZON) for d in ("down", "up")}
        self.policy = AlertPolicy(
            warn_enter=0.2, warn_exit=0.1, crit_enter=0.6, min_hold_s=30, calm_s=30, cooldown_s=300
        )
        self.liq60 = {"down": [], "up": []}

    def second(self, t: int, trades, oi, mark, bids, asks, liqs) -> tuple[AssetReadout, list[dict]]:
        """Feed the events of second ``t`` (already batched), then read out at its end."""
        p, q, is_buy = trades
        self.est.learn_trades(p, q, is_buy)
        self.vol.learn_many(p, np.full(p.size, t + 0.5))
        for price, notional, side in liqs:
            self.est.learn_liquidation(price, notional, side, t + 0.5)
        if oi is not None:
            self.est.learn_oi(oi, t + 0.9)
        self.est.learn_mark(mark, t + 0.9)
        liq_long = liq_short = 0.0
        for price, notional, side in liqs:
            self.obs.learn_one(price, notional, side, t + 0.5)
            self.hawkes.learn_one(t + 0.5)
            liq_long += notional if side == "long" else 0.0
            liq_short += notional if side == "short" else 0.0
        end = t + 1.0
        self.hawkes.advance(end)
        price = float(p[-1])
        dep = self.depth.update(bids, asks, end - 1e-6)
        hk = self.hawkes.readout(end)
        reg = self.regime.update(
            float(t),
            price,
            liq_long,
            liq_short,
            float((p * q)[is_buy].sum()),
            float((p * q)[~is_buy].sum()),
            dep.bid_ratio[-1],
            dep.ask_ratio[-1],
        )
        emap = self.est.readout(price, end)
        dirs = {}
        for d, book, depth_usd, ratio, liq in (
            ("down", bids, dep.bid_usd[-1], dep.bid_ratio[-1], liq_long),
            ("up", asks, dep.ask_usd[-1], dep.ask_ratio[-1], liq_short),
        ):
            self.liq60[d] = (self.liq60[d] + [liq])[-60:]
            cl = emap.cluster(d)
            se = structural_estimate(d, price, cl, self.vol.sigma, HORIZON, book, emap.levels(d), depth_usd)
            x = cascade_features(
                p_struct=se.p,
                p_touch=se.p_touch,
                p_carry=se.p_carry,
                distance_bps=cl.distance_bps if cl else None,
                cluster_usd=cl.notional_usd if cl else 0.0,
                forced_usd=se.reach.forced_usd,
                depth_usd=depth_usd,
                depth_ratio=ratio,
                branching=hk.branching,
                intensity=hk.intensity,
                liq_usd_60s=sum(self.liq60[d]),
                sigma=self.vol.sigma,
                horizon_s=HORIZON,
                in_cascade=reg[d].active,
            )
            prob = self.prob[d].observe(float(t), x, se.p)
            self.prob[d].advance(float(t))
            dirs[d] = DirectionReadout(
                prob=prob,
                cascade=reg[d].kind,
                cluster_price=cl.price if cl else None,
                cluster_bps=cl.distance_bps if cl else None,
                cluster_usd=cl.notional_usd if cl else 0.0,
                at_risk_usd=emap.long_total_usd if d == "down" else emap.short_total_usd,
                depth_usd=float(depth_usd),
                depth_ratio=None if math.isnan(ratio) else float(ratio),
                reach_usd=se.reach.forced_usd,
                reach_bps=se.reach.travel_bps,
                liq_usd_60s=sum(self.liq60[d]),
            )
        r = AssetReadout(
            asset="BTC-USDT",
            ts=t * 1000,
            price=price,
            venues=("binance-usdm",),
            branching=hk.branching,
            horizon_s=int(HORIZON),
            **dirs,
        )
        return r, self.policy.update(r)


def book(price: float, thin: float = 1.0):
    ticks = np.arange(1, 201) * 0.01
    bids = np.c_[price - ticks, np.full(200, 40.0 * thin)]
    asks = np.c_[price + ticks, np.full(200, 40.0)]
    return bids, asks


def test_chain_from_positions_to_pages():
    rng = np.random.default_rng(4)
    a = AssetDetectors()
    oi = 50_000.0
    price = 100.0
    readouts, alerts = [], []
    # 10 minutes of leveraged longs opening on aggressive buys around 100
    for t in range(600):
        price *= math.exp(rng.normal(0, 2e-4))
        p = price * np.exp(rng.normal(0, 2e-5, 20))
        q = rng.exponential(5.0, 20)
        is_buy = rng.uniform(size=20) < 0.8
        oi += float(q[is_buy].sum()) * 0.9
        r, al = a.second(t, (p, q, is_buy), oi, price, *book(price), [])
        readouts.append(r)
        alerts += al
    calm = readouts[-1]
    assert calm.down.cluster_price is not None and calm.down.cluster_usd > 5e5
    assert 20 < calm.down.cluster_bps < 100  # 100x longs at entry * 0.995
    assert calm.down.prob > calm.up.prob
    # the break: sellers push the price through the 50x cluster; the book thins; longs are liquidated
    for i, t in enumerate(range(600, 660)):
        price *= math.exp(-8e-4)
        p = price * np.exp(rng.normal(0, 2e-5, 20))
        q = rng.exponential(5.0, 20)
        is_buy = rng.uniform(size=20) < 0.1
        liqs = [(price, 1e5, "long")] * (3 if i > 5 else 0)
        r, al = a.second(t, (p, q, is_buy), None, price, *book(price, thin=0.3), liqs)
        readouts.append(r)
        alerts += al
    assert a.est.consumed_long_usd > 1e6  # the mark went through the estimated levels
    assert readouts[-1].down.cascade == "liquidation"
    assert readouts[-1].branching > 0.3
    assert any(
        a_["severity"] == "critical" and a_["action"] == "trigger" and a_["direction"] == "down" for a_ in alerts
    )
    # calm again: everything resolves
    for t in range(660, 1300):
        p = np.full(5, price)
        r, al = a.second(t, (p, np.ones(5), np.arange(5) % 2 == 0), None, price, *book(price), [])
        alerts += al
    opened = {a_["dedup_key"] for a_ in alerts if a_["action"] == "trigger"}
    resolved = {a_["dedup_key"] for a_ in alerts if a_["action"] == "resolve"}
    assert opened == resolved and a.policy.open_incidents() == {}
