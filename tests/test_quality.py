"""``make quality``: the README table from evaluation results (the measurement itself is the make target)."""

from __future__ import annotations

import msgspec
import numpy as np
import pytest

from cascadewatch.pipelines.config import Config
from cascadewatch.pipelines.evaluation.corpus import _collect, make_runs, samples_key
from cascadewatch.pipelines.evaluation.quality import markdown_table
from cascadewatch.pipelines.evaluation.scoring import score_runs

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
