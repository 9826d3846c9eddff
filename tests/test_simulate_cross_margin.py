"""The multi-asset simulation with cross-margined accounts (pipelines/simulate/cross_margin.py)
through the whole pipeline: its cascade spreads, the grouped alert catches it, the same bytes
for any batch size and worker count, and a calm stretch of the same markets groups nothing."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cascadewatch.connectors.recording import RecordingReader
from cascadewatch.pipelines.config import Config, DetectorsConfig
from cascadewatch.pipelines.evaluation.contagion_scoring import score_contagion
from cascadewatch.pipelines.evaluation.evaluate import evaluate
from cascadewatch.pipelines.run.replay import ReplayOptions, run_replay
from cascadewatch.pipelines.simulate.cross_margin import (
    ASSETS,
    Accounts,
    liquidation_seconds,
    recording_paths,
    simulate_cross_margin,
    true_groups,
)

SEED = 2
DURATION_S = 360.0


@pytest.fixture(scope="module")
def contagion_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Path], list[dict]]:
    out = tmp_path_factory.mktemp("contagion") / "c.rec.zst"
    result = simulate_cross_margin("contagion", SEED, DURATION_S, out, out.with_name("c.truth.jsonl"))
    truth = [json.loads(line) for line in out.with_name("c.truth.jsonl").read_text().splitlines()]
    return result.recordings, truth


def _replay(recordings: list[Path], out: Path, **kwargs) -> tuple[bytes, bytes]:
    run_replay(
        recordings,
        Config(detectors=DetectorsConfig()),
        ReplayOptions(alerts_out=out / "alerts.jsonl", snapshots_out=out / "snapshots.jsonl", **kwargs),
    )
    return (out / "alerts.jsonl").read_bytes(), (out / "snapshots.jsonl").read_bytes()


def test_the_cascade_spreads_through_the_accounts(contagion_run) -> None:
    """The squeeze in BTC liquidates accounts; their sales cascade ETH and SOL within seconds to minutes."""
    recordings, truth = contagion_run
    assert [p.name for p in recordings] == [f"c.{asset}.rec.zst" for asset in ASSETS]
    head = truth[0]
    assert (
        head["type"] == "scenario"
        and head["assets"] == list(ASSETS)
        and head["recordings"] == [p.name for p in recordings]
    )
    calls = [t for t in truth if t["type"] == "margin_call"]
    assert {c["asset"] for c in calls} == {"ETH-USDT", "SOL-USDT"}
    groups = [t for t in truth if t["type"] == "contagion"]
    assert len(groups) == 1
    assert [a["asset"] for a in groups[0]["assets"]] == list(ASSETS)
    first, *others = groups[0]["assets"]
    # the accounts' sales begin after the squeeze in BTC started, before ETH and SOL cascade
    assert first["start"] <= min(c["ts"] for c in calls) < min(a["start"] for a in others)
    # the symbols are renamed in the frames: each recording speaks of its own asset only
    for path, asset in zip(recordings, ASSETS, strict=True):
        payloads = b"".join(frame.payload for _, frame in zip(range(300), RecordingReader(path), strict=False))
        base = asset.split("-")[0].encode()
        assert base + b"USDT" in payloads or base + b"-USDT" in payloads
        assert (b"BTCUSDT" in payloads) == (asset == "BTC-USDT")


def test_grouped_alert_catches_it_the_same_for_any_batching(contagion_run, tmp_path: Path) -> None:
    """One grouped incident, BTC first then ETH then SOL, inside the true group's window;
    byte-identical alerts and snapshots with batch size 101 on two workers."""
    recordings, truth = contagion_run
    reference = _replay(recordings, tmp_path / "a")
    assert _replay(recordings, tmp_path / "b", batch_size=101, workers=2) == reference
    alerts = [json.loads(line) for line in reference[0].splitlines()]
    grouped = [a for a in alerts if a["kind"] == "contagion"]
    assert grouped, "no grouped alert"
    assert {a["dedup_key"] for a in grouped} == {"contagion:down"}
    assert len({a["opened_ts"] for a in grouped}) == 1
    assert [m["asset"] for m in grouped[-1]["assets"]] == list(ASSETS)
    assert grouped[-1]["summary"].startswith("contagion: BTC-USDT down at ")
    assert all("audit" in a for a in grouped)
    score = score_contagion([(alerts, truth)])
    assert (score["groups"], score["caught"], score["false_groupings"]) == (1, 1, 0)


def test_a_calm_stretch_of_the_same_markets_groups_nothing(tmp_path: Path) -> None:
    """contagion-calm through evaluate (the recordings joined by commas, one run): no grouped
    alert and no true group, so the score has no contagion part at all."""
    out = tmp_path / "k.rec.zst"
    result = simulate_cross_margin("contagion-calm", SEED, DURATION_S, out, tmp_path / "k.truth.jsonl")
    group = Path(",".join(str(p) for p in result.recordings))
    scored = evaluate([group], [tmp_path / "k.truth.jsonl"], Config(detectors=DetectorsConfig()))
    assert result.groups == [] and result.margin_calls == []
    assert "contagion" not in scored
    assert scored["overall"]["days"] == pytest.approx(DURATION_S / 86_400, abs=1e-6)


def test_liquidation_seconds_pool_the_margin() -> None:
    """Buffer 1 %, maintenance 0.5 %: an account fails once its loss L (a fraction of gross) passes
    0.01 / 0.995 = 1.005 %. All in the first asset: at its 1.5 % fall. Half in each: a 2 % fall of
    the first is L = 1 % (holds, exactly at the edge), then 0.1 % of the second tips it; with the
    second market 3x larger (scales), the same falls are L = 0.575 %: it holds."""
    acc = Accounts(np.array([1.0, 1.0]), np.array([[1.0, 0.0], [0.5, 0.5]]), np.array([0.01, 0.01]))
    ratios = np.array([[1.0, 1.0], [0.985, 1.0], [0.98, 1.0], [0.98, 0.999]])
    assert liquidation_seconds(acc, ratios, [1.0, 1.0]).tolist() == [1, 3]
    assert liquidation_seconds(acc, ratios, [1.0, 3.0]).tolist() == [1, -1]


@pytest.mark.parametrize(("gap_s", "grouped"), [(300, True), (301, False)])
def test_true_groups_window_boundary(gap_s: int, grouped: bool) -> None:
    cascades = [
        {"asset": "BTC-USDT", "direction": "down", "start": 0, "end": 60_000},
        {"asset": "ETH-USDT", "direction": "down", "start": gap_s * 1000, "end": gap_s * 1000 + 60_000},
    ]
    assert len(true_groups(cascades)) == (1 if grouped else 0)


def test_recording_paths() -> None:
    assert [p.name for p in recording_paths("/x/run.rec.zst", ("BTC-USDT", "ETH-USDT"))] == [
        "run.BTC-USDT.rec.zst",
        "run.ETH-USDT.rec.zst",
    ]
