"""BitMEX through the whole pipeline: a recording kept only as ``liquidation``, ``tradeBin1m``
and ``quoteBin1m`` frames replays to snapshots with (coarse) prices and liquidation readouts, and
the cascade label applied to its liquidations agrees with the snapshots; a live run against
``FakeBitmex`` and the replay of its own recording give byte-identical outputs."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from pathlib import Path

from live_fakes import FakeBitmex, SimBook
from live_support import FAST_BACKOFF, tapped_options

from cascadewatch.connectors.events import Liquidation
from cascadewatch.connectors.frames import FrameDecoder
from cascadewatch.connectors.live_config import LiveConfig, VenueConfig
from cascadewatch.connectors.recording import RecordingReader
from cascadewatch.connectors.units import NS_PER_S
from cascadewatch.detectors.labels import label_series
from cascadewatch.pipelines.cli.main import main as cli_main
from cascadewatch.pipelines.config import Config
from cascadewatch.pipelines.run.live import run_live
from cascadewatch.pipelines.run.replay import ReplayOptions, run_replay

BINS = Path(__file__).parent / "fixtures" / "bitmex" / "bins-cascade.rec"
T0_MS = 1_768_435_200_000  # 2026-01-15T00:00:00Z, the recording's start


def _replay_bins(tmp_path: Path) -> list[dict]:
    out = tmp_path / "snapshots.jsonl"
    argv = ["replay", str(BINS), "--snapshots-out", str(out), "--alerts-out", str(tmp_path / "alerts.jsonl")]
    assert cli_main([*argv, "--quiet"]) == 0
    return [json.loads(line) for line in out.read_text().splitlines()]


def _liquidations() -> list[Liquidation]:
    """The recording's liquidation events, parsed on their own (not through the dataflow)."""
    decoder = FrameDecoder()
    return [
        event
        for frame in RecordingReader(BINS)
        for event in decoder.decode(frame.source, frame.payload, frame.recv).events
        if isinstance(event, Liquidation)
    ]


def test_a_bins_only_recording_gives_coarse_prices_and_liquidation_readouts(tmp_path: Path) -> None:
    snapshots = _replay_bins(tmp_path)
    priced = [s for s in snapshots if s["ts"] >= T0_MS + 60_000]  # from the first bin on
    assert priced and all(s["asset"] == "BTC-USD" and s["venues"] == ["bitmex"] for s in snapshots)
    assert all(s["price"] is not None and s["coarse"] == ["bitmex"] for s in priced)
    assert snapshots[0]["price"] is None and "coarse" not in snapshots[0]  # before any bin
    by_ts = {s["ts"]: s for s in snapshots}
    assert by_ts[T0_MS + 60_000]["price"] == 43_000.0  # the quote bin's mid 42999.5 / 43000.5
    assert by_ts[T0_MS + 1_861_000]["price"] == 42_300.0  # the 00:31 bins, after the drop
    # every liquidation order counted once (insert; its update and delete add nothing): 31 x 200,000 USD
    assert sum(s["liq_long_usd_1s"] for s in snapshots) == 6_200_000.0
    assert max(s["liq_long_usd_60s"] for s in snapshots) == 6_200_000.0  # all 31 seconds in one 60 s window
    assert all(s["liq_short_usd_1s"] == 0.0 for s in snapshots)


def test_the_label_on_the_liquidations_agrees_with_the_snapshots(tmp_path: Path) -> None:
    """The label definition on a per-second series built from the parsed liquidations (time =
    receive time, as recorded) and the snapshots' price: one cascade down, starting at the first
    liquidation, whose forced notional equals the snapshots' liquidation notional over it."""
    snapshots = _replay_bins(tmp_path)
    liquidations = _liquidations()
    assert len(liquidations) == 31 and all(liq.side == "long" and liq.ts == liq.recv for liq in liquidations)
    forced = Counter()
    for liq in liquidations:
        forced[liq.ts // NS_PER_S * 1000] += liq.notional
    prices = {s["ts"]: s["price"] for s in snapshots if s["price"] is not None}
    seconds = range(min(prices), max(prices) + 1000, 1000)
    price, last = [], None
    for ts in seconds:  # the price holds between snapshots (it changes only with a bin)
        last = prices.get(ts, last)
        price.append(last)
    cascades = label_series(list(seconds), price, [forced[ts] for ts in seconds], [0.0] * len(seconds), asset="BTC-USD")
    assert [c["direction"] for c in cascades] == ["down"]
    (cascade,) = cascades
    assert cascade["start"] == T0_MS + 1_845_000  # 00:30:45, the first liquidation
    assert cascade["move_bps"] == round(1e4 * (43_000.0 - 42_300.0) / 43_000.0, 2)
    in_snapshots = sum(s["liq_long_usd_1s"] for s in snapshots if cascade["start"] <= s["ts"] <= cascade["end"])
    assert cascade["forced_notional"] == round(in_snapshots, 2) == 6_200_000.0


def _market(fake: FakeBitmex, seconds: float) -> asyncio.Future:
    async def run() -> None:
        while not any(c.topics for c in fake.clients):
            await asyncio.sleep(0.01)
        loop = asyncio.get_running_loop()
        end = loop.time() + seconds
        i = 0
        while loop.time() < end:
            await fake.trade("XBTUSD", 30000.0 + i % 7, 100 + i)
            await fake.book_change("XBTUSD")
            if i % 30 == 0:
                await fake.liquidation("XBTUSD", "Sell" if i % 60 else "Buy", 29990.0, 25_000)
            i += 1
            await asyncio.sleep(0.01)

    return fake.spawn(run())


def test_live_run_and_the_replay_of_its_recording_are_byte_identical(tmp_path: Path) -> None:
    """BitMEX live for a few seconds, the server dropping the connection once (a disconnect, a
    new partial); replaying the recording the run wrote gives the same snapshots and alerts."""
    with FakeBitmex(lifetime_s=1.5) as fake:
        fake.books["XBTUSD"] = SimBook(seed=51, mid=30000.0)
        live = LiveConfig(
            venues=["bitmex"],
            backoff=FAST_BACKOFF,
            rest_timeout_s=2.0,
            bitmex=VenueConfig(ws_url=fake.ws_url("/realtime"), rest_url=fake.rest_url, symbols=["XBTUSD"]),
        )
        market = _market(fake, 3.0)
        live_out = tmp_path / "live"
        summary = run_live(
            Config(),
            live,
            tapped_options(live_out, 3.5, tmp_path / "tap.rec.zst"),
        )
        market.result(5)
    (tap,) = sorted(tmp_path.glob("tap.*.rec.zst"))
    assert tap.name == "tap.bitmex.rec.zst"
    replay_out = tmp_path / "replay"
    replayed = run_replay(
        [tap],
        options=ReplayOptions(alerts_out=replay_out / "alerts.jsonl", snapshots_out=replay_out / "snapshots.jsonl"),
    )
    live_snapshots = (live_out / "snapshots.jsonl").read_bytes()
    assert live_snapshots.count(b"\n") >= 3 and b'"liq_long_usd_1s":25000.0' in live_snapshots
    assert (replay_out / "snapshots.jsonl").read_bytes() == live_snapshots
    # the alerts are the same bytes up to their audit manifest (the last key), which names the
    # live feed and its tap in the run, the tap's lines in the replay
    live_alerts = (live_out / "alerts.jsonl").read_bytes().splitlines()
    replay_alerts = (replay_out / "alerts.jsonl").read_bytes().splitlines()
    assert [a[: a.rindex(b',"audit":')] for a in replay_alerts] == [a[: a.rindex(b',"audit":')] for a in live_alerts]
    for line in live_alerts:
        assert json.loads(line)["audit"]["inputs"] == [{"live": "bitmex", "recording": tap.name}]
    assert replayed.frames == summary.frames and not summary.dead_letters and not replayed.dead_letters
    kinds = {kind for _, kind in summary.frames}
    assert {"trade", "book", "liquidation", "control", "instruments", "conn:open", "conn:close"} <= kinds
