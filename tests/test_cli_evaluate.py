"""`cascadewatch simulate` then `cascadewatch evaluate`, end to end through the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from cascadewatch.pipelines.cli.main import main

KEYS = {
    "cascades",
    "caught",
    "recall",
    "lead_s",
    "false_alarms",
    "days",
    "false_alarms_per_day",
    "brier",
    "brier_base_rate",
}


def test_simulate_then_evaluate_json(tmp_path: Path, capsys) -> None:
    rec, truth = tmp_path / "sq.rec.zst", tmp_path / "sq.truth.jsonl"
    assert (
        main(
            [
                "simulate",
                "--scenario",
                "long-squeeze",
                "--seed",
                "12",
                "--duration",
                "900",
                "--out",
                str(rec),
                "--truth",
                str(truth),
                "--quiet",
            ]
        )
        == 0
    )
    capsys.readouterr()
    true_cascades = [json.loads(line) for line in truth.read_text().splitlines() if '"type":"cascade"' in line]
    assert [c["direction"] for c in true_cascades] == ["down"]

    assert main(["evaluate", str(rec), "--truth", str(truth), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert KEYS <= set(result["overall"]) and KEYS <= set(result["down"]) and KEYS <= set(result["up"])
    assert (result["down"]["cascades"], result["up"]["cascades"], result["overall"]["cascades"]) == (1, 0, 1)
    assert result["overall"]["days"] == result["down"]["days"] == round(900 / 86400, 6)
    assert 0 <= result["overall"]["caught"] <= 1
    assert result["horizon_s"] == 300
    assert result["map"][0]["recording"] == str(rec)


def test_evaluate_table_and_progress_bar(tmp_path: Path) -> None:
    data = Path(__file__).parents[1] / "pipelines" / "data"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "cascadewatch.pipelines.cli.main",
            "evaluate",
            str(data / "demo.rec.zst"),
            "--truth",
            str(data / "demo.truth.jsonl"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "replaying demo.rec.zst" in done.stderr
    for row in ("cascades", "caught", "lead median (s)", "false alarms / day", "Brier of base rate"):
        assert row in done.stdout


def test_evaluate_needs_one_truth_per_recording(tmp_path: Path, capsys) -> None:
    data = Path(__file__).parents[1] / "pipelines" / "data"
    assert (
        main(
            [
                "evaluate",
                str(data / "demo.rec.zst"),
                str(data / "demo.rec.zst"),
                "--truth",
                str(data / "demo.truth.jsonl"),
            ]
        )
        == 2
    )
    assert "give one --truth per recording" in capsys.readouterr().out


def test_evaluate_by_family_and_without_truth(capsys) -> None:
    """``--by-family`` scores each scenario of the truth on its own; without ``--truth`` the online
    labeller's cascades (from the published liquidations) are the truth."""
    data = Path(__file__).parents[1] / "pipelines" / "data"
    rec, truth = str(data / "demo.rec.zst"), str(data / "demo.truth.jsonl")
    assert main(["evaluate", rec, "--truth", truth, "--json", "--by-family"]) == 0
    result = json.loads(capsys.readouterr().out)
    name = json.loads(Path(truth).read_text().splitlines()[0])["name"]
    assert list(result["families"]) == [name]
    family = result["families"][name]
    assert family["overall"] == result["overall"] and family["down"] == result["down"]
    assert family["map_pooled"] == result["map_pooled"]  # one run: its family's map error is the run's
    assert main(["evaluate", rec, "--json"]) == 0
    online = json.loads(capsys.readouterr().out)
    true_starts = [json.loads(line) for line in Path(truth).read_text().splitlines() if '"type":"cascade"' in line]
    # no span lines without a truth file: the days are the snapshot seconds (both directions forecast each)
    assert online["overall"]["days"] == round(online["overall"]["forecasts"] / 2 / 86400, 6)
    assert online["down"]["cascades"] == sum(c["direction"] == "down" for c in true_starts)
