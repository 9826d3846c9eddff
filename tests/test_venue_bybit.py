"""Bybit v5 linear parser: known answers on real and documented frames, plus fuzzing.

Fixtures (tests/fixtures/bybit/):
- samples.jsonl: copy of shared/samples/bybit.jsonl (tardis-node fixtures of v5 frames, claimed
  live captures, and a recorded legacy v2 session that must be rejected, never crash);
- docs_ws.jsonl, docs_control.jsonl, docs_rest.jsonl: frames from Bybit's v5 docs (each line
  names its page), a few written from the documented fields where a case has no example.
"""

from __future__ import annotations

import json
import math
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
from cascadewatch.connectors.venues.base import (
    Catalog,
    InstrumentInfo,
    Parsed,
    ParseError,
)
from cascadewatch.connectors.venues.bybit import SOURCE, Parser, classify_symbol

FIXTURES = Path(__file__).parent / "fixtures" / "bybit"
RECV = 1_700_000_000_123_456_789


def _lines(name: str) -> list[dict]:
    return [json.loads(line) for line in (FIXTURES / name).read_text().splitlines() if line.strip()]


SAMPLES = _lines("samples.jsonl")
DOCS_WS = _lines("docs_ws.jsonl")
DOCS_CONTROL = _lines("docs_control.jsonl")
DOCS_REST = _lines("docs_rest.jsonl")


def _msg(rows: list[dict], topic: str, nth: int = 0, **match) -> bytes:
    found = [
        r["msg"] for r in rows if r["msg"].get("topic") == topic and all(r["msg"].get(k) == v for k, v in match.items())
    ]
    return json.dumps(found[nth]).encode()


def parse(payload: bytes | str | dict, parser: Parser | None = None) -> Parsed:
    if isinstance(payload, dict):
        payload = json.dumps(payload)
    return (parser or Parser()).parse_ws(payload, RECV)


def rest(entry: dict, parser: Parser | None = None) -> Parsed:
    return (parser or Parser()).parse_rest(entry["path"], json.dumps(entry["body"]).encode(), RECV)


def _doc(rows: list[dict], note_part: str) -> dict:
    (row,) = [r for r in rows if note_part in r["note"]]
    return row


# ----------------------------------------------------------------------------- trades


def test_trade_tardis_ltcusdt_known_answer():
    out = parse(_msg(SAMPLES, "publicTrade.LTCUSDT"))
    assert out.kind == "trade"
    assert out.events == [
        Trade(
            venue=SOURCE,
            symbol="LTCUSDT",
            instrument="LTC-USDT-PERP",
            ts=1680688979983 * NS_PER_MS,
            recv=RECV,
            price=94.53,
            qty=0.4,
            side="buy",
        )
    ]


def test_trade_docs_example_and_sell_side():
    out = parse(_msg(DOCS_WS, "publicTrade.BTCUSDT"))
    (t,) = out.events
    assert (t.price, t.qty, t.side, t.ts, t.instrument) == (
        16578.5,
        0.001,
        "buy",
        1672304486865 * NS_PER_MS,
        "BTC-USDT-PERP",
    )
    sell = {
        "topic": "publicTrade.ETHPERP",
        "type": "snapshot",
        "ts": 5,
        "data": [
            {"T": 4, "s": "ETHPERP", "S": "Sell", "v": "1.25", "p": "3000.5", "L": "MinusTick", "i": "x", "BT": True},
            {"T": 5, "s": "ETHPERP", "S": "Buy", "v": "0.5", "p": "3000.6", "L": "PlusTick", "i": "y", "BT": False},
        ],
    }
    a, b = parse(sell).events
    assert (a.side, a.qty, a.price, a.ts, a.instrument) == ("sell", 1.25, 3000.5, 4 * NS_PER_MS, "ETH-USDC-PERP")
    assert (b.side, b.qty, b.price, b.ts) == ("buy", 0.5, 3000.6, 5 * NS_PER_MS)


def test_trade_inverse_is_skipped_without_events():
    out = parse(_msg(SAMPLES, "publicTrade.BTCUSD"))
    assert out == Parsed("skipped:not_linear", [])


@pytest.mark.parametrize(
    "price,size,reason",
    [
        ("0", "1", "bad_price"),
        ("-1", "1", "bad_price"),
        ("NaN", "1", "bad_price"),
        ("inf", "1", "bad_price"),
        ("1", "-0.1", "bad_qty"),
        ("1", "nan", "bad_qty"),
        ("1", "Infinity", "bad_qty"),
        ("abc", "1", "schema"),
    ],
)
def test_trade_bad_numbers(price, size, reason):
    frame = {
        "topic": "publicTrade.BTCUSDT",
        "type": "snapshot",
        "ts": 1,
        "data": [{"T": 1, "s": "BTCUSDT", "S": "Buy", "v": size, "p": price}],
    }
    with pytest.raises(ParseError) as err:
        parse(frame)
    assert err.value.reason == reason


def test_trade_bad_side_and_symbol_mismatch():
    frame = {
        "topic": "publicTrade.BTCUSDT",
        "type": "snapshot",
        "ts": 1,
        "data": [{"T": 1, "s": "BTCUSDT", "S": "buy", "v": "1", "p": "1"}],
    }
    with pytest.raises(ParseError, match="schema"):
        parse(frame)
    frame["data"][0].update(S="Buy", s="ETHUSDT")
    with pytest.raises(ParseError, match="schema"):
        parse(frame)


# ----------------------------------------------------------------------------- books


def test_book_snapshot_then_delta_tardis_btcusdt():
    p = Parser()
    snap = parse(_msg(SAMPLES, "orderbook.1.BTCUSDT", type="snapshot"), p)
    assert snap.kind == "book"
    assert snap.events == [
        BookSnapshot(
            venue=SOURCE,
            symbol="BTCUSDT",
            instrument="BTC-USDT-PERP",
            ts=1680673820717 * NS_PER_MS,
            recv=RECV,
            bids=((28552.0, 0.047),),
            asks=((28552.1, 25.433),),
            seq=7003305,
        )
    ]
    delta = parse(_msg(SAMPLES, "orderbook.1.BTCUSDT", type="delta"), p)
    assert delta.events == [
        BookDelta(
            venue=SOURCE,
            symbol="BTCUSDT",
            instrument="BTC-USDT-PERP",
            ts=1680673821137 * NS_PER_MS,
            recv=RECV,
            bids=((28552.0, 0.012),),
            asks=(),
            seq=7003306,
            prev_seq=None,
            first_seq=None,
        )
    ]


def test_book_delta_with_deletions():
    (d,) = parse(_msg(SAMPLES, "orderbook.1.BTCUSDT", 1, type="delta")).events
    assert isinstance(d, BookDelta)
    assert d.seq == 1188472 and d.ts == 1682092584425 * NS_PER_MS
    assert d.bids == ((27994.6, 0.0), (27991.7, 0.777))
    assert d.asks == ((27994.4, 0.058), (27994.8, 0.0))


def test_book_usdc_perpetual_btcperp():
    snap = parse(_msg(SAMPLES, "orderbook.50.BTCPERP", type="snapshot")).events[0]
    delta = parse(_msg(SAMPLES, "orderbook.50.BTCPERP", type="delta")).events[0]
    assert isinstance(snap, BookSnapshot) and isinstance(delta, BookDelta)
    assert snap.instrument == delta.instrument == "BTC-USDC-PERP"
    assert (snap.seq, delta.seq) == (20683568, 20683569)
    assert delta.bids == ((28555.2, 0.677),) and delta.asks == ((28555.3, 0.029),)


def test_book_docs_frames_and_restart_rule():
    p = Parser()
    snap = parse(_doc(DOCS_WS, "docs response example (levels")["msg"], p).events[0]
    assert isinstance(snap, BookSnapshot)
    assert snap.seq == 18521288 and snap.ts == 1672304484978 * NS_PER_MS
    assert snap.bids == ((16493.5, 0.006), (16493.0, 0.1)) and snap.asks == ((16611.0, 0.029), (16612.0, 0.213))
    delta = parse(_doc(DOCS_WS, "a delta following")["msg"], p).events[0]
    assert isinstance(delta, BookDelta) and delta.seq == 18521289 and delta.bids == ((16493.5, 0.0),)
    # u == 1 in a delta: service restart, a full book -> BookSnapshot(seq=1)
    restart = parse(_doc(DOCS_WS, "restart case")["msg"], p)
    assert restart.kind == "book"
    assert restart.events == [
        BookSnapshot(
            venue=SOURCE,
            symbol="BTCUSDT",
            instrument="BTC-USDT-PERP",
            ts=1672304499000 * NS_PER_MS,
            recv=RECV,
            bids=((16490.0, 1.5),),
            asks=((16491.0, 2.5),),
            seq=1,
        )
    ]


def test_book_level1_with_string_ts():
    (snap,) = parse(_doc(DOCS_WS, "level-1 snapshot")["msg"]).events
    assert isinstance(snap, BookSnapshot) and snap.ts == 1772694601512 * NS_PER_MS and snap.seq == 5521


@pytest.mark.parametrize(
    "bids,asks,reason",
    [
        ([["-1", "1"]], [], "bad_price"),
        ([["0", "1"]], [], "bad_price"),
        ([], [["nan", "1"]], "bad_price"),
        ([], [["1", "-2"]], "bad_qty"),
        ([["1", "inf"]], [], "bad_qty"),
        ([["1"]], [], "schema"),
        ([["1", "2", "3"]], [], "schema"),
        ([["", "2"]], [], "schema"),
    ],
)
def test_book_bad_levels(bids, asks, reason):
    frame = {
        "topic": "orderbook.50.BTCUSDT",
        "type": "delta",
        "ts": 1,
        "data": {"s": "BTCUSDT", "b": bids, "a": asks, "u": 5, "seq": 9},
    }
    with pytest.raises(ParseError) as err:
        parse(frame)
    assert err.value.reason == reason


def test_book_bad_type_missing_ts_symbol_mismatch():
    base = {
        "topic": "orderbook.50.BTCUSDT",
        "type": "partial",
        "ts": 1,
        "data": {"s": "BTCUSDT", "b": [], "a": [], "u": 5, "seq": 9},
    }
    for change in ({}, {"type": "delta", "ts": None}, {"type": "delta", "data": {**base["data"], "s": "ETHUSDT"}}):
        with pytest.raises(ParseError) as err:
            parse({**base, **change})
        assert err.value.reason == "schema"


def test_other_book_topics():
    assert (
        parse({"topic": "orderbook.rpi.BTCUSDT", "type": "delta", "ts": 1, "data": {}}).kind == "skipped:orderbook_rpi"
    )
    assert (
        parse({"topic": "orderbook.full.BTCUSDT", "type": "delta", "ts": 1, "data": {}}).kind
        == "skipped:orderbook_full"
    )
    with pytest.raises(ParseError, match="unknown_channel"):
        parse({"topic": "orderbook.x.BTCUSDT", "type": "delta", "ts": 1, "data": {}})


# ----------------------------------------------------------------------------- liquidations


def test_all_liquidation_tardis_sell_is_short():
    out = parse(_msg(SAMPLES, "allLiquidation.PIPPINUSDT"))
    assert out.kind == "liquidation"
    assert out.events == [
        Liquidation(
            venue=SOURCE,
            symbol="PIPPINUSDT",
            instrument="PIPPIN-USDT-PERP",
            ts=1740480207110 * NS_PER_MS,
            recv=RECV,
            price=0.02456,
            qty=2846.0,
            side="short",
            notional=0.02456 * 2846.0,
        )
    ]


def test_all_liquidation_batch_buy_is_long():
    # claimed live capture (schema example): two entries -> two events, each with its own T
    a, b = parse(_msg(SAMPLES, "allLiquidation.BTCUSDT")).events
    assert (a.side, a.price, a.qty, a.ts) == ("long", 82396.9, 0.006, 1791565600992 * NS_PER_MS)
    assert (b.side, b.price, b.qty, b.ts) == ("long", 82394.3, 0.038, 1791565601058 * NS_PER_MS)
    assert math.isclose(b.notional, 82394.3 * 0.038)


def test_all_liquidation_docs_example():
    (liq,) = parse(_msg(DOCS_WS, "allLiquidation.ROSEUSDT")).events
    assert (liq.side, liq.price, liq.qty, liq.ts, liq.instrument) == (
        "short",
        0.04499,
        20000.0,
        1739502302929 * NS_PER_MS,
        "ROSE-USDT-PERP",
    )
    assert math.isclose(liq.notional, 899.8)


def test_legacy_v5_liquidation():
    (gala,) = parse(_msg(SAMPLES, "liquidation.GALAUSDT")).events
    assert gala == Liquidation(
        venue=SOURCE,
        symbol="GALAUSDT",
        instrument="GALA-USDT-PERP",
        ts=1673251091822 * NS_PER_MS,
        recv=RECV,
        price=0.03803,
        qty=1637.0,
        side="long",
        notional=0.03803 * 1637.0,
    )
    (doc,) = parse(_doc(DOCS_WS, "docs response example (page removed")["msg"]).events
    assert (doc.side, doc.price, doc.qty, doc.ts) == ("short", 43511.7, 0.003, 1703485237953 * NS_PER_MS)
    (alt,) = parse(_doc(DOCS_WS, "updateTime")["msg"]).events
    assert (alt.side, alt.ts) == ("long", 1703485237953 * NS_PER_MS)
    no_time = {
        "topic": "liquidation.BTCUSDT",
        "type": "snapshot",
        "ts": 77,
        "data": {"symbol": "BTCUSDT", "side": "Buy", "size": "1", "price": "2"},
    }
    assert parse(no_time).events[0].ts == 77 * NS_PER_MS


def test_pre_v5_liquidation_shapes():
    # v2 shapes: linear one is a counted schema error; inverse ones are skipped by symbol
    with pytest.raises(ParseError) as err:
        parse(_msg(SAMPLES, "liquidation.BTCUSDT"))
    assert err.value.reason == "schema"
    for topic in ("liquidation.BTCUSD", "liquidation.ETHUSD", "liquidation.XRPUSD"):
        assert parse(_msg(SAMPLES, topic)).kind == "skipped:not_linear"
    v2_list = {
        "topic": "liquidation.BTCUSDT",
        "data": [{"id": 1, "qty": 1, "side": "Buy", "time": 1, "symbol": "BTCUSDT", "price": 1}],
    }
    with pytest.raises(ParseError, match="schema"):
        parse(v2_list)


def test_liquidation_bad_values():
    frame = {
        "topic": "allLiquidation.BTCUSDT",
        "type": "snapshot",
        "ts": 1,
        "data": [{"T": 1, "s": "BTCUSDT", "S": "Buy", "v": "1", "p": "-5"}],
    }
    with pytest.raises(ParseError, match="bad_price"):
        parse(frame)
    frame["data"][0].update(p="5", v="-1")
    with pytest.raises(ParseError, match="bad_qty"):
        parse(frame)
    frame["data"][0].update(v="1", S="Long")
    with pytest.raises(ParseError, match="schema"):
        parse(frame)


# ----------------------------------------------------------------------------- tickers


def test_ticker_tardis_snapshot():
    out = parse(_msg(SAMPLES, "tickers.BTCUSDT"))
    assert out.kind == "ticker"
    ts = 1680673821770 * NS_PER_MS
    assert out.events == [
        MarkPrice(
            venue=SOURCE,
            symbol="BTCUSDT",
            instrument="BTC-USDT-PERP",
            ts=ts,
            recv=RECV,
            price=28552.81,
            index=28562.25,
            funding=0.0001,
        ),
        OpenInterest(
            venue=SOURCE,
            symbol="BTCUSDT",
            instrument="BTC-USDT-PERP",
            ts=ts,
            recv=RECV,
            qty=52774.528,
            notional=1506861070.82,
        ),
    ]


def test_ticker_deltas_fill_from_last_known_values():
    p = Parser()
    snap = parse(_doc(DOCS_WS, "docs linear response example")["msg"], p).events
    assert snap[0] == MarkPrice(
        venue=SOURCE,
        symbol="BTCUSDT",
        instrument="BTC-USDT-PERP",
        ts=1673272861686 * NS_PER_MS,
        recv=RECV,
        price=17217.33,
        index=17227.36,
        funding=-0.000212,
    )
    assert (snap[1].qty, snap[1].notional) == (68744.761, 1183601235.91)
    (mark,) = parse(_doc(DOCS_WS, "only changed fields (markPrice)")["msg"], p).events
    assert (mark.price, mark.index, mark.funding, mark.ts) == (17218.0, 17227.36, -0.000212, 1673272861786 * NS_PER_MS)
    (oi,) = parse(_doc(DOCS_WS, "only openInterest")["msg"], p).events
    assert isinstance(oi, OpenInterest) and (oi.qty, oi.notional) == (68750.0, None)
    # a delta with nothing we use: no events
    assert parse(_msg(SAMPLES, "tickers.BTCUSDT", type="delta"), p) == Parsed("ticker", [])
    # a new snapshot resets the remembered values
    reset = {
        "topic": "tickers.BTCUSDT",
        "type": "snapshot",
        "ts": 9,
        "data": {"symbol": "BTCUSDT", "markPrice": "1.5", "fundingRate": ""},
    }
    (m,) = parse(reset, p).events
    assert (m.price, m.index, m.funding) == (1.5, None, None)
    # state is per parser and per symbol
    fresh = {"topic": "tickers.ETHUSDT", "type": "delta", "ts": 9, "data": {"symbol": "ETHUSDT", "markPrice": "2"}}
    (e,) = parse(fresh, p).events
    assert (e.index, e.funding) == (None, None)


def test_ticker_bad_frame_leaves_state_untouched():
    p = Parser()
    parse(_doc(DOCS_WS, "docs linear response example")["msg"], p)
    bad = {
        "topic": "tickers.BTCUSDT",
        "type": "delta",
        "ts": 9,
        "data": {"symbol": "BTCUSDT", "indexPrice": "1", "markPrice": "-3"},
    }
    with pytest.raises(ParseError, match="bad_price"):
        parse(bad, p)
    (m,) = parse(
        {"topic": "tickers.BTCUSDT", "type": "delta", "ts": 10, "data": {"symbol": "BTCUSDT", "markPrice": "3"}}, p
    ).events
    assert m.index == 17227.36


def test_ticker_non_linear_and_bad_values():
    assert parse(_msg(SAMPLES, "tickers.BTCUSDU23", type="snapshot")).kind == "skipped:not_linear"
    assert parse(_msg(SAMPLES, "tickers.BTCUSD", type="delta")).kind == "skipped:not_linear"
    base = {"topic": "tickers.BTCUSDT", "type": "delta", "ts": 1, "data": {"symbol": "BTCUSDT"}}
    for field, value, reason in [
        ("fundingRate", "nan", "bad_number"),
        ("openInterest", "-1", "bad_qty"),
        ("openInterestValue", "x", "bad_number"),
        ("indexPrice", "0", "bad_price"),
    ]:
        with pytest.raises(ParseError) as err:
            parse({**base, "data": {"symbol": "BTCUSDT", field: value}})
        assert err.value.reason == reason
    with pytest.raises(ParseError, match="schema"):
        parse({**base, "type": "partial"})


# ----------------------------------------------------------------------------- control, unknown, legacy


def test_control_frames():
    for row in DOCS_CONTROL:
        assert parse(row["msg"]) == Parsed("control", []), row["note"]
    assert parse({"ret_msg": "pong"}).kind == "control"
    with pytest.raises(ParseError) as err:
        parse(
            {
                "success": False,
                "ret_msg": "error:handler not found,topic:foo.BTCUSDT",
                "conn_id": "x",
                "op": "subscribe",
            }
        )
    assert err.value.reason == "control_error"


def test_legacy_v2_recording_is_rejected_and_counted():
    rows = [r for r in SAMPLES if r["kind"] == "recorded_ws"]
    assert len(rows) > 100
    for row in rows:
        with pytest.raises(ParseError) as err:
            parse(row["msg"])
        assert err.value.reason == "unknown_channel"


def test_every_sample_parses_or_raises_parse_error():
    kinds = {}
    p = Parser()
    for row in SAMPLES:
        try:
            kind = p.parse_ws(json.dumps(row["msg"]), RECV).kind
        except ParseError as exc:
            kind = "error:" + exc.reason
        kinds[kind] = kinds.get(kind, 0) + 1
    assert kinds["error:unknown_channel"] == 146
    assert kinds["liquidation"] == 6 and kinds["book"] == 5 and kinds["trade"] == 1


@pytest.mark.parametrize(
    "payload,reason",
    [
        (b"", "malformed_json"),
        (b"{", "malformed_json"),
        (b"\xff\xfe", "malformed_json"),
        ("[]", "schema"),
        ("42", "schema"),
        ("{}", "unknown_channel"),
        ('{"topic": 5}', "schema"),
        ('{"topic": "trade.BTCUSDT", "data": []}', "unknown_channel"),
        ('{"topic": "nope"}', "unknown_channel"),
        ('{"topic": "publicTrade.BTCUSDT", "data": {}}', "schema"),
        ('{"topic": "publicTrade.BTCUSDT"}', "schema"),
        ('{"topic": "publicTrade.FOO"}', "unknown_instrument"),
    ],
)
def test_malformed_and_unknown(payload, reason):
    with pytest.raises(ParseError) as err:
        parse(payload)
    assert err.value.reason == reason


def test_known_unused_topics_are_skipped():
    assert parse({"topic": "kline.5.BTCUSDT", "type": "snapshot", "ts": 1, "data": []}).kind == "skipped:kline"
    assert parse({"topic": "insurance.USDT", "type": "delta", "ts": 1, "data": []}).kind == "skipped:insurance"
    assert parse({"topic": "adlAlert.USDT", "type": "snapshot", "ts": 1, "data": []}).kind == "skipped:adlAlert"


# ----------------------------------------------------------------------------- symbols


@pytest.mark.parametrize(
    "symbol,expected",
    [
        ("BTCUSDT", "BTC-USDT-PERP"),
        ("1000PEPEUSDT", "1000PEPE-USDT-PERP"),
        ("BTCPERP", "BTC-USDC-PERP"),
        ("ETHUSDC", "ETH-USDC-PERP"),
        ("BTCUSD", "skipped:not_linear"),
        ("BTCUSDU23", "skipped:not_linear"),
        ("ETHUSDH24", "skipped:not_linear"),
        ("BTCUSDT-26DEC25", "skipped:not_perp"),
        ("BTC-26DEC25", "skipped:not_perp"),
    ],
)
def test_classify_symbol(symbol, expected):
    got = classify_symbol(symbol)
    assert (got if isinstance(got, str) else got.instrument) == expected


@pytest.mark.parametrize("symbol", ["", "FOO", "PERP", "USDT"])
def test_classify_unknown(symbol):
    with pytest.raises(ParseError, match="unknown_instrument"):
        classify_symbol(symbol)


def test_catalog_wins_over_name():
    catalog = Catalog()
    catalog.add(InstrumentInfo(symbol="XYZUSDT", instrument="XYZ2-USDT-PERP", base="XYZ2", quote="USDT"))
    catalog.add(InstrumentInfo(symbol="INVUSDT", instrument="INV-USDT-PERP", base="INV", quote="USDT", inverse=True))
    p = Parser(catalog)
    frame = {
        "topic": "publicTrade.XYZUSDT",
        "type": "snapshot",
        "ts": 1,
        "data": [{"T": 1, "s": "XYZUSDT", "S": "Buy", "v": "1", "p": "1"}],
    }
    assert parse(frame, p).events[0].instrument == "XYZ2-USDT-PERP"
    assert parse({"topic": "publicTrade.INVUSDT", "data": []}, p).kind == "skipped:not_linear"


# ----------------------------------------------------------------------------- REST


def test_rest_instruments_builds_catalog():
    p = Parser()
    assert rest(DOCS_REST[0], p) == Parsed("instruments", [])
    btc = p.catalog.get("BTCUSDT")
    assert btc == InstrumentInfo(
        symbol="BTCUSDT", instrument="BTC-USDT-PERP", base="BTC", quote="USDT", ct_val=1.0, inverse=False, tick=0.1
    )
    assert p.catalog.get("BIOUSDT").tick == 0.0001
    assert rest(DOCS_REST[1], p).kind == "instruments"
    assert p.catalog.get("ETHPERP").instrument == "ETH-USDC-PERP"
    assert p.catalog.get("SHIB1000USDT").instrument == "SHIB1000-USDT-PERP"
    assert p.catalog.get("BTCUSDT-26DEC25") is None
    assert parse({"topic": "publicTrade.BTCUSDT-26DEC25", "data": []}, p).kind == "skipped:not_perp"


def test_rest_instruments_ignores_spot_reply_and_rejects_bad_tick():
    p = Parser()
    spot = {
        "retCode": 0,
        "retMsg": "OK",
        "result": {
            "category": "spot",
            "list": [
                {
                    "symbol": "BTCUSDT",
                    "baseCoin": "BTC",
                    "quoteCoin": "USDT",
                    "status": "Trading",
                    "priceFilter": {"tickSize": "0.1"},
                }
            ],
        },
    }
    assert (
        p.parse_rest("/v5/market/instruments-info?category=spot", json.dumps(spot).encode(), RECV).kind == "instruments"
    )
    assert p.catalog.get("BTCUSDT") is None
    bad = {
        "retCode": 0,
        "result": {
            "category": "linear",
            "list": [
                {
                    "symbol": "BTCUSDT",
                    "baseCoin": "BTC",
                    "quoteCoin": "USDT",
                    "contractType": "LinearPerpetual",
                    "priceFilter": {"tickSize": "-1"},
                }
            ],
        },
    }
    with pytest.raises(ParseError, match="bad_price"):
        p.parse_rest("/v5/market/instruments-info", json.dumps(bad).encode(), RECV)
    assert p.catalog.get("BTCUSDT") is None


def test_rest_orderbook_docs_example():
    out = rest(DOCS_REST[2])
    assert out.kind == "book"
    assert out.events == [
        BookSnapshot(
            venue=SOURCE,
            symbol="BTCUSDT",
            instrument="BTC-USDT-PERP",
            ts=1716863719031 * NS_PER_MS,
            recv=RECV,
            bids=((65485.47, 47.081829),),
            asks=((65557.7, 16.606555),),
            seq=230704,
        )
    ]


def test_rest_open_interest():
    assert rest(DOCS_REST[3]) == Parsed("skipped:not_linear", [])
    out = rest(DOCS_REST[4])
    assert out.kind == "open_interest"
    assert out.events == [
        OpenInterest(
            venue=SOURCE,
            symbol="BTCUSDT",
            instrument="BTC-USDT-PERP",
            ts=1680673500000 * NS_PER_MS,
            recv=RECV,
            qty=52770.01,
            notional=None,
        ),
        OpenInterest(
            venue=SOURCE,
            symbol="BTCUSDT",
            instrument="BTC-USDT-PERP",
            ts=1680673800000 * NS_PER_MS,
            recv=RECV,
            qty=52774.528,
            notional=None,
        ),
    ]


def test_rest_errors():
    with pytest.raises(ParseError) as err:
        rest(DOCS_REST[5])
    assert err.value.reason == "rest_error"
    p = Parser()
    with pytest.raises(ParseError, match="unknown_channel"):
        p.parse_rest("/v5/market/kline?category=linear", b'{"retCode":0,"result":{}}', RECV)
    with pytest.raises(ParseError, match="malformed_json"):
        p.parse_rest("/v5/market/orderbook", b"<html>", RECV)
    with pytest.raises(ParseError, match="schema"):
        p.parse_rest("/v5/market/orderbook", b'{"retCode":0,"retMsg":"OK"}', RECV)
    with pytest.raises(ParseError, match="schema"):
        p.parse_rest(
            "/v5/market/open-interest",
            b'{"retCode":0,"result":{"symbol":"BTCUSDT","list":[{"openInterest":"1"}]}}',
            RECV,
        )


def test_events_are_serializable():
    out = parse(_msg(SAMPLES, "allLiquidation.BTCUSDT"))
    assert msgspec.json.decode(msgspec.json.encode(out.events))[0]["type"] == "liquidation"


# ----------------------------------------------------------------------------- fuzz

_FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _outcome(fn, *args) -> None:
    try:
        result = fn(*args)
    except ParseError as exc:
        assert isinstance(exc.reason, Reason) and exc.reason != Reason.PARSER_EXCEPTION, exc  # a bug escapes as itself
        return
    assert isinstance(result, Parsed)
    for event in result.events:
        assert event.venue == SOURCE and event.instrument.endswith("-PERP")


@_FUZZ
@given(st.one_of(st.binary(max_size=300), st.text(max_size=300)))
def test_fuzz_arbitrary_input(payload):
    p = Parser()
    _outcome(p.parse_ws, payload, RECV)
    _outcome(p.parse_rest, "/v5/market/orderbook", payload if isinstance(payload, bytes) else payload.encode(), RECV)


_json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=8),
    st.sampled_from(["0", "-1", "1.5", "nan", "inf", "-inf", "1e400", "", "Buy", "Sell", "BTCUSDT", "1680673820717"]),
)
_json = st.recursive(
    _json_leaf,
    lambda kids: st.one_of(st.lists(kids, max_size=4), st.dictionaries(st.text(max_size=6), kids, max_size=4)),
    max_leaves=12,
)
_num = st.one_of(_json_leaf, st.floats().map(str))
_symbol = st.sampled_from(["BTCUSDT", "BTCPERP", "BTCUSD", "BTCUSDU23", "BTCUSDT-26DEC25", "FOO", "", "ETHUSDT"])
_level = st.lists(_num, min_size=0, max_size=3)
_entry = st.fixed_dictionaries(
    {},
    optional={
        "T": _num,
        "s": _symbol,
        "S": st.sampled_from(["Buy", "Sell", "buy", "", 1]),
        "v": _num,
        "p": _num,
        "symbol": _symbol,
        "side": st.sampled_from(["Buy", "Sell", "x"]),
        "size": _num,
        "price": _num,
        "updatedTime": _num,
        "markPrice": _num,
        "indexPrice": _num,
        "fundingRate": _num,
        "openInterest": _num,
        "openInterestValue": _num,
    },
)
_book_data = st.fixed_dictionaries(
    {},
    optional={
        "s": _symbol,
        "b": st.lists(_level, max_size=3),
        "a": st.lists(_level, max_size=3),
        "u": st.one_of(st.just(1), _num),
        "seq": _num,
    },
)


@st.composite
def _frames(draw):
    head = draw(
        st.sampled_from(
            [
                "publicTrade",
                "orderbook.50",
                "orderbook.1",
                "orderbook.rpi",
                "allLiquidation",
                "liquidation",
                "tickers",
                "kline.1",
                "trade",
                "orderBookL2_25",
                "x",
            ]
        )
    )
    frame = {"topic": f"{head}.{draw(_symbol)}"}
    if draw(st.booleans()):
        frame["type"] = draw(st.sampled_from(["snapshot", "delta", "other", 3]))
    if draw(st.booleans()):
        frame["ts"] = draw(_num)
    frame["data"] = draw(st.one_of(st.lists(_entry, max_size=3), _entry, _book_data, _json))
    if draw(st.booleans()):
        frame = draw(
            st.sampled_from(
                [
                    {
                        "op": draw(st.sampled_from(["subscribe", "ping", "pong", 5])),
                        "success": draw(_json_leaf),
                        "ret_msg": draw(_json_leaf),
                    },
                    {"ret_msg": draw(_json_leaf)},
                    frame,
                ]
            )
        )
    return frame


@_FUZZ
@given(_frames())
def test_fuzz_plausible_frames(frame):
    p = Parser()
    _outcome(p.parse_ws, json.dumps(frame), RECV)
    _outcome(p.parse_ws, json.dumps(frame).encode(), RECV)


_numstr = st.one_of(
    st.sampled_from(["0", "-0", "-1", "1.5", "nan", "NaN", "inf", "-inf", "1e400", "1e-400", "", "x", "0.001"]),
    st.floats().map(str),
    st.integers(min_value=-(2**64), max_value=2**64).map(str),
)
_ts = st.one_of(st.integers(min_value=-(2**63), max_value=2**63 - 1), st.integers().map(str), _numstr)


@st.composite
def _shaped_frames(draw):
    """Right shape for each channel, values drawn from good and bad numbers."""
    symbol = draw(st.sampled_from(["BTCUSDT", "BTCPERP", "1000PEPEUSDT"]))
    side = draw(st.sampled_from(["Buy", "Sell"]))
    channel = draw(st.sampled_from(["trade", "book", "allliq", "liq", "ticker"]))
    ts = draw(_ts)
    if channel == "trade":
        data = [
            {"T": draw(_ts), "s": symbol, "S": side, "v": draw(_numstr), "p": draw(_numstr)}
            for _ in range(draw(st.integers(0, 3)))
        ]
        return {"topic": f"publicTrade.{symbol}", "type": "snapshot", "ts": ts, "data": data}
    if channel == "book":
        lv = st.lists(st.tuples(_numstr, _numstr).map(list), max_size=3)
        return {
            "topic": f"orderbook.{draw(st.sampled_from([1, 50, 200]))}.{symbol}",
            "type": draw(st.sampled_from(["snapshot", "delta"])),
            "ts": ts,
            "data": {
                "s": symbol,
                "b": draw(lv),
                "a": draw(lv),
                "u": draw(st.one_of(st.just(1), _ts)),
                "seq": draw(_ts),
            },
        }
    if channel == "allliq":
        data = [
            {"T": draw(_ts), "s": symbol, "S": side, "v": draw(_numstr), "p": draw(_numstr)}
            for _ in range(draw(st.integers(0, 3)))
        ]
        return {"topic": f"allLiquidation.{symbol}", "type": "snapshot", "ts": ts, "data": data}
    if channel == "liq":
        return {
            "topic": f"liquidation.{symbol}",
            "type": "snapshot",
            "ts": ts,
            "data": {
                "symbol": symbol,
                "side": side,
                "size": draw(_numstr),
                "price": draw(_numstr),
                "updatedTime": draw(_ts),
            },
        }
    fields = draw(
        st.dictionaries(
            st.sampled_from(
                ["markPrice", "indexPrice", "fundingRate", "openInterest", "openInterestValue", "bid1Price"]
            ),
            _numstr,
            max_size=6,
        )
    )
    return {
        "topic": f"tickers.{symbol}",
        "type": draw(st.sampled_from(["snapshot", "delta"])),
        "ts": ts,
        "data": {"symbol": symbol, **fields},
    }


@_FUZZ
@given(st.lists(_shaped_frames(), min_size=1, max_size=4))
def test_fuzz_shaped_frames(frames):
    p = Parser()  # one parser across frames: exercises the tickers state too
    for frame in frames:
        _outcome(p.parse_ws, json.dumps(frame), RECV)


@st.composite
def _rest_bodies(draw):
    path = draw(
        st.sampled_from(
            [
                "/v5/market/instruments-info?category=linear",
                "/v5/market/orderbook?symbol=BTCUSDT",
                "/v5/market/open-interest?symbol=BTCUSDT",
                "/v5/market/tickers",
                "::bad::",
            ]
        )
    )
    result = draw(
        st.one_of(
            _book_data,
            st.fixed_dictionaries(
                {},
                optional={
                    "category": _json_leaf,
                    "symbol": _symbol,
                    "list": st.lists(
                        st.fixed_dictionaries(
                            {},
                            optional={
                                "symbol": _symbol,
                                "baseCoin": _json_leaf,
                                "quoteCoin": _json_leaf,
                                "contractType": st.sampled_from(
                                    ["LinearPerpetual", "LinearFutures", "InversePerpetual", "", 4]
                                ),
                                "priceFilter": st.one_of(_json, st.fixed_dictionaries({"tickSize": _num})),
                                "openInterest": _num,
                                "timestamp": _num,
                            },
                        ),
                        max_size=3,
                    ),
                },
            ),
            _json,
        )
    )
    body = {"retCode": draw(st.one_of(st.just(0), _json_leaf)), "retMsg": draw(_json_leaf), "result": result}
    return path, json.dumps(body).encode()


@_FUZZ
@given(_rest_bodies())
def test_fuzz_rest_bodies(case):
    path, body = case
    _outcome(Parser().parse_rest, path, body, RECV)


# --- book sequence rule (u steps by one; u == 1 resets via a snapshot) ----------------------------


def test_book_sequence_skips_stale_applies_next_and_flags_jumps() -> None:
    from cascadewatch.connectors.events import BookDelta, BookSnapshot
    from cascadewatch.connectors.venues.base import Verdict
    from cascadewatch.connectors.venues.bybit import Parser as BybitParser

    def delta(u: int) -> BookDelta:
        return BookDelta(
            venue="bybit-linear", symbol="BTCUSDT", instrument="BTC-USDT-PERP", ts=1, recv=1, bids=(), asks=(), seq=u
        )

    rule = BybitParser.sequence_rule()
    assert rule.check(delta(5)) is Verdict.SKIP
    rule.on_snapshot(
        BookSnapshot(
            venue="bybit-linear", symbol="BTCUSDT", instrument="BTC-USDT-PERP", ts=1, recv=1, bids=(), asks=(), seq=100
        )
    )
    assert [rule.check(delta(u)) for u in (99, 100, 101, 102)] == [
        Verdict.SKIP,
        Verdict.SKIP,
        Verdict.APPLY,
        Verdict.APPLY,
    ]
    assert rule.check(delta(105)) is Verdict.GAP
    assert rule.describe_gap(delta(105)) == "expected u=103, got u=105"
