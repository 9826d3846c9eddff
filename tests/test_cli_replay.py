"""`cascadewatch replay` end to end on a hand-made recording with every kind of bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from cascadewatch.connectors.outputs import ALERT_HEADER
from cascadewatch.pipelines.cli.main import main

BAD = Path(__file__).parent / "fixtures" / "bad" / "hand-made.rec"
T0 = 1_767_225_600_000


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture
def replayed(tmp_path: Path, capsys) -> tuple[Path, str]:
    code = main(
        [
            "replay",
            str(BAD),
            "--alerts-out",
            str(tmp_path / "alerts.jsonl"),
            "--snapshots-out",
            str(tmp_path / "snapshots.jsonl"),
        ]
    )
    assert code == 0
    return tmp_path, capsys.readouterr().out


def test_bad_input_is_counted_and_kept_never_fatal(replayed) -> None:
    out_dir, printed = replayed
    dead = _jsonl(out_dir / "deadletters.jsonl")
    assert sorted((d["source"], d["reason"]) for d in dead) == [
        ("binance-usdm", "bad_price"),
        ("binance-usdm", "bad_price"),
        ("binance-usdm", "malformed_json"),
        ("binance-usdm", "sequence_gap"),
        ("binance-usdm", "unknown_channel"),
        ("nowhere-venue", "unknown_source"),
        ("recording", "malformed_line"),
    ]
    malformed = next(d for d in dead if d["reason"] == "malformed_line")
    assert (malformed["raw"], malformed["line"], malformed["file"]) == ("garbage without fields", 7, str(BAD))
    gap = next(d for d in dead if d["reason"] == "sequence_gap")
    assert json.loads(gap["raw"])["prev_seq"] == 118
    for reason in ("malformed_line", "bad_price", "sequence_gap", "unknown_source"):
        assert reason in printed


def test_liquidation_burst_pages_critical_then_resolves(replayed) -> None:
    out_dir, _ = replayed
    cascade = [a for a in _jsonl(out_dir / "alerts.jsonl") if a["kind"] == "cascade"]
    # second 3: $1.1M of longs in 60 s with the price 40 bps down, under the label's 50 bps (the
    # default in-progress thresholds); second 4: $5.3M and 100 bps, a liquidation cascade in
    # progress. The provisional alert (the trigger checked every 250 ms of receive time on
    # Binance's frames) is stamped 4.5 s and made at the next frame, before second 4 closes: it
    # comes first, and the per-second trigger of second 4 confirms it
    assert [(a["action"], a["ts"] - T0, a.get("provisional", False)) for a in cascade[:2]] == [
        ("trigger", 4500, True),
        ("trigger", 4000, False),
    ]
    assert (cascade[0]["opened_ts"] - T0, cascade[0]["liq_usd_60s"]) == (4500, 5_304_300.0)
    alerts = [a for a in cascade if not a.get("provisional")]
    assert [(a["action"], a["severity"], a["ts"] - T0, a["cascade"], a["liq_usd_60s"]) for a in alerts] == [
        ("trigger", "critical", 4000, "liquidation", 5_304_300.0),
        ("resolve", "critical", 180_000, None, 0.0),
    ]
    assert {a["dedup_key"] for a in alerts} == {"BTC-USDT:cascade:down"}
    assert {a["opened_ts"] - T0 for a in alerts} == {4000}
    assert len({a["id"] for a in alerts}) == 2
    assert list(alerts[0])[:10] == list(ALERT_HEADER)  # the header's names: tests/test_output_contract.py


def test_book_gap_pages_a_feed_alert_until_resync(replayed) -> None:
    out_dir, _ = replayed
    feed = [a for a in _jsonl(out_dir / "alerts.jsonl") if a["kind"] == "feed"]
    assert [(a["action"], a["ts"] - T0, a["dedup_key"], a["direction"]) for a in feed] == [
        ("trigger", 1000, "BTC-USDT:feed:binance-usdm", None),
        ("resolve", 4000, "BTC-USDT:feed:binance-usdm", None),
    ]
    assert feed[0]["problem"] == "gap: expected continuation of seq=110, got prev_seq=118 seq=125"


def test_snapshots_show_gap_and_resync(replayed) -> None:
    out_dir, _ = replayed
    snapshots = {s["ts"] - T0: s for s in _jsonl(out_dir / "snapshots.jsonl")}
    assert sorted(snapshots) == [0, 1000, 2000, 3000, 4000, 70_000, *range(120_000, 480_000, 60_000)]
    first = snapshots[0]
    assert first["books_valid"] == "1/1"
    # after the bridging diff (bid 50000 -> 1.5) and the ask 50001 deletion: mid = (50000 + 50100) / 2
    assert first["depth_bid_usd"]["10"] == 75_000.0
    assert first["feed"] == ["binance-usdm: connect: wss://fstream.binance.com/market/stream"]
    assert snapshots[1000]["books_valid"] == "0/1"
    assert snapshots[1000]["feed"][0].startswith("binance-usdm: gap: ")
    assert snapshots[4000]["books_valid"] == "1/1"
    assert snapshots[4000]["feed"] == ["binance-usdm: resync: snapshot seq=300"]
    assert snapshots[4000]["liq_long_usd_60s"] == 5_304_300.0
    assert snapshots[4000]["down"]["cascade"] == "liquidation"
    assert snapshots[4000]["observed_long_usd"] > 5_000_000.0


def test_missing_recording_is_a_clear_error(tmp_path: Path, capsys) -> None:
    assert main(["replay", str(tmp_path / "absent.rec")]) == 2
    assert "recording not found" in capsys.readouterr().out


def test_bad_config_key_names_file_and_key(tmp_path: Path, capsys) -> None:
    config = tmp_path / "c.toml"
    config.write_text("[detectors]\nwarn_enter = 0.4\nbogus = 1\n")
    assert main(["replay", str(BAD), "--config", str(config)]) == 2
    message = capsys.readouterr().out
    assert str(config) in message and "bogus" in message


def test_help_explains_each_command() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "cascadewatch.pipelines.cli.main", "replay", "--help"], capture_output=True, text=True
    )
    assert result.returncode == 0
    for option in ("--alerts-out", "--snapshots-out", "--batch-size", "--workers", "--speed", "--config"):
        assert option in result.stdout
