"""The replay's fast path for trades (``VenueParser.hot_trade``, ``FrameDecoder.hot_trade``): where it
gives a trade, the frame decoder gives the same one; everything else goes the usual way, bad frames
included, and the replay source's batches and frame counts are the same with or without it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec
import pytest
from test_venue_binance import DOC_AGG_TRADE

from cascadewatch.connectors.events import Trade
from cascadewatch.connectors.frames import FrameDecoder
from cascadewatch.connectors.recording import RecordingReader, RecordingWriter
from cascadewatch.connectors.sources import ReplaySource
from cascadewatch.connectors.venues import binance
from cascadewatch.connectors.venues.base import Parsed, ParseError
from cascadewatch.pipelines.steps.instrument_tracker import InstrumentTracker

ROOT = Path(__file__).parents[1]
DEMO = ROOT / "pipelines" / "data" / "demo.rec.zst"
BINANCE_SESSION = ROOT / "tests" / "fixtures" / "recordings" / "binance-usdm-2021-07-22-head.rec"
HAND_MADE = ROOT / "tests" / "fixtures" / "bad" / "hand-made.rec"
RECV = 1_700_000_000_000_000_000
AGG_TRADE = DOC_AGG_TRADE
"""Binance's own aggTrade example (Aggregate Trade Streams)."""


def _frame(data: Any, stream: str = "btcusdt@aggTrade") -> bytes:
    return json.dumps({"stream": stream, "data": data}, separators=(",", ":")).encode()


def _known_parser() -> binance.Parser:
    """A parser that has already seen a BTCUSDT frame (the symbol's instrument is known)."""
    parser = binance.Parser()
    parser.parse_ws(_frame(AGG_TRADE), RECV)
    return parser


def _binance_frames(path: Path) -> list[tuple[int, int, bytes]]:
    """``(line number, recv, payload with its newline)`` of the well-formed ``binance-usdm`` lines."""
    out = []
    for line_no, line in RecordingReader(path).lines():
        parts = line.split(b" ", 2)
        if len(parts) == 3 and parts[0].isdigit() and parts[1] == b"binance-usdm":
            out.append((line_no, int(parts[0]), parts[2]))
    return out


def _aggtrade_frames(path: Path) -> int:
    """Combined-stream ``aggTrade`` frames of ``path`` that are JSON, counted with the json module."""
    count = 0
    for _, _, payload in _binance_frames(path):
        try:
            obj = json.loads(payload)
        except ValueError:
            continue
        if isinstance(obj, dict) and "stream" in obj and isinstance(obj["data"], dict):
            count += obj["stream"].endswith("@aggTrade") and obj["data"].get("e") == "aggTrade"
    return count


@pytest.mark.parametrize("path", [DEMO, BINANCE_SESSION, HAND_MADE])
def test_every_hot_trade_is_the_trade_parse_ws_gives(path: Path) -> None:
    """Over whole recordings (the line's newline kept, as the replay source passes it): a hot
    trade is exactly ``parse_ws``'s one trade; every aggTrade frame but the first of each symbol
    (the parser learns its instrument from it) and the bad ones is taken."""
    parser = binance.Parser()
    hot = taken = bad = 0
    symbols: set[str] = set()
    for line_no, recv, payload in _binance_frames(path):
        trade = parser.hot_trade(payload, recv)
        try:
            parsed = parser.parse_ws(payload.rstrip(b"\r\n"), recv)
        except ParseError:
            assert trade is None, line_no
            bad += b'"e":"aggTrade"' in payload
            continue
        if trade is not None:
            hot += 1
            assert parsed == Parsed("trade", [trade]), line_no
        elif parsed.kind == "trade" and payload.startswith(b'{"stream"') and b"@aggTrade" in payload[:64]:
            taken += 1  # the symbol's first frame: its instrument was not known yet
            assert parsed.events[0].symbol not in symbols, line_no
        symbols.update(event.symbol for event in parsed.events)
    assert hot == _aggtrade_frames(path) - taken - bad
    assert (hot, bad) == {DEMO: (10421 - taken, 0), BINANCE_SESSION: (3 - taken, 0), HAND_MADE: (11, 2)}[path]


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (_frame(dict(AGG_TRADE, p="-1")), "bad_price"),
        (_frame(dict(AGG_TRADE, p="NaN")), "bad_price"),
        (_frame(dict(AGG_TRADE, p="abc")), "bad_number"),
        (_frame(dict(AGG_TRADE, q="-0.5")), "bad_qty"),
        (_frame(dict(AGG_TRADE, m="maybe")), "schema"),
        (_frame(dict(AGG_TRADE, a=[1])), "schema"),
        (_frame(dict(AGG_TRADE, s="FOOBAR")), "unknown_instrument"),
        (_frame({"e": "newThing", "E": 1}), "unknown_channel"),
        (_frame(dict(AGG_TRADE, zz=[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]])), None),  # skipped, decodes
        (_frame(AGG_TRADE)[:-2], "malformed_json"),
        (b'{"stream":5,"data":{"e":"aggTrade"}}', "schema"),
    ],
)
def test_bad_or_other_aggtrade_frames_are_left_to_parse_ws(payload: bytes, reason: str | None) -> None:
    """A frame the fast path does not take gives ``None`` (never an exception), and ``parse_ws``
    gives its reason (or its events) as before."""
    parser = _known_parser()
    trade = parser.hot_trade(payload, RECV)
    if reason is None:
        assert trade == parser.parse_ws(payload, RECV).events[0]
        return
    assert trade is None
    with pytest.raises(ParseError) as caught:
        parser.parse_ws(payload, RECV)
    assert caught.value.reason == reason


def test_json_nested_too_deep_is_not_an_exception() -> None:
    """msgspec stops at its depth limit with RecursionError: the fast path gives None and the
    frame decoder counts ``malformed_json``."""
    deep = b"[" * 2000 + b"]" * 2000
    payload = b'{"stream":"btcusdt@aggTrade","data":{"e":"aggTrade","zz":' + deep + b"}}"
    decoder = FrameDecoder()
    decoder.decode("binance-usdm", _frame(AGG_TRADE), RECV)
    hot = decoder.hot_trade("binance-usdm")
    assert hot is not None and hot(payload, RECV) is None
    with pytest.raises(ParseError) as caught:
        decoder.decode("binance-usdm", payload, RECV)
    assert caught.value.reason == "malformed_json"


def test_other_streams_are_not_decoded_by_the_fast_path() -> None:
    """Only a stream named ``@aggTrade`` is decoded: a depth diff or a mark price gives None (left
    to ``parse_ws``), as does an ``aggTrade`` stream carrying another event or a raw frame."""
    parser = _known_parser()
    depth = {"e": "depthUpdate", "E": 1, "T": 1, "s": "BTCUSDT", "U": 1, "u": 2, "pu": 0, "b": [], "a": []}
    assert parser.hot_trade(_frame(depth, "btcusdt@depth@100ms"), RECV) is None
    assert parser.hot_trade(_frame(depth), RECV) is None  # named aggTrade, carrying a diff
    assert parser.hot_trade(json.dumps(AGG_TRADE).encode(), RECV) is None  # raw, not combined
    assert parser.hot_trade(b'{"result":null,"id":1}', RECV) is None
    trade = parser.hot_trade(_frame(AGG_TRADE) + b"\n", RECV)
    assert trade == Trade("binance-usdm", "BTCUSDT", "BTC-USDT-PERP", 123456785 * 10**6, RECV, 0.001, 100.0, "sell")


def test_decoder_offers_the_fast_path_for_venue_websocket_tokens_only() -> None:
    decoder = FrameDecoder()
    assert decoder.hot_trade(b"binance-usdm") is not None
    assert decoder.hot_trade("binance-usdm") is not None
    for source in ("binance-usdm!rest", "binance-usdm!conn", "okx-swap", "bybit-linear", "nowhere-venue", b"x!y"):
        assert decoder.hot_trade(source) is None
    decoder.count("binance-usdm", "trade", 3)
    decoder.count("binance-usdm", "trade", 2)
    assert decoder.frames == {("binance-usdm", "trade"): 5}


def _encoded(items: Any) -> bytes:
    """``items`` as JSON, arrays as lists: equal bytes, equal items."""
    return msgspec.json.encode(items, enc_hook=lambda value: value.tolist())


def _drain(path: Path, batch_size: int) -> tuple[list[list[tuple[str, list[Any]]]], dict[str, int], dict[str, int]]:
    """Every batch of a replay partition of ``path``, and its stats' frame and dead-letter counts."""
    partition = ReplaySource([path], batch_size=batch_size).build_part("s", f"0:{path}", None)
    batches = []
    while True:
        try:
            batches.append(partition.next_batch())
        except StopIteration:
            break
    stats = [values[0] for batch in batches for key, values in batch if key == "!stats"]
    return batches, stats[0].frames, stats[0].dead_letters


@pytest.mark.parametrize("path", [DEMO, BINANCE_SESSION, HAND_MADE])
@pytest.mark.parametrize("batch_size", [1000, 37])
def test_replay_batches_are_the_same_without_the_fast_path(
    path: Path, batch_size: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The replay source with the fast path and with it switched off: the same batches (events,
    watermarks, dead letters with their reasons and line numbers) and the same counts."""
    fast = _drain(path, batch_size)
    monkeypatch.setattr(FrameDecoder, "hot_trade", lambda self, source: None)
    slow = _drain(path, batch_size)
    assert _encoded(fast[0]) == _encoded(slow[0])
    assert fast[1:] == slow[1:]
    assert sum(n for kind, n in fast[1].items() if kind.endswith(" trade")) > 0


def test_tracker_states_do_not_depend_on_how_events_are_batched() -> None:
    """An instrument tracker fed the demo's Binance BTC events and watermarks in the source's
    batches, and one value at a time: the same per-second states."""
    batches, _, _ = _drain(DEMO, 1000)
    key = "binance-usdm|BTC-USDT-PERP"
    values = [value for batch in batches for k, vs in batch if k == key for value in vs]
    whole, single = InstrumentTracker(2 * 10**9), InstrumentTracker(2 * 10**9)
    by_batch = [state for batch in batches for k, vs in batch if k == key for state in whole.process(vs)]
    one_by_one = [state for value in values for state in single.process([value])]
    assert len(by_batch) == 901  # the demo's 901 seconds (its snapshots)
    assert _encoded(by_batch) == _encoded(one_by_one)


def test_a_replayed_recording_counts_hot_trades_once(tmp_path: Path) -> None:
    """A recording of known frames: three aggTrades (the first one teaches the instrument), one
    bad one: frames by kind and dead letters by reason, exactly."""
    path = tmp_path / "r.rec"
    with RecordingWriter(path) as writer:
        for i in range(3):
            writer.write(RECV + i, "binance-usdm", _frame(dict(AGG_TRADE, T=AGG_TRADE["T"] + i)))
        writer.write(RECV + 3, "binance-usdm", _frame(dict(AGG_TRADE, p="-1")))
    _, frames, dead = _drain(path, 1000)
    assert frames == {"binance-usdm trade": 3}
    assert dead == {"binance-usdm bad_price": 1}
