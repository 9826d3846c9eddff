"""Known-answer tests of the cascade label (detectors/labels.py)."""

from __future__ import annotations

import pickle

import pytest

from cascadewatch.detectors.labels import (
    CascadeLabeler,
    LabelConfig,
    label_rows,
    label_series,
)

T0 = 1_768_435_200_000  # 2026-01-15T00:00:00Z, minute-aligned
CFG = LabelConfig(floor_usd=1_000_000.0, min_move_bps=50.0, window_s=60, merge_gap_s=60)


def series(n: int, price: float = 100.0):
    return [T0 + 1000 * i for i in range(n)], [price] * n, [0.0] * n, [0.0] * n


def secs(ms: int) -> int:
    return (ms - T0) // 1000


def test_hand_made_down_cascade_start_peak_end():
    ts, price, fl, fs = series(400)
    fl[50] = 20_000.0  # a stray small liquidation inside the first window: trimmed
    for i, usd in zip(
        range(100, 110), [100e3, 200e3, 300e3, 400e3, 300e3, 200e3, 100e3, 50e3, 30e3, 20e3], strict=True
    ):
        fl[i] = usd
    # price: flat at 100, falls 1 bps/s... from 100 to a low of 98.5 at second 106, then recovers to 99
    for i in range(100, 400):
        price[i] = max(100.0 - 0.25 * (i - 99), 98.5) if i <= 106 else 99.0
    got = label_series(ts, price, fl, fs, asset="BTC-USDT", config=CFG)
    assert len(got) == 1
    c = got[0]
    assert c["type"] == "cascade" and c["asset"] == "BTC-USDT" and c["direction"] == "down"
    # threshold 1M (floor), onset needs 100k in 10 s. First active second: 103 (1.02M).
    # The stray 20k at 50 has only 20k in [50, 60): not an onset; 100 has 1.7M in [100, 110).
    assert secs(c["start"]) == 100
    # last active second: 162 (the window (102, 162] still holds 1.1M); the last liquidation
    # in it with >= 100k over the 10 s up to it is the 20k at 109 ((99, 109] holds 1.7M)
    assert secs(c["end"]) == 109
    assert secs(c["peak"]) == 105  # the low 98.5 is first reached at 105
    assert c["forced_notional"] == pytest.approx(1_700_000.0)  # 100..109
    assert c["move_bps"] == pytest.approx(150.0)  # from 100 (close of second 99) to 98.5
    assert list(c) == ["type", "asset", "direction", "start", "peak", "end", "forced_notional", "move_bps"]


def test_up_cascade_uses_short_liquidations_and_rising_price():
    ts, price, fl, fs = series(300)
    for i in range(60, 64):
        fs[i] = 400_000.0
        price[i] = 100.0 + 0.3 * (i - 59)
    for i in range(64, 300):
        price[i] = 101.0
    # long liquidations of the same size but no falling price: no down cascade
    for i in range(150, 154):
        fl[i] = 400_000.0
    got = label_series(ts, price, fl, fs, asset="X", config=CFG)
    assert [(c["direction"], secs(c["start"]), secs(c["peak"]), secs(c["end"])) for c in got] == [("up", 60, 63, 63)]
    assert got[0]["move_bps"] == pytest.approx(120.0)
    assert got[0]["forced_notional"] == pytest.approx(1_600_000.0)


def test_forced_flow_without_move_is_not_a_cascade():
    ts, price, fl, fs = series(300)
    for i in range(100, 110):
        fl[i] = 500_000.0
        price[i] = 99.8  # only -20 bps
    assert label_series(ts, price, fl, fs, asset="X", config=CFG) == []


def test_below_floor_is_not_a_cascade():
    ts, price, fl, fs = series(300)
    for i in range(100, 109):
        fl[i] = 100_000.0  # 0.9M < 1M floor
        price[i] = 95.0
    for i in range(109, 300):
        price[i] = 95.0
    assert label_series(ts, price, fl, fs, asset="X", config=CFG) == []


def test_bursts_merge_within_gap_and_split_beyond():
    def run(gap_s: int):
        n = 200 + gap_s + 200
        ts, price, fl, fs = series(n)
        p = 100.0
        for i in range(n):
            if 100 <= i < 103 or 103 + gap_s <= i < 106 + gap_s:
                p -= 0.4
            price[i] = p
        for i in list(range(100, 103)) + list(range(103 + gap_s, 106 + gap_s)):
            fl[i] = 400_000.0
        return label_series(ts, price, fl, fs, asset="X", config=CFG)

    # second burst starts 100 s after the first; the first is active until 159 (window) so the
    # inactive gap is < 60 s: one cascade spanning both bursts
    merged = run(100)
    assert [(secs(c["start"]), secs(c["end"])) for c in merged] == [(100, 205)]
    assert merged[0]["forced_notional"] == pytest.approx(2_400_000.0)
    # 300 s apart: inactive for more than 60 s in between: two cascades
    split = run(300)
    assert [(secs(c["start"]), secs(c["end"])) for c in split] == [(100, 102), (403, 405)]


def test_online_emits_after_merge_gap_and_matches_offline():
    ts, price, fl, fs = series(400)
    for i in range(100, 105):
        fl[i] = 300_000.0
    for i in range(100, 400):
        price[i] = 99.0
    labeler = CascadeLabeler("X", CFG)
    emitted_at = []
    online = []
    for row in zip(ts, price, fl, fs, strict=True):
        got = labeler.update(*row)
        if got:
            emitted_at.append(secs(row[0]))
            online.extend(got)
    online.extend(labeler.flush())
    # F >= 1M from 103 until 160 (the window (100, 160] still holds 1.2M); closed 60 s later
    assert emitted_at == [220]
    assert online == label_series(ts, price, fl, fs, asset="X", config=CFG)
    assert secs(online[0]["start"]) == 100 and secs(online[0]["end"]) == 104


def test_typical_minute_raises_the_threshold():
    cfg = LabelConfig(floor_usd=100_000.0, k_typical=10.0, min_baseline_minutes=5, baseline_minutes=60, min_move_bps=10)
    n = 60 * 30
    ts, price, fl, fs = series(n)
    for i in range(0, n, 10):
        fl[i] = 5_000.0  # 30k per minute: typical minute 30k -> threshold 300k
    for i in range(1500, 1504):
        fl[i] = 50_000.0  # +200k in a window that holds ~30k: below 300k
        price[i] = 99.0
    for i in range(1504, n):
        price[i] = 99.0
    assert label_series(ts, price, fl, fs, asset="X", config=cfg) == []
    labeler = CascadeLabeler("X", cfg)
    for row in zip(ts, price, fl, fs, strict=True):
        labeler.update(*row)
    assert labeler.typical_minute == pytest.approx(30_000.0)
    assert labeler.threshold == pytest.approx(300_000.0)
    # the same burst with the floor only (before the baseline is established) is a cascade,
    # the 5k trickle before it is not part of it ([1490, 1500) holds only 5k), the trickle
    # second 1510 closes it ((1500, 1510] holds 155k >= 10k, rule 5)
    cfg2 = LabelConfig(floor_usd=100_000.0, min_baseline_minutes=1000, min_move_bps=10)
    got = label_series(ts, price, fl, fs, asset="X", config=cfg2)
    assert [(secs(c["start"]), secs(c["peak"]), secs(c["end"])) for c in got] == [(1500, 1500, 1510)]


def test_missing_seconds_are_filled_and_order_enforced():
    rows = [(T0 + 1000 * i, 100.0, 0.0, 0.0) for i in range(100)]
    rows += [(T0 + 1000 * i, 98.0, 600_000.0, 0.0) for i in (100, 102)]  # 101 missing
    rows += [(T0 + 1000 * i, 98.0, 0.0, 0.0) for i in range(103, 300)]
    got = label_rows(rows, asset="X", config=CFG)
    assert [(secs(c["start"]), secs(c["peak"]), secs(c["end"])) for c in got] == [(100, 100, 102)]
    labeler = CascadeLabeler("X", CFG)
    labeler.update(T0, 100.0)
    with pytest.raises(ValueError):
        labeler.update(T0, 100.0)
    with pytest.raises(ValueError):
        labeler.update(T0 + 1500, 100.0)


def test_state_pickles_mid_episode():
    ts, price, fl, fs = series(300)
    for i in range(100, 105):
        fl[i] = 300_000.0
        price[i] = 99.0 - 0.1 * (i - 100)
    for i in range(105, 300):
        price[i] = 98.6
    labeler = CascadeLabeler("X", CFG)
    rows = list(zip(ts, price, fl, fs, strict=True))
    for row in rows[:120]:
        labeler.update(*row)
    clone = pickle.loads(pickle.dumps(labeler))
    a, b = [], []
    for row in rows[120:]:
        a += labeler.update(*row)
        b += clone.update(*row)
    assert a == b and len(a) == 1


def test_config_validation():
    with pytest.raises(ValueError):
        LabelConfig(onset_share=0.0)
    with pytest.raises(ValueError):
        LabelConfig(window_s=0)


def test_docstring_example_runs():
    import doctest

    import cascadewatch.detectors.labels

    assert doctest.testmod(cascadewatch.detectors.labels).failed == 0
