"""``cascadewatch tail``: rendering a JSONL file, following a live feed, reconnecting, under tmux."""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from cascadewatch.connectors.alerts.config import RiskFeedConfig
from cascadewatch.connectors.riskfeed import RiskFeedServer
from cascadewatch.pipelines.cli.tail import TailView, follow, run

REPO = Path(__file__).resolve().parent.parent

BTC = {
    "type": "snapshot",
    "ts": 1_700_000_001_000,
    "asset": "BTC-USDT",
    "price": 64000.5,
    "venues": ["binance-usdm", "okx-swap"],
    "depth_bid_usd": {"10": 1e6, "25": 2e6, "50": 4_200_000.0, "100": 9e6},
    "depth_ask_usd": {"10": 1e6, "25": 2e6, "50": 3_100_000.0, "100": 8e6},
    "prob_down": 0.72,
    "prob_up": 0.04,
    "branching": 0.87,
    "hawkes_intensity": 0.4,
    "down": {
        "prob": 0.72,
        "p_struct": 0.7,
        "p_touch": 0.8,
        "cascade": "liquidation",
        "cluster_price": 63000.0,
        "cluster_bps": -156.3,
        "cluster_usd": 48_000_000.0,
        "at_risk_usd": 48_000_000.0,
        "depth_ratio": 0.4,
        "reach_usd": 91_000_000.0,
        "reach_bps": 310.0,
    },
    "up": {
        "prob": 0.04,
        "p_struct": 0.04,
        "p_touch": 0.1,
        "cascade": None,
        "cluster_price": 66500.0,
        "cluster_bps": 390.6,
        "cluster_usd": 5_000_000.0,
        "at_risk_usd": 12_500_000.0,
        "depth_ratio": 1.1,
        "reach_usd": None,
        "reach_bps": 40.0,
    },
}
ETH = {
    "type": "snapshot",
    "ts": 1_700_000_001_000,
    "asset": "ETH-USDT",
    "price": 3150.25,
    "venues": ["bybit-linear"],
    "prob_down": None,
    "prob_up": None,
}
ALERT = {
    "type": "alert",
    "id": "a1",
    "dedup_key": "BTC-USDT:cascade:down",
    "action": "trigger",
    "severity": "critical",
    "kind": "cascade",
    "asset": "BTC-USDT",
    "direction": "down",
    "ts": 1_700_000_001_000,
    "summary": "BTC-USDT down: $48M of longs within 1.6%, book thin",
}


def render_file(path: Path, *assets: str) -> str:
    console = Console(record=True, width=250, color_system=None)
    args = argparse.Namespace(from_file=path, asset=list(assets), url=None, token_env="X", duration=None)
    assert run(args, console) == 0
    return console.export_text()


def row_of(text: str, asset: str) -> str:
    return next(line for line in text.splitlines() if asset in line and "│" in line)


def test_from_file_renders_known_values(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    old_btc = {**BTC, "ts": BTC["ts"] - 1000, "price": 1.0}
    sol = {
        "type": "snapshot",
        "ts": BTC["ts"],
        "asset": "SOL-USDT",
        "price": 150.0,
        "down": {**BTC["up"], "cascade": None},
        "up": {**BTC["up"], "cascade": None},
    }
    path.write_text("".join(json.dumps(x) + "\n" for x in (old_btc, BTC, ETH, sol, ALERT)) + "not json\n")
    text = render_file(path)
    btc = row_of(text, "BTC-USDT")
    for shown in (
        "22:13:21",
        "64,000.5",
        "72%",
        "4%",
        "63,000 (-156bp) $48.00M",
        "66,500 (+391bp) $5.00M",
        "↓$48.00M ↑$12.50M",
        "$4.20M/$3.10M",
        "↓310bp $91.00M ↑40bp",
        "0.87",
        "down: liquidation",
    ):
        assert shown in btc, shown
    eth = row_of(text, "ETH-USDT")
    cells = [c.strip() for c in eth.split("│")[1:-1]]
    assert cells[:3] == ["ETH-USDT", "22:13:21", "3,150.25"]
    assert cells[3:] == ["-"] * 9  # nothing the snapshot does not carry
    assert row_of(text, "SOL-USDT").rstrip("│ ").endswith("calm")
    assert "CRITICAL BTC-USDT down  BTC-USDT down: $48M of longs within 1.6%, book thin" in text
    assert "1 unreadable lines" in text
    only_eth = render_file(path, "ETH")
    assert "ETH-USDT" in only_eth and "BTC-USDT" not in only_eth


def test_follows_a_live_feed_and_reconnects_by_itself() -> None:
    server = RiskFeedServer(port=0, ping_interval_s=None).start()
    port = server.port

    async def scenario() -> None:
        nonlocal server
        view = TailView(["BTC"])
        changed = asyncio.Event()
        stop = asyncio.Event()
        task = asyncio.ensure_future(follow(server.url, view, changed.set, stop=stop, backoff_min=0.1, backoff_max=0.2))

        async def until(predicate: Any) -> None:
            deadline = time.monotonic() + 10
            while not predicate():
                assert time.monotonic() < deadline, view.status
                changed.clear()
                try:
                    await asyncio.wait_for(changed.wait(), 0.2)
                except TimeoutError:
                    pass

        await until(lambda: view.status.startswith("connected"))
        server.publish_many([BTC, ETH, ALERT])
        await until(lambda: "BTC-USDT" in view.snapshots and view.alerts)
        assert "ETH-USDT" not in view.snapshots  # --asset BTC
        server.stop()  # the pipeline restarts
        await until(lambda: "retrying" in view.status or "reconnecting" in view.status)
        server = RiskFeedServer(port=port, ping_interval_s=None).start()
        await until(lambda: view.status.startswith("connected"))
        server.publish({**BTC, "ts": BTC["ts"] + 1000, "price": 63990.0})
        await until(lambda: view.snapshots["BTC-USDT"]["price"] == 63990.0)
        stop.set()
        await asyncio.wait_for(task, 5)

    try:
        asyncio.run(scenario())
    finally:
        server.stop()


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux not installed")
def test_tail_under_tmux_shows_the_live_feed() -> None:
    socket_name = f"cwtail-{uuid.uuid4().hex[:8]}"  # a private tmux server, killed at the end
    tmux = ["tmux", "-L", socket_name, "-f", "/dev/null"]
    with RiskFeedServer(port=0, ping_interval_s=None) as server:
        command = (
            f"env -u COLUMNS -u LINES {sys.executable} -m cascadewatch.pipelines.cli.tail"
            f" --url {server.url} --duration 20"
        )
        subprocess.run(
            [*tmux, "new-session", "-d", "-s", "tail", "-x", "220", "-y", "40", "-c", str(REPO), command], check=True
        )
        try:
            screen = ""
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                server.publish_many([BTC, ETH, ALERT])
                time.sleep(0.5)
                screen = subprocess.run(
                    [*tmux, "capture-pane", "-p", "-t", "tail"], capture_output=True, text=True
                ).stdout
                if "CRITICAL" in screen and "liquidation" in screen:
                    break
            assert "connected to ws://127.0.0.1" in screen, screen
            btc = row_of(screen, "BTC-USDT")
            assert "64,000.5" in btc and "72%" in btc and "0.87" in btc and "down: liquidation" in btc, screen
            assert "3,150.25" in row_of(screen, "ETH-USDT")
            assert "CRITICAL BTC-USDT down" in screen
        finally:
            subprocess.run([*tmux, "kill-server"], capture_output=True)


def test_narrow_terminal_hides_columns_instead_of_squashing(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    path.write_text(json.dumps(BTC) + "\n")
    console = Console(record=True, width=80, color_system=None)
    args = argparse.Namespace(from_file=path, asset=[], url=None, token_env="X", duration=None)
    run(args, console)
    text = console.export_text()
    assert "columns hidden: widen the terminal" in text
    btc = row_of(text, "BTC-USDT")
    assert "64,000.5" in btc and "72%" in btc and "4%" in btc
    assert all(len(line) <= 80 for line in text.splitlines())


def test_a_refused_token_names_the_variable_given_with_token_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CW_TEST_TAIL_TOKEN", "the-right-token")
    server = RiskFeedServer.from_config(RiskFeedConfig(port=0, token_env="CW_TEST_TAIL_TOKEN")).start()

    async def scenario() -> str:
        view = TailView([])
        stop = asyncio.Event()
        seen: list[str] = []

        def changed() -> None:
            seen.append(view.status)
            if "refused" in view.status:
                stop.set()

        await asyncio.wait_for(
            follow(server.url, view, changed, token="wrong", stop=stop, token_env="MY_FEED_TOKEN"), 10
        )
        return seen[-1]

    try:
        status = asyncio.run(scenario())
    finally:
        server.stop()
    assert status == f"{server.url}: refused with HTTP 401 (set $MY_FEED_TOKEN); retrying in 0.5s"
