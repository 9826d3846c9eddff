"""Cascade type on hand-made per-second streams."""

from __future__ import annotations

import math

import pytest

from cascadewatch.detectors.regime import RegimeDetector


def detector() -> RegimeDetector:
    return RegimeDetector(
        window_s=10,
        typical_half_life_s=600,
        liq_multiple=5.0,
        min_liq_usd=1e6,
        min_move_bps=30,
        stop_imbalance=0.6,
        aggr_multiple=3.0,
        min_aggr_usd=1e6,
        depth_collapse=0.5,
        onset_share=0.1,
    )


def calm(rd: RegimeDetector, seconds: int = 60) -> None:
    for s in range(seconds):
        st = rd.update(float(s), 100.0, 2e3, 2e3, 1e5, 1e5, 1.0, 1.0)
        assert not st["down"].active and not st["up"].active


def test_liquidation_driven():
    rd = detector()
    calm(rd)
    for i, s in enumerate(range(60, 66)):
        st = rd.update(float(s), 100.0 - 0.12 * (i + 1), 5e5, 0.0, 1e5, 5e5, 0.9, 1.0)
    d = st["down"]
    assert d.active and d.kind == "liquidation" and d.since == 62.0  # 36 bps >= 30 from second 62
    assert d.liq_usd == pytest.approx(6 * 5e5 + 4 * 2e3)  # window of 10 s: 6 cascade + 4 calm seconds
    assert d.move_bps == pytest.approx(72.0, rel=1e-9)
    assert not st["up"].active


def test_stop_run_is_one_sided_aggression_without_liquidations():
    rd = detector()
    calm(rd)
    for i, s in enumerate(range(60, 66)):
        st = rd.update(float(s), 100.0 + 0.1 * (i + 1), 0.0, 0.0, 2e6, 1e5, 1.0, 0.9)
    u = st["up"]
    assert u.active and u.kind == "stop_run"
    assert u.imbalance == pytest.approx(
        (6 * 2e6 + 4 * 1e5 - 6 * 1e5 - 4 * 1e5) / (6 * 2e6 + 4 * 1e5 + 6 * 1e5 + 4 * 1e5)
    )
    assert not st["down"].active


def test_liquidity_when_depth_collapses_before_the_liquidations():
    rd = detector()
    calm(rd)
    rows = [
        (0.3, 0.0),  # 60: bids collapse, no liquidations yet
        (0.3, 0.0),
        (0.3, 6e5),  # 62: liquidations follow
        (0.4, 6e5),
        (0.4, 6e5),
    ]
    for i, (dr, liq) in enumerate(rows):
        st = rd.update(60.0 + i, 100.0 - 0.1 * (i + 1), liq, 0.0, 1e5, 3e5, dr, 1.0)
    assert st["down"].kind == "liquidity" and st["down"].depth_ratio == 0.3
    # the same liquidations with the book collapsing only after them: liquidation-driven
    rd = detector()
    calm(rd)
    rows = [(1.0, 6e5), (1.0, 6e5), (0.3, 6e5), (0.3, 6e5), (0.3, 0.0)]
    for i, (dr, liq) in enumerate(rows):
        st = rd.update(60.0 + i, 100.0 - 0.1 * (i + 1), liq, 0.0, 1e5, 3e5, dr, 1.0)
    assert st["down"].kind == "liquidation"


def test_deleveraging_where_published():
    rd = detector()
    calm(rd)
    for i in range(5):
        st = rd.update(
            60.0 + i, 100.0 - 0.1 * (i + 1), 5e5, 0.0, 1e5, 3e5, 1.0, 1.0, adl_down_usd=1e5 if i == 2 else 0.0
        )
    assert st["down"].kind == "deleveraging"


def test_no_move_no_cascade_and_typical_level_raises_the_bar():
    rd = detector()
    calm(rd)
    for s in range(60, 70):  # heavy liquidations but the price holds: absorbed
        st = rd.update(float(s), 100.0, 5e5, 0.0, 1e5, 5e5, 1.0, 1.0)
    assert not st["down"].active
    # a market where 1e6 per second is normal: the same cascade is not unusual
    rd = detector()
    for s in range(3000):
        rd.update(float(s), 100.0, 5e5, 5e5, 1e5, 1e5, 1.0, 1.0)
    for i, s in enumerate(range(3000, 3006)):
        st = rd.update(float(s), 100.0 - 0.1 * (i + 1), 5e5, 0.0, 1e5, 1e5, 1.0, 1.0)
    assert st["down"].liq_threshold_usd > 5 * 10 * 0.9e6 * 0.99 and not st["down"].active


def test_gaps_and_repeated_seconds():
    rd = detector()
    calm(rd, 20)
    st = rd.update(19.0, 50.0, 1e9, 0.0)  # an older second: ignored
    assert not st["down"].active
    st = rd.update(100.0, 99.0, 0.0, 0.0, 0.0, 0.0)  # after a long gap: the window is refilled with empty seconds
    assert st["down"].liq_usd == 0.0 and st["down"].move_bps == pytest.approx(100.0)
    assert math.isclose(st["down"].depth_ratio, 1.0)


def test_window_sums_are_numpy_column_sums_and_old_state_converts():
    """The doubled column ring gives the same window (oldest first) as the row ring it replaced,
    and a pickled row-ring state (``_buf``) is converted."""
    import pickle

    import numpy as np

    rng = np.random.default_rng(41)
    rd = detector()
    rows = []
    for s in range(200):
        row = [
            rng.exponential(1e5),
            rng.exponential(1e5),
            rng.exponential(1e6),
            rng.exponential(1e6),
            100 + rng.normal(),
            rng.uniform(0.3, 2.0),
            rng.uniform(0.3, 2.0),
            0.0,
            0.0,
        ]
        rows.append(row)
        st = rd.update(float(s), row[4], *row[0:4], *row[5:9])
        w = np.array(rows[-10:])
        assert st["down"].liq_usd == float(w[:, 0].sum()) and st["up"].aggr_usd == float(w[:, 2].sum())
        assert st["down"].depth_ratio == float(np.nanmin(w[:, 5]))
    old = pickle.loads(pickle.dumps(rd))
    cols = old.__dict__.pop("_cols")
    pos = old._pos
    old.__dict__["_buf"] = cols[:, :10].T.copy()  # the row ring: slot i holds row i
    px_before = old.__dict__.pop("_px_before")  # a state from before the cascade's start
    del old.__dict__["onset_s"]
    restored = pickle.loads(pickle.dumps(old))
    assert np.array_equal(restored._cols, cols) and restored._pos == pos
    assert restored.onset_s == 10 and math.isnan(restored._px_before) and math.isfinite(px_before)
    restored._px_before = px_before
    a, b = rd.update(200.0, 99.0, 1e6), restored.update(200.0, 99.0, 1e6)
    assert a == b


def test_a_thin_book_moving_without_liquidations_is_no_cascade():
    """The rebound after a crash: depth collapsed on both sides, the price moves 50 bps, but no
    liquidations of that side reach the threshold: not a liquidity cascade (nor any other)."""
    rd = detector()
    calm(rd)
    for i in range(5):
        st = rd.update(60.0 + i, 100.0 + 0.1 * (i + 1), 0.0, 2e5 if i == 2 else 0.0, 2e5, 2e5, 0.2, 0.2)
    assert st["up"].move_bps >= 30 and st["up"].depth_ratio == 0.2
    assert not st["up"].active and st["up"].kind is None


def test_liquidation_move_is_measured_from_the_cascade_start():
    """A price that fell 40 bps before the longs were liquidated and 10 bps after: the window's
    move is 50 bps, the move from the cascade's start (the label's rule 7: from the second
    before the first dense liquidation) 10 bps, so nothing is in progress until the price
    falls 30 bps from that second."""
    rd = detector()
    for s in range(60):
        rd.update(float(s), 100.0, 0.0, 0.0, 1e5, 1e5, 1.0, 1.0)
    for i in range(5):  # 60-64: the price slides 40 bps, nobody is liquidated
        rd.update(60.0 + i, 100.0 - 0.08 * (i + 1), 0.0, 0.0, 1e5, 3e5, 1.0, 1.0)
    for i in range(5):  # 65-69: 500k of longs a second, the price 10 bps lower
        st = rd.update(65.0 + i, 99.6 - 0.02 * (i + 1), 5e5, 0.0, 1e5, 3e5, 1.0, 1.0)
    d = st["down"]
    assert d.liq_usd == 2.5e6 and not d.active and d.kind is None
    assert d.move_bps == pytest.approx(1e4 * 0.1 / 99.6, rel=1e-9)  # from 99.6 (second 64) to 99.5
    st = rd.update(70.0, 99.2, 5e5, 0.0, 1e5, 3e5, 1.0, 1.0)
    d = st["down"]
    assert d.active and d.kind == "liquidation" and d.since == 70.0
    assert d.move_bps == pytest.approx(1e4 * 0.4 / 99.6, rel=1e-9)


def test_the_start_reference_may_be_the_second_before_the_window():
    """Liquidations in every second of the window: the start is its oldest second and the
    reference price is the second before it, which has left the window (101, a spike)."""
    rd = detector()
    for s in range(59):
        rd.update(float(s), 100.0, 0.0, 0.0, 1e5, 1e5, 1.0, 1.0)
    rd.update(59.0, 101.0, 0.0, 0.0, 1e5, 1e5, 1.0, 1.0)
    for i in range(10):  # 60-69
        st = rd.update(60.0 + i, 100.0 - 0.05 * i, 2e5, 0.0, 1e5, 3e5, 1.0, 1.0)
    d = st["down"]
    assert d.active and d.kind == "liquidation"
    assert d.move_bps == pytest.approx(1e4 * (101.0 - 99.55) / 101.0, rel=1e-9)
    st = rd.update(70.0, 99.5, 2e5, 0.0, 1e5, 3e5, 1.0, 1.0)  # window 61-70, the episode's start still 60
    assert st["down"].move_bps == pytest.approx(1e4 * (101.0 - 99.5) / 101.0, rel=1e-9)
    assert rd.episodes["down"] == (101.0, 99.5)


def test_a_later_wave_counts_from_its_own_start():
    """Short liquidations lift the price to 100.8 (wave one, 55-56), a last one comes at the top
    (64), the window's liquidations fall under the threshold (65: the episode ends), the price
    falls back to 100.2, and a second wave lifts it to 100.75 (70-73). At 73 the window's first
    start is 64 (after 100.8), so is the new episode's (L again from 71): 0 bps from there; from
    the second wave's own start (70, after 100.2) 54.9 bps: a cascade in progress."""
    rd = detector()
    for s in range(55):
        rd.update(float(s), 100.0, 0.0, 0.0, 1e5, 1e5, 1.0, 1.0)
    script = {55: (100.3, 6e5), 56: (100.6, 6e5)} | {s: (100.8, 0.0) for s in range(57, 64)}
    script |= {64: (100.8, 2e5)} | {s: (100.2, 0.0) for s in range(65, 70)}
    script |= {70: (100.4, 6e5), 71: (100.6, 6e5), 72: (100.7, 6e5), 73: (100.75, 6e5)}
    active = []
    for s, (price, liq) in script.items():
        st = rd.update(float(s), price, 0.0, liq, 3e5, 1e5, 1.0, 1.0)
        active.append(st["up"].active)
    assert active == [False] + [True] * 9 + [False] * 6 + [True] * 3  # 56-64 (wave one), 71-73
    u = st["up"]
    assert u.liq_usd == 2.6e6 and u.kind == "liquidation" and u.since == 71.0
    assert u.move_bps == pytest.approx(1e4 * (100.75 - 100.2) / 100.2, rel=1e-9)
    assert rd.episodes["up"] == (100.8, 100.8)


def test_a_slow_cascade_counts_its_move_from_the_episode_start():
    """200k USD of longs a second from 60 on, the price 1.3 bps lower each second: the window
    (10 s) never holds more than 13 bps of it, but from the episode's start (60, after the
    price of 59: 100) the fall reaches 31.2 bps at 83 (29.9 at 82), as the label counts it."""
    rd = detector()

    def price(s: int) -> float:
        return 100.0 * (1 - 1.3e-4 * max(s - 59, 0))

    for s in range(83):
        st = rd.update(float(s), price(s), 2e5 if s >= 60 else 0.0, 0.0, 1e5, 3e5, 1.0, 1.0)
        assert not st["down"].active
    assert st["down"].move_bps == pytest.approx(1e4 * (100.0 - price(82)) / 100.0, rel=1e-9)
    st = rd.update(83.0, price(83), 2e5, 0.0, 1e5, 3e5, 1.0, 1.0)
    d = st["down"]
    assert d.active and d.kind == "liquidation" and d.since == 83.0
    assert d.move_bps == pytest.approx(1e4 * (100.0 - price(83)) / 100.0, rel=1e-9)
    assert rd.episodes["down"] == (100.0, price(83)) and rd.episodes["up"] is None
    for s in range(84, 94):  # the liquidations stop: L ends with them, and so does the episode
        st = rd.update(float(s), price(83), 0.0, 0.0, 1e5, 1e5, 1.0, 1.0)
    assert not st["down"].active and rd.episodes["down"] is None
