"""The model shipped in the package: loaded by default, named in every output, checked at start."""

from __future__ import annotations

import hashlib
import json
import pickle
import shutil
from pathlib import Path

import pytest

from cascadewatch.detectors.probability import feature_names
from cascadewatch.pipelines.cli.main import bundled_demo_recording, main
from cascadewatch.pipelines.config import ConfigError, load_config
from cascadewatch.pipelines.evaluation.corpus import make_runs
from cascadewatch.pipelines.evaluation.default_model import build_default_model
from cascadewatch.pipelines.model_file import bundled_model_path, load_model, model_version, resolve_model, save_model

DEMO = bundled_demo_recording()
BAD = Path(__file__).parent / "fixtures" / "bad" / "hand-made.rec"
BUNDLED = bundled_model_path()
MANIFEST = json.loads(BUNDLED.with_name("manifest.json").read_text())


def test_the_bundled_model_and_its_manifest():
    data = BUNDLED.read_bytes()
    assert len(data) < 1_000_000
    assert MANIFEST["sha256"] == hashlib.sha256(data).hexdigest()
    assert MANIFEST["version"] == model_version(BUNDLED) == MANIFEST["sha256"][:12]
    assert MANIFEST["command"] == "make model" and MANIFEST["horizon_s"] == 300
    assert set(MANIFEST["features"]) <= feature_names() and MANIFEST["families"] and MANIFEST["seeds"]
    assert MANIFEST["training"]["cascades"] > 0 and 0 < MANIFEST["training"]["base_rate"] < 1
    payload = load_model(BUNDLED)
    down, up = payload["models"]["down"], payload["models"]["up"]
    assert down is not up and down.fitted is not None and down.fitted == up.fitted
    assert list(down.features) == MANIFEST["features"]
    assert resolve_model(None) == BUNDLED and resolve_model("none") is None


def _replay(tmp_path: Path, config_text: str | None, recording: Path = DEMO) -> tuple[list[dict], list[dict]]:
    args = ["replay", str(recording), "--quiet", "--alerts-out", str(tmp_path / "a.jsonl")]
    args += ["--snapshots-out", str(tmp_path / "s.jsonl")]
    if config_text is not None:
        (tmp_path / "c.toml").write_text(config_text)
        args += ["--config", str(tmp_path / "c.toml")]
    assert main(args) == 0
    read = lambda name: [json.loads(line) for line in (tmp_path / name).read_text().splitlines()]  # noqa: E731 - two reads
    return read("a.jsonl"), read("s.jsonl")


def _policy(alerts: list[dict]) -> list[dict]:
    """The alerts the detectors made (provisional alerts come from the frames alone, no model)."""
    return [a for a in alerts if not a.get("provisional")]


def test_every_alert_and_snapshot_names_the_model(tmp_path):
    (tmp_path / "bad").mkdir()
    alerts, _ = _replay(tmp_path / "bad", None, BAD)  # its liquidation burst pages provisionally
    provisional = [a for a in alerts if a.get("provisional")]
    assert len(provisional) == 1 and all("model" not in a for a in provisional)
    alerts, snapshots = _replay(tmp_path / "default", None)
    alerts = _policy(alerts)
    assert alerts and {a["model"] for a in alerts} == {MANIFEST["version"]}
    assert {s["model"] for s in snapshots} == {MANIFEST["version"]}
    (tmp_path / "off").mkdir()
    alerts, snapshots = _replay(tmp_path / "off", '[detectors]\nmodel = "none"\n')
    alerts = _policy(alerts)
    assert {s["model"] for s in snapshots} == {None} and all(a["model"] is None for a in alerts)
    assert all(a["drivers"] == [] for a in alerts)  # no fitted model: nothing to explain


def test_a_warning_names_its_drivers_within_the_cap(tmp_path):
    """With a low warning threshold the shipped model warns on the demo's build-up (calibrated on
    calm days, its probability there stays near 1 %, against a base rate of 0.3 %): each warning
    names its drivers, largest first, none above the family cap, the first one in the summary."""
    alerts, _ = _replay(tmp_path, "[detectors]\nwarn_enter = 0.008\nwarn_exit = 0.004\n")
    warnings = [a for a in alerts if a["action"] == "trigger" and a["cascade"] is None]
    assert warnings
    for a in warnings:
        logits = [d["logit"] for d in a["drivers"]]
        assert logits and logits == sorted(logits, reverse=True) and max(logits) <= MANIFEST["cap"] + 1e-9
        assert {d["family"] for d in a["drivers"]} <= {
            "crowding",
            "levels",
            "liquidity",
            "liquidations",
            "volatility",
            "momentum",
        }
        assert a["drivers"][0]["text"] in a["summary"]


def _altered(change) -> bytes:
    """The bundled model file's JSON with ``change`` applied to its parsed payload."""
    payload = json.loads(BUNDLED.read_text())
    change(payload)
    return json.dumps(payload).encode()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"not a model file at all", "not a readable cascadewatch model file (JSONDecodeError)"),
        (BUNDLED.read_bytes()[:-200], "not a readable cascadewatch model file (JSONDecodeError)"),
        (b"\x80\x05 truncated pickle", "not a readable cascadewatch model file"),
        (pickle.dumps({"format": "cascadewatch-cascade-model", "version": 99}), "format version 99"),
        (json.dumps({"format": "cascadewatch-cascade-model", "version": 99}).encode(), "format version 99"),
        (json.dumps({"format": "something else", "version": 2}).encode(), "not a cascadewatch model file"),
        (_altered(lambda p: p["models"].pop("up")), "one fitted classifier per direction (down, up): KeyError('up')"),
        (
            _altered(lambda p: p["models"]["down"]["fitted"]["weights"].__setitem__(0, "0.5")),
            "one fitted classifier per direction (down, up): TypeError('mean, sd and weights",
        ),
        (
            _altered(lambda p: p["models"]["up"]["fitted"]["mean"].pop()),
            "one fitted classifier per direction (down, up): TypeError('mean, sd and weights",
        ),
        (
            _altered(lambda p: p["models"]["up"]["settings"].update(depth=3)),
            "one fitted classifier per direction (down, up): TypeError(",
        ),
        (
            _altered(lambda p: p["models"]["up"].update(labels=-1)),
            "one fitted classifier per direction (down, up): TypeError('labels and positives must be counts')",
        ),
    ],
)
def test_a_corrupt_model_is_a_one_line_error_at_start(tmp_path, capsys, content, message):
    (tmp_path / "m.model").write_bytes(content)
    (tmp_path / "c.toml").write_text('[detectors]\nmodel = "m.model"\n')
    assert main(["replay", str(DEMO), "--config", str(tmp_path / "c.toml"), "--quiet"]) == 2
    out = capsys.readouterr().out
    assert message in out and out.startswith("error: ") and out.count("\n") == 1


def test_an_incompatible_or_altered_model_is_refused(tmp_path, capsys):
    # a different horizon than the bundled model's: refused, with the way out
    (tmp_path / "c.toml").write_text("[detectors]\nhorizon_s = 600\n")
    with pytest.raises(ConfigError, match=r"300 s horizon, the config says 600 s .*model = \"none\""):
        load_config(tmp_path / "c.toml")
    # a model using a feature these detectors do not give
    payload = load_model(BUNDLED)
    models = payload["models"]
    for m in models.values():
        m.features = (*m.features, "crowding_77_bps")
    save_model(tmp_path / "odd.json", models, 300.0, {})
    (tmp_path / "odd.toml").write_text('[detectors]\nmodel = "odd.json"\n')
    with pytest.raises(ConfigError, match="features these detectors do not give: crowding_77_bps"):
        load_config(tmp_path / "odd.toml")
    # a model file that does not match the manifest beside it
    (tmp_path / "pkg").mkdir()
    shutil.copy(tmp_path / "odd.json", tmp_path / "pkg" / "cascade-model.json")
    shutil.copy(BUNDLED.with_name("manifest.json"), tmp_path / "pkg" / "manifest.json")
    (tmp_path / "pkg.toml").write_text('[detectors]\nmodel = "pkg/cascade-model.json"\n')
    with pytest.raises(ConfigError, match="does not match the sha256 of manifest.json"):
        load_config(tmp_path / "pkg.toml")


def test_the_bundled_model_missing_is_an_error_not_a_fallback(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("cascadewatch.pipelines.model_file.bundled_model_path", lambda: tmp_path / "gone.pkl")
    assert main(["replay", str(DEMO), "--quiet"]) == 2
    out = capsys.readouterr().out
    assert "default configuration: [detectors] model:" in out and "model file not found" in out
    assert 'set [detectors] model = "none"' in out


def test_make_model_writes_a_deterministic_model_and_manifest(tmp_path):
    """``make model`` in miniature: one seed of every family, shortened by the scenario defaults."""
    logs: list[str] = []
    manifest = build_default_model(
        tmp_path / "corpus", tmp_path / "out", workers=1, seeds=(1,), calm_seeds=(), log=logs.append
    )
    model = tmp_path / "out" / "cascade-model.json"
    assert manifest["sha256"] == hashlib.sha256(model.read_bytes()).hexdigest()
    assert manifest["seeds"] == [1] and manifest["calm_seeds"] == []
    assert manifest["training"]["cascades"] >= 1 and manifest["simulator"].count("+") == 1
    assert json.loads((tmp_path / "out" / "manifest.json").read_text()) == manifest
    runs = make_runs(tmp_path / "corpus", manifest["families"], (1,))
    assert all(r.truth.exists() for r in runs)
    again = build_default_model(
        tmp_path / "corpus", tmp_path / "again", workers=1, seeds=(1,), calm_seeds=(), log=logs.append
    )
    assert again["sha256"] == manifest["sha256"]  # same corpus, same bytes
    assert logs[-1].startswith(f"model {manifest['version']}: ")
