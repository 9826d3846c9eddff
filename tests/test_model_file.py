"""The model file: the frozen classifier in JSON predicts to the bit as the one it was saved from."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from river import metrics

from cascadewatch.detectors.probability import CascadeProbability
from cascadewatch.pipelines.model_file import VERSION, bundled_model_path, load_model, save_model

LEGACY = Path(__file__).parent / "fixtures" / "legacy"
SHIPPED_V1 = LEGACY / "model-99fe6a520229.pkl"
"""The shipped model as it was pickled (format version 1) before the JSON format."""


def _vectors(names: list[str], n: int, seed: int) -> list[tuple[dict[str, float], float]]:
    """``n`` feature vectors (wide enough to hit the winsorisation and the family caps) and structural estimates."""
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n):
        x = {k: float(v) for k, v in zip(names, rng.normal(scale=3.0, size=len(names)), strict=True)}
        rows.append((x, float(rng.uniform(0.0, 0.3))))
    return rows


def test_the_json_model_predicts_exactly_as_the_pickled_shipped_model(tmp_path):
    old = load_model(SHIPPED_V1)  # a version-1 pickle still loads
    assert old["version"] == 1
    save_model(tmp_path / "m.json", old["models"], old["horizon_s"], old["info"])
    new = load_model(tmp_path / "m.json")
    assert new["version"] == VERSION and new["info"] == old["info"] and new["features"] == old["features"]
    for d in ("down", "up"):
        a, b = old["models"][d], new["models"][d]
        assert (
            b.fitted == a.fitted and b.settings() == a.settings() and (b.labels, b.positives) == (a.labels, a.positives)
        )
        for x, s in [({}, 0.0), ({n: 0.5 for n in old["features"]}, 0.01), *_vectors(old["features"], 300, 1)]:
            assert b.model_probability(x, s) == a.model_probability(x, s)
            assert b.predict_one(x, s) == a.predict_one(x, s) and b.drivers(x, s) == a.drivers(x, s)
    # the probabilities span the model's range: the check is not made on constants
    ps = [new["models"]["down"].predict_one(x, s) for x, s in _vectors(old["features"], 300, 1)]
    assert min(ps) < 1e-4 and max(ps) > 0.3


def test_the_shipped_model_file_is_what_save_model_writes_of_it(tmp_path):
    payload = load_model(bundled_model_path())
    save_model(tmp_path / "again.json", payload["models"], payload["horizon_s"], payload["info"])
    assert (tmp_path / "again.json").read_bytes() == bundled_model_path().read_bytes()


def test_a_fitted_classifier_round_trips_with_an_unbounded_cap(tmp_path):
    rng = np.random.default_rng(3)
    f = rng.normal(size=(3000, 2))
    y = rng.uniform(size=3000) < 1 / (1 + np.exp(-(1.5 * f[:, 0] - 2)))
    model = CascadeProbability(horizon_s=60, features=("crowding_300_bps", "depth_ratio"), max_weight=0.75)
    model.fit_matrix(f, y, ["crowding_300_bps", "depth_ratio"], l2=1e-3)  # cap: inf
    assert model.fitted is not None and math.isinf(model.fitted.cap)
    save_model(tmp_path / "m.json", {"down": model, "up": model}, 60.0, {"note": "test"})
    raw = json.loads((tmp_path / "m.json").read_text())
    assert raw["models"]["down"]["fitted"]["cap"] is None and raw["horizon_s"] == 60.0
    loaded = load_model(tmp_path / "m.json")["models"]
    assert loaded["down"] is not loaded["up"] and loaded["down"].fitted == model.fitted
    for x, s in _vectors(["crowding_300_bps", "depth_ratio"], 200, 4):
        assert loaded["up"].predict_one(x, s) == model.predict_one(x, s)
    assert loaded["up"].weight == 0.75 and loaded["up"].labels == 3000


def test_only_fitted_classifiers_are_saved(tmp_path):
    online = CascadeProbability()
    with pytest.raises(ValueError, match="the down classifier is not fitted"):
        save_model(tmp_path / "m.json", {"down": online, "up": online}, 300.0, {})
    assert not (tmp_path / "m.json").exists()


def test_progressive_scores_are_rivers_to_the_bit():
    """A classifier's progressive scores against river's ``LogLoss`` and ``MSE`` (what they were before)."""
    rng = np.random.default_rng(5)
    ps = [0.0, 1.0, 1e-17, 1 - 1e-17, *rng.uniform(size=500).tolist()]
    ys = [True, False, True, False, *(rng.uniform(size=500) < 0.3).tolist()]
    scores = CascadeProbability().metrics
    ours = {"logloss": scores["model_logloss"], "brier": scores["model_brier"]}
    river = {"logloss": metrics.LogLoss(), "brier": metrics.MSE()}
    for y, p in zip(ys, ps, strict=True):
        ours["logloss"].update(y, p)
        ours["brier"].update(y, p)
        river["logloss"].update(y, p)
        river["brier"].update(1.0 if y else 0.0, p)
        assert ours["logloss"].get() == river["logloss"].get() and ours["brier"].get() == river["brier"].get()
    assert ours["logloss"].get() > 0.5  # the clamped extremes count: -ln(1e-15) = 34.5 each


def test_a_frozen_classifier_keeps_its_scores_without_the_online_pipeline():
    cp = load_model(bundled_model_path())["models"]["down"]
    for t in range(40):
        cp.observe(float(t), {"trickle_60": float(t % 7)}, 0.01)
    cp.add_cascade(330.0)  # within the 300 s horizon of t = 30..39
    assert (
        cp.advance(1000.0) == 40 and cp.positives - load_model(bundled_model_path())["models"]["down"].positives == 10
    )
    assert cp._online is None  # never built: no river
    scores = cp.scores()
    assert scores["struct_brier"] == pytest.approx((30 * 0.01**2 + 10 * 0.99**2) / 40, rel=1e-12)
    assert 0.0 < scores["model_logloss"] and 0.0 < scores["blend_brier"]
