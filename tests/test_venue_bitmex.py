"""BitMEX parser: a real recorded session, public sample frames, one quirk test per venue rule,
bad input and fuzz. Fixtures and their provenance: tests/fixtures/bitmex/README.md."""

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

from cascadewatch.connectors.book import BookKeeper
from cascadewatch.connectors.events import (
    BookDelta,
    BookSnapshot,
    CoarsePrice,
    Liquidation,
    MarkPrice,
    OpenInterest,
    Trade,
)
from cascadewatch.connectors.frames import FrameDecoder
from cascadewatch.connectors.reasons import Reason
from cascadewatch.connectors.recording import RecordingReader
from cascadewatch.connectors.venues import bitmex
from cascadewatch.connectors.venues.base import Parsed, ParseError, Verdict
from cascadewatch.connectors.venues.bitmex import Parser
from cascadewatch.connectors.venues.live_common import THIS, Resubscribe

FIXTURES = Path(__file__).parent / "fixtures" / "bitmex"
RECORDING = FIXTURES / "bitmex-2021-07-22-head.rec.zst"
SAMPLES = FIXTURES / "samples.jsonl"
RECV = 1_700_000_000_000_000_000


def frame(table: str, action: str, data: list, **extra) -> bytes:
    return json.dumps({"table": table, "action": action, **extra, "data": data}, separators=(",", ":")).encode()


def reason(payload: bytes | str, parser: Parser | None = None) -> str:
    with pytest.raises(ParseError) as info:
        (parser or Parser()).parse_ws(payload, RECV)
    return info.value.reason


def samples() -> list[dict]:
    return [json.loads(line)["msg"] for line in SAMPLES.read_text().splitlines()]


def recorded() -> list[tuple[int, str, bytes]]:
    return [(f.recv, f.source, f.payload) for f in RecordingReader(RECORDING)]


def instrument_rows() -> dict[str, dict]:
    """The REST /api/v1/instrument/active rows of the recorded session, by symbol."""
    _, _, payload = recorded()[0]
    return {row["symbol"]: row for row in json.loads(payload)["body"]}


# --- the recorded session (2021-07-22, cryptofeed) --------------------------------------------


def test_recording_kinds_and_no_dead_letters() -> None:
    decoder = FrameDecoder()
    kinds = Counter(decoder.decode(source, payload, recv).kind for recv, source, payload in recorded())
    assert kinds == {
        "book": 553,
        "control": 31,  # the welcome and 30 subscription acks
        "skipped:quote": 29,
        "skipped:trade_partial": 10,
        "skipped:not_perpetual": 5,  # XRPU21 / TRXU21 futures (book partials and updates)
        "trade": 2,
        "instruments": 1,
        "conn:open": 1,
    }


def test_recording_first_xbtusd_trade_is_one_hundred_dollars_of_an_inverse_contract() -> None:
    decoder = FrameDecoder()
    trades = [
        e
        for recv, source, payload in recorded()
        for e in decoder.decode(source, payload, recv).events
        if isinstance(e, Trade) and e.symbol == "XBTUSD"
    ]
    # {"timestamp":"2021-07-22T22:36:11.685Z","symbol":"XBTUSD","side":"Buy","size":100,"price":32180.5,...}
    assert trades[0] == Trade(
        venue="bitmex",
        symbol="XBTUSD",
        instrument="BTC-USD-PERP",
        ts=1626993371685000000,
        recv=1626993371697268000,
        price=32180.5,
        qty=100 / 32180.5,
        side="buy",
    )
    assert trades[0].price * trades[0].qty == pytest.approx(100.0)  # 100 contracts = 100 USD


def _reference_books() -> dict[str, dict[int, tuple[str, float, float]]]:
    """An independent rebuild of every book from the raw frames: id -> (side, price, size)."""
    books: dict[str, dict[int, tuple[str, float, float]]] = {}
    for _, source, payload in recorded():
        if source != "bitmex" or not payload.startswith(b'{"table":"orderBookL2"'):
            continue
        message = json.loads(payload)
        for row in message["data"]:
            book = books.setdefault(row["symbol"], {})
            if message["action"] in ("partial", "insert"):
                book[row["id"]] = (row["side"], row["price"], row["size"])
            elif message["action"] == "update":
                side, price, _ = book[row["id"]]
                book[row["id"]] = (side, price, row["size"])
            else:
                del book[row["id"]]
    return books


def test_recording_books_replay_without_gaps_and_equal_the_raw_levels() -> None:
    """Every book of the session through the dataflow's BookKeeper: no gap, and each level
    equals the raw frames' level (XBTUSD sizes are USD: base = size / price)."""
    decoder = FrameDecoder()
    keepers: dict[str, BookKeeper] = {}
    statuses = []
    for recv, source, payload in recorded():
        for event in decoder.decode(source, payload, recv).events:
            if isinstance(event, (BookSnapshot, BookDelta)):
                keeper = keepers.setdefault(event.symbol, BookKeeper(Parser.sequence_rule()))
                statuses += keeper.apply(event)
    assert statuses == []
    reference = _reference_books()
    assert sorted(keepers) == sorted(set(reference) - {"XRPU21", "TRXU21"})
    rows = instrument_rows()
    for symbol, keeper in keepers.items():
        info = bitmex.contract_info(msgspec.convert(rows[symbol], bitmex.RawBitmexInstrument))
        assert not isinstance(info, str)
        bids = {p: info.to_base(s, p) for side, p, s in reference[symbol].values() if side == "Buy" and s > 0}
        asks = {p: info.to_base(s, p) for side, p, s in reference[symbol].values() if side == "Sell" and s > 0}
        assert keeper.book.valid and keeper.book.bids == bids and keeper.book.asks == asks, symbol


# --- contracts: inverse, linear, quanto (real instrument rows) --------------------------------


def test_inverse_and_quanto_open_interest_agree_with_bitmex_open_value() -> None:
    """``openValue`` (XBt) is BitMEX's own value of the open interest. XBTUSD (inverse): 1 USD
    a contract, so the notional is the contract count; SOLUSDT (quanto, 2021): one contract is
    multiplier / quoteToSettleMultiplier SOL, and openValue / quoteToSettleMultiplier is USD."""
    parser = Parser()
    rows = instrument_rows()
    payload = frame("instrument", "partial", [rows["XBTUSD"], rows["SOLUSDT"]], filter={})
    events = parser.parse_ws(payload, RECV).events
    oi = {e.symbol: e for e in events if isinstance(e, OpenInterest)}
    xbt, sol = rows["XBTUSD"], rows["SOLUSDT"]
    assert oi["XBTUSD"].notional == xbt["openInterest"] == 574264600
    assert oi["XBTUSD"].qty == pytest.approx(574264600 / 32184.89)
    assert oi["XBTUSD"].notional == pytest.approx(xbt["openValue"] / 1e8 * xbt["markPrice"], rel=1e-3)
    assert oi["SOLUSDT"].qty == pytest.approx(1381470 * 1000 / 3108)
    assert oi["SOLUSDT"].notional == pytest.approx(sol["openValue"] / sol["quoteToSettleMultiplier"])
    marks = {e.symbol: e for e in events if isinstance(e, MarkPrice)}
    assert marks["XBTUSD"] == MarkPrice(
        venue="bitmex",
        symbol="XBTUSD",
        instrument="BTC-USD-PERP",
        ts=1626993365000000000,  # the row's timestamp 2021-07-22T22:36:05.000Z
        recv=RECV,
        price=32184.89,
        index=32182.72,  # indicativeSettlePrice
        funding=0.0001,
    )


def test_linear_usdt_contract_value_from_a_2024_rest_row() -> None:
    """JTOUSDT (linear USDT, 2024): multiplier 1e6 / quoteToSettleMultiplier 1e6 = 1 JTO a
    contract; OI 6780 at mark 2.46561 is openValue 16716835800 USDt = 16716.8358 USDT."""
    row = {
        "symbol": "JTOUSDT",
        "rootSymbol": "JTO",
        "state": "Open",
        "typ": "FFWCSX",
        "underlying": "JTO",
        "quoteCurrency": "USDT",
        "multiplier": 1000000,
        "underlyingToPositionMultiplier": 1,
        "quoteToSettleMultiplier": 1000000,
        "isQuanto": False,
        "isInverse": False,
        "tickSize": 1e-05,
        "markPrice": 2.46561,
        "openInterest": 6780,
        "indicativeSettlePrice": 2.46557,
        "fundingRate": 0.0001,
        "timestamp": "2024-03-02T02:44:10.789Z",
    }
    events = Parser().parse_ws(frame("instrument", "partial", [row]), RECV).events
    oi = next(e for e in events if isinstance(e, OpenInterest))
    assert oi.instrument == "JTO-USDT-PERP" and oi.qty == 6780.0
    assert oi.notional == pytest.approx(16716835800 / 1e6)


def test_assets_xbtusd_is_btc_usd_and_xbtusdt_is_btc_usdt() -> None:
    parser = Parser()
    row = {
        "symbol": "XBTUSDT",
        "typ": "FFWCSX",
        "underlying": "XBT",
        "quoteCurrency": "USDT",
        "multiplier": 1,
        "quoteToSettleMultiplier": 1000000,
        "isInverse": False,
    }
    parser.parse_rest("/api/v1/instrument/active", json.dumps([row]).encode(), RECV)
    assert parser.instrument_of("XBTUSDT") == "BTC-USDT-PERP" and parser.instrument_of("XBTUSD") == "BTC-USD-PERP"
    assert parser.catalog.by_symbol["XBTUSDT"].ct_val == 1e-6  # one contract is 1e-6 BTC
    assert bitmex.native_symbol("BTC") == "XBTUSDT" and bitmex.native_symbol("BTC", "USD") == "XBTUSD"


# --- liquidations: every order, no timestamp -------------------------------------------------


def test_sample_liquidation_insert_then_delete() -> None:
    """tardis-node's BitMEX liquidation frames: ``Buy`` is a short being liquidated; 9214
    contracts of XBTUSD are 9214 USD; the time is the receive time; the delete adds nothing."""
    insert, delete = [m for m in samples() if m.get("table") == "liquidation"]
    parser = Parser()
    parsed = parser.parse_ws(json.dumps(insert), RECV)
    assert parsed == Parsed(
        "liquidation",
        [
            Liquidation(
                venue="bitmex",
                symbol="XBTUSD",
                instrument="BTC-USD-PERP",
                ts=RECV,
                recv=RECV,
                price=10106.0,
                qty=9214 / 10106,
                side="short",
                notional=10106.0 * (9214 / 10106),
            )
        ],
    )
    assert parsed.events[0].notional == pytest.approx(9214.0)
    assert parser.parse_ws(json.dumps(delete), RECV + 1) == Parsed("liquidation_update")


def test_liquidation_sell_is_a_long_counted_once_through_updates_and_a_resubscription() -> None:
    parser = Parser()
    row = {"orderID": "a1", "symbol": "XBTUSD", "side": "Sell", "price": 30000.0, "leavesQty": 60000}
    (event,) = parser.parse_ws(frame("liquidation", "insert", [row]), RECV).events
    assert event.side == "long" and event.notional == pytest.approx(60000.0)
    partly = {"orderID": "a1", "symbol": "XBTUSD", "leavesQty": 20000}
    assert parser.parse_ws(frame("liquidation", "update", [partly]), RECV + 1).events == []
    again = dict(row, leavesQty=20000)  # the partial after a reconnection still shows the order
    assert parser.parse_ws(frame("liquidation", "partial", [again]), RECV + 2).events == []
    other = {"orderID": "b2", "symbol": "XBTUSD", "side": "Buy", "price": 30100.0, "leavesQty": 500}
    (late,) = parser.parse_ws(frame("liquidation", "partial", [again, other]), RECV + 3).events
    assert (late.side, late.ts) == ("short", RECV + 3)


def test_a_bad_liquidation_row_remembers_nothing() -> None:
    parser = Parser()
    good = {"orderID": "c3", "symbol": "XBTUSD", "side": "Sell", "price": 30000.0, "leavesQty": 100}
    bad = {"orderID": "d4", "symbol": "XBTUSD", "side": "Sell", "price": -1, "leavesQty": 100}
    assert reason(frame("liquidation", "insert", [good, bad]), parser) == "bad_price"
    assert len(parser.parse_ws(frame("liquidation", "insert", [good]), RECV).events) == 1


# --- books: partial, insert, update, delete by id ---------------------------------------------


def level(i: int, side: str, size: float | None = None, price: float | None = None) -> dict:
    row: dict = {"symbol": "XBTUSD", "id": i, "side": side}
    if size is not None:
        row["size"] = size
    if price is not None:
        row["price"] = price
    return row


def test_messages_before_the_partial_are_dropped() -> None:
    """BitMEX docs: drop messages received until the partial."""
    parser = Parser()
    assert parser.parse_ws(frame("orderBookL2_25", "update", [level(1, "Buy", 5)]), RECV) == Parsed(
        "skipped:before_partial"
    )
    partial = frame("orderBookL2_25", "partial", [level(1, "Buy", 10, 30000.0)], filter={"symbol": "XBTUSD"})
    (snapshot,) = parser.parse_ws(partial, RECV).events
    assert isinstance(snapshot, BookSnapshot) and snapshot.bids == ((30000.0, 10 / 30000.0),)


def test_update_and_delete_find_the_price_by_id_and_chain_the_sequence() -> None:
    parser = Parser()
    rule = Parser.sequence_rule()
    rows = [level(1, "Buy", 10, 30000.0), level(2, "Sell", 20, 30000.5)]
    (snapshot,) = parser.parse_ws(frame("orderBookL2_25", "partial", rows), RECV).events
    rule.on_snapshot(snapshot)
    (update,) = parser.parse_ws(frame("orderBookL2_25", "update", [level(1, "Buy", 15)]), RECV).events
    (delete,) = parser.parse_ws(frame("orderBookL2_25", "delete", [level(2, "Sell")]), RECV).events
    (insert,) = parser.parse_ws(frame("orderBookL2_25", "insert", [level(3, "Sell", 7, 30001.0)]), RECV).events
    assert (update.bids, update.seq, update.prev_seq) == (((30000.0, 15 / 30000.0),), 2, 1)
    assert (delete.asks, delete.seq, delete.prev_seq) == (((30000.5, 0.0),), 3, 2)
    assert (insert.asks, insert.prev_seq) == (((30001.0, 7 / 30001.0),), 3)
    assert [rule.check(d) for d in (update, delete, insert)] == [Verdict.APPLY] * 3


@pytest.mark.parametrize(
    "action,row",
    [
        ("update", level(9, "Buy", 5)),  # an id the book never had
        ("delete", level(9, "Buy")),
        ("insert", level(1, "Buy", 5, 30000.0)),  # an id already in the book
        ("update", level(1, "Sell", 5)),  # the id on the other side: another key
    ],
)
def test_a_message_breaking_the_id_rule_is_a_gap_until_the_next_partial(action: str, row: dict) -> None:
    parser = Parser()
    rule = Parser.sequence_rule()
    (snapshot,) = parser.parse_ws(frame("orderBookL2_25", "partial", [level(1, "Buy", 10, 30000.0)]), RECV).events
    rule.on_snapshot(snapshot)
    (broken,) = parser.parse_ws(frame("orderBookL2_25", action, [row]), RECV).events
    assert broken.prev_seq is None and rule.check(broken) is Verdict.GAP
    assert "out of sync" in rule.describe_gap(broken)
    (after,) = parser.parse_ws(frame("orderBookL2_25", "insert", [level(5, "Buy", 1, 29999.0)]), RECV).events
    assert after.prev_seq is None  # still broken: only a partial repairs it
    (fresh,) = parser.parse_ws(frame("orderBookL2_25", "partial", [level(1, "Buy", 10, 30000.0)]), RECV).events
    rule.on_snapshot(fresh)
    (good,) = parser.parse_ws(frame("orderBookL2_25", "update", [level(1, "Buy", 11)]), RECV).events
    assert good.prev_seq == fresh.seq and rule.check(good) is Verdict.APPLY


def test_sample_book_frames_and_an_empty_partial() -> None:
    """tardis-node's orderBookL2 frames (its README: some fields edited): the 2022 partial with
    ``filter`` and per-row timestamps; an insert of id 8791115350 as a Buy (the partial holds it
    as a Sell: levels are keyed by symbol, id *and* side, so it is a new level); a delete naming
    8734110000 as a Buy (a Sell there), which breaks the id rule; the empty XBTZ21 partial is a
    future's (skipped, not an error)."""
    msgs = [m for m in samples() if m.get("table") == "orderBookL2"]
    parser = Parser()
    empty_future = msgs[-4]
    assert empty_future["filter"] == {"symbol": "XBTZ21"} and empty_future["data"] == []
    parser.parse_rest(
        "/api/v1/instrument",
        b'[{"symbol":"XBTZ21","typ":"FFCCSX","underlying":"XBT","quoteCurrency":"USD","multiplier":-100000000}]',
        RECV,
    )
    assert parser.parse_ws(json.dumps(empty_future), RECV) == Parsed("skipped:not_perpetual")
    partial, insert, delete = msgs[-3:]
    (snapshot,) = parser.parse_ws(json.dumps(partial), RECV).events
    assert snapshot.ts == bitmex.timestamp_ns("2022-02-14T07:59:54.829Z") == 1644825594829000000
    assert snapshot.asks == ((42362.0, 1e6 / 42362), (658900.0, 20000 / 658900), (662520.0, 10000 / 662520))
    (inserted,) = parser.parse_ws(json.dumps(insert), RECV).events
    assert inserted.bids == ((42362.0, 20000 / 42362.0),) and inserted.prev_seq == snapshot.seq
    (deleted,) = parser.parse_ws(json.dumps(delete), RECV).events
    assert deleted.asks == ((662520.0, 0.0),) and deleted.prev_seq is None


# --- bins, instrument, control ----------------------------------------------------------------


def test_trade_and_quote_bins_are_coarse_prices_at_the_end_of_the_minute() -> None:
    trade_bin = {
        "timestamp": "2021-12-16T08:35:00.000Z",
        "symbol": "XBTUSD",
        "open": 48745,
        "high": 48750,
        "low": 48700,
        "close": 48720.5,
        "trades": 12,
        "volume": 2000,
    }
    quote_bin = {
        "timestamp": "2021-12-16T08:35:00.000Z",
        "symbol": "XBTUSD",
        "bidSize": 100,
        "bidPrice": 48720,
        "askPrice": 48721,
        "askSize": 300,
    }
    ts = 1639643700000000000
    assert Parser().parse_ws(frame("tradeBin1m", "insert", [trade_bin]), RECV).events == [
        CoarsePrice(
            venue="bitmex", symbol="XBTUSD", instrument="BTC-USD-PERP", ts=ts, recv=RECV, price=48720.5, bin_s=60
        )
    ]
    (quote,) = Parser().parse_ws(frame("quoteBin1m", "insert", [quote_bin]), RECV).events
    assert (quote.price, quote.bid, quote.ask, quote.ts) == (48720.5, 48720.0, 48721.0, ts)
    never_traded = dict(trade_bin, close=None)
    assert Parser().parse_ws(frame("tradeBin1m", "partial", [never_traded]), RECV).events == []


def test_instrument_updates_keep_index_and_funding_and_skip_index_rows() -> None:
    parser = Parser()
    rows = instrument_rows()
    parser.parse_ws(frame("instrument", "partial", [rows["XBTUSD"]]), RECV)
    update = {"symbol": "XBTUSD", "markPrice": 32190.0, "timestamp": "2021-07-22T22:36:10.000Z"}
    (mark,) = parser.parse_ws(frame("instrument", "update", [update]), RECV).events
    assert (mark.price, mark.index, mark.funding) == (32190.0, 32182.72, 0.0001)
    sample_update = next(m for m in samples() if m.get("table") == "instrument" and m["action"] == "update")
    assert parser.parse_ws(json.dumps(sample_update), RECV).events == []  # lastTickDirection only
    index_row = {"symbol": ".BXBT", "typ": "MRCXXX", "markPrice": 32180.0}
    assert parser.parse_ws(frame("instrument", "update", [index_row]), RECV).events == []


def test_control_frames() -> None:
    parser = Parser()
    welcome = next(payload for _, source, payload in recorded() if source == "bitmex" and b'"info"' in payload)
    assert parser.parse_ws(welcome, RECV) == Parsed("control")
    ack = b'{"success":true,"subscribe":"trade:XBTUSD","request":{"op":"subscribe","args":["trade:XBTUSD"]}}'
    assert parser.parse_ws(ack, RECV) == Parsed("control")
    assert parser.parse_ws(b"pong", RECV) == Parsed("control")
    error = b'{"status":400,"error":"Unknown table: tradde","meta":{},"request":{"op":"subscribe","args":["tradde"]}}'
    assert reason(error) == "venue_error"
    assert parser.parse_ws(frame("quote", "insert", []), RECV) == Parsed("skipped:quote")


@pytest.mark.parametrize(
    "payload,why",
    [
        (b"{not json", "malformed_json"),
        (b"[1,2]", "schema"),
        (b'{"table":"fooBar","action":"insert","data":[]}', "unknown_channel"),
        (b'{"table":"trade","data":[]}', "schema"),
        (b'{"hello":1}', "unknown_channel"),
        (
            frame("trade", "insert", [{"timestamp": "x", "symbol": "XBTUSD", "side": "Buy", "size": 1, "price": 1}]),
            "schema",
        ),
        (
            frame(
                "trade",
                "insert",
                [{"timestamp": "2021-01-01T00:00:00Z", "symbol": "XBTUSD", "side": "Buy", "size": -1, "price": 1}],
            ),
            "bad_qty",
        ),
        (
            frame(
                "trade",
                "insert",
                [{"timestamp": "2021-01-01T00:00:00Z", "symbol": "NOPE", "side": "Buy", "size": 1, "price": 1}],
            ),
            "unknown_instrument",
        ),
        (frame("orderBookL2_25", "partial", [level(1, "Buy", 1, 0.0)]), "bad_price"),
        (frame("orderBookL2_25", "partial", [level(1, "Both", 1, 1.0)]), "schema"),
        (frame("orderBookL2_25", "replace", []), "schema"),
    ],
)
def test_bad_frames(payload: bytes, why: str) -> None:
    assert reason(payload) == why


def test_rest_paths_and_errors() -> None:
    parser = Parser()
    with pytest.raises(ParseError) as info:
        parser.parse_rest("/api/v1/orderBook/L2", b"[]", RECV)
    assert info.value.reason == "unknown_rest_path"
    with pytest.raises(ParseError) as info:
        parser.parse_rest(
            "/api/v1/instrument/active", b'{"error":{"message":"Rate limit exceeded","name":"RateLimitError"}}', RECV
        )
    assert info.value.reason == "rest_error"
    bad = (
        b'[{"symbol":"BADUSD","typ":"FFWCSX","underlying":"BAD","quoteCurrency":"USD","multiplier":0,"isInverse":true}]'
    )
    with pytest.raises(ParseError) as info:
        parser.parse_rest("/api/v1/instrument/active", bad, RECV)
    assert info.value.reason == "schema" and parser.catalog.get("BADUSD") is None


def test_parser_pickles_with_its_state() -> None:
    parser = Parser()
    parser.parse_ws(frame("orderBookL2_25", "partial", [level(1, "Buy", 10, 30000.0)]), RECV)
    clone = pickle.loads(pickle.dumps(parser))
    (delta,) = clone.parse_ws(frame("orderBookL2_25", "update", [level(1, "Buy", 11)]), RECV).events
    assert delta.prev_seq == 1 and delta.bids == ((30000.0, 11 / 30000.0),)


# --- the live book check ----------------------------------------------------------------------


def test_live_books_resubscribe_on_a_broken_id_rule() -> None:
    from cascadewatch.connectors.live import resolve_settings
    from cascadewatch.connectors.live_config import LiveConfig

    books = bitmex.LiveBooks(["XBTUSD"], resolve_settings("bitmex", LiveConfig()), clock=lambda: 3.0)
    partial = frame("orderBookL2_25", "partial", [level(1, "Buy", 10, 30000.0)], filter={"symbol": "XBTUSD"})
    assert books.on_frame(1, partial) == (THIS,) and books.invalid() == {}
    assert books.on_frame(2, frame("orderBookL2_25", "update", [level(1, "Buy", 12)])) == (THIS,)
    out = books.on_frame(3, frame("orderBookL2_25", "delete", [level(7, "Sell")]))
    assert out == [THIS, Resubscribe(("orderBookL2_25:XBTUSD",))]
    assert books.gaps == 1 and books.invalid() == {"XBTUSD": 3.0}
    assert books.on_frame(4, frame("orderBookL2_25", "update", [level(1, "Buy", 13)])) == (THIS,)  # asked once
    assert books.on_frame(5, partial) == (THIS,) and books.invalid() == {}
    assert bitmex.subscribe_messages(["trade:XBTUSD", "liquidation:XBTUSD"], 1) == [
        '{"op":"subscribe","args":["trade:XBTUSD"]}',
        '{"op":"subscribe","args":["liquidation:XBTUSD"]}',
    ]
    assert bitmex.is_data(partial) and not bitmex.is_data(b'{"info":"Welcome"}') and not bitmex.is_data(b"pong")


# --- fuzz ---------------------------------------------------------------------------------------

NUMBERS = st.one_of(st.floats(), st.integers(-(2**70), 2**70), st.sampled_from(["1", "x", "", "1e999"]))
VALUES = st.one_of(NUMBERS, st.none(), st.booleans(), st.text(max_size=5))
SYMBOLS = ["XBTUSD", "ETHUSD", "XBTUSDT", ".BXBT", "XBTZ21", "", "NOPE"]
ROW = st.fixed_dictionaries(
    {},
    optional={
        "symbol": st.sampled_from(SYMBOLS),
        "id": st.one_of(st.integers(0, 5), VALUES),
        "side": st.sampled_from(["Buy", "Sell", "", None]),
        "size": VALUES,
        "price": VALUES,
        "timestamp": st.sampled_from(["2021-07-22T22:36:05.000Z", "", "x", None]),
        "orderID": st.sampled_from(["a", "b", 1, None]),
        "leavesQty": VALUES,
        "typ": st.sampled_from(["FFWCSX", "FFCCSX", None]),
        "underlying": st.sampled_from(["XBT", "ETH", None]),
        "quoteCurrency": st.sampled_from(["USD", "USDT", "EUR", None]),
        "multiplier": VALUES,
        "underlyingToSettleMultiplier": VALUES,
        "quoteToSettleMultiplier": VALUES,
        "isInverse": st.sampled_from([True, False, None]),
        "markPrice": VALUES,
        "fundingRate": VALUES,
        "openInterest": VALUES,
        "indicativeSettlePrice": VALUES,
        "close": VALUES,
        "bidPrice": VALUES,
        "askPrice": VALUES,
    },
)
TABLES = ["trade", "orderBookL2_25", "orderBookL2", "liquidation", "instrument", "tradeBin1m", "quoteBin1m", "quote"]
FRAME = st.fixed_dictionaries(
    {},
    optional={
        "table": st.sampled_from([*TABLES, "", None, 3]),
        "action": st.sampled_from(["partial", "insert", "update", "delete", "", None]),
        "data": st.one_of(st.lists(ROW, max_size=4), VALUES),
        "filter": st.one_of(st.fixed_dictionaries({}, optional={"symbol": st.sampled_from(SYMBOLS)}), VALUES),
        "success": st.sampled_from([True, False, None]),
        "error": VALUES,
        "info": VALUES,
    },
)
FUZZ = settings(
    max_examples=int(os.environ.get("BITMEX_FUZZ_EXAMPLES", "300")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
_PARSER = Parser()


def check(parse) -> None:
    try:
        parsed = parse()
    except ParseError as err:
        assert isinstance(err.reason, Reason) and err.reason != Reason.PARSER_EXCEPTION, err
        return
    assert isinstance(parsed, Parsed)
    for event in parsed.events:
        for name in ("price", "qty", "notional"):
            value = getattr(event, name, None)
            if value is not None:
                assert math.isfinite(value) and value >= 0
        if isinstance(event, (BookSnapshot, BookDelta)):
            assert all(p > 0 and q >= 0 and math.isfinite(q) for p, q in event.bids + event.asks)


@FUZZ
@given(st.one_of(st.binary(max_size=200), st.text(max_size=200)))
def test_fuzz_arbitrary_payloads(payload: bytes | str) -> None:
    check(lambda: _PARSER.parse_ws(payload, 1))


@FUZZ
@given(st.lists(FRAME, min_size=1, max_size=4))
def test_fuzz_plausible_frame_sequences(frames: list[dict]) -> None:
    parser = Parser()
    for item in frames:
        check(lambda item=item: parser.parse_ws(json.dumps(item).encode(), 1))


@FUZZ
@given(
    st.sampled_from(["/api/v1/instrument/active", "/api/v1/instrument?symbol=XBTUSD", "/nope", ""]),
    st.one_of(st.binary(max_size=100), st.lists(ROW, max_size=3).map(lambda rows: json.dumps(rows).encode())),
)
def test_fuzz_rest(path: str, body: bytes) -> None:
    parser = Parser()
    check(lambda: parser.parse_rest(path, body, 1))
