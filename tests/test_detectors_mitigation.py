"""Mitigation readouts (``detectors/mitigation.py``) against answers computed by hand."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cascadewatch.detectors.liqmap_estimated import Cluster
from cascadewatch.detectors.mitigation import (
    CircuitBreaker,
    MarginRule,
    MitigationConfig,
    MitigationMonitor,
    defence_liquidity,
)
from cascadewatch.detectors.policy import AlertPolicy, AssetReadout, DirectionReadout
from cascadewatch.detectors.reach import cascade_reach
from cascadewatch.pipelines.config import load_config

# A move down from 66 to the trigger at 64 (a power of two: the wall's quantity D / 64 is exact).
# Bids (price, BTC): 64 x 100 = 6,400 USD, 63 x 100 = 6,300, 62 x 50 = 3,100, 58 x 1,000 = 58,000.
BIDS = [(64.0, 100.0), (63.0, 100.0), (62.0, 50.0), (58.0, 1000.0)]
# Long levels: 10,000 at the trigger, 8,000 at 63, the next dense cluster (60,000) at 60.
LONGS = [(64.0, 10_000.0), (63.0, 8_000.0), (60.0, 60_000.0)]
# By hand: F(64) - A(64) = 10,000 - 6,400 = 3,600; F(63) - A(63) = 18,000 - 12,700 = 5,300;
# F(62) - A(62) = 18,000 - 15,800 = 2,200 (the minimum: the wall must cover it); the answer is 2,200.


def _walk_with_wall(usd: float, book=BIDS, levels=LONGS, price=66.0, trigger=64.0, direction="down"):
    return cascade_reach(price, [*book, (trigger, usd / trigger)], levels, direction, start_price=trigger)


def test_defence_liquidity_is_the_hand_computed_wall_and_stops_the_walk_exactly_at_the_boundary() -> None:
    d = defence_liquidity(66.0, BIDS, LONGS, "down", trigger=64.0, target=60.0, band_bps=500.0)
    assert (d.usd, d.wall_price, d.stop_price, d.reason) == (2200.0, 64.0, 62.0, None)
    # without a wall the walk sweeps to 58 and triggers the cluster at 60
    bare = cascade_reach(66.0, BIDS, LONGS, "down", start_price=64.0)
    assert (bare.end_price, bare.forced_usd) == (58.0, 78_000.0)
    # with the computed wall it stops at 62, before the cluster
    walled = _walk_with_wall(2200.0)
    assert (walled.end_price, walled.forced_usd, walled.converged) == (62.0, 18_000.0, True)
    # 1 % less does not stop it
    short = _walk_with_wall(0.99 * 2200.0)
    assert (short.end_price, short.forced_usd) == (58.0, 78_000.0)


def test_defence_is_zero_when_the_walk_already_stops_and_none_out_of_band_or_without_target() -> None:
    thick = [(64.0, 100.0), (63.0, 100.0), (62.0, 100.0), (58.0, 1000.0)]  # 62 x 100 = 6,200: A(62) = 18,900
    d = defence_liquidity(66.0, thick, LONGS, "down", trigger=64.0, target=60.0, band_bps=500.0)
    assert (d.usd, d.stop_price) == (0.0, 62.0)
    assert cascade_reach(66.0, thick, LONGS, "down", start_price=64.0).end_price == 62.0
    # the trigger is 303 bps away: a wall within 200 bps sits before it and is eaten by the move there
    assert defence_liquidity(66.0, BIDS, LONGS, "down", 64.0, 60.0, band_bps=200.0).reason == "trigger beyond the band"
    assert defence_liquidity(66.0, BIDS, LONGS, "down", 64.0, None).usd is None
    assert defence_liquidity(66.0, BIDS, LONGS, "down", 64.0, 65.0, band_bps=500.0).reason == (
        "target behind the trigger"
    )


def test_defence_up_is_the_mirror_image() -> None:
    # asks at 64 (6,400 USD), 65 (6,500), 66 (3,300), 70 (70,000); shorts 10,000 at 64, 8,000 at 65,
    # the next dense cluster (60,000) at 68
    asks = [(64.0, 100.0), (65.0, 100.0), (66.0, 50.0), (70.0, 1000.0)]
    shorts = [(64.0, 10_000.0), (65.0, 8_000.0), (68.0, 60_000.0)]
    d = defence_liquidity(62.0, asks, shorts, "up", trigger=64.0, target=68.0, band_bps=500.0)
    # F(66) - A(66) = 18,000 - (6,400 + 6,500 + 3,300) = 1,800
    assert (d.usd, d.wall_price, d.stop_price) == (1800.0, 64.0, 66.0)
    walled = _walk_with_wall(1800.0, asks, shorts, 62.0, 64.0, "up")
    assert walled.end_price == 66.0
    assert _walk_with_wall(0.99 * 1800.0, asks, shorts, 62.0, 64.0, "up").end_price == 70.0


def test_breaker_trips_on_liquidations_at_the_exact_second_and_resets_after_the_halt() -> None:
    cb = CircuitBreaker(band_bps=1e9, window_s=10, liq_usd=1_000.0, halt_s=3)
    states = []
    for s in range(20):
        liq = 300.0 if 5 <= s <= 8 else 0.0  # 300 a second: the window reaches 1,000 at second 8
        states.append(cb.update(float(s), 100.0, liq_down_usd=liq)["down"])
    tripped = [s for s, st in enumerate(states) if st.tripped]
    # held from second 8 while the window (t - 10, t] holds >= 1,000: seconds 8..14 (15 drops second 5);
    # the rule last held at 14, released 3 s later at 17
    assert tripped == list(range(8, 17))
    assert {states[s].since for s in tripped} == {8.0}
    assert states[8].cause == "liquidations"
    assert not cb.readout()["up"].tripped


def test_breaker_up_band_on_a_rise() -> None:
    cb = CircuitBreaker(band_bps=100.0, window_s=5, liq_usd=1e12, halt_s=0)
    out = [cb.update(float(s), p)["up"] for s, p in enumerate([100.0, 100.5, 101.0, 101.0, 101.0, 101.0, 101.0])]
    # 101 / 100 - 1 = 100 bps at second 2; second 6's window [1, 6] starts at 100.5: 49.8 bps, released
    assert [o.tripped for o in out] == [False, False, True, True, True, True, False]
    assert out[2].cause == "price"


def test_margin_formula_floor_cap_and_no_volume() -> None:
    rule = MarginRule(floor=0.001, cap=0.05)
    m = rule.suggest(sigma=2e-4, volume_usd_s=1e5, depth_usd=9e6, size_usd=9e5)
    # tau = 10 + 9e5 / (0.1 * 1e5) = 100 s; 3 * 2e-4 * 10 + 0.01 * 0.1 = 0.007; L* = 1 / 0.014
    assert (m.liq_s, round(m.mmr, 12), round(m.leverage_cap, 6)) == (100.0, 0.007, round(1 / 0.014, 6))
    assert rule.suggest(sigma=1e-2, volume_usd_s=1e5, depth_usd=9e6, size_usd=9e5).mmr == 0.05
    assert rule.suggest(sigma=0.0, volume_usd_s=0.0, depth_usd=0.0, size_usd=0.0).mmr == 0.001
    assert rule.suggest(sigma=1e-4, volume_usd_s=0.0, depth_usd=1e6, size_usd=1e5).liq_s == 600.0


def test_monitor_readout_combines_the_three_for_a_cluster_pair() -> None:
    mm = MitigationMonitor(MitigationConfig(defence_bps=500.0))
    for s in range(120):
        mm.update(float(s), 66.0, 0.0, 0.0, traded_usd=1e4 if s >= 60 else 0.0)
    assert mm.volume_usd_s == 1e4  # the last 60 s only
    trigger = Cluster("down", 64.0, 303.0, 10_000.0, 64.0, 64.0)
    target = Cluster("down", 60.0, 909.1, 60_000.0, 60.0, 60.0)
    r = mm.readout("down", 66.0, BIDS, LONGS, sigma=1e-4, depth_usd=15_800.0, clusters=(trigger, target))
    assert r.defence.usd == 2200.0
    # tau = 10 + 10,000 / 1,000 = 20 s; 3e-4 * sqrt(20) + 0.01 * 10,000 / 15,800 = 0.0076708
    assert r.margin.mmr == pytest.approx(3e-4 * 20**0.5 + 0.01 * 10_000 / 15_800, rel=1e-12)
    # d* = mmr * 1e4 = 76.7 bps: no long level within it (the nearest is 303 bps away)
    assert r.out_of_reach_usd == 0.0
    assert r.breaker.tripped is False


def test_cascade_alerts_carry_the_readouts_last_and_rounded() -> None:
    policy = AlertPolicy(min_hold_s=0, calm_s=0, cooldown_s=0)
    down = DirectionReadout(
        prob=0.7,
        defence_usd=2_200.4,
        margin_mmr=0.00767081,
        leverage_cap=65.1821,
        margin_pushed_usd=1_000_000.6,
        breaker_since=8_000,
    )
    (alert,) = policy.update(AssetReadout(asset="X-USDT", ts=9_000, price=66.0, down=down))
    item = alert.to_dict()
    assert list(item)[-5:] == ["defence_usd", "margin_mmr", "leverage_cap", "margin_pushed_usd", "breaker_since"]
    assert [item[k] for k in list(item)[-5:]] == [2_200.0, 0.007671, 65.18, 1_000_001.0, 8_000]


def test_the_documented_config_loads(tmp_path: Path) -> None:
    doc = (Path(__file__).parents[1] / "docs" / "mitigation.md").read_text()
    example = re.search(r"```toml\n(.*?)```", doc, re.S).group(1)
    (tmp_path / "c.toml").write_text(example)
    config = load_config(tmp_path / "c.toml").detectors.mitigation
    assert config == MitigationConfig()  # the document shows the defaults


def test_breaker_readout_follows_each_update_and_hands_out_a_new_dict() -> None:
    """The states are built once per update: a readout after the trip shows it, and a caller
    changing its dict does not change the next readout."""
    cb = CircuitBreaker(band_bps=1e9, window_s=10, liq_usd=1_000.0, halt_s=3)
    cb.update(0.0, 100.0)
    before = cb.readout()
    assert not before["down"].tripped
    before["down"] = None  # type: ignore[assignment]  # the caller's dict, not the breaker's
    assert cb.readout()["down"] is not None
    cb.update(1.0, 100.0, liq_down_usd=1_000.0)
    after = cb.readout()
    assert (after["down"].tripped, after["down"].since, after["down"].cause) == (True, 1.0, "liquidations")
    assert not after["up"].tripped
