"""Replay with --deliver: alerts go through the SQLite outbox to a destination, once."""

from __future__ import annotations

import json
from pathlib import Path

from cascadewatch.pipelines.cli.main import main

BAD = Path(__file__).parent / "fixtures" / "bad" / "hand-made.rec"


def test_replayed_alerts_are_delivered_once_even_when_replayed_twice(tmp_path: Path) -> None:
    delivered = tmp_path / "delivered.jsonl"
    config = tmp_path / "config.toml"
    config.write_text(
        f'[alerts]\noutbox = "{tmp_path / "outbox.sqlite"}"\n'
        f'[[alerts.destinations]]\nname = "desk"\ntype = "jsonl"\npath = "{delivered}"\n'
    )
    for run in range(2):
        out = tmp_path / f"run{run}"
        assert (
            main(
                [
                    "replay",
                    str(BAD),
                    "--config",
                    str(config),
                    "--deliver",
                    "--quiet",
                    "--alerts-out",
                    str(out / "alerts.jsonl"),
                ]
            )
            == 0
        )
    produced = [json.loads(line) for line in (tmp_path / "run0" / "alerts.jsonl").read_text().splitlines()]
    assert (tmp_path / "run1" / "alerts.jsonl").read_text() == (tmp_path / "run0" / "alerts.jsonl").read_text()
    sent = [json.loads(line) for line in delivered.read_text().splitlines()]
    # every alert but the per-second cascade trigger that confirms the provisional one: its
    # incident is open at the destination already (one page)
    confirming = [
        a for a in produced if a["kind"] == "cascade" and a["action"] == "trigger" and not a.get("provisional")
    ]
    assert len(confirming) == 1
    assert sorted(a["id"] for a in sent) == sorted(a["id"] for a in produced if a is not confirming[0])
    assert len(produced) == 5
