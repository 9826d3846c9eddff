"""A replay killed with SIGKILL mid-run and resumed from its recovery directory gives the same
alerts and snapshots as an uninterrupted run, and delivers no alert twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cascadewatch.pipelines.cli.main import main


@pytest.fixture(scope="module")
def recording(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("rec") / "mv.rec.zst"
    assert (
        main(
            [
                "simulate",
                "--scenario",
                "multi-venue",
                "--seed",
                "5",
                "--duration",
                "2400",
                "--out",
                str(path),
                "--quiet",
            ]
        )
        == 0
    )
    return path


def _config(directory: Path) -> Path:
    config = directory / "config.toml"
    config.write_text(
        f'[alerts]\noutbox = "{directory / "outbox.sqlite"}"\n'
        f'[[alerts.destinations]]\nname = "desk"\ntype = "jsonl"\npath = "{directory / "delivered.jsonl"}"\n'
    )
    return config


def _command(recording: Path, directory: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "cascadewatch.pipelines.cli.main",
        "replay",
        str(recording),
        "--quiet",
        "--deliver",
        "--config",
        str(_config(directory)),
        "--recovery-dir",
        str(directory / "recovery"),
        "--alerts-out",
        str(directory / "alerts.jsonl"),
        "--snapshots-out",
        str(directory / "snapshots.jsonl"),
    ]


def test_sigkill_then_resume_equals_uninterrupted(recording: Path, tmp_path: Path) -> None:
    reference = tmp_path / "reference"
    reference.mkdir()
    subprocess.run(_command(recording, reference), check=True, timeout=300)

    crashed = tmp_path / "crashed"
    crashed.mkdir()
    process = subprocess.Popen(_command(recording, crashed))
    snapshots = crashed / "snapshots.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and (not snapshots.exists() or snapshots.stat().st_size < 200_000):
        time.sleep(0.05)
    assert process.poll() is None, "the replay finished before it could be killed: make the recording longer"
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    partial = snapshots.read_bytes()
    assert 0 < len(partial) < len((reference / "snapshots.jsonl").read_bytes())

    subprocess.run(_command(recording, crashed), check=True, timeout=300)
    assert (crashed / "snapshots.jsonl").read_bytes() == (reference / "snapshots.jsonl").read_bytes()
    assert (crashed / "alerts.jsonl").read_bytes() == (reference / "alerts.jsonl").read_bytes()
    produced = [json.loads(line)["id"] for line in (reference / "alerts.jsonl").read_text().splitlines()]
    delivered = [json.loads(line)["id"] for line in (crashed / "delivered.jsonl").read_text().splitlines()]
    assert produced and sorted(delivered) == sorted(produced)  # each alert delivered exactly once
