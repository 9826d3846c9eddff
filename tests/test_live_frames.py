"""Frame-level robustness: oversize frames and deep nesting are named dead letters, not crashes.

An oversize frame is not handed over: the session sends an ``oversize`` connection event with
the frame's size and head, which the decoder turns into an ``oversize`` dead letter (and a
recording keeps, so a replay shows it too). JSON nested 100,000 deep is ``malformed_json``.
"""

from __future__ import annotations

import asyncio
import json

import pytest
from live_fakes import FakeBinance
from live_support import capture, conn_events, make_live, ws_payloads

from cascadewatch.connectors.frames import FrameDecoder
from cascadewatch.connectors.session import HEAD_BYTES, SessionSettings
from cascadewatch.connectors.venues.base import ParseError

STREAM = "btcusdt@aggTrade"


def big_frame(size: int) -> str:
    head = '{"stream":"btcusdt@aggTrade","data":{"e":"aggTrade","s":"BTCUSDT","pad":"'
    return head + "x" * (size - len(head) - 3) + '"}}'


def _subscribed(fake: FakeBinance) -> bool:
    return sum(1 for c in fake.clients if c.topics and c.closed is None) >= 2


def oversize_letters(frames: list) -> list[ParseError]:
    decoder, found = FrameDecoder(), []
    for recv, source, payload in frames:
        if source.endswith("!conn") and b'"oversize"' in payload:
            with pytest.raises(ParseError) as caught:
                decoder.decode(source, payload, recv)
            found.append(caught.value)
    return found


def test_an_oversize_frame_is_a_dead_letter_with_its_size_and_head_and_the_connection_stays_up() -> None:
    frame = big_frame(10_000)
    with FakeBinance() as fake:
        live = make_live("binance", fake, ["BTCUSDT"], "/market/stream", "/public/stream", max_frame_bytes=4096)
        after: list[str] = []

        async def script() -> None:
            while not _subscribed(fake):
                await asyncio.sleep(0.01)
            await fake.agg_trade("BTCUSDT")
            await fake.publish(STREAM, frame)
            after.append(await fake.agg_trade("BTCUSDT"))

        done = fake.spawn(script())
        frames = capture("binance", live, lambda f: done.done() and after[0].encode() in ws_payloads(f), timeout=10)
        done.result(1)
    events = conn_events(frames)
    [oversize] = [e for e in events if e["event"] == "oversize"]
    assert oversize["size"] == 10_000 and oversize["limit"] == 4096
    assert oversize["head"] == frame[:HEAD_BYTES]
    others = [(e["event"], e.get("reason")) for e in events if e["event"] != "oversize"]
    assert others == [("open", "connect")] * 2 + [("close", "shutdown")] * 2  # no reconnect in between
    assert frame.encode() not in ws_payloads(frames)
    [letter] = oversize_letters(frames)
    assert (letter.reason, letter.detail) == ("oversize", "frame of 10000 bytes over max_frame_bytes 4096")


def test_a_frame_past_the_hard_limit_closes_with_1009_and_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(SessionSettings, "hard_frame_bytes", property(lambda self: 8192))
    with FakeBinance() as fake:
        live = make_live("binance", fake, ["BTCUSDT"], "/market/stream", "/public/stream", max_frame_bytes=4096)

        async def script() -> None:
            while not _subscribed(fake):
                await asyncio.sleep(0.01)
            await fake.publish(STREAM, big_frame(20_000))

        done = fake.spawn(script())
        frames = capture("binance", live, lambda f: [e["event"] for e in conn_events(f)].count("open") >= 3, timeout=10)
        done.result(1)
    events = [e for e in conn_events(frames) if e["event"] in ("oversize", "close")]
    assert [e["event"] for e in events][:2] == ["oversize", "close"]
    assert "size" not in events[0] and "8192" in events[0]["reason"]
    [letter] = oversize_letters(frames)
    assert (letter.reason, letter.detail) == (
        "oversize",
        "frame of ? bytes over max_frame_bytes 4096"
        " (frame exceeds limit of 8192 bytes; connection closed with code 1009)",
    )


@pytest.mark.parametrize(
    ("source", "frame"),
    [
        ("binance-usdm", b'{"stream":"btcusdt@depth@100ms","data":%s}'),
        ("bybit-linear", b'{"topic":"orderbook.50.BTCUSDT","type":"delta","data":%s}'),
        ("okx-swap", b'{"arg":{"channel":"books","instId":"BTC-USDT-SWAP"},"data":%s}'),
        ("okx-swap!rest", b'{"path":"/api/v5/market/books","body":%s}'),
        ("binance-usdm!conn", b'{"event":"open","extra":%s}'),
    ],
)
def test_json_nested_100k_deep_is_malformed_json(source: str, frame: bytes) -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    with pytest.raises(ParseError) as caught:
        FrameDecoder().decode(source, frame % deep, 1)
    assert caught.value.reason == "malformed_json"
    assert caught.value.detail.startswith("nested too deep to decode")


def test_the_recorded_oversize_event_replays_as_the_same_dead_letter() -> None:
    event = {"event": "oversize", "url": "wss://x", "conn": "market", "size": 20_971_520, "limit": 16_777_216}
    payload = json.dumps({**event, "head": '{"stream":"btcusdt@depth'}).encode()
    with pytest.raises(ParseError) as caught:
        FrameDecoder().decode("binance-usdm!conn", payload, 1)
    assert (caught.value.reason, caught.value.detail) == (
        "oversize",
        "frame of 20971520 bytes over max_frame_bytes 16777216",
    )
