"""Unit tests of the live pieces: backoff, token bucket, rollover de-duplication, settings,
subscription messages per venue, book sync state machines, config files."""

from __future__ import annotations

import asyncio
import json
import random
from pathlib import Path

import msgspec
import pytest

from cascadewatch.connectors.live import resolve_settings, venue_symbols
from cascadewatch.connectors.live_config import BackoffConfig, LiveConfig, VenueConfig
from cascadewatch.connectors.session import Backoff, TokenBucket
from cascadewatch.connectors.venues import binance, bybit, okx
from cascadewatch.connectors.venues.live_common import (
    THIS,
    Emit,
    Fetch,
    Overlap,
    Resubscribe,
)
from cascadewatch.connectors.venues.registry import VENUE_NAMES, VENUES
from cascadewatch.pipelines.config import ConfigError
from cascadewatch.pipelines.run.live import load_live_config

ROOT = Path(__file__).parent.parent


def test_backoff_is_capped_exponential_with_jitter_and_resets_after_a_stable_period() -> None:
    config = BackoffConfig(initial_s=1, max_s=30, factor=2, jitter=0.25, reset_after_s=60)
    backoff = Backoff(config, random.Random(1))
    delays = [backoff.next_delay() for _ in range(8)]
    for n, delay in enumerate(delays):
        base = min(30, 2**n)
        assert base * 0.75 <= delay <= base * 1.25
    assert len({round(d, 6) for d in delays[5:]}) > 1  # jitter spreads the capped delays
    backoff.connected_for(59)
    assert backoff.attempt == 8
    backoff.connected_for(60)
    assert backoff.attempt == 0 and backoff.next_delay() <= 1.25


def test_token_bucket_paces_after_the_burst() -> None:
    now = [0.0]
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    bucket = TokenBucket(rate=4.0, burst=4, clock=lambda: now[0])

    async def take(n: int) -> None:
        for _ in range(n):
            await bucket.acquire(sleep)

    asyncio.run(take(12))
    assert now[0] == pytest.approx(2.0)  # 4 at once, then 8 at 4 per second
    assert all(s == pytest.approx(0.25) for s in slept)


def test_overlap_drops_what_the_old_connection_delivered_and_keeps_the_rest() -> None:
    def key(payload: bytes) -> tuple[str, int] | None:
        return binance.frame_key(payload)

    def agg(a: int) -> bytes:
        return b'{"stream":"btcusdt@aggTrade","data":{"e":"aggTrade","E":1,"a":%d,"s":"BTCUSDT"}}' % a

    overlap = Overlap(key)
    for a in (10, 11, 12):
        overlap.note_old(agg(a))
    overlap.note_old(b'{"stream":"x@kline_1m","data":{"e":"unknown"}}')
    for payload in (
        agg(11),
        agg(12),
        agg(13),
        b'{"stream":"x@kline_1m","data":{"e":"unknown"}}',
        b'{"result":null,"id":1}',
    ):
        overlap.hold_new(5, payload)
    released = [payload for _, payload in overlap.release()]
    assert released == [agg(13), b'{"result":null,"id":1}']
    assert overlap.duplicates == 3
    assert not overlap.admit(agg(13)) and overlap.admit(agg(14))  # the tail after the switch


def test_settings_overlay_defaults_and_a_single_url_venue_follows_its_ws_url() -> None:
    live = LiveConfig(okx=VenueConfig(ws_url="ws://h:1/ws", heartbeat_s=5.0), staleness_s=7.0)
    okx_settings = resolve_settings("okx", live)
    assert okx_settings.ws_url == okx_settings.ws_book_url == "ws://h:1/ws"
    assert okx_settings.heartbeat_s == 5.0 and okx_settings.staleness_s == 7.0
    assert okx_settings.rest_url == okx.LIVE.rest_url
    binance_settings = resolve_settings("binance", LiveConfig(binance=VenueConfig(ws_url="ws://h:1/market/stream")))
    assert binance_settings.ws_book_url == binance.LIVE.ws_book_url  # Binance books stay on /public
    assert venue_symbols("okx", LiveConfig(symbols=["btc", "ETH"])) == ["BTC-USDT-SWAP", "ETH-USDT-SWAP"]
    assert venue_symbols("bybit", LiveConfig(symbols=["SOL"], quote="USDC")) == ["SOLPERP"]
    assert venue_symbols("binance", LiveConfig(binance=VenueConfig(symbols=["XUSDT"]))) == ["XUSDT"]


def test_subscription_messages_respect_each_venues_limits() -> None:
    settings = resolve_settings("bybit", LiveConfig())
    topics = [t for spec in bybit.connections(["BTCUSDT", "ETHUSDT", "SOLUSDT"], settings) for t in spec.topics]
    messages = [json.loads(m) for m in bybit.subscribe_messages(topics, settings.max_topics_per_message)]
    assert len(topics) == 12 and [len(m["args"]) for m in messages] == [10, 2]
    assert {m["op"] for m in messages} == {"subscribe"}
    b_settings = resolve_settings("binance", LiveConfig())
    specs = binance.connections(["BTCUSDT"], b_settings)
    assert [(s.name, s.url) for s in specs] == [("market", binance.LIVE.ws_url), ("public", binance.LIVE.ws_book_url)]
    assert specs[0].topics == ("btcusdt@aggTrade", "btcusdt@markPrice@1s", "btcusdt@forceOrder")
    assert specs[1].topics == ("btcusdt@depth@100ms",)
    many = binance.connections([f"S{i}USDT" for i in range(100)], b_settings)
    assert [len(s.topics) for s in many] == [200, 100, 100] and many[1].name == "market-2"
    ids = [json.loads(m)["id"] for m in binance.subscribe_messages(many[0].topics, 50, first_id=7)]
    assert ids == [7, 8, 9, 10]
    o_settings = resolve_settings("okx", LiveConfig())
    (spec,) = okx.connections(["BTC-USDT-SWAP"], o_settings)
    (message,) = [json.loads(m) for m in okx.subscribe_messages(spec.topics, 50)]
    assert {"channel": "books", "instId": "BTC-USDT-SWAP"} in message["args"]
    assert {"channel": "liquidation-orders", "instType": "SWAP"} in message["args"]
    assert okx.heartbeat_message() == "ping" and bybit.heartbeat_message() == '{"op":"ping"}'
    assert binance.heartbeat_message() is None


def test_data_and_control_frames_are_told_apart_for_the_stale_watchdog() -> None:
    assert binance.is_data(b'{"stream":"btcusdt@aggTrade","data":{"e":"aggTrade"}}')
    assert not binance.is_data(b'{"result":null,"id":1}')
    assert bybit.is_data(b'{"topic":"publicTrade.BTCUSDT","data":[]}')
    assert not bybit.is_data(b'{"success":true,"ret_msg":"pong","op":"ping"}')
    assert okx.is_data(b'{"arg":{"channel":"trades"},"data":[]}')
    assert not okx.is_data(b"pong") and not okx.is_data(b'{"event":"subscribe","arg":{}}')
    assert okx.rollover_hint(b'{"event":"notice","code":"64008","msg":"The connection will soon be closed"}')


def _depth(u_first: int, u: int, pu: int) -> bytes:
    return (
        b'{"stream":"btcusdt@depth@100ms","data":{"e":"depthUpdate","E":1,"T":1,"s":"BTCUSDT",'
        b'"U":%d,"u":%d,"pu":%d,"b":[],"a":[]}}' % (u_first, u, pu)
    )


def test_binance_books_buffer_fetch_bridge_and_refetch_a_stale_snapshot() -> None:
    now = [7.0]
    books = binance.LiveBooks(["BTCUSDT"], resolve_settings("binance", LiveConfig()), clock=lambda: now[0])
    path = "/fapi/v1/depth?symbol=BTCUSDT&limit=1000"
    first = Fetch(path, weight=20, since=7.0)  # invalid since start; 1000 levels weigh 20
    assert books.on_frame(1, _depth(101, 110, 100)) == [first]  # buffered; ask for the snapshot
    assert books.on_frame(2, _depth(111, 120, 110)) == []
    stale = books.on_rest(path, 3, b'{"lastUpdateId":90,"bids":[],"asks":[]}')
    assert stale == [Fetch(path, 20, 7.0, retry=True)] and books.stale_snapshots == 1  # older: again, backing off
    out = books.on_rest(path, 4, b'{"lastUpdateId":115,"bids":[],"asks":[]}')
    assert [type(a) for a in out] == [Emit, Emit, Emit] and out[0].rest and out[2].payload == _depth(111, 120, 110)
    assert books.invalid() == {}
    assert books.on_frame(5, _depth(121, 130, 120)) == (THIS,)
    now[0] = 9.0
    assert books.on_frame(6, _depth(141, 150, 140)) == [THIS, Fetch(path, 20, 9.0)]  # pu break: resync
    assert books.gaps == 1 and books.invalid() == {"BTCUSDT": 9.0}
    assert books.on_rest("/fapi/v1/openInterest?symbol=BTCUSDT", 7, b"{}") is None  # not a book: as is


def test_resubscribe_books_ask_once_per_gap_and_again_after_the_timeout() -> None:
    now = [0.0]
    settings = resolve_settings("bybit", LiveConfig(resync_timeout_s=5.0))
    books = bybit.LiveBooks(["BTCUSDT"], settings, clock=lambda: now[0])

    def frame(kind: str, u: int) -> bytes:
        return b'{"topic":"orderbook.50.BTCUSDT","type":"%s","ts":1,"data":{"s":"BTCUSDT","b":[],"a":[],"u":%d}}' % (
            kind.encode(),
            u,
        )

    assert books.on_frame(1, frame("snapshot", 10)) == (THIS,)
    assert books.on_frame(2, frame("delta", 11)) == (THIS,)
    assert books.on_frame(3, frame("delta", 13)) == [THIS, Resubscribe(("orderbook.50.BTCUSDT",))]
    assert books.on_frame(4, frame("delta", 15)) == (THIS,)  # already resyncing
    assert books.tick(4.0) == []
    assert books.tick(5.0) == [Resubscribe(("orderbook.50.BTCUSDT",))]
    assert books.on_frame(5, frame("snapshot", 20)) == (THIS,)
    assert books.on_frame(6, frame("delta", 21)) == (THIS,) and books.tick(100.0) == []


def test_example_config_loads_and_shows_the_venue_defaults() -> None:
    config, live = load_live_config(ROOT / "deploy" / "config.example.toml")
    assert live.venues == list(VENUE_NAMES) and live.metrics_port == 9108
    for name, module in VENUES.items():
        settings = resolve_settings(name, live)
        for field in ("ws_url", "ws_book_url", "rest_url", "heartbeat_s", "max_topics_per_message", "book_depth"):
            assert getattr(settings, field) == getattr(module.LIVE, field), (name, field)
    assert config.replay.allowed_lag_s == 2.0


def test_config_errors_name_the_file_and_the_key(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[live]\nvenues = ["binance"]\nstalenes_s = 3\n')
    with pytest.raises(ConfigError, match="stalenes_s"):
        load_live_config(bad)
    bad.write_text('[live]\nvenues = ["kraken"]\n')
    with pytest.raises(ConfigError, match="kraken"):
        load_live_config(bad)
    assert msgspec.toml.decode(b'[binance]\nws_url = "ws://x"', type=LiveConfig).binance.ws_url == "ws://x"
