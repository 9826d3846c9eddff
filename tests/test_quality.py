"""``make quality``: the README table from evaluation results (the measurement itself is the make target)."""

from __future__ import annotations

import msgspec
import numpy as np
import pytest

from cascadewatch.pipelines.config import Config
from cascadewatch.pipelines.evaluation.corpus import _collect, make_runs, samples_key
from cascadewatch.pipelines.evaluation.quality import CALM_ROW, HELD_OUT_ROW, map_table, markdown_table
from cascadewatch.pipelines.evaluation.scoring import map_summary_error_runs, score_runs

TRUTH = [
    {"type": "span", "asset": "BTC-USDT", "start": 0, "end": 43_200_000},
    {
        "type": "cascade",
        "asset": "BTC-USDT",
        "direction": "down",
        "start": 1_000_000,
        "peak": 1_030_000,
        "end": 1_060_000,
    },
    {
        "type": "cascade",
        "asset": "BTC-USDT",
        "direction": "up",
        "start": 5_000_000,
        "peak": 5_020_000,
        "end": 5_040_000,
    },
]
ALERTS = [
    # a page 90 s ahead, then a false warning
    {
        "action": "trigger",
        "kind": "cascade",
        "asset": "BTC-USDT",
        "direction": "down",
        "ts": 910_000,
        "severity": "critical",
    },
    {
        "action": "trigger",
        "kind": "cascade",
        "asset": "BTC-USDT",
        "direction": "down",
        "ts": 20_000_000,
        "severity": "warning",
    },
]
SNAPSHOTS = [
    {"type": "snapshot", "asset": "BTC-USDT", "ts": 900_000, "prob_down": 0.5, "prob_up": 0.0},
    {"type": "snapshot", "asset": "BTC-USDT", "ts": 30_000_000, "prob_down": 0.0, "prob_up": 0.0},
]


def test_markdown_table_of_known_results():
    result = score_runs([(ALERTS, SNAPSHOTS, TRUTH)])
    table = markdown_table({"long-squeeze (left out)": result}).splitlines()
    assert table[0].startswith("| evaluated on | cascades | caught | recall | lead median (s) | lead p10 (s) |")
    # 2 cascades, 1 caught 90 s ahead by a page; 1 false alarm (a warning, no false page) in half a
    # day; Brier: down (0.5 - 1)^2 / 2 = 0.125 against base rate 0.5 (0.25), up 0 against 0 (no
    # start within 300 s of a snapshot)
    assert table[2] == (
        "| long-squeeze (left out) | 2 | 1 | 0.50 | 90 | 90 | 1 | 0.50 | 2.0 | 90 | 0.0 "
        "| 0.0625 (0.1875) · 0.1250 (0.2500) · 0.0000 (0.0000) |"
    )


def test_map_table_of_a_known_map():
    """True longs: 1,000 USD every 0.1 from 96.0 to 99.9 and 1M at 97.0 (the nearest dense
    cluster, 300 bps below 100), no shorts. The estimate: twice the true at-risk notional
    (log2 ratio 1), a cluster 320 bps below (20 bps off) and one above where the truth has none
    (spurious); the up side's ratio is not comparable (no true shorts). No calm-day line is
    comparable: dashes."""
    prices = [round(96.0 + 0.1 * i, 1) for i in range(40)]
    longs = [[p, 1_000_000.0 if p == 97.0 else 1_000.0] for p in prices]
    truth = [{"type": "levels", "ts": 60_000, "asset": "BTC-USDT", "price": 100.0, "long": longs, "short": []}]
    at_risk = 2 * sum(u for _, u in longs)
    snapshot = {
        "type": "snapshot",
        "asset": "BTC-USDT",
        "ts": 59_000,
        "down": {"at_risk_usd": at_risk, "cluster_bps": 320.0},
        "up": {"at_risk_usd": 5e6, "cluster_bps": 150.0},
    }
    pooled = map_summary_error_runs([([snapshot], truth)])
    results = {
        HELD_OUT_ROW: {"families": {"long-squeeze": {"map_pooled": pooled}}, "map_pooled": pooled},
        CALM_ROW: {"map_pooled": map_summary_error_runs([([snapshot], [])])},
    }
    assert map_table(results).splitlines()[2:] == [
        "| long-squeeze (seeds 101, 102, 103) | 2 | 1.00 | 20 | 20 | 1 | 0 |",
        "| all families (seeds 101, 102, 103) | 2 | 1.00 | 20 | 20 | 1 | 0 |",
        "| held-out calm days | 0 | – | – | – | 0 | 0 |",
    ]


def test_kept_samples_are_used_only_under_their_key(tmp_path):
    """A samples file beside a recording is used when its key is the current one (no replay: the
    recording need not even exist); under another key the run is replayed (here: it is missing)."""
    run = make_runs(tmp_path, ["long-squeeze"], [7])[0]
    features = ("depth_ratio", "trickle_60")
    config_bytes = msgspec.json.encode(Config())
    key = samples_key(features, config_bytes)
    X, y = np.arange(6.0).reshape(3, 2), np.array([False, True, False])
    np.savez(tmp_path / "long-squeeze-7.samples.npz", key=np.array(key), X=X, y=y, cascades=np.array(1))
    kept = _collect((run, features, config_bytes, key))
    assert kept.X.tolist() == X.tolist() and kept.y.tolist() == [False, True, False] and kept.cascades == 1
    assert samples_key(features[:1], config_bytes) != key and samples_key(features, config_bytes + b" ") != key
    with pytest.raises(FileNotFoundError, match="long-squeeze-7.rec.zst"):
        _collect((run, features, config_bytes, samples_key(features[:1], config_bytes)))
