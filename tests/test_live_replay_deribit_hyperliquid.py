"""Deribit and Hyperliquid live together against their fakes: the recording the run wrote
replays to byte-identical snapshots and alerts (a dropped connection and a broken change_id
chain included)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from live_fakes import FakeDeribit, FakeHyperliquid, SimBook
from live_support import FAST_BACKOFF, tapped_options

from cascadewatch.connectors.live_config import LiveConfig, VenueConfig
from cascadewatch.connectors.venues.hyperliquid import LIQUIDATORS
from cascadewatch.pipelines.config import Config
from cascadewatch.pipelines.run.live import run_live
from cascadewatch.pipelines.run.replay import ReplayOptions, run_replay

LIQUIDATOR = next(iter(LIQUIDATORS))


async def _deribit_market(fake: FakeDeribit, seconds: float) -> None:
    while not any(c.topics for c in fake.clients):
        await asyncio.sleep(0.01)
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    i = 0
    while loop.time() < end:
        await fake.trade("BTC-PERPETUAL", 30001 + (i % 5), liquidation="T" if i % 25 == 0 else None)
        await fake.book_change("BTC-PERPETUAL", break_chain=(i == 60))
        if i == 120:
            await fake.drop()
            while not any(c.topics and c.closed is None for c in fake.clients):
                await asyncio.sleep(0.01)
        i += 1
        await asyncio.sleep(0.01)


async def _hyperliquid_market(fake: FakeHyperliquid, seconds: float) -> None:
    while not any(c.topics for c in fake.clients):
        await asyncio.sleep(0.01)
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    i = 0
    while loop.time() < end:
        users = (LIQUIDATOR, "0x" + "5" * 40) if i % 30 == 0 else ("0x" + "6" * 40, "0x" + "7" * 40)
        await fake.trade("BTC", 30000 + (i % 3), users=users)
        await fake.book_push("BTC")
        if i % 10 == 0:
            await fake.asset_ctx("BTC", 30000.5)
        if i == 150:
            await fake.drop()
            while not any(c.topics and c.closed is None for c in fake.clients):
                await asyncio.sleep(0.01)
        i += 1
        await asyncio.sleep(0.01)


def test_live_run_and_the_replay_of_its_recording_give_the_same_outputs(tmp_path: Path) -> None:
    with FakeDeribit() as deribit, FakeHyperliquid() as hyperliquid:
        deribit.books["BTC-PERPETUAL"] = SimBook(seed=51)
        hyperliquid.books["BTC"] = SimBook(seed=52, mid=30000.5)
        live = LiveConfig(
            venues=["deribit", "hyperliquid"],
            backoff=FAST_BACKOFF,
            rest_timeout_s=2.0,
            deribit=VenueConfig(
                ws_url=deribit.ws_url("/ws/api/v2"), rest_url=deribit.rest_url, symbols=["BTC-PERPETUAL"]
            ),
            hyperliquid=VenueConfig(ws_url=hyperliquid.ws_url("/ws"), rest_url=hyperliquid.rest_url, symbols=["BTC"]),
        )
        markets = [
            deribit.spawn(_deribit_market(deribit, 3.0)),
            hyperliquid.spawn(_hyperliquid_market(hyperliquid, 3.0)),
        ]
        live_out = tmp_path / "live"
        summary = run_live(
            Config(),
            live,
            tapped_options(live_out, 3.5, tmp_path / "tap.rec.zst"),
        )
        for market in markets:
            market.result(5)

    taps = sorted(tmp_path.glob("tap.*.rec.zst"))
    assert [p.name for p in taps] == ["tap.deribit.rec.zst", "tap.hyperliquid.rec.zst"]
    replay_out = tmp_path / "replay"
    replayed = run_replay(
        taps,
        options=ReplayOptions(alerts_out=replay_out / "alerts.jsonl", snapshots_out=replay_out / "snapshots.jsonl"),
    )
    live_snapshots = (live_out / "snapshots.jsonl").read_bytes()
    assert live_snapshots.count(b"\n") >= 3
    assert b'"BTC-USD"' in live_snapshots and b'"BTC-USDC"' in live_snapshots
    assert (replay_out / "snapshots.jsonl").read_bytes() == live_snapshots
    # the alerts are the same bytes up to their audit manifest (the last key), which names the
    # live feeds and their taps in the run, the taps' lines in the replay
    live_alerts = (live_out / "alerts.jsonl").read_bytes().splitlines()
    replay_alerts = (replay_out / "alerts.jsonl").read_bytes().splitlines()
    assert [a[: a.rindex(b',"audit":')] for a in replay_alerts] == [a[: a.rindex(b',"audit":')] for a in live_alerts]
    for line in live_alerts:
        assert json.loads(line)["audit"]["inputs"] == [
            {"live": "deribit", "recording": "tap.deribit.rec.zst"},
            {"live": "hyperliquid", "recording": "tap.hyperliquid.rec.zst"},
        ]
    assert replayed.frames == summary.frames
    assert summary.dead_letters == replayed.dead_letters == {("deribit", "sequence_gap"): 1}  # the broken chain
    kinds = set(summary.frames)
    assert {
        ("deribit", "trade+liquidation"),
        ("deribit", "book"),
        ("deribit", "conn:close"),
        ("hyperliquid", "trade+liquidation_inferred"),
        ("hyperliquid", "book"),
        ("hyperliquid", "asset_ctx"),
        ("hyperliquid", "conn:close"),
    } <= kinds
