"""OKX v5 swaps parser: real recorded frames, frames from the docs, known answers, fuzz."""

from __future__ import annotations

import json
import math
import os
import pickle
from collections import Counter
from pathlib import Path

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cascadewatch.connectors.events import (
    BookDelta,
    BookSnapshot,
    Liquidation,
    MarkPrice,
    OpenInterest,
    Trade,
)
from cascadewatch.connectors.reasons import Reason
from cascadewatch.connectors.units import NS_PER_MS
from cascadewatch.connectors.venues.base import Catalog, Parsed, ParseError
from cascadewatch.connectors.venues.okx import SOURCE, Parser, bundled_catalog

FIXTURES = Path(__file__).parent / "fixtures" / "okx"
RECORDING = FIXTURES / "okx-2022-05-13.rec"
SAMPLES = FIXTURES / "okx.jsonl"
DOCS = {f["name"]: f["frame"] for f in json.loads((FIXTURES / "docs_frames.json").read_text())["frames"]}


class _Rest(msgspec.Struct):
    path: str
    body: msgspec.Raw


def recording_lines() -> list[tuple[int, str, bytes]]:
    out = []
    for line in RECORDING.read_bytes().splitlines():
        if line.startswith(b"#"):
            continue
        recv, source, payload = line.split(b" ", 2)
        out.append((int(recv), source.decode(), payload))
    return out


def feed(parser: Parser, source: str, payload: bytes, recv: int) -> Parsed:
    """What the frame decoder does with one recording line."""
    if source == "okx-swap":
        return parser.parse_ws(payload, recv)
    assert source == "okx-swap!rest"
    envelope = msgspec.json.decode(payload, type=_Rest)
    return parser.parse_rest(envelope.path, bytes(envelope.body), recv)


def instruments_body() -> bytes:
    for _, source, payload in recording_lines():
        if source == "okx-swap!rest":
            return bytes(msgspec.json.decode(payload, type=_Rest).body)
    raise AssertionError("no REST line")


def full_parser() -> Parser:
    """A parser whose catalog was refreshed from the recorded REST reply (166 swaps)."""
    parser = Parser()
    assert parser.parse_rest("/api/v5/public/instruments?instType=SWAP", instruments_body(), 1).kind == "instruments"
    return parser


def ws(parser: Parser, frame: dict, recv: int = 7) -> Parsed:
    return parser.parse_ws(json.dumps(frame).encode(), recv)


# --------------------------------------------------------------------------- catalog


def test_bundled_catalog_contract_values() -> None:
    catalog = bundled_catalog()
    btc_usd = catalog.get("BTC-USD-SWAP")
    assert btc_usd is not None
    assert (btc_usd.instrument, btc_usd.base, btc_usd.quote, btc_usd.ct_val, btc_usd.inverse, btc_usd.tick) == (
        "BTC-USD-PERP",
        "BTC",
        "USD",
        100.0,
        True,
        0.1,
    )
    btc_usdt = catalog.get("BTC-USDT-SWAP")
    assert btc_usdt is not None
    assert (btc_usdt.instrument, btc_usdt.ct_val, btc_usdt.inverse) == ("BTC-USDT-PERP", 0.01, False)
    assert catalog.by_symbol["ETH-USDT-SWAP"].ct_val == 0.1
    assert catalog.by_symbol["DOGE-USDT-SWAP"].ct_val == 1000.0
    assert catalog.by_symbol["XRP-USDT-SWAP"].ct_val == 100.0
    assert catalog.by_symbol["ETH-USD-SWAP"].ct_val == 10.0
    for base in ("BTC", "ETH", "SOL", "XRP", "DOGE", "LTC", "ADA", "AVAX", "LINK"):
        assert catalog.get(f"{base}-USDT-SWAP") is not None
        assert catalog.get(f"{base}-USD-SWAP") is not None
    assert catalog.get("BNB-USDT-SWAP") is None  # OKX listed no BNB swap in the 2022 reply
    assert len(catalog.by_symbol) == 35
    # each parser gets its own copy: a refresh does not leak into other parsers
    refreshed = full_parser()
    assert len(refreshed.catalog.by_symbol) == 166
    assert len(Parser().catalog.by_symbol) == 35


def test_given_catalog_is_used_as_is() -> None:
    parser = Parser(Catalog())
    with pytest.raises(ParseError) as err:
        ws(parser, DOCS["trades_swap"])
    assert err.value.reason == "unknown_instrument"


def test_instrument_rows_that_cannot_convert_are_left_out() -> None:
    rows = [
        {
            "instId": "AAA-USDT-SWAP",
            "instType": "SWAP",
            "ctType": "linear",
            "ctVal": "10",
            "ctValCcy": "AAA",
            "tickSz": "0.01",
        },
        {"instId": "BBB-USDT-SWAP", "instType": "SWAP", "ctType": "linear", "ctVal": "", "ctValCcy": "BBB"},
        {"instId": "CCC-USDT-SWAP", "instType": "SWAP", "ctType": "linear", "ctVal": "1", "ctValCcy": "USDT"},
        {"instId": "DDD-USD-SWAP", "instType": "SWAP", "ctType": "inverse", "ctVal": "10", "ctValCcy": "USD"},
        {"instId": "EEE-USD-SWAP", "instType": "SWAP", "ctType": "", "ctVal": "10", "ctValCcy": "USD"},
        {"instId": "BTC-USD-220527", "instType": "FUTURES", "ctType": "inverse", "ctVal": "100", "ctValCcy": "USD"},
        {"instId": "FFF-USDT-SWAP", "instType": "SWAP", "ctType": "linear", "ctVal": "-1", "ctValCcy": "FFF"},
    ]
    parser = Parser(Catalog())
    body = json.dumps({"code": "0", "msg": "", "data": rows}).encode()
    assert parser.parse_rest("/api/v5/public/instruments?instType=SWAP", body, 1) == Parsed("instruments")
    assert sorted(parser.catalog.by_symbol) == ["AAA-USDT-SWAP", "DDD-USD-SWAP"]
    assert parser.catalog.by_symbol["AAA-USDT-SWAP"].tick == 0.01
    assert parser.catalog.by_symbol["DDD-USD-SWAP"].inverse


# --------------------------------------------------------------------------- the real session


def test_recording_counts_by_kind() -> None:
    parser = Parser()
    kinds: Counter[str] = Counter()
    events: Counter[str] = Counter()
    for recv, source, payload in recording_lines():
        if source == "okx-swap!conn":  # connection events belong to the frame decoder
            continue
        parsed = feed(parser, source, payload, recv)
        kinds[parsed.kind] += 1
        for event in parsed.events:
            events[type(event).__name__] += 1
            assert event.venue == SOURCE
            assert event.recv == recv
            msgspec.json.encode(event)
    assert kinds == {
        "instruments": 5,  # the SWAP instruments REST reply, recorded five times
        "control": 18,  # subscribe acknowledgements
        "skipped:tickers": 28,
        "skipped:not_swap": 270,  # 197 books + 73 trades of BTC-USD-220527 (FUTURES) and BTC-USDT (SPOT)
        "book": 93,  # UNI-USD-SWAP: 1 snapshot + 92 updates
        "trade": 1,  # UNI-USD-SWAP
    }
    assert events == {"BookSnapshot": 1, "BookDelta": 92, "Trade": 1}
    assert len(parser.catalog.by_symbol) == 166


def test_recording_exact_events() -> None:
    parser = Parser()
    trades: list[Trade] = []
    books: list[BookSnapshot | BookDelta] = []
    for recv, source, payload in recording_lines():
        if source == "okx-swap!conn":
            continue
        for event in feed(parser, source, payload, recv).events:
            if isinstance(event, Trade):
                trades.append(event)
            else:
                assert isinstance(event, (BookSnapshot, BookDelta)), event  # the recording has trades and books only
                books.append(event)
    # {"instId":"UNI-USD-SWAP","tradeId":"12883020","px":"5.123","sz":"100","side":"sell","ts":"1652459215150"}
    # inverse, ctVal 10 USD: 100 contracts = 1000 USD = 1000 / 5.123 UNI
    assert trades == [
        Trade(
            venue="okx-swap",
            symbol="UNI-USD-SWAP",
            instrument="UNI-USD-PERP",
            ts=1652459215150 * NS_PER_MS,
            recv=1652459225507172000,
            price=5.123,
            qty=100 * 10.0 / 5.123,
            side="sell",
        )
    ]
    snapshot = books[0]
    assert isinstance(snapshot, BookSnapshot)
    assert (snapshot.symbol, snapshot.instrument, snapshot.seq, snapshot.recv) == (
        "UNI-USD-SWAP",
        "UNI-USD-PERP",
        0,
        1652459225696300300,
    )
    assert snapshot.asks[0] == (5.148, 60 * 10.0 / 5.148)
    assert snapshot.asks[1] == (5.149, 192 * 10.0 / 5.149)
    assert snapshot.bids[0] == (5.14, 251 * 10.0 / 5.14)
    assert snapshot.ts == 1652459225363 * NS_PER_MS
    assert (len(snapshot.asks), len(snapshot.bids)) == (119, 121)  # a thin book: all of it fits in 400 levels
    assert all(a[0] < b[0] for a, b in zip(snapshot.asks, snapshot.asks[1:], strict=False))
    assert all(a[0] > b[0] for a, b in zip(snapshot.bids, snapshot.bids[1:], strict=False))
    assert snapshot.bids[0][0] < snapshot.asks[0][0]
    # {"asks":[["5.158","129","0","2"],["5.233","240","0","1"]],
    #  "bids":[["5.14","427","0","4"],["5.138","26","0","2"],["5.117","0","0","0"]],"ts":"1652459225464"}
    delta = books[1]
    assert delta == BookDelta(
        venue="okx-swap",
        symbol="UNI-USD-SWAP",
        instrument="UNI-USD-PERP",
        ts=1652459225464 * NS_PER_MS,
        recv=1652459225709162700,
        asks=((5.158, 129 * 10.0 / 5.158), (5.233, 240 * 10.0 / 5.233)),
        bids=((5.14, 427 * 10.0 / 5.14), (5.138, 26 * 10.0 / 5.138), (5.117, 0.0)),
        seq=0,
        prev_seq=None,  # 2022 recording: no seqId, cannot be gap-checked
    )
    assert all(isinstance(b, BookDelta) and b.seq == 0 and b.prev_seq is None for b in books[1:])


# --------------------------------------------------------------------------- okx.jsonl samples


def sample_messages() -> list[tuple[str, dict]]:
    return [(d["kind"], d["msg"]) for d in map(json.loads, SAMPLES.read_text().splitlines())]


def test_samples_with_bundled_catalog() -> None:
    parser = Parser()
    kinds: Counter[tuple[str, str]] = Counter()
    for kind, msg in sample_messages():
        try:
            label = ws(parser, msg).kind
        except ParseError as err:
            label = f"error:{err.reason}"
        kinds[(kind.split("_")[0], label)] += 1
    assert kinds == {
        ("recorded", "skipped:not_swap"): 128,
        ("recorded", "skipped:tickers"): 28,
        ("recorded", "book"): 25,
        ("recorded", "trade"): 1,
        ("tardis", "control"): 1,
        ("tardis", "skipped:not_swap"): 8,  # FUTURES books, trades, mark price, OI, liquidations
        ("tardis", "skipped:tickers"): 1,
        ("tardis", "skipped:bbo"): 2,
        ("tardis", "error:unknown_instrument"): 1,  # REN-USDT-SWAP is not bundled
        ("tardis", "funding"): 2,
        ("tardis", "trade"): 1,
        ("tardis", "mark_price"): 1,
        ("tardis", "open_interest"): 1,
        ("claimed", "liquidation"): 1,
        ("claimed", "error:unknown_instrument"): 1,  # CELO-USDT-SWAP is not bundled
    }


def test_samples_exact_events_after_refresh() -> None:
    parser = full_parser()
    events = []
    for _, msg in sample_messages():
        events.extend(ws(parser, msg, recv=99).events)
    by_type: dict[str, list] = {}
    for event in events:
        by_type.setdefault(type(event).__name__, []).append(event)
    # tardis: {"instId":"BTC-USDT-SWAP","tradeId":"148266905","px":"48938.5","sz":"5","side":"buy","ts":"1640131236050"}
    assert by_type["Trade"][-1] == Trade(
        venue="okx-swap",
        symbol="BTC-USDT-SWAP",
        instrument="BTC-USDT-PERP",
        ts=1640131236050 * NS_PER_MS,
        recv=99,
        price=48938.5,
        qty=5 * 0.01,
        side="buy",
    )
    # tardis funding-rate WNCG 0.00048105 arrives before its mark price -> attached
    assert by_type["MarkPrice"] == [
        MarkPrice(
            venue="okx-swap",
            symbol="WNCG-USDT-SWAP",
            instrument="WNCG-USDT-PERP",
            ts=1640131259180 * NS_PER_MS,
            recv=99,
            price=2.1729,
            index=None,
            funding=0.00048105,
        )
    ]
    assert by_type["OpenInterest"] == [
        OpenInterest(
            venue="okx-swap",
            symbol="WNCG-USDT-SWAP",
            instrument="WNCG-USDT-PERP",
            ts=1640131258756 * NS_PER_MS,
            recv=99,
            qty=644195.0,
            notional=None,
        )
    ]
    # tardis books-l2-tbt update for REN-USDT-SWAP (ctVal 10 REN), no seqId
    ren = [e for e in by_type["BookDelta"] if e.symbol == "REN-USDT-SWAP"]
    assert ren == [
        BookDelta(
            venue="okx-swap",
            symbol="REN-USDT-SWAP",
            instrument="REN-USDT-PERP",
            ts=1640131236035 * NS_PER_MS,
            recv=99,
            asks=((0.65442, 140.0),),
            bids=((0.65441, 10.0), (0.65418, 0.0)),
            seq=0,
            prev_seq=None,
        )
    ]
    # claimed live captures (provenance unverified; schema examples): posSide long / short
    assert by_type["Liquidation"] == [
        Liquidation(
            venue="okx-swap",
            symbol="BTC-USDT-SWAP",
            instrument="BTC-USDT-PERP",
            ts=1791565600771 * NS_PER_MS,
            recv=99,
            price=82655.7,
            qty=8.55 * 0.01,
            side="long",
            notional=82655.7 * (8.55 * 0.01),
        ),
        Liquidation(
            venue="okx-swap",
            symbol="CELO-USDT-SWAP",
            instrument="CELO-USDT-PERP",
            ts=1791565462608 * NS_PER_MS,
            recv=99,
            price=0.09583,
            qty=19979.0,
            side="short",
            notional=0.09583 * 19979.0,
        ),
    ]


# --------------------------------------------------------------------------- docs frames


def test_docs_books_snapshot_update_and_spot() -> None:
    parser = Parser()
    assert ws(parser, DOCS["books_snapshot_verbatim"]) == Parsed("skipped:not_swap")
    snap = ws(parser, DOCS["books_snapshot_swap"])
    assert snap == Parsed(
        "book",
        [
            BookSnapshot(
                venue="okx-swap",
                symbol="BTC-USDT-SWAP",
                instrument="BTC-USDT-PERP",
                ts=1597026383085 * NS_PER_MS,
                recv=7,
                asks=((8476.98, 415 * 0.01), (8477.0, 7 * 0.01)),
                bids=((8476.97, 256 * 0.01), (8475.55, 101 * 0.01)),
                seq=123456,
            )
        ],
    )
    update = ws(parser, DOCS["books_update_swap"])
    assert update.kind == "book"
    (delta,) = update.events
    assert isinstance(delta, BookDelta)
    assert (delta.seq, delta.prev_seq, delta.first_seq) == (123457, 123456, None)


def test_docs_sequence_example_heartbeat_and_reset() -> None:
    parser = Parser()
    names = ["seq_snapshot", "seq_update", "seq_heartbeat", "seq_reset", "seq_after_reset"]
    results = [ws(parser, DOCS[name]) for name in names]
    assert [r.kind for r in results] == ["book", "book", "book_heartbeat", "book", "book"]
    snap, upd, beat, reset, after = (r.events[0] for r in results)
    assert isinstance(snap, BookSnapshot) and snap.seq == 10
    assert snap.bids == ((30000.0, 50 * 100.0 / 30000.0),)  # inverse BTC-USD-SWAP, ctVal 100 USD
    assert [(e.seq, e.prev_seq) for e in (upd, beat, reset, after)] == [(15, 10), (15, 15), (3, 15), (5, 3)]
    assert beat.bids == () and beat.asks == ()
    # the chain rule of the module docstring: every update's prev_seq is the previous message's seq,
    # including across the reset (seq < prev_seq)
    last = snap.seq
    for event in (upd, beat, reset, after):
        assert event.prev_seq == last
        last = event.seq
    assert upd.asks == ((30001.5, 0.0),)
    assert after.bids == ((30000.0, 0.0),)


def test_docs_liquidations() -> None:
    with pytest.raises(ParseError) as err:
        ws(Parser(), DOCS["liquidation_verbatim"])  # IOST-USDT-SWAP is not bundled
    assert err.value.reason == "unknown_instrument"
    parser = full_parser()
    (liq,) = ws(parser, DOCS["liquidation_verbatim"]).events
    # IOST-USDT-SWAP ctVal 1000 IOST (2022 catalog); posSide short
    assert liq == Liquidation(
        venue="okx-swap",
        symbol="IOST-USDT-SWAP",
        instrument="IOST-USDT-PERP",
        ts=1692266434010 * NS_PER_MS,
        recv=7,
        price=0.007831,
        qty=13000.0,
        side="short",
        notional=0.007831 * 13000.0,
    )
    net = ws(parser, DOCS["liquidation_net_mode"])
    assert net.kind == "liquidation"
    long_liq, short_liq = net.events
    assert isinstance(long_liq, Liquidation) and isinstance(short_liq, Liquidation)
    # net mode: order side sell -> a long was liquidated; inverse: 40 contracts * 100 USD / bkPx
    assert (long_liq.side, long_liq.price, long_liq.qty, long_liq.ts) == (
        "long",
        25000.0,
        40 * 100.0 / 25000.0,
        1692266434010 * NS_PER_MS,
    )
    assert long_liq.notional == pytest.approx(4000.0)
    assert (short_liq.side, short_liq.qty) == ("short", 2 * 100.0 / 25100.0)
    assert short_liq.notional == pytest.approx(200.0)


def test_liquidation_frames_skip_other_instrument_types_and_mixed_unknowns() -> None:
    parser = Parser()
    futures = {"arg": {"channel": "liquidation-orders", "instType": "FUTURES"}, "data": []}
    assert ws(parser, futures) == Parsed("skipped:not_swap")
    mixed = {
        "arg": {"channel": "liquidation-orders", "instType": "SWAP"},
        "data": [
            {
                "instId": "BTC-USDT-SWAP",
                "instType": "SWAP",
                "details": [{"bkPx": "30000", "sz": "100", "posSide": "long", "side": "sell", "ts": "1700000000000"}],
            },
            {
                "instId": "ZZZ-USDT-SWAP",
                "instType": "SWAP",
                "details": [{"bkPx": "1", "sz": "1", "posSide": "short", "side": "buy", "ts": "1700000000000"}],
            },
        ],
    }
    parsed = ws(parser, mixed)
    assert parsed.kind == "liquidation:dropped_unknown_instrument"
    assert [(e.symbol, e.side, e.qty) for e in parsed.events] == [("BTC-USDT-SWAP", "long", 1.0)]
    bad_side = {
        "arg": {"channel": "liquidation-orders", "instType": "SWAP"},
        "data": [
            {
                "instId": "BTC-USDT-SWAP",
                "instType": "SWAP",
                "details": [{"bkPx": "30000", "sz": "1", "posSide": "net", "side": "", "ts": "1700000000000"}],
            }
        ],
    }
    with pytest.raises(ParseError) as err:
        ws(parser, bad_side)
    assert err.value.reason == "schema"


def test_docs_open_interest_funding_mark_price_trades() -> None:
    parser = Parser()
    (oi,) = ws(parser, DOCS["open_interest_verbatim"]).events
    assert oi == OpenInterest(
        venue="okx-swap",
        symbol="BTC-USDT-SWAP",
        instrument="BTC-USDT-PERP",
        ts=1743041250440 * NS_PER_MS,
        recv=7,
        qty=22161.1301000000309,
        notional=1939251795.54769270396321,
    )
    # mark price before any funding-rate: funding None
    (mark,) = ws(parser, DOCS["mark_price_swap"]).events
    assert isinstance(mark, MarkPrice) and (mark.price, mark.index, mark.funding) == (42310.6, None, None)
    assert ws(parser, DOCS["funding_verbatim"]) == Parsed("funding")
    assert parser.funding == {"BTC-USD-SWAP": 0.0001875391284828}
    (mark,) = ws(parser, DOCS["mark_price_swap"], recv=8).events
    assert mark == MarkPrice(
        venue="okx-swap",
        symbol="BTC-USD-SWAP",
        instrument="BTC-USD-PERP",
        ts=1630049139746 * NS_PER_MS,
        recv=8,
        price=42310.6,
        index=None,
        funding=0.0001875391284828,
    )
    # a funding row without fundingRate keeps the remembered value
    ws(
        parser,
        {
            "arg": {"channel": "funding-rate", "instId": "BTC-USD-SWAP"},
            "data": [{"instId": "BTC-USD-SWAP", "instType": "SWAP", "nextFundingRate": "0.0003"}],
        },
    )
    assert parser.funding == {"BTC-USD-SWAP": 0.0001875391284828}
    (trade,) = ws(parser, DOCS["trades_swap"]).events
    assert trade == Trade(
        venue="okx-swap",
        symbol="BTC-USDT-SWAP",
        instrument="BTC-USDT-PERP",
        ts=1630048897897 * NS_PER_MS,
        recv=7,
        price=42219.9,
        qty=12 * 0.01,
        side="buy",
    )


def test_open_interest_without_oi_ccy() -> None:
    parser = Parser()
    linear = {
        "arg": {"channel": "open-interest", "instId": "ETH-USDT-SWAP"},
        "data": [{"instId": "ETH-USDT-SWAP", "instType": "SWAP", "oi": "1500", "ts": "1700000000000"}],
    }
    (oi,) = ws(parser, linear).events
    assert (oi.qty, oi.notional) == (1500 * 0.1, None)
    inverse = {
        "arg": {"channel": "open-interest", "instId": "ETH-USD-SWAP"},
        "data": [{"instId": "ETH-USD-SWAP", "instType": "SWAP", "oi": "1500", "ts": "1700000000000"}],
    }
    with pytest.raises(ParseError) as err:
        ws(parser, inverse)
    assert err.value.reason == "schema"


def test_control_frames() -> None:
    parser = Parser()
    assert ws(parser, DOCS["subscribe_ack_verbatim"]) == Parsed("control")
    assert ws(parser, {"event": "unsubscribe", "arg": {"channel": "trades", "instId": "BTC-USDT-SWAP"}}) == Parsed(
        "control"
    )
    assert ws(parser, DOCS["error_verbatim"]) == Parsed("control:error")
    assert ws(parser, DOCS["notice"]) == Parsed("control:notice")
    assert parser.parse_ws(b"pong", 1) == Parsed("control")
    assert parser.parse_ws("pong", 1) == Parsed("control")


def test_skipped_channels() -> None:
    parser = Parser()
    assert (
        ws(parser, {"arg": {"channel": "tickers", "instId": "BTC-USDT-SWAP"}, "data": [{}]}).kind == "skipped:tickers"
    )
    assert ws(parser, {"arg": {"channel": "bbo-tbt", "instId": "BTC-USDT-SWAP"}, "data": [{}]}).kind == "skipped:bbo"
    assert (
        ws(parser, {"arg": {"channel": "candle1m", "instId": "BTC-USDT-SWAP"}, "data": [[]]}).kind == "skipped:candle"
    )
    assert (
        ws(parser, {"arg": {"channel": "trades", "instId": "BTC-USD-220527"}, "data": [{}]}).kind == "skipped:not_swap"
    )
    assert ws(parser, {"arg": {"channel": "mark-price", "instId": "BTC-USDT"}, "data": [{}]}).kind == "skipped:not_swap"


def test_books5_is_a_snapshot_and_bad_actions() -> None:
    parser = Parser()
    frame = {
        "arg": {"channel": "books5", "instId": "ETH-USDT-SWAP"},
        "data": [
            {
                "asks": [["2000.1", "30", "0", "2"]],
                "bids": [["2000", "10", "0", "1"]],
                "instId": "ETH-USDT-SWAP",
                "ts": "1700000000000",
                "seqId": 77,
            }
        ],
    }
    (snap,) = ws(parser, frame).events
    assert isinstance(snap, BookSnapshot)
    assert (snap.seq, snap.asks, snap.bids) == (77, ((2000.1, 3.0),), ((2000.0, 1.0),))
    no_action = {"arg": {"channel": "books", "instId": "ETH-USDT-SWAP"}, "data": frame["data"]}
    with pytest.raises(ParseError) as err:
        ws(parser, no_action)
    assert err.value.reason == "schema"


def test_ws_instruments_channel_refreshes_catalog() -> None:
    parser = Parser()
    frame = {
        "arg": {"channel": "instruments", "instType": "SWAP"},
        "data": [
            {
                "instId": "NEW-USDT-SWAP",
                "instType": "SWAP",
                "ctType": "linear",
                "ctVal": "5",
                "ctValCcy": "NEW",
                "tickSz": "0.1",
            }
        ],
    }
    assert ws(parser, frame) == Parsed("instruments")
    assert parser.catalog.by_symbol["NEW-USDT-SWAP"].ct_val == 5.0
    assert ws(parser, {"arg": {"channel": "instruments", "instType": "SPOT"}, "data": []}) == Parsed("skipped:not_swap")


# --------------------------------------------------------------------------- REST


def test_rest_books_snapshot() -> None:
    parser = Parser()
    body = json.dumps(
        {
            "code": "0",
            "msg": "",
            "data": [
                {
                    "asks": [["41006.8", "0.60038921", "0", "1"]],
                    "bids": [["41006.3", "0.30178218", "0", "2"]],
                    "ts": "1629966436396",
                }
            ],
        }
    ).encode()
    parsed = parser.parse_rest("/api/v5/market/books?instId=BTC-USDT-SWAP&sz=1", body, 5)
    assert parsed == Parsed(
        "book",
        [
            BookSnapshot(
                venue="okx-swap",
                symbol="BTC-USDT-SWAP",
                instrument="BTC-USDT-PERP",
                ts=1629966436396 * NS_PER_MS,
                recv=5,
                asks=((41006.8, 0.60038921 * 0.01),),
                bids=((41006.3, 0.30178218 * 0.01),),
                seq=0,
            )
        ],
    )
    with_seq = json.dumps({"code": "0", "msg": "", "data": [{"asks": [], "bids": [], "ts": "1", "seqId": 42}]}).encode()
    (snapshot,) = parser.parse_rest("/api/v5/market/books?instId=BTC-USDT-SWAP", with_seq, 5).events
    assert isinstance(snapshot, BookSnapshot) and snapshot.seq == 42
    assert parser.parse_rest("/api/v5/market/books?instId=BTC-USDT", body, 5) == Parsed("skipped:not_swap")


@pytest.mark.parametrize(
    ("path", "body", "reason"),
    [
        (
            "/api/v5/public/instruments?instType=SWAP",
            b'{"code":"50011","msg":"Rate limit reached","data":[]}',
            "rest_error",
        ),
        (
            "/api/v5/market/books?instId=BTC-USDT-SWAP",
            b'{"code":"51001","msg":"Instrument ID does not exist","data":[]}',
            "rest_error",
        ),
        ("/api/v5/public/instruments?instType=SWAP", b'{"code":"0","data":', "malformed_json"),
        ("/api/v5/public/instruments?instType=SWAP", b'{"code":"0","data":{"a":1}}', "schema"),
        ("/api/v5/market/books?instId=BTC-USDT-SWAP", b'{"code":"0","data":[]}', "schema"),
        ("/api/v5/market/books?instId=ZZZ-USDT-SWAP", b'{"code":"0","data":[]}', "unknown_instrument"),
        ("/api/v5/market/books", b'{"code":"0","data":[]}', "schema"),
        ("/api/v5/market/trades?instId=BTC-USDT-SWAP", b'{"code":"0","data":[]}', "unknown_rest_path"),
    ],
)
def test_rest_errors(path: str, body: bytes, reason: str) -> None:
    with pytest.raises(ParseError) as err:
        Parser().parse_rest(path, body, 1)
    assert err.value.reason == reason


def test_rest_instruments_of_another_type_are_skipped() -> None:
    parser = Parser()
    body = (
        b'{"code":"0","msg":"","data":[{"instId":"BTC-USD-220527","instType":"FUTURES",'
        b'"ctType":"inverse","ctVal":"100"}]}'
    )
    assert parser.parse_rest("/api/v5/public/instruments?instType=FUTURES", body, 1) == Parsed("skipped:not_swap")
    assert len(parser.catalog.by_symbol) == 35


# --------------------------------------------------------------------------- bad input


def trade_frame(px: str = "100", sz: str = "1", side: str = "buy", ts: str = "1700000000000") -> dict:
    return {
        "arg": {"channel": "trades", "instId": "BTC-USDT-SWAP"},
        "data": [{"instId": "BTC-USDT-SWAP", "tradeId": "1", "px": px, "sz": sz, "side": side, "ts": ts}],
    }


def book_frame(asks: list, bids: list | None = None) -> dict:
    return {
        "arg": {"channel": "books", "instId": "BTC-USD-SWAP"},
        "action": "update",
        "data": [{"asks": asks, "bids": bids or [], "ts": "1700000000000", "seqId": 2, "prevSeqId": 1}],
    }


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"", "malformed_json"),
        (b"{", "malformed_json"),
        (b"ping", "malformed_json"),
        (b"[]", "schema"),
        (b"42", "schema"),
        (b'{"data":[]}', "schema"),
        (b'{"arg":{"channel":"trades","instId":"BTC-USDT-SWAP"}}', "schema"),
        (b'{"arg":{"channel":"trades","instId":"BTC-USDT-SWAP"},"data":null}', "schema"),
        (b'{"arg":{"channel":"books-elp","instId":"BTC-USDT-SWAP"},"data":[]}', "unknown_channel"),
        (b'{"arg":{"channel":"orders","instType":"SWAP"},"data":[]}', "unknown_channel"),
        (json.dumps(trade_frame(px="-1")).encode(), "bad_price"),
        (json.dumps(trade_frame(px="0")).encode(), "bad_price"),
        (json.dumps(trade_frame(px="NaN")).encode(), "bad_price"),
        (json.dumps(trade_frame(px="inf")).encode(), "bad_price"),
        (json.dumps(trade_frame(sz="-2")).encode(), "bad_qty"),
        (json.dumps(trade_frame(sz="nan")).encode(), "bad_qty"),
        (json.dumps(trade_frame(px="abc")).encode(), "schema"),
        (json.dumps(trade_frame(side="BUY")).encode(), "schema"),
        (json.dumps(trade_frame(ts="")).encode(), "schema"),
        (
            json.dumps({**trade_frame(), "arg": {"channel": "trades", "instId": "ZZZ-USDT-SWAP"}}).encode(),
            "unknown_instrument",
        ),
        (json.dumps(book_frame([["-5", "1", "0", "1"]])).encode(), "bad_price"),
        (json.dumps(book_frame([["5", "-1", "0", "1"]])).encode(), "bad_qty"),
        (json.dumps(book_frame([], [["5", "nan", "0", "1"]])).encode(), "bad_qty"),
        (json.dumps(book_frame([["5"]])).encode(), "bad_level"),
        (json.dumps(book_frame([["5", "x", "0", "1"]])).encode(), "schema"),
        (b'{"arg":{"channel":"funding-rate","instId":"BTC-USDT-SWAP"},"data":[{"fundingRate":"abc"}]}', "bad_number"),
        (b'{"arg":{"channel":"mark-price","instId":"BTC-USDT-SWAP"},"data":[{"markPx":"0","ts":"1"}]}', "bad_price"),
        (
            b'{"arg":{"channel":"open-interest","instId":"BTC-USDT-SWAP"},"data":[{"oi":"1","oiCcy":"-3","ts":"1"}]}',
            "bad_qty",
        ),
        (b'{"arg":{"channel":"mark-price","instId":"X-SWAP"},"data":[{"markPx":"1","ts":"1"}]}', "schema"),
    ],
)
def test_bad_frames(payload: bytes, reason: str) -> None:
    with pytest.raises(ParseError) as err:
        Parser().parse_ws(payload, 1)
    assert err.value.reason == reason


def test_parser_pickles_with_its_state() -> None:
    parser = full_parser()
    ws(parser, DOCS["funding_verbatim"])
    clone = pickle.loads(pickle.dumps(parser))
    assert clone.funding == parser.funding
    assert len(clone.catalog.by_symbol) == 166
    mark = ws(clone, DOCS["mark_price_swap"]).events[0]
    assert isinstance(mark, MarkPrice) and mark.funding == 0.0001875391284828


# --------------------------------------------------------------------------- fuzz

SYMBOLS = [
    "BTC-USDT-SWAP",
    "BTC-USD-SWAP",
    "UNI-USD-SWAP",
    "BTC-USDT",
    "BTC-USD-220527",
    "ZZZ-USDT-SWAP",
    "",
    "X-SWAP",
    "-SWAP",
]
CHANNELS = [
    "trades",
    "trades-all",
    "books",
    "books5",
    "books-l2-tbt",
    "books50-l2-tbt",
    "liquidation-orders",
    "mark-price",
    "open-interest",
    "funding-rate",
    "instruments",
    "tickers",
    "bbo-tbt",
    "candle1m",
    "nope",
]
NUMBERS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(-(10**20), 10**20).map(str),
    st.sampled_from(["", "0", "-0", "nan", "inf", "-inf", "1e400", "1e-400", "abc", "0.0001", "30000.5"]),
)
VALUES = st.one_of(
    NUMBERS,
    st.floats(allow_nan=False, allow_infinity=False),
    st.integers(),
    st.none(),
    st.booleans(),
    st.text(max_size=5),
)
LEVEL = st.lists(VALUES, min_size=0, max_size=5)
ROW = st.fixed_dictionaries(
    {},
    optional={
        "instId": st.sampled_from(SYMBOLS),
        "instType": st.sampled_from(["SWAP", "FUTURES", "SPOT", "", 3]),
        "px": VALUES,
        "sz": VALUES,
        "side": st.sampled_from(["buy", "sell", "", "BUY", None]),
        "ts": VALUES,
        "tradeId": VALUES,
        "asks": st.lists(LEVEL, max_size=4),
        "bids": st.lists(LEVEL, max_size=4),
        "seqId": st.one_of(st.integers(-5, 2**63), st.none(), NUMBERS),
        "prevSeqId": st.one_of(st.integers(-5, 2**63), st.none()),
        "markPx": VALUES,
        "oi": VALUES,
        "oiCcy": VALUES,
        "oiUsd": VALUES,
        "fundingRate": VALUES,
        "ctType": st.sampled_from(["linear", "inverse", "", None]),
        "ctVal": VALUES,
        "ctValCcy": st.sampled_from(["BTC", "USD", "USDT", ""]),
        "details": st.lists(
            st.fixed_dictionaries(
                {},
                optional={
                    "bkPx": VALUES,
                    "sz": VALUES,
                    "posSide": st.sampled_from(["long", "short", "net", "", None]),
                    "side": st.sampled_from(["buy", "sell", "", None]),
                    "ts": VALUES,
                },
            ),
            max_size=3,
        ),
    },
)
FRAME = st.fixed_dictionaries(
    {},
    optional={
        "arg": st.one_of(
            st.fixed_dictionaries(
                {"channel": st.sampled_from(CHANNELS)},
                optional={"instId": st.sampled_from(SYMBOLS), "instType": st.sampled_from(["SWAP", "FUTURES", ""])},
            ),
            VALUES,
        ),
        "action": st.sampled_from(["snapshot", "update", "", None]),
        "data": st.one_of(st.lists(ROW, max_size=3), VALUES),
        "event": st.sampled_from(["subscribe", "error", "notice", "", None]),
        "code": VALUES,
    },
)
FUZZ = settings(
    max_examples=int(os.environ.get("OKX_FUZZ_EXAMPLES", "300")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
_PARSER = full_parser()


def check(parse) -> None:
    try:
        parsed = parse()
    except ParseError as err:
        assert isinstance(err.reason, Reason) and err.reason != Reason.PARSER_EXCEPTION, err  # a bug escapes as itself
        return
    assert isinstance(parsed, Parsed)
    for event in parsed.events:
        for field in ("price", "qty", "notional"):
            value = getattr(event, field, None)
            if value is not None:
                assert math.isfinite(value) and value >= 0
        if isinstance(event, (BookSnapshot, BookDelta)):
            assert all(p > 0 and q >= 0 for p, q in event.bids + event.asks)


@FUZZ
@given(st.one_of(st.binary(max_size=200), st.text(max_size=200)))
def test_fuzz_arbitrary_payloads(payload: bytes | str) -> None:
    check(lambda: _PARSER.parse_ws(payload, 1))


@FUZZ
@given(FRAME)
def test_fuzz_plausible_frames(frame: dict) -> None:
    check(lambda: _PARSER.parse_ws(json.dumps(frame).encode(), 1))


@FUZZ
@given(
    st.sampled_from(
        [
            "/api/v5/public/instruments?instType=SWAP",
            "/api/v5/public/instruments",
            "/api/v5/market/books?instId=BTC-USD-SWAP",
            "/api/v5/market/books?instId=ZZZ-USDT-SWAP",
            "/nope",
            "",
            "?instId=&&",
        ]
    ),
    st.one_of(
        st.binary(max_size=100),
        st.fixed_dictionaries(
            {},
            optional={
                "code": st.sampled_from(["0", 0, "1", None]),
                "msg": VALUES,
                "data": st.one_of(st.lists(ROW, max_size=3), VALUES),
            },
        ).map(lambda d: json.dumps(d).encode()),
    ),
)
def test_fuzz_rest(path: str, body: bytes) -> None:
    parser = Parser()
    check(lambda: parser.parse_rest(path, body, 1))


# --- book sequence rule (seqId / prevSeqId) ----------------------------------------------------


def _okx_delta(seq: int, prev: int | None) -> BookDelta:
    from cascadewatch.connectors.events import BookDelta

    return BookDelta(
        venue="okx-swap",
        symbol="BTC-USDT-SWAP",
        instrument="BTC-USDT-PERP",
        ts=1,
        recv=1,
        bids=(),
        asks=(),
        seq=seq,
        prev_seq=prev,
    )


def test_book_sequence_chain_heartbeat_reset_and_gap() -> None:
    from cascadewatch.connectors.events import BookSnapshot
    from cascadewatch.connectors.venues.base import Verdict
    from cascadewatch.connectors.venues.okx import Parser as OkxParser

    rule = OkxParser.sequence_rule()
    assert rule.check(_okx_delta(15, 10)) is Verdict.SKIP  # before a snapshot
    rule.on_snapshot(
        BookSnapshot(
            venue="okx-swap", symbol="BTC-USDT-SWAP", instrument="BTC-USDT-PERP", ts=1, recv=1, bids=(), asks=(), seq=10
        )
    )
    assert [rule.check(_okx_delta(s, p)) for s, p in [(15, 10), (15, 15), (3, 15), (5, 3)]] == [Verdict.APPLY] * 4
    assert rule.check(_okx_delta(9, 7)) is Verdict.GAP
    assert rule.check(_okx_delta(0, None)) is Verdict.APPLY  # old recordings: unchecked
