"""The live Bytewax source: the replay source's item protocol, a counted full queue, a venue
that is down from the start, and a live run that its own recording replays byte for byte."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from pathlib import Path

from live_fakes import FakeBinance, FakeOkx, SimBook
from live_support import FAST_BACKOFF, tapped_options
from prometheus_client import REGISTRY

from cascadewatch.connectors.frames import DeadLetter
from cascadewatch.connectors.live import LivePartition
from cascadewatch.connectors.live_config import LiveConfig, VenueConfig
from cascadewatch.connectors.recording import RecordingWriter
from cascadewatch.connectors.rest import Reply
from cascadewatch.connectors.sources import (
    DEAD_LETTER_KEY,
    END_OF_TIME,
    PARTITION_KEY,
    STATS_KEY,
    PartitionStats,
    Watermark,
)
from cascadewatch.connectors.units import NS_PER_MS, NS_PER_S, s_to_ns
from cascadewatch.pipelines.config import Config, ReplayConfig
from cascadewatch.pipelines.run.explain import explain
from cascadewatch.pipelines.run.live import LiveOptions, run_live
from cascadewatch.pipelines.run.replay import ReplayOptions, run_replay

T0 = 1_700_000_000 * NS_PER_S
"""The fake wall clock's start: a whole second, so watermarks have known values."""


class FakeClock:
    """A wall clock in integer nanoseconds that moves only when told to."""

    def __init__(self, now_ns: int) -> None:
        self.now_ns = now_ns

    def __call__(self) -> int:
        return self.now_ns

    def advance(self, seconds: float) -> None:
        self.now_ns += s_to_ns(seconds)


TRADE = (
    b'{"arg":{"channel":"trades","instId":"BTC-USDT-SWAP"},"data":[{"instId":"BTC-USDT-SWAP",'
    b'"tradeId":"%d","px":"30000.1","sz":"2","side":"sell","ts":"%d"}]}'
)
UNREACHABLE = VenueConfig(ws_url="ws://127.0.0.1:9/ws", rest_url="http://127.0.0.1:9", symbols=["BTC-USDT-SWAP"])


def _queue_full_total(venue: str) -> float:
    return (
        REGISTRY.get_sample_value("cascadewatch_feed_dead_letters_total", {"venue": venue, "reason": "queue_full"})
        or 0.0
    )


def test_a_full_queue_is_counted_and_reported_never_silent() -> None:
    """20 frames into a queue of 5 while the dataflow is not reading: 15 are dropped, each
    becomes a ``queue_full`` dead letter, the metric and the partition stats count them."""
    release = threading.Event()

    def blocked_rest(url: str, timeout: float) -> Reply:  # keeps the feed from adding frames
        release.wait(5)
        return Reply(0, error="test")

    live = LiveConfig(venues=["okx"], okx=UNREACHABLE, queue_size=5, backoff=FAST_BACKOFF)
    before = _queue_full_total("okx-swap")
    partition = LivePartition(0, "okx", live, 2_000_000_000, None, None, {"rest_get": blocked_rest})
    try:
        now_ms = time.time_ns() // 1_000_000
        accepted = [partition._queue.put(time.time_ns(), "okx-swap", TRADE % (i, now_ms)) for i in range(20)]
        assert accepted.count(True) == 5
        items = dict(partition.next_batch())
        dead = items[DEAD_LETTER_KEY]
        assert [d.reason for d in dead] == ["queue_full"] * 15
        assert all(isinstance(d, DeadLetter) and b'"tradeId"' in d.raw.encode() for d in dead)
        events = [v for v in items["okx-swap|BTC-USDT-PERP"] if not isinstance(v, Watermark)]
        assert len(events) == 5
        assert _queue_full_total("okx-swap") - before == 15
        partition._deadline = 0  # end the partition: its stats count the drops too
        release.set()
        stats: list[PartitionStats] = []
        deadline = time.monotonic() + 5
        while not stats and time.monotonic() < deadline:
            batch = dict(partition.next_batch())
            stats = batch.get(STATS_KEY, [])
            time.sleep(0.01)
        assert stats and stats[0].dead_letters["okx-swap queue_full"] == 15
    finally:
        release.set()
        partition.close()


def test_items_follow_the_replay_protocol_and_watermarks_follow_the_clock() -> None:
    """Keys ``venue|instrument`` with events then a Watermark; PARTITION_KEY carries only
    watermarks (so a venue with no instrument yet does not hold the merge back); watermarks
    are ``now - allowed_lag`` when the queue is empty; the end is END_OF_TIME plus stats."""
    release = threading.Event()

    def blocked_rest(url: str, timeout: float) -> Reply:
        release.wait(5)
        return Reply(0, error="test")

    live = LiveConfig(venues=["okx"], okx=UNREACHABLE, backoff=FAST_BACKOFF)
    clock = FakeClock(T0)
    partition = LivePartition(3, "okx", live, 2 * NS_PER_S, None, None, {"rest_get": blocked_rest}, clock)
    try:
        first = dict(partition.next_batch())
        assert list(first) == [PARTITION_KEY]
        mark = first[PARTITION_KEY][0]
        assert mark.partition == 3 and mark.wm == T0 - 2 * NS_PER_S  # now - allowed_lag
        assert list(partition.next_batch()) == []  # the same second: no new watermark
        partition._queue.put(T0 + 100_000_000, "okx-swap", TRADE % (1, T0 // NS_PER_MS))
        partition._queue.put(T0 + 200_000_000, "okx-swap", b'{"arg":{"channel":"trades"')  # garbage
        clock.advance(1.0)  # the next second: a new watermark is due
        second = dict(partition.next_batch())
        (garbage,) = second[DEAD_LETTER_KEY]
        assert garbage.reason == "malformed_json" and garbage.raw == '{"arg":{"channel":"trades"'
        values = second["okx-swap|BTC-USDT-PERP"]
        assert values[0].__class__.__name__ == "Trade" and isinstance(values[-1], Watermark)
        assert second[PARTITION_KEY] == [values[-1]]  # the same watermark, on both keys
        assert values[-1].wm == T0 + NS_PER_S - 2 * NS_PER_S
        partition._deadline = 0
        release.set()
        end: dict = {}
        deadline = time.monotonic() + 5
        while STATS_KEY not in end and time.monotonic() < deadline:
            end = dict(partition.next_batch())
            time.sleep(0.01)
        assert end["okx-swap|BTC-USDT-PERP"][-1].wm == END_OF_TIME
        assert end[STATS_KEY][0].frames["okx-swap trade"] == 1
        assert end[STATS_KEY][0].dead_letters == {"okx-swap malformed_json": 1}
    finally:
        release.set()
        partition.close()


def _okx_binance_live(binance: FakeBinance, okx: FakeOkx, **overrides) -> LiveConfig:
    return LiveConfig(
        venues=["binance", "okx"],
        backoff=FAST_BACKOFF,
        rest_timeout_s=2.0,
        binance=VenueConfig(
            ws_url=binance.ws_url("/market/stream"),
            ws_book_url=binance.ws_url("/public/stream"),
            rest_url=binance.rest_url,
            symbols=["BTCUSDT"],
            poll_s=0.5,
        ),
        okx=VenueConfig(
            ws_url=okx.ws_url("/ws/v5/public"), rest_url=okx.rest_url, symbols=["BTC-USDT-SWAP"], heartbeat_s=0.5
        ),
        **overrides,
    )


async def _binance_market(binance: FakeBinance, seconds: float) -> None:
    """Runs on the Binance fake's own loop (a websockets connection belongs to one loop)."""
    while not any(c.topics for c in binance.clients):
        await asyncio.sleep(0.01)
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    i = 0
    while loop.time() < end:
        await binance.agg_trade("BTCUSDT", 30000 + (i % 7))
        await binance.depth_diff("BTCUSDT")
        if i % 40 == 0:
            await binance.force_order("BTCUSDT", 29990.0, 2.5)
        i += 1
        await asyncio.sleep(0.01)


async def _okx_market(okx: FakeOkx, seconds: float) -> None:
    while not any(c.topics for c in okx.clients):
        await asyncio.sleep(0.01)
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    i = 0
    while loop.time() < end:
        await okx.trade("BTC-USDT-SWAP", 30001 + (i % 5))
        await okx.book_update("BTC-USDT-SWAP")
        i += 1
        await asyncio.sleep(0.01)


def test_live_run_and_the_replay_of_its_recording_give_the_same_snapshots_and_alerts(tmp_path: Path) -> None:
    """Two venues live for a few seconds; the server drops the Binance connections once (a real
    disconnect: feed alerts, book resync from a new snapshot). Replaying the recording the run
    wrote gives byte-identical snapshots and alerts."""
    with FakeBinance(lifetime_s=1.5) as binance, FakeOkx() as okx:
        binance.books["BTCUSDT"] = SimBook(seed=21)
        okx.books["BTC-USDT-SWAP"] = SimBook(seed=22, mid=30001.0)
        live = _okx_binance_live(binance, okx)
        markets = [binance.spawn(_binance_market(binance, 3.0)), okx.spawn(_okx_market(okx, 3.0))]
        live_out = tmp_path / "live"
        summary = run_live(
            Config(),
            live,
            tapped_options(live_out, 3.5, tmp_path / "tap.rec.zst"),
        )
        for market in markets:
            market.result(5)

    taps = sorted(tmp_path.glob("tap.*.rec.zst"))
    assert [p.name for p in taps] == ["tap.binance-usdm.rec.zst", "tap.okx-swap.rec.zst"]
    replay_out = tmp_path / "replay"
    replayed = run_replay(
        taps,
        options=ReplayOptions(alerts_out=replay_out / "alerts.jsonl", snapshots_out=replay_out / "snapshots.jsonl"),
    )
    live_snapshots = (live_out / "snapshots.jsonl").read_bytes()
    assert live_snapshots.count(b"\n") >= 3
    assert (replay_out / "snapshots.jsonl").read_bytes() == live_snapshots
    # the alerts are the same bytes up to their audit manifest (the last key), which names the
    # live feeds and their taps in the run, the taps' lines in the replay
    live_alerts = (live_out / "alerts.jsonl").read_bytes().splitlines()
    replay_alerts = (replay_out / "alerts.jsonl").read_bytes().splitlines()
    assert live_alerts and [a[: a.rindex(b',"audit":')] for a in replay_alerts] == [
        a[: a.rindex(b',"audit":')] for a in live_alerts
    ]
    assert json.loads(live_alerts[0])["audit"]["inputs"] == [
        {"live": "binance-usdm", "recording": "tap.binance-usdm.rec.zst"},
        {"live": "okx-swap", "recording": "tap.okx-swap.rec.zst"},
    ]
    # so a live alert is explained from the taps: re-made with the same evidence
    alert_id = json.loads(live_alerts[-1])["id"]
    explained = explain(alert_id, Config(), taps, live_out / "alerts.jsonl")
    assert explained.live and explained.evidence_identical and explained.identical
    assert explained.replayed == [(tap.name, -1) for tap in taps]
    assert replayed.frames == summary.frames
    assert not summary.dead_letters
    assert not replayed.dead_letters
    kinds = {kind for _, kind in summary.frames}
    assert {"trade", "book", "liquidation", "conn:open", "conn:close"} <= kinds
    feed_alerts = [a for a in summary.alerts if a["kind"] == "feed"]
    assert any(a["action"] == "trigger" for a in feed_alerts)  # the dropped connection paged


def test_replay_reads_a_recorded_okx_pong_as_control(tmp_path: Path) -> None:
    """``cascadewatch record`` keeps OKX's text ``pong`` frames; a replay must count them as control."""
    path = tmp_path / "pong.rec"
    with RecordingWriter(path) as writer:
        writer.write(1_700_000_000_000_000_000, "okx-swap", b"pong")
    summary = run_replay([path], options=ReplayOptions(alerts_out=tmp_path / "alerts.jsonl"))
    assert summary.frames[("okx-swap", "control")] == 1 and not summary.dead_letters


def test_a_venue_down_from_the_start_does_not_hold_back_the_others(tmp_path: Path) -> None:
    """OKX unreachable (connection refused, REST down) from the start: Binance snapshots are
    still released while the run goes on, not only at the end."""
    with FakeBinance() as binance:
        binance.books["BTCUSDT"] = SimBook(seed=31)
        live = LiveConfig(
            venues=["binance", "okx"],
            backoff=FAST_BACKOFF,
            rest_timeout_s=0.5,
            binance=VenueConfig(
                ws_url=binance.ws_url("/market/stream"),
                ws_book_url=binance.ws_url("/public/stream"),
                rest_url=binance.rest_url,
                symbols=["BTCUSDT"],
            ),
            okx=UNREACHABLE,
        )
        snapshots = tmp_path / "snapshots.jsonl"

        async def trades() -> None:
            while not any(c.topics for c in binance.clients):
                await asyncio.sleep(0.01)
            for i in range(300):
                await binance.agg_trade("BTCUSDT", 30000 + i % 3)
                await asyncio.sleep(0.01)

        market = binance.spawn(trades())
        started = time.monotonic()
        config = Config(replay=ReplayConfig(allowed_lag_s=0.5))  # a second closes 0.5 s after it ends
        runner = threading.Thread(
            target=run_live,
            args=(
                config,
                live,
                LiveOptions(
                    duration_s=4.0,
                    alerts_out=tmp_path / "alerts.jsonl",
                    snapshots_out=snapshots,
                    dead_letters_out=tmp_path / "dead.jsonl",
                    serve_metrics=False,
                    serve_riskfeed=False,
                ),
            ),
        )
        runner.start()
        seen_at = None
        while runner.is_alive():
            if snapshots.exists() and snapshots.read_bytes().count(b"\n") >= 1:
                seen_at = time.monotonic() - started
                break
            time.sleep(0.05)
        runner.join(10)
        market.cancel()

    assert seen_at is not None and seen_at < 3.2  # well before the 4 s run ends (about 2 s expected)
    lines = [json.loads(line) for line in snapshots.read_text().splitlines()]
    assert {line["asset"] for line in lines} == {"BTC-USDT"}
    assert all(line["venues"] == ["binance-usdm"] for line in lines)


def test_run_command_writes_the_outputs_named_in_the_config(tmp_path: Path) -> None:
    from cascadewatch.pipelines.cli.live import main as live_main

    with FakeBinance() as binance:
        binance.books["BTCUSDT"] = SimBook(seed=51)
        config = tmp_path / "live.toml"
        config.write_text(f"""
[replay]
allowed_lag_s = 0.5
[riskfeed]
enabled = false
[live]
venues = ["binance"]
symbols = ["BTC"]
alerts_out = "{tmp_path / "out" / "alerts.jsonl"}"
snapshots_out = "{tmp_path / "out" / "snapshots.jsonl"}"
dead_letters_out = "{tmp_path / "out" / "dead.jsonl"}"
[live.binance]
ws_url = "{binance.ws_url("/market/stream")}"
ws_book_url = "{binance.ws_url("/public/stream")}"
rest_url = "{binance.rest_url}"
""")

        async def trades() -> None:
            while not any(c.topics for c in binance.clients):
                await asyncio.sleep(0.01)
            for _ in range(150):
                await binance.agg_trade("BTCUSDT")
                await binance.depth_diff("BTCUSDT")
                await asyncio.sleep(0.01)

        market = binance.spawn(trades())
        assert live_main(["run", str(config), "--duration", "2.5", "--quiet"]) == 0
        market.result(5)
    snapshots = [json.loads(line) for line in (tmp_path / "out" / "snapshots.jsonl").read_text().splitlines()]
    assert snapshots and {s["asset"] for s in snapshots} == {"BTC-USDT"}
    assert (tmp_path / "out" / "alerts.jsonl").exists()
