"""The replay's fast path (``VenueParser.hot_event``, ``FrameDecoder.hot_event``): where it gives a
trade, book delta or mark price, the frame decoder gives the same one; everything else goes the usual
way, bad frames included, and the replay source's batches and frame counts are the same with or
without it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec
import pytest
from test_venue_binance import DOC_AGG_TRADE, DOC_DEPTH, DOC_FORCE_ORDER, DOC_MARK_PRICE

from cascadewatch.connectors.events import BookDelta, MarkPrice, Trade
from cascadewatch.connectors.frames import FrameDecoder
from cascadewatch.connectors.recording import RecordingReader, RecordingWriter
from cascadewatch.connectors.sources import ReplaySource
from cascadewatch.connectors.venues import binance
from cascadewatch.connectors.venues.base import HOT_KINDS, Parsed, ParseError
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


HOT_STREAMS = {
    "trade": ("@aggTrade", "aggTrade"),
    "book": ("@depth", "depthUpdate"),
    "mark_price": ("@markPrice", "markPriceUpdate"),
}
"""Kind -> (what its stream name holds, its event type ``e``)."""


def _hot_kind_frames(path: Path) -> dict[str, int]:
    """Combined-stream frames of ``path`` that are JSON and carry one event of a fast-path kind on
    its own stream (a diff: ``@depth`` not followed by a digit), by kind, counted with the json module."""
    counts = dict.fromkeys(HOT_STREAMS, 0)
    for _, _, payload in _binance_frames(path):
        try:
            obj = json.loads(payload)
        except ValueError:
            continue
        if not (isinstance(obj, dict) and isinstance(obj.get("stream"), str) and isinstance(obj.get("data"), dict)):
            continue
        for kind, (name, event) in HOT_STREAMS.items():
            _, found, rest = obj["stream"].partition(name)
            counts[kind] += bool(found) and not rest[:1].isdigit() and obj["data"].get("e") == event
    return counts


@pytest.mark.parametrize("path", [DEMO, BINANCE_SESSION, HAND_MADE])
def test_every_hot_event_is_the_event_parse_ws_gives(path: Path) -> None:
    """Over whole recordings (the line's newline kept, as the replay source passes it): a hot
    event is exactly ``parse_ws``'s one event, of its kind; every frame of a fast-path kind but a
    symbol's first (the parser learns its instrument from it) and the bad ones is taken."""
    parser = binance.Parser()
    hot = dict.fromkeys(HOT_STREAMS, 0)
    first = dict.fromkeys(HOT_STREAMS, 0)
    bad = dict.fromkeys(HOT_STREAMS, 0)
    symbols: set[str] = set()
    for line_no, recv, payload in _binance_frames(path):
        event = parser.hot_event(payload, recv)
        try:
            parsed = parser.parse_ws(payload.rstrip(b"\r\n"), recv)
        except ParseError:
            assert event is None, line_no
            for kind, (_, name) in HOT_STREAMS.items():
                bad[kind] += f'"e":"{name}"'.encode() in payload
            continue
        if event is not None:
            kind = HOT_KINDS[type(event)]
            hot[kind] += 1
            assert parsed == Parsed(kind, [event]), line_no
        elif parsed.kind in HOT_STREAMS and payload.startswith(b'{"stream"') and parsed.events:
            first[parsed.kind] += 1  # the symbol's first frame: its instrument was not known yet
            assert parsed.events[0].symbol not in symbols, line_no
        symbols.update(event.symbol for event in parsed.events)
    frames = _hot_kind_frames(path)
    assert hot == {kind: frames[kind] - first[kind] - bad[kind] for kind in HOT_STREAMS}
    assert (hot, bad) == {
        DEMO: ({"trade": 10421, "book": 3599, "mark_price": 900}, dict.fromkeys(HOT_STREAMS, 0)),
        BINANCE_SESSION: ({"trade": 3, "book": 68, "mark_price": 0}, dict.fromkeys(HOT_STREAMS, 0)),
        HAND_MADE: ({"trade": 11, "book": 2, "mark_price": 0}, {"trade": 2, "book": 0, "mark_price": 0}),
    }[path]


DEPTH = DOC_DEPTH
"""Binance's own diff-depth example (Diff. Book Depth Streams)."""
MARK = DOC_MARK_PRICE
"""Binance's own mark price example (Mark Price Stream)."""
DIFF = "btcusdt@depth@100ms"
MARK_STREAM = "btcusdt@markPrice@1s"


@pytest.mark.parametrize(
    ("payload", "outcome"),
    [
        (_frame(dict(AGG_TRADE, p="-1")), "bad_price"),
        (_frame(dict(AGG_TRADE, p="NaN")), "bad_price"),
        (_frame(dict(AGG_TRADE, p="abc")), "bad_number"),
        (_frame(dict(AGG_TRADE, q="-0.5")), "bad_qty"),
        (_frame(dict(AGG_TRADE, m="maybe")), "schema"),
        (_frame(dict(AGG_TRADE, a=[1])), "schema"),
        (_frame(dict(AGG_TRADE, s="FOOBAR")), "unknown_instrument"),
        (_frame({"e": "newThing", "E": 1}), "unknown_channel"),
        (_frame(dict(AGG_TRADE, zz=[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]])), "trade"),  # skipped, decodes
        (_frame(AGG_TRADE)[:-2], "malformed_json"),
        (b'{"stream":5,"data":{"e":"aggTrade"}}', "schema"),
        (_frame(DEPTH, DIFF), "book"),
        (_frame(DEPTH, "btcusdt@depth"), "book"),
        (_frame(dict(DEPTH, b=[["-1", "1"]]), DIFF), "bad_price"),
        (_frame(dict(DEPTH, a=[["NaN", "1"]]), DIFF), "bad_price"),
        (_frame(dict(DEPTH, b=[["1", "-1"]]), DIFF), "bad_qty"),
        (_frame(dict(DEPTH, b=[["abc", "1"]]), DIFF), "bad_number"),
        (_frame(dict(DEPTH, b=[["1"]]), DIFF), "schema"),
        (_frame({k: v for k, v in DEPTH.items() if k != "pu"}, DIFF), "schema"),
        (_frame(dict(DEPTH, s="FOOBAR"), DIFF), "unknown_instrument"),
        (_frame(dict(DEPTH, s="BTCUSDT_240628"), DIFF), "skipped:not_perpetual"),
        (_frame(DEPTH, "btcusdt@depth20@100ms"), "skipped:partial_depth"),
        (_frame(DEPTH, "btcusdt@depth@100ms@depth5"), "book"),  # the first @depth names the stream
        (_frame(DEPTH, "btcusdt@depth@100ms")[:-2], "malformed_json"),
        (_frame(MARK, MARK_STREAM), "mark_price"),
        (_frame(dict(MARK, r="", i=None), MARK_STREAM), "mark_price"),
        (_frame(dict(MARK, p="-1"), MARK_STREAM), "bad_price"),
        (_frame(dict(MARK, p=""), MARK_STREAM), "bad_number"),
        (_frame(dict(MARK, i="0"), MARK_STREAM), "bad_price"),
        (_frame(dict(MARK, r="abc"), MARK_STREAM), "bad_number"),
        (_frame(dict(MARK, r="inf"), MARK_STREAM), "bad_number"),
        (_frame(dict(MARK, p=5), MARK_STREAM), "schema"),
        (_frame(dict(MARK, s="FOOBAR"), MARK_STREAM), "unknown_instrument"),
        (_frame([MARK, dict(MARK, s="ETHUSDT")], "!markPrice@arr@1s"), "mark_price"),  # an array: parse_ws's
        (_frame(DEPTH, MARK_STREAM), "book"),  # named markPrice, carrying a diff
        (_frame(MARK, DIFF), "mark_price"),  # named depth, carrying a mark price
    ],
)
def test_bad_or_other_frames_are_left_to_parse_ws(payload: bytes, outcome: str) -> None:
    """A frame the fast path takes gives ``parse_ws``'s one event; one it does not take gives
    ``None`` (never an exception), and ``parse_ws`` gives its reason (or its kind) as before."""
    parser = _known_parser()
    event = parser.hot_event(payload, RECV)
    if outcome in HOT_KINDS.values() or outcome.startswith("skipped:"):
        parsed = parser.parse_ws(payload, RECV)
        assert parsed.kind == outcome
        if event is not None:
            assert parsed == Parsed(outcome, [event])
        return
    assert event is None
    with pytest.raises(ParseError) as caught:
        parser.parse_ws(payload, RECV)
    assert caught.value.reason == outcome


@pytest.mark.parametrize(
    ("payload", "taken"),
    [
        (_frame(AGG_TRADE), True),
        (_frame(DEPTH, DIFF), True),
        (_frame(MARK, MARK_STREAM), True),
        (_frame(dict(MARK, r="", i=None), MARK_STREAM), True),
        (_frame(DEPTH, "btcusdt@depth@100ms@depth5"), True),
        (_frame(DEPTH, "btcusdt@depth20@100ms"), False),  # partial depth: parse_ws skips it
        (_frame([MARK], "!markPrice@arr@1s"), False),  # an array
        (_frame(DEPTH, MARK_STREAM), True),  # the stream and the event disagree: the event decides,
        (_frame(MARK, DIFF), True),  # as in parse_ws
        (_frame(AGG_TRADE, DIFF), True),
        (_frame(DEPTH, "btcusdt@forceOrder"), True),
        (_frame(DOC_FORCE_ORDER, "btcusdt@forceOrder"), False),  # a liquidation: parse_ws's
        (json.dumps(DEPTH).encode(), False),  # raw, not combined
    ],
)
def test_which_frames_the_fast_path_takes(payload: bytes, taken: bool) -> None:
    """Good frames of the fast path's kinds are taken whatever their stream is named (the event
    decides, as in ``parse_ws``), but for partial depth; others are left to ``parse_ws``."""
    parser = _known_parser()
    event = parser.hot_event(payload, RECV)
    assert (event is not None) == taken
    if taken:
        assert parser.parse_ws(payload, RECV) == Parsed(HOT_KINDS[type(event)], [event])


def test_json_nested_too_deep_is_not_an_exception() -> None:
    """msgspec stops at its depth limit with RecursionError: the fast path gives None and the
    frame decoder counts ``malformed_json``."""
    deep = b"[" * 2000 + b"]" * 2000
    payload = b'{"stream":"btcusdt@aggTrade","data":{"e":"aggTrade","zz":' + deep + b"}}"
    decoder = FrameDecoder()
    decoder.decode("binance-usdm", _frame(AGG_TRADE), RECV)
    hot = decoder.hot_event("binance-usdm")
    assert hot is not None and hot(payload, RECV) is None
    assert hot(payload.replace(b"@aggTrade", b"@depth"), RECV) is None
    with pytest.raises(ParseError) as caught:
        decoder.decode("binance-usdm", payload, RECV)
    assert caught.value.reason == "malformed_json"


def test_the_fast_path_gives_the_documented_events() -> None:
    """Binance's own examples, straight to their events (known answers)."""
    parser = _known_parser()
    trade = parser.hot_event(_frame(AGG_TRADE) + b"\n", RECV)
    assert trade == Trade("binance-usdm", "BTCUSDT", "BTC-USDT-PERP", 123456785 * 10**6, RECV, 0.001, 100.0, "sell")
    delta = parser.hot_event(_frame(DEPTH, DIFF) + b"\n", RECV)
    assert delta == BookDelta(
        "binance-usdm",
        "BTCUSDT",
        "BTC-USDT-PERP",
        123456789 * 10**6,
        RECV,
        ((0.0024, 10.0),),
        ((0.0026, 100.0),),
        160,
        149,
        157,
    )
    mark = parser.hot_event(_frame(MARK, MARK_STREAM) + b"\n", RECV)
    assert mark == MarkPrice(
        "binance-usdm", "BTCUSDT", "BTC-USDT-PERP", 1562305380000 * 10**6, RECV, 11794.15, 11784.62659091, 0.00038167
    )


def test_decoder_offers_the_fast_path_for_venue_websocket_tokens_only() -> None:
    decoder = FrameDecoder()
    assert decoder.hot_event(b"binance-usdm") is not None
    assert decoder.hot_event("binance-usdm") is not None
    for source in ("binance-usdm!rest", "binance-usdm!conn", "okx-swap", "bybit-linear", "nowhere-venue", b"x!y"):
        assert decoder.hot_event(source) is None
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
    monkeypatch.setattr(FrameDecoder, "hot_event", lambda self, source: None)
    slow = _drain(path, batch_size)
    assert _encoded(fast[0]) == _encoded(slow[0])
    assert fast[1:] == slow[1:]
    assert sum(n for kind, n in fast[1].items() if kind.endswith(" trade")) > 0
    assert sum(n for kind, n in fast[1].items() if kind.endswith(" book")) > 0


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


def test_a_replayed_recording_counts_hot_events_once(tmp_path: Path) -> None:
    """A recording of known frames: three aggTrades (the first one teaches the instrument), two
    diffs and two mark prices, and a bad one of each: frames by kind and dead letters by reason,
    exactly."""
    path = tmp_path / "r.rec"
    frames_in = [_frame(dict(AGG_TRADE, T=AGG_TRADE["T"] + i)) for i in range(3)]
    frames_in += [_frame(dict(DEPTH, U=157 + 4 * i, u=160 + 4 * i, pu=149 + 4 * i), DIFF) for i in range(2)]
    frames_in += [_frame(dict(MARK, E=MARK["E"] + i), MARK_STREAM) for i in range(2)]
    frames_in += [_frame(dict(AGG_TRADE, p="-1")), _frame(dict(DEPTH, a=[["0", "1"]]), DIFF)]
    frames_in += [_frame(dict(MARK, r="abc"), MARK_STREAM)]
    with RecordingWriter(path) as writer:
        for i, payload in enumerate(frames_in):
            writer.write(RECV + i, "binance-usdm", payload)
    _, frames, dead = _drain(path, 1000)
    assert frames == {"binance-usdm book": 2, "binance-usdm mark_price": 2, "binance-usdm trade": 3}
    assert dead == {"binance-usdm bad_number": 1, "binance-usdm bad_price": 2}


def test_receive_times_are_read_as_int_reads_them(tmp_path: Path) -> None:
    """The replay source reads a receive time with msgspec's integer parser, and a zero-led one
    (not JSON) with ``int``: the same numbers either way."""
    path = tmp_path / "r.rec"
    with RecordingWriter(path) as writer:
        for i in range(3):
            writer.write(RECV + i, "binance-usdm", _frame(dict(AGG_TRADE, T=AGG_TRADE["T"] + i)))
    text = path.read_bytes().replace(b"\n%d " % (RECV + 1), b"\n000%d " % (RECV + 1))
    path.write_bytes(text.replace(b"\n%d " % (RECV + 2), b"\n%d " % (2**70 + RECV + 2)))
    batches, frames, dead = _drain(path, 1000)
    trades = [v for batch in batches for k, vs in batch if k == "binance-usdm|BTC-USDT-PERP" for v in vs]
    assert [t.recv for t in trades if isinstance(t, Trade)] == [RECV, RECV + 1, 2**70 + RECV + 2]
    assert (frames, dead) == ({"binance-usdm trade": 3}, {})
