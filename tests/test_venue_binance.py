"""Binance USD-M parser: real recorded frames, frames from the official docs, bad input, fuzz."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cascadewatch.connectors.book import BookKeeper
from cascadewatch.connectors.events import (
    BookDelta,
    BookSnapshot,
    Liquidation,
    MarkPrice,
    OpenInterest,
    Trade,
)
from cascadewatch.connectors.frames import FrameDecoder
from cascadewatch.connectors.live import resolve_settings
from cascadewatch.connectors.live_config import LiveConfig
from cascadewatch.connectors.reasons import Reason
from cascadewatch.connectors.units import NS_PER_MS
from cascadewatch.connectors.venues import binance
from cascadewatch.connectors.venues.base import (
    Catalog,
    InstrumentInfo,
    Parsed,
    ParseError,
    Verdict,
)
from cascadewatch.connectors.venues.live_common import Emit, Fetch, rest_frame

FIXTURES = Path(__file__).parent / "fixtures" / "binance"
RECORDING = FIXTURES.parent / "recordings" / "binance-usdm-2021-07-22-head.rec"
SAMPLES = FIXTURES / "binance_usdm.jsonl"
RECV = 1_700_000_000_000_000_000


class _Rest(msgspec.Struct):
    path: str
    body: msgspec.Raw


def replay(parser: binance.Parser) -> list[tuple[int, str, Parsed]]:
    """Every binance-usdm / binance-usdm!rest line of the recording -> (recv, source, Parsed)."""
    out = []
    for line in RECORDING.read_bytes().splitlines():
        if line.startswith(b"#"):
            continue
        recv_text, source, payload = line.split(b" ", 2)
        recv = int(recv_text)
        if source == b"binance-usdm":
            out.append((recv, "ws", parser.parse_ws(payload, recv)))
        elif source == b"binance-usdm!rest":
            rest = msgspec.json.decode(payload, type=_Rest)
            out.append((recv, "rest", parser.parse_rest(rest.path, bytes(rest.body), recv)))
    return out


def parse(frame: dict | str, recv: int = RECV, parser: binance.Parser | None = None) -> Parsed:
    text = frame if isinstance(frame, str) else json.dumps(frame, separators=(",", ":"))
    return (parser or binance.Parser()).parse_ws(text.encode(), recv)


def only(parsed: Parsed):
    assert len(parsed.events) == 1, parsed
    return parsed.events[0]


def reason(frame: dict | str | bytes) -> str:
    payload = frame if isinstance(frame, (str, bytes)) else json.dumps(frame, separators=(",", ":"))
    with pytest.raises(ParseError) as info:
        binance.Parser().parse_ws(payload, RECV)
    return info.value.reason


# --- the recorded session ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def session():
    parser = binance.Parser()
    return parser, replay(parser)


def test_recording_counts_by_kind(session):
    _, parsed = session
    # 72 depthUpdate + 4 REST snapshots; counted independently with the json module.
    assert Counter(p.kind for _, _, p in parsed) == {
        "book": 76,
        "skipped:bookTicker": 15,
        "skipped:kline": 5,
        "trade": 3,
        "instruments": 1,
    }
    events = [e for _, _, p in parsed for e in p.events]
    assert Counter(type(e).__name__ for e in events) == {"BookDelta": 72, "BookSnapshot": 4, "Trade": 3}
    assert {e.venue for e in events} == {"binance-usdm"}
    assert {e.instrument for e in events} == {"SUSHI-USDT-PERP", "AKRO-USDT-PERP", "KEEP-USDT-PERP", "CTK-USDT-PERP"}


def test_recording_exchange_info_fills_catalog(session):
    parser, _ = session
    catalog = parser.catalog.by_symbol
    assert len(catalog) == 119  # PERPETUAL symbols; 2 CURRENT_QUARTER and 1 "" contractType left out
    assert catalog["BTCUSDT"] == InstrumentInfo("BTCUSDT", "BTC-USDT-PERP", "BTC", "USDT", tick=0.01)
    assert catalog["1000SHIBUSDT"].instrument == "1000SHIB-USDT-PERP"
    assert catalog["1000SHIBUSDT"].tick == 0.000001
    assert catalog["ETHBUSD"].instrument == "ETH-BUSD-PERP"
    assert "BTCUSDT_210924" not in catalog and "BTCSTUSDT" not in catalog
    # exchangeInfo says BTCSTUSDT is not a perpetual (contractType ""), though its name splits
    mark = {"e": "markPriceUpdate", "E": 1626992741000, "s": "BTCSTUSDT", "p": "40.1", "r": "0.0001"}
    assert parse(mark, parser=parser).kind == "skipped:not_perpetual"
    assert parse(mark).kind == "mark_price"  # a parser without exchangeInfo splits the name


def test_recording_first_sushi_snapshot_and_sync(session):
    _, parsed = session
    snapshots = [(recv, p.events[0]) for recv, src, p in parsed if src == "rest" and p.kind == "book"]
    recv, snap = next((r, s) for r, s in snapshots if s.symbol == "SUSHIUSDT")
    assert isinstance(snap, BookSnapshot)
    assert snap.instrument == "SUSHI-USDT-PERP"
    assert snap.seq == 600859605926
    assert snap.ts == 1626992741264 * NS_PER_MS and snap.recv == recv == 1626992741301402000
    assert snap.bids[0] == (7.611, 6.0) and snap.asks[0] == (7.612, 297.0)
    assert len(snap.bids) == len(snap.asks) == 1000
    diffs = [
        p.events[0]
        for r, src, p in parsed
        if src == "ws" and p.kind == "book" and r > recv and p.events[0].symbol == "SUSHIUSDT"
    ]
    # The first diff received after the snapshot is older than it: dropped by the book rule.
    assert (diffs[0].first_seq, diffs[0].seq, diffs[0].prev_seq) == (600859601193, 600859602861, 600859600917)
    assert diffs[0].seq < snap.seq
    kept = [d for d in diffs if d.seq >= snap.seq]
    first = kept[0]
    assert (first.first_seq, first.seq, first.prev_seq) == (600859605926, 600859607423, 600859604824)
    assert first.first_seq <= snap.seq <= first.seq
    assert first.bids[0] == (7.56, 478.0)
    assert all(b.prev_seq == a.seq for a, b in zip(kept, kept[1:], strict=False))


def test_recording_every_snapshot_syncs_by_the_documented_rule(session):
    _, parsed = session
    books = [(r, p.events[0]) for r, _, p in parsed if p.kind == "book"]
    for recv, snap in books:
        if not isinstance(snap, BookSnapshot):
            continue
        kept = [
            d
            for r, d in books
            if isinstance(d, BookDelta) and r > recv and d.symbol == snap.symbol and d.seq >= snap.seq
        ]
        assert kept, snap.symbol
        assert kept[0].first_seq <= snap.seq <= kept[0].seq, snap.symbol
        assert all(b.prev_seq == a.seq for a, b in zip(kept, kept[1:], strict=False)), snap.symbol


def test_recording_books_sync_under_the_venue_rule(session):
    _, parsed = session
    keepers: dict[str, BookKeeper] = {}
    statuses = []
    for _, _, p in parsed:
        for event in p.events:
            if isinstance(event, (BookSnapshot, BookDelta)):
                keeper = keepers.setdefault(event.instrument, BookKeeper(binance.Parser.sequence_rule()))
                statuses += keeper.apply(event)
    assert statuses == []
    assert {i: (k.book.valid, k.gaps, k.rule.synced) for i, k in keepers.items()} == {
        i: (True, 0, True) for i in ("SUSHI-USDT-PERP", "AKRO-USDT-PERP", "KEEP-USDT-PERP", "CTK-USDT-PERP")
    }
    assert keepers["SUSHI-USDT-PERP"].rule.last_seq == 600859652903  # u of the last SUSHIUSDT diff
    sushi = keepers["SUSHI-USDT-PERP"].book
    assert sushi.best_bid() < sushi.best_ask()


def _delta(first: int, final: int, prev: int) -> BookDelta:
    return BookDelta(
        venue="binance-usdm",
        symbol="BTCUSDT",
        instrument="BTC-USDT-PERP",
        ts=0,
        recv=0,
        bids=(),
        asks=(),
        seq=final,
        prev_seq=prev,
        first_seq=first,
    )


def _snapshot(last_update_id: int) -> BookSnapshot:
    return BookSnapshot(
        venue="binance-usdm",
        symbol="BTCUSDT",
        instrument="BTC-USDT-PERP",
        ts=0,
        recv=0,
        bids=(),
        asks=(),
        seq=last_update_id,
    )


def test_book_sequence_rule_steps():
    rule = binance.Parser.sequence_rule()
    assert rule.check(_delta(90, 95, 89)) is Verdict.SKIP  # no snapshot yet
    rule.on_snapshot(_snapshot(100))
    assert rule.check(_delta(95, 99, 94)) is Verdict.SKIP  # u < lastUpdateId
    assert rule.check(_delta(99, 104, 98)) is Verdict.APPLY  # U <= 100 <= u
    assert rule.check(_delta(105, 110, 104)) is Verdict.APPLY  # pu == previous u
    assert rule.check(_delta(115, 120, 112)) is Verdict.GAP
    assert rule.describe_gap(_delta(115, 120, 112)) == "expected continuation of seq=110, got prev_seq=112 seq=120"
    rule.on_snapshot(_snapshot(200))
    assert rule.check(_delta(150, 199, 140)) is Verdict.SKIP
    assert rule.check(_delta(201, 205, 199)) is Verdict.GAP  # U > lastUpdateId: diffs were missed
    assert rule.describe_gap(_delta(201, 205, 199)) == "first diff after snapshot lastUpdateId=200 starts at U=201"
    assert rule.check(_delta(190, 200, 189)) is Verdict.APPLY  # u == lastUpdateId is allowed
    rule.reset()
    assert rule.check(_delta(201, 205, 200)) is Verdict.SKIP


def test_recording_first_depth_diff_and_trade(session):
    _, parsed = session
    first = next(p.events[0] for _, _, p in parsed if p.kind == "book")
    assert first == BookDelta(
        venue="binance-usdm",
        symbol="SUSHIUSDT",
        instrument="SUSHI-USDT-PERP",
        ts=1626992741037 * NS_PER_MS,
        recv=1626992741081672000,
        bids=((7.504, 813.0), (7.609, 0.0), (7.611, 2.0)),
        asks=((7.615, 1563.0), (7.622, 3284.0)),
        seq=600859600917,
        prev_seq=600859598061,
        first_seq=600859599090,
    )
    trade = next(p.events[0] for _, _, p in parsed if p.kind == "trade")
    assert trade == Trade(
        venue="binance-usdm",
        symbol="CTKUSDT",
        instrument="CTK-USDT-PERP",
        ts=1626992741421 * NS_PER_MS,
        recv=1626992742289739000,
        price=1.011,
        qty=10.0,
        side="buy",
    )


# --- the sample file (recorded frames, tardis fixtures, claimed live captures) -------------------


def test_samples_all_parse_or_fail_cleanly():
    parser = binance.Parser()
    kinds: Counter = Counter()
    errors: Counter = Counter()
    for line in SAMPLES.read_text().splitlines():
        sample = json.loads(line)
        try:
            kinds[parse(sample["msg"], parser=parser).kind] += 1
        except ParseError as exc:
            errors[exc.reason] += 1
    assert kinds == {
        "trade": 63,
        "book": 62,
        "skipped:bookTicker": 62,
        "skipped:kline": 60,
        "liquidation": 4,
        "mark_price": 2,
        "skipped:ticker": 2,
        "skipped:nonmarket_trade": 1,
        "skipped:not_perpetual": 1,
    }
    # tardis' generated "depthSnapshot" / "openInterest" wrappers are not Binance frames
    assert errors == {"unknown_channel": 2}


def test_claimed_live_frames_wrapped_and_raw():
    wrapped = {
        "stream": "!forceOrder@arr",
        "data": {
            "e": "forceOrder",
            "E": 1791565603055,
            "o": {
                "s": "BTCUSDT",
                "S": "SELL",
                "o": "LIMIT",
                "f": "IOC",
                "q": "0.190",
                "p": "82338.30",
                "ap": "82651.90",
                "X": "FILLED",
                "l": "0.155",
                "z": "0.190",
                "T": 1791565602120,
                "ps": "BTCUSDT",
                "st": 1,
            },
        },
    }
    liq = only(parse(wrapped))
    assert liq == Liquidation(
        venue="binance-usdm",
        symbol="BTCUSDT",
        instrument="BTC-USDT-PERP",
        ts=1791565602120 * NS_PER_MS,
        recv=RECV,
        price=82651.9,
        qty=0.19,
        side="long",
        notional=pytest.approx(82651.9 * 0.19),
    )
    assert only(parse(wrapped["data"])) == liq  # the same frame unwrapped
    raw = {
        "e": "forceOrder",
        "E": 1791091027107,
        "o": {
            "s": "MANTAUSDT",
            "S": "SELL",
            "o": "LIMIT",
            "f": "IOC",
            "q": "2049.1",
            "p": "0.0711500",
            "ap": "0.0722187",
            "X": "FILLED",
            "l": "245.9",
            "z": "2049.1",
            "T": 1791091026103,
            "ps": "MANTAUSDT",
            "st": 1,
        },
    }
    manta = only(parse(raw))
    assert (manta.instrument, manta.side, manta.price, manta.qty) == ("MANTA-USDT-PERP", "long", 0.0722187, 2049.1)


# --- frames from the official docs (developers.binance.com, USD-M futures) -----------------------

DOC_FORCE_ORDER = {  # Liquidation Order Streams, response example
    "e": "forceOrder",
    "E": 1568014460893,
    "o": {
        "s": "BTCUSDT",
        "S": "SELL",
        "o": "LIMIT",
        "f": "IOC",
        "q": "0.014",
        "p": "9910",
        "ap": "9910",
        "X": "FILLED",
        "l": "0.014",
        "z": "0.014",
        "T": 1568014460893,
    },
}
DOC_MARK_PRICE = {  # Mark Price Stream, response example
    "e": "markPriceUpdate",
    "E": 1562305380000,
    "s": "BTCUSDT",
    "p": "11794.15000000",
    "i": "11784.62659091",
    "P": "11784.25641265",
    "r": "0.00038167",
    "T": 1562306400000,
}
DOC_AGG_TRADE = {  # Aggregate Trade Streams, response example
    "e": "aggTrade",
    "E": 123456789,
    "s": "BTCUSDT",
    "a": 5933014,
    "p": "0.001",
    "q": "100",
    "f": 100,
    "l": 105,
    "T": 123456785,
    "m": True,
}
DOC_DEPTH = {  # Diff. Book Depth Streams, response example
    "e": "depthUpdate",
    "E": 123456789,
    "T": 123456788,
    "s": "BTCUSDT",
    "U": 157,
    "u": 160,
    "pu": 149,
    "b": [["0.0024", "10"]],
    "a": [["0.0026", "100"]],
}


def test_doc_force_order_sell_is_long_liquidated():
    liq = only(parse({"stream": "btcusdt@forceOrder", "data": DOC_FORCE_ORDER}))
    assert liq == Liquidation(
        venue="binance-usdm",
        symbol="BTCUSDT",
        instrument="BTC-USDT-PERP",
        ts=1568014460893 * NS_PER_MS,
        recv=RECV,
        price=9910.0,
        qty=0.014,
        side="long",
        notional=pytest.approx(138.74),
    )


def test_force_order_buy_fallbacks():
    order = dict(DOC_FORCE_ORDER["o"], S="BUY", ap="0", p="9000.5", z="0", q="0.5", l="0")
    liq = only(parse(dict(DOC_FORCE_ORDER, o=order)))
    assert (liq.side, liq.price, liq.qty, liq.notional) == ("short", 9000.5, 0.5, 4500.25)
    order = {k: v for k, v in order.items() if k not in ("ap", "z", "l")}  # fields absent altogether
    liq = only(parse(dict(DOC_FORCE_ORDER, o=order)))
    assert (liq.side, liq.price, liq.qty) == ("short", 9000.5, 0.5)
    # tardis fixture: BUY filled below its limit price; average price wins
    order = dict(DOC_FORCE_ORDER["o"], S="BUY", q="0.014", p="4793.91", ap="4706.04", z="0.014")
    assert only(parse(dict(DOC_FORCE_ORDER, o=order))).price == 4706.04


def test_doc_mark_price():
    mark = only(parse({"stream": "btcusdt@markPrice@1s", "data": DOC_MARK_PRICE}))
    assert mark == MarkPrice(
        venue="binance-usdm",
        symbol="BTCUSDT",
        instrument="BTC-USDT-PERP",
        ts=1562305380000 * NS_PER_MS,
        recv=RECV,
        price=11794.15,
        index=11784.62659091,
        funding=0.00038167,
    )
    bare = only(parse({k: v for k, v in DOC_MARK_PRICE.items() if k not in ("i", "r")}))
    assert (bare.index, bare.funding) == (None, None)
    negative = only(parse(dict(DOC_MARK_PRICE, r="-0.00010000")))
    assert negative.funding == -0.0001


def test_doc_agg_trade_buyer_maker_is_sell():
    trade = only(parse(DOC_AGG_TRADE))
    assert trade == Trade(
        venue="binance-usdm",
        symbol="BTCUSDT",
        instrument="BTC-USDT-PERP",
        ts=123456785 * NS_PER_MS,
        recv=RECV,
        price=0.001,
        qty=100.0,
        side="sell",
    )


def test_doc_depth_update_sequence_fields():
    delta = only(parse({"stream": "btcusdt@depth@100ms", "data": DOC_DEPTH}))
    assert delta == BookDelta(
        venue="binance-usdm",
        symbol="BTCUSDT",
        instrument="BTC-USDT-PERP",
        ts=123456789 * NS_PER_MS,
        recv=RECV,
        bids=((0.0024, 10.0),),
        asks=((0.0026, 100.0),),
        seq=160,
        prev_seq=149,
        first_seq=157,
    )
    assert only(parse(DOC_DEPTH)) == delta
    assert only(parse({"stream": "btcusdt@depth", "data": DOC_DEPTH})) == delta


def test_partial_depth_streams_are_not_diffs():
    for stream in ("btcusdt@depth5", "btcusdt@depth10@100ms", "btcusdt@depth20@500ms"):
        assert parse({"stream": stream, "data": DOC_DEPTH}).kind == "skipped:partial_depth"


def test_plain_trade_stream():
    trade = {
        "e": "trade",
        "E": 1596240000596,
        "T": 1596240000519,
        "s": "BTCUSDT",
        "t": 173525189,
        "p": "11343.67",
        "q": "0.467",
        "X": "MARKET",
        "m": True,
    }
    assert only(parse(trade)).side == "sell"
    assert only(parse({k: v for k, v in trade.items() if k != "X"})).price == 11343.67
    for kind in ("INSURANCE_FUND", "ADL", "NA"):
        assert parse(dict(trade, X=kind)) == Parsed("skipped:nonmarket_trade")


def test_skipped_channels_and_control():
    book_ticker = {
        "e": "bookTicker",
        "u": 400900217,
        "E": 1568014460893,
        "T": 1568014460891,
        "s": "BNBUSDT",
        "b": "25.35190000",
        "B": "31.21000000",
        "a": "25.36520000",
        "A": "40.66000000",
    }
    assert parse(book_ticker) == Parsed("skipped:bookTicker")
    kline = {"e": "kline", "E": 1, "s": "BNBUSDT", "k": {}}
    assert parse({"stream": "bnbusdt@kline_1m", "data": kline}).kind == "skipped:kline"
    assert parse({"e": "24hrTicker", "E": 1, "s": "BNBUSDT"}).kind == "skipped:ticker"
    assert parse({"result": None, "id": 1}) == Parsed("control")
    assert parse({"result": ["btcusdt@aggTrade"], "id": 3}) == Parsed("control")
    assert parse('{ "result": null, "id": 7 }') == Parsed("control")


def test_dated_contracts_are_skipped():
    assert parse(dict(DOC_DEPTH, s="BTCUSDT_240628")) == Parsed("skipped:not_perpetual")
    assert parse(dict(DOC_AGG_TRADE, s="BTCUSDT_240628")) == Parsed("skipped:not_perpetual")
    assert parse(dict(DOC_MARK_PRICE, s="BTCBUSD_210129", r="")) == Parsed("skipped:not_perpetual")
    order = dict(DOC_FORCE_ORDER["o"], s="ETHUSDT_240628")
    assert parse(dict(DOC_FORCE_ORDER, o=order)) == Parsed("skipped:not_perpetual")


def test_array_data():
    marks = [
        DOC_MARK_PRICE,
        dict(DOC_MARK_PRICE, s="BTCUSDT_240628", r=""),
        dict(DOC_MARK_PRICE, s="ETHUSDT", p="2000"),
    ]
    parsed = parse({"stream": "!markPrice@arr@1s", "data": marks})
    assert parsed.kind == "mark_price"
    assert [(e.instrument, e.price) for e in parsed.events] == [("BTC-USDT-PERP", 11794.15), ("ETH-USDT-PERP", 2000.0)]
    assert parse({"stream": "!markPrice@arr", "data": marks[1:2]}) == Parsed("skipped:not_perpetual")
    assert parse({"stream": "!markPrice@arr", "data": []}) == Parsed("skipped:empty")


def test_catalog_given_to_the_parser_is_used():
    catalog = Catalog()
    catalog.add(InstrumentInfo("XBTUSDM", "BTC-USDM-PERP", "BTC", "USDM"))
    parser = binance.Parser(catalog)
    assert only(parse(dict(DOC_AGG_TRADE, s="XBTUSDM"), parser=parser)).instrument == "BTC-USDM-PERP"


def test_str_bytes_and_spaced_json_agree():
    compact = json.dumps({"stream": "btcusdt@aggTrade", "data": DOC_AGG_TRADE}, separators=(",", ":"))
    spaced = json.dumps({"stream": "btcusdt@aggTrade", "data": DOC_AGG_TRADE}, indent=2)
    parser = binance.Parser()
    expected = parser.parse_ws(compact.encode(), RECV)
    assert parser.parse_ws(compact, RECV) == expected
    assert parser.parse_ws(spaced, RECV) == expected
    assert parser.parse_ws(json.dumps(DOC_AGG_TRADE), RECV) == expected


def test_bad_frames():
    assert reason(b"") == "malformed_json"
    assert reason(b'{"stream":"x","data":{"e":"aggTrade"') == "malformed_json"
    assert reason("\xff not json") == "malformed_json"
    assert reason("[]") == "schema"
    assert reason("42") == "schema"
    assert reason([DOC_MARK_PRICE]) == "schema"  # arrays only inside a combined frame
    assert reason({"stream": "x", "data": 5}) == "schema"
    assert reason({"e": "aggTrade", "s": "BTCUSDT"}) == "schema"  # fields missing
    assert reason(dict(DOC_DEPTH, b=[["1", "2", "3"]])) == "schema"
    assert reason(dict(DOC_DEPTH, pu=None)) == "schema"
    assert reason(dict(DOC_AGG_TRADE, m="maybe")) == "schema"
    order = dict(DOC_FORCE_ORDER["o"], S="HOLD")
    assert reason(dict(DOC_FORCE_ORDER, o=order)) == "schema"


def test_unknown_channels():
    assert reason({"e": "contractInfo", "E": 1}) == "unknown_channel"
    assert reason({"stream": "x@y", "data": {"e": "newThing", "E": 1}}) == "unknown_channel"
    assert reason({"stream": "x@y", "data": [DOC_MARK_PRICE, {"e": "newThing"}]}) == "unknown_channel"
    assert reason({"stream": "btcusdt@depthSnapshot", "data": {"lastUpdateId": 1}}) == "unknown_channel"
    assert reason({"e": 5}) == "unknown_channel"
    assert reason({"ping": 1}) == "unknown_channel"


def test_venue_error_reply():
    with pytest.raises(ParseError) as info:
        binance.Parser().parse_ws(b'{"error":{"code":2,"msg":"Invalid request"},"id":1}', RECV)
    assert info.value.reason == "venue_error" and "Invalid request" in info.value.detail


@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        (dict(DOC_AGG_TRADE, p="-1"), "bad_price"),
        (dict(DOC_AGG_TRADE, p="0"), "bad_price"),
        (dict(DOC_AGG_TRADE, p="NaN"), "bad_price"),
        (dict(DOC_AGG_TRADE, p="inf"), "bad_price"),
        (dict(DOC_AGG_TRADE, p="abc"), "bad_number"),
        (dict(DOC_AGG_TRADE, q="-0.5"), "bad_qty"),
        (dict(DOC_AGG_TRADE, q="nan"), "bad_qty"),
        (dict(DOC_AGG_TRADE, q="Infinity"), "bad_qty"),
        (dict(DOC_DEPTH, b=[["-0.0024", "10"]]), "bad_price"),
        (dict(DOC_DEPTH, a=[["0.0026", "nan"]]), "bad_qty"),
        (dict(DOC_DEPTH, a=[["1e999", "1"]]), "bad_number"),  # beyond float range: msgspec does not say which field
        (dict(DOC_MARK_PRICE, p="-5"), "bad_price"),
        (dict(DOC_MARK_PRICE, i="0"), "bad_price"),
        (dict(DOC_MARK_PRICE, r="nan"), "bad_number"),
        (dict(DOC_FORCE_ORDER, o=dict(DOC_FORCE_ORDER["o"], ap="0", p="-1")), "bad_price"),
        (dict(DOC_FORCE_ORDER, o=dict(DOC_FORCE_ORDER["o"], z="-1")), "bad_qty"),
        (dict(DOC_FORCE_ORDER, o=dict(DOC_FORCE_ORDER["o"], ap="x")), "bad_number"),
        (dict(DOC_AGG_TRADE, s="FOOBAR"), "unknown_instrument"),
        (dict(DOC_AGG_TRADE, s=""), "unknown_instrument"),
    ],
)
def test_bad_values(frame, expected):
    assert reason(frame) == expected
    assert reason({"stream": "s@x", "data": frame}) == expected


# --- REST ----------------------------------------------------------------------------------------


def rest(path: str, body: dict | bytes, parser: binance.Parser | None = None) -> Parsed:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return (parser or binance.Parser()).parse_rest(path, raw, RECV)


def rest_reason(path: str, body: dict | bytes) -> str:
    with pytest.raises(ParseError) as info:
        rest(path, body)
    return info.value.reason


def test_rest_open_interest():
    body = {"openInterest": "10659.509", "symbol": "BTCUSDT", "time": 1589437530011}
    oi = only(rest("/fapi/v1/openInterest?symbol=BTCUSDT", body))
    assert oi == OpenInterest(
        venue="binance-usdm",
        symbol="BTCUSDT",
        instrument="BTC-USDT-PERP",
        ts=1589437530011 * NS_PER_MS,
        recv=RECV,
        qty=10659.509,
        notional=None,
    )
    assert only(rest("/fapi/v1/openInterest", {"openInterest": "1", "symbol": "ETHUSDT"})).ts == RECV
    assert rest_reason("/fapi/v1/openInterest", {"openInterest": "-1", "symbol": "BTCUSDT", "time": 1}) == "bad_qty"


def test_rest_depth_snapshot():
    body = {
        "lastUpdateId": 1027024,
        "E": 1589436922972,
        "T": 1589436922959,
        "bids": [["4.00000000", "431.00000000"]],
        "asks": [["4.00000200", "12.00000000"]],
    }
    snap = only(rest("https://fapi.binance.com/fapi/v1/depth?symbol=BTCUSDT&limit=1000", body))
    assert snap == BookSnapshot(
        venue="binance-usdm",
        symbol="BTCUSDT",
        instrument="BTC-USDT-PERP",
        ts=1589436922972 * NS_PER_MS,
        recv=RECV,
        bids=((4.0, 431.0),),
        asks=((4.000002, 12.0),),
        seq=1027024,
    )
    no_time = {k: v for k, v in body.items() if k not in ("E", "T")}
    assert only(rest("/fapi/v1/depth?limit=5&symbol=ETHUSDT", no_time)).ts == RECV
    assert rest("/fapi/v1/depth?symbol=BTCUSDT_240628", body) == Parsed("skipped:not_perpetual")
    assert rest_reason("/fapi/v1/depth?limit=5", body) == "schema"
    assert rest_reason("/fapi/v1/depth?symbol=BTCUSDT", dict(body, bids=[["0", "1"]])) == "bad_price"
    assert rest_reason("/fapi/v1/depth?symbol=BTCUSDT", b"{not json") == "malformed_json"


def test_rest_exchange_info_and_unknown_path():
    body = {
        "symbols": [
            {
                "symbol": "BTCUSDT",
                "baseAsset": "BTC",
                "quoteAsset": "USDT",
                "contractType": "PERPETUAL",
                "filters": [
                    {"filterType": "LOT_SIZE", "stepSize": "0.001"},
                    {"filterType": "PRICE_FILTER", "tickSize": "0.10"},
                ],
            },
            {
                "symbol": "XAUUSDT",
                "baseAsset": "XAU",
                "quoteAsset": "USDT",
                "contractType": "TRADIFI_PERPETUAL",
                "filters": [],
            },
        ]
    }
    parser = binance.Parser()
    assert rest("/fapi/v1/exchangeInfo", body, parser) == Parsed("instruments")
    assert parser.catalog.get("BTCUSDT").tick == 0.1
    assert parse(dict(DOC_AGG_TRADE, s="XAUUSDT"), parser=parser) == Parsed("skipped:not_perpetual")
    # a later exchangeInfo that lists BTCUSDT with another contract type takes it out
    body["symbols"][0]["contractType"] = "PERPETUAL_DELIVERING"
    assert rest("/fapi/v1/exchangeInfo", body, parser) == Parsed("instruments")
    assert parser.catalog.get("BTCUSDT") is None
    assert parse(DOC_AGG_TRADE, parser=parser) == Parsed("skipped:not_perpetual")
    assert rest_reason("/fapi/v1/exchangeInfo", {"symbols": [{"symbol": "X"}]}) == "schema"
    assert rest_reason("/fapi/v1/ticker/price", {}) == "unknown_rest_path"
    assert rest_reason("", b"") == "unknown_rest_path"


# --- fuzz ----------------------------------------------------------------------------------------

_numbers = st.sampled_from(["1", "0", "-1", "0.5", "nan", "NaN", "inf", "-inf", "1e999", "", "abc", "7.6110"])
_values = st.one_of(_numbers, st.integers(), st.floats(allow_nan=True), st.booleans(), st.none(), st.text(max_size=8))
_levels = st.lists(st.lists(st.one_of(_numbers, st.integers()), max_size=3), max_size=3)
_symbols = st.sampled_from(["BTCUSDT", "BTCUSDT_240628", "FOO", "", "1000SHIBUSDT", "ETHBUSD"])


def _frame(event: str) -> st.SearchStrategy:
    fields = {
        "e": st.just(event) | st.sampled_from(["aggTrade", "nope", ""]) | _values,
        "E": st.integers(min_value=-(2**63), max_value=2**64) | _values,
        "T": st.integers(min_value=0, max_value=2**62) | _values,
        "s": _symbols | _values,
        "p": _numbers | _values,
        "q": _numbers | _values,
        "m": st.booleans() | _values,
        "U": st.integers() | _values,
        "u": st.integers() | _values,
        "pu": st.integers() | _values,
        "b": _levels | _values,
        "a": _levels | _values,
        "X": st.sampled_from(["MARKET", "ADL"]) | _values,
        "i": _numbers | _values,
        "r": _numbers | _values,
        "o": st.fixed_dictionaries(
            {},
            optional={
                "s": _symbols,
                "S": st.sampled_from(["BUY", "SELL", "x"]),
                "q": _numbers,
                "p": _numbers,
                "ap": _numbers,
                "z": _numbers,
                "T": st.integers() | _values,
            },
        )
        | _values,
    }
    return st.fixed_dictionaries({}, optional=fields)


_event_types = st.sampled_from(["aggTrade", "trade", "depthUpdate", "forceOrder", "markPriceUpdate", "bookTicker"])
_events = _event_types.flatmap(_frame)
_frames = st.one_of(
    _events,
    st.builds(
        lambda d, s: {"stream": s, "data": d},
        _events | st.lists(_events, max_size=3) | _values,
        st.sampled_from(["btcusdt@depth@100ms", "btcusdt@depth5", "x"]) | _values,
    ),
    st.fixed_dictionaries({}, optional={"result": _values, "id": _values, "error": _values}),
)


def _assert_clean(call) -> None:
    """Parsed or a ParseError with a known reason; any other exception (a parser bug, which the
    frame decoder would count as ``parser_exception``) fails the test."""
    try:
        result = call()
    except ParseError as exc:
        assert isinstance(exc.reason, Reason) and exc.reason != Reason.PARSER_EXCEPTION, exc
        return
    assert isinstance(result, Parsed)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_frames, st.booleans())
def test_fuzz_plausible_frames(frame, compact):
    text = json.dumps(frame, separators=(",", ":") if compact else None)
    _assert_clean(lambda: binance.Parser().parse_ws(text, RECV))


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.binary(max_size=200), st.text(max_size=200)))
def test_fuzz_arbitrary_payloads(payload):
    _assert_clean(lambda: binance.Parser().parse_ws(payload, RECV))
    body = payload if isinstance(payload, bytes) else payload.encode()
    _assert_clean(lambda: binance.Parser().parse_rest("/fapi/v1/depth?symbol=BTCUSDT", body, RECV))


_paths = st.sampled_from(["/fapi/v1/depth?symbol=BTCUSDT", "/fapi/v1/openInterest", "/fapi/v1/exchangeInfo", "/x"])
_filter = st.fixed_dictionaries({"filterType": st.just("PRICE_FILTER") | _values, "tickSize": _numbers | _values})
_symbol_info = st.fixed_dictionaries(
    {},
    optional={
        "symbol": _symbols,
        "baseAsset": _values,
        "quoteAsset": _values,
        "contractType": st.just("PERPETUAL") | _values,
        "filters": st.lists(_filter, max_size=2),
    },
)
_rest_bodies = st.fixed_dictionaries(
    {},
    optional={
        "lastUpdateId": st.integers() | _values,
        "bids": _levels | _values,
        "asks": _levels | _values,
        "E": _values,
        "symbol": _symbols | _values,
        "openInterest": _numbers | _values,
        "time": _values,
        "symbols": st.lists(_symbol_info, max_size=3) | _values,
    },
)


@settings(max_examples=200, deadline=None)
@given(_paths | st.text(max_size=30), _rest_bodies)
def test_fuzz_rest_bodies(path, body):
    _assert_clean(lambda: binance.Parser().parse_rest(path, json.dumps(body).encode(), RECV))


# --- the pu == lastUpdateId bridge, with the real 2021-07-22 SUSHIUSDT diff --------------------

# The first SUSHIUSDT depth diff of the recorded session, verbatim (U 600859599090, u 600859600917,
# pu 600859598061). A snapshot taken on a quiet book right before it has lastUpdateId == its pu:
# U > lastUpdateId, so only the ``pu`` bridge makes it the first diff applied.
REAL_DIFF = (
    b'{"stream":"sushiusdt@depth@100ms","data":{"e":"depthUpdate","E":1626992741037,"T":1626992741024,'
    b'"s":"SUSHIUSDT","U":600859599090,"u":600859600917,"pu":600859598061,"b":[["7.5040","813"],'
    b'["7.6090","0"],["7.6110","2"]],"a":[["7.6150","1563"],["7.6220","3284"]]}}'
)
QUIET_PATH = "/fapi/v1/depth?symbol=SUSHIUSDT&limit=1000"
QUIET_SNAPSHOT = (
    b'{"lastUpdateId":600859598061,"E":1626992741000,"T":1626992740990,'
    b'"bids":[["7.6090","40"],["7.6000","100"]],"asks":[["7.6150","1"],["7.6300","50"]]}'
)


def test_real_diff_is_in_the_recording_verbatim() -> None:
    assert b" binance-usdm " + REAL_DIFF + b"\n" in RECORDING.read_bytes()


def test_replay_applies_a_first_diff_whose_pu_is_the_snapshot_id() -> None:
    """Replay path (frame decoder -> BookKeeper with Binance's rule): the diff is applied, no gap."""
    decoder = FrameDecoder()
    keeper = BookKeeper(binance.Parser.sequence_rule())
    rest = b'{"path":"%s","body":%s}' % (QUIET_PATH.encode(), QUIET_SNAPSHOT)
    statuses = keeper.apply(decoder.decode("binance-usdm!rest", rest, 1).events[0])
    statuses += keeper.apply(decoder.decode("binance-usdm", REAL_DIFF, 2).events[0])
    assert [s.state for s in statuses] == []
    assert keeper.book.valid
    assert keeper.book.bids == {7.611: 2.0, 7.6: 100.0, 7.504: 813.0}  # 7.6090 removed by qty 0
    assert keeper.book.asks == {7.615: 1563.0, 7.622: 3284.0, 7.63: 50.0}


def test_live_check_accepts_a_first_diff_whose_pu_is_the_snapshot_id() -> None:
    """Live path: the diff is buffered, the snapshot arrives, the diff bridges it by ``pu``: the
    snapshot and the diff are handed over, no second request, the book is in sync."""
    books = binance.LiveBooks(["SUSHIUSDT"], resolve_settings("binance", LiveConfig()), clock=lambda: 5.0)
    assert books.on_frame(1, REAL_DIFF) == [Fetch(QUIET_PATH, weight=20, since=5.0)]
    out = books.on_rest(QUIET_PATH, 2, QUIET_SNAPSHOT)
    assert out == [Emit(2, rest_frame(QUIET_PATH, QUIET_SNAPSHOT), rest=True), Emit(1, REAL_DIFF)]
    assert books.stale_snapshots == 0 and books.gaps == 0 and books.invalid() == {}
