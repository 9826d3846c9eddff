"""Every invalid book pages: a depth endpoint that answers 403 keeps the book invalid; within
``[live] book_alert_s`` the run raises a ``feed`` alert naming the venue, the instrument and the
cause, keeps it open while the venue keeps refusing (asked again on the slow schedule), and
resolves it once the book is valid again."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

from live_fakes import FakeBinance, SimBook
from live_support import FAST_BACKOFF, rebuild_books, tapped_options

from cascadewatch.connectors.live_config import LiveConfig, VenueConfig
from cascadewatch.connectors.recording import RecordingReader
from cascadewatch.pipelines.config import Config, ReplayConfig
from cascadewatch.pipelines.run.live import LiveOptions, run_live
from cascadewatch.pipelines.run.replay import ReplayOptions, run_replay

FORBIDDEN = (403, b'{"code":-2015,"msg":"Forbidden"}')


def test_a_book_refused_with_403_pages_until_fixed_then_resolves(tmp_path: Path) -> None:
    with FakeBinance() as fake:
        fake.books["BTCUSDT"] = SimBook(seed=41)
        fake.depth_status = FORBIDDEN
        live = LiveConfig(
            venues=["binance"],
            backoff=FAST_BACKOFF,
            book_alert_s=1.0,
            rest_permanent_retry_s=0.5,
            binance=VenueConfig(
                ws_url=fake.ws_url("/market/stream"),
                ws_book_url=fake.ws_url("/public/stream"),
                rest_url=fake.rest_url,
                symbols=["BTCUSDT"],
                poll_s=0.0,
            ),
        )
        times: dict[str, float] = {}

        async def market() -> None:
            while sum(1 for c in fake.clients if c.topics and c.closed is None) < 2:
                await asyncio.sleep(0.01)
            times["subscribed"] = time.time()
            for i in range(500):
                if i == 250:  # 2.5 s in: the venue lets us in again
                    fake.depth_status = None
                    times["fixed"] = time.time()
                await fake.agg_trade("BTCUSDT", 30000 + i % 3)
                await fake.depth_diff("BTCUSDT")
                await asyncio.sleep(0.01)

        running = fake.spawn(market())
        times["start"] = time.time()
        summary = run_live(
            Config(replay=ReplayConfig(allowed_lag_s=0.3)),
            live,
            LiveOptions(
                duration_s=6.5,
                alerts_out=tmp_path / "alerts.jsonl",
                snapshots_out=tmp_path / "snapshots.jsonl",
                dead_letters_out=tmp_path / "dead.jsonl",
                serve_metrics=False,
                serve_riskfeed=False,
            ),
        )
        running.result(5)
        depth = [path for path in fake.rest_log if path.startswith("/fapi/v1/depth")]

    feed = [a for a in summary.alerts if a["kind"] == "feed"]
    assert [a["action"] for a in feed] == ["trigger", "resolve"]
    trigger, resolve = feed
    assert trigger["venue"] == "binance-usdm" and trigger["instrument"] == "BTC-USDT-PERP"
    assert trigger["problem"].startswith("invalid: book invalid for 1 s: http_403 on GET /fapi/v1/depth?symbol=BTCUSDT")
    # paged once invalid for book_alert_s (the detail says 1 s), within a tick (0.5 s) of it;
    # the alert's ts is the start of the event-time second of the page
    assert 0.0 <= trigger["ts"] / 1000 - times["start"] <= 2.0
    assert resolve["ts"] // 1000 >= int(times["fixed"])  # open the whole time the venue refused (ts: a second)
    # 403s asked again every 0.5 s (not at once, not never): about 5 in the 2.5 s, then one 200
    assert 4 <= len(depth) - 1 <= 7


def test_run_under_a_full_queue_resyncs_every_book_hit_and_its_recording_replays_the_same(tmp_path: Path) -> None:
    """A hand-over queue of 150 frames, a dataflow that polls every 50 ms and bursts of 300
    diffs per symbol: frames are dropped. Each drop leaves a ``drop`` marker in the recording naming
    the books it hit; each such book (in sync at the time) shows one upstream gap and resyncs
    from a new snapshot; at the end every book is valid and equal to the venue's; the
    recording replays to the run's snapshots and alerts, byte for byte."""
    symbols = ["BTCUSDT", "ETHUSDT", "SOLUSDT"]
    with FakeBinance() as fake:
        for seed, symbol in enumerate(symbols):
            fake.books[symbol] = SimBook(seed=60 + seed)
        live = LiveConfig(
            venues=["binance"],
            backoff=FAST_BACKOFF,
            queue_size=150,
            poll_ms=50.0,
            binance=VenueConfig(
                ws_url=fake.ws_url("/market/stream"),
                ws_book_url=fake.ws_url("/public/stream"),
                rest_url=fake.rest_url,
                symbols=symbols,
                poll_s=0.0,
            ),
        )

        async def market() -> None:
            while sum(1 for c in fake.clients if c.topics and c.closed is None) < 2:
                await asyncio.sleep(0.01)
            for symbol in symbols:  # every instrument announced at once
                await fake.agg_trade(symbol)
            for burst in range(3):
                await asyncio.sleep(0.6)
                for _ in range(300):
                    for symbol in symbols:
                        await fake.depth_diff(symbol)
                await fake.agg_trade("BTCUSDT", 30000 + burst)
            await asyncio.sleep(0.6)
            for _ in range(3):  # quiet diffs: the books hit last ask for snapshots and bridge them
                for symbol in symbols:
                    await fake.depth_diff(symbol)
                await asyncio.sleep(0.2)

        running = fake.spawn(market())
        live_out = tmp_path / "live"
        config = Config(replay=ReplayConfig(allowed_lag_s=0.3))
        summary = run_live(
            config,
            live,
            tapped_options(live_out, 7.0, tmp_path / "tap.rec"),
        )
        assert running.done()  # the market ended before the run
        server = {s: (dict(fake.books[s].bids), dict(fake.books[s].asks)) for s in symbols}

    (tap,) = sorted(tmp_path.glob("tap.*.rec"))
    frames = [(f.recv, f.source, f.payload) for f in RecordingReader(tap)]
    markers = [json.loads(p) for _, s, p in frames if s.endswith("!conn") and b'"drop"' in p]
    dropped = summary.dead_letters[("binance-usdm", "queue_full")]
    assert dropped > 0 and sum(m["frames"] for m in markers) == dropped  # every drop is in a marker
    hit = [book for marker in markers for book in marker["books"]]
    assert hit  # diffs were among the dropped frames
    books, statuses = rebuild_books(frames)
    assert statuses.count("gap") == statuses.count("resync") >= len(markers)
    assert all(books[s].book.valid and (books[s].book.bids, books[s].book.asks) == server[s] for s in symbols)
    replay_out = tmp_path / "replay"
    run_replay(  # the run's config: the same allowed lag, so the same seconds
        [tap],
        config,
        ReplayOptions(alerts_out=replay_out / "alerts.jsonl", snapshots_out=replay_out / "snapshots.jsonl"),
    )
    assert (replay_out / "snapshots.jsonl").read_bytes() == (live_out / "snapshots.jsonl").read_bytes()
    # the alerts are the same bytes up to their audit manifest (the last key), which names the
    # live feed and its tap in the run, the tap's lines in the replay
    live_alerts = (live_out / "alerts.jsonl").read_bytes().splitlines()
    replay_alerts = (replay_out / "alerts.jsonl").read_bytes().splitlines()
    assert live_alerts  # the dropped frames interrupted the books: feed alerts
    assert [a[: a.rindex(b',"audit":')] for a in replay_alerts] == [a[: a.rindex(b',"audit":')] for a in live_alerts]
    for line in live_alerts:
        assert json.loads(line)["audit"]["inputs"] == [{"live": "binance-usdm", "recording": tap.name}]
