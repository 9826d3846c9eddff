"""Deribit perpetuals parser: frames from the tardis-node tests and the API docs, known answers,
one test per venue rule, fuzz."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cascadewatch.connectors.events import BookDelta, BookSnapshot, Liquidation, MarkPrice, OpenInterest, Trade
from cascadewatch.connectors.reasons import Reason
from cascadewatch.connectors.units import NS_PER_MS
from cascadewatch.connectors.venues import deribit
from cascadewatch.connectors.venues.base import Parsed, ParseError, Verdict
from cascadewatch.connectors.venues.deribit import Parser

FIXTURES = Path(__file__).parent / "fixtures" / "deribit"
TARDIS = [json.loads(line)["msg"] for line in (FIXTURES / "tardis.jsonl").read_text().splitlines()]
DOCS_FILE = json.loads((FIXTURES / "docs_frames.json").read_text())
DOCS = {f["name"]: f["frame"] for f in DOCS_FILE["frames"]}
INSTRUMENTS = json.dumps(DOCS_FILE["rest"][0]["frame"]).encode()


def parse(frame: dict, recv: int = 7) -> Parsed:
    return Parser().parse_ws(json.dumps(frame).encode(), recv)


def tardis(channel: str, index: int = 0) -> dict:
    return [m for m in TARDIS if m["params"]["channel"] == channel][index]


def test_every_fixture_frame_parses_or_is_a_known_skip() -> None:
    kinds = [parse(m).kind for m in TARDIS]
    assert kinds.count("trade") == 1 and kinds.count("trade+liquidation") == 2
    assert kinds.count("book") == 3 and kinds.count("ticker") == 2 and kinds.count("skipped:quote") == 1
    assert kinds.count("skipped:not_perpetual") == 9  # options, dated futures, combos
    assert len(kinds) == 18


def test_trades_amounts_are_usd_of_an_inverse_contract() -> None:
    """BTC-PERPETUAL amounts are USD: qty (BTC) = amount / price; ``direction`` is the taker."""
    parsed = parse(tardis("trades.BTC-PERPETUAL.raw"))
    assert parsed.kind == "trade"
    assert parsed.events == [
        Trade(
            venue="deribit",
            symbol="BTC-PERPETUAL",
            instrument="BTC-USD-PERP",
            ts=1567296022565 * NS_PER_MS,
            recv=7,
            price=9598.5,
            qty=2000.0 / 9598.5,
            side="sell",
        ),
        Trade(
            venue="deribit",
            symbol="BTC-PERPETUAL",
            instrument="BTC-USD-PERP",
            ts=1567296022565 * NS_PER_MS,
            recv=7,
            price=9598.5,
            qty=50.0 / 9598.5,
            side="sell",
        ),
    ]


def _liquidations(parsed: Parsed) -> list[tuple[str, float, float]]:
    return [(e.side, e.qty, e.notional) for e in parsed.events if isinstance(e, Liquidation)]


def test_liquidation_t_taker_side_was_liquidated() -> None:
    """``T``: the taker was liquidated; a taker selling was a long."""
    parsed = parse(tardis("trades.BTC-PERPETUAL.raw", 1))
    assert parsed.kind == "trade+liquidation"
    assert [type(e) for e in parsed.events] == [Trade, Liquidation]
    [(side, qty, notional)] = _liquidations(parsed)
    assert side == "long" and qty == 1120 / 4469.5 and math.isclose(notional, 1120.0)
    assert parsed.events[1].price == 4469.5 and parsed.events[1].ts == 1584058044032 * NS_PER_MS


def test_liquidation_m_maker_side_was_liquidated() -> None:
    """``M``: the maker was liquidated; the taker bought, so the maker sold: a long."""
    parsed = parse(tardis("trades.BTC-PERPETUAL.raw", 2))
    assert parsed.events[0].side == "buy"
    [(side, qty, notional)] = _liquidations(parsed)
    assert side == "long" and qty == 2500 / 4458.5 and math.isclose(notional, 2500.0)
    flipped = tardis("trades.BTC-PERPETUAL.raw", 2)
    flipped["params"]["data"][0]["direction"] = "sell"
    assert _liquidations(parse(flipped))[0][0] == "short"


def test_liquidation_mt_both_sides_were_liquidated() -> None:
    parsed = parse(DOCS["trades_mt"])
    assert [(e.side, e.qty) for e in parsed.events if isinstance(e, Liquidation)] == [
        ("long", 10 / 8950.0),
        ("short", 10 / 8950.0),
    ]
    assert parse(DOCS["trades_plain"]).kind == "trade"


def test_book_old_format_snapshot_is_the_one_without_prev_change_id() -> None:
    snapshot = parse(tardis("book.ETH-PERPETUAL.raw")).events[0]
    change = parse(tardis("book.ETH-PERPETUAL.raw", 1)).events[0]
    assert isinstance(snapshot, BookSnapshot) and snapshot.seq == 1776289261
    assert snapshot.bids == ((217.8, 1895 / 217.8), (217.75, 712 / 217.75))
    assert snapshot.instrument == "ETH-USD-PERP"
    assert isinstance(change, BookDelta) and (change.seq, change.prev_seq) == (1776294623, 1776294621)
    assert change.bids == ((217.8, 0.0),)  # delete
    assert change.asks == ((219.2, 64903 / 219.2), (219.1, 19343 / 219.1))


def test_book_snapshot_with_a_prev_change_id_is_still_a_snapshot_and_linear_amounts_are_base() -> None:
    """``LINK_USDC-PERPETUAL``: ``type: snapshot`` with ``prev_change_id: 20`` replaces the book;
    a USDC perpetual is linear, its amounts are coins."""
    frame = tardis("book.LINK_USDC-PERPETUAL.raw")
    [snapshot] = parse(frame).events
    assert isinstance(snapshot, BookSnapshot) and snapshot.seq == 1232767964
    assert snapshot.instrument == "LINK-USDC-PERP"
    assert snapshot.bids[0] == (7.562, 34.0)


def test_book_change_chain_and_gap() -> None:
    rule = Parser.sequence_rule()
    snapshot = parse(DOCS["book_snapshot"]).events[0]
    change = parse(DOCS["book_change"]).events[0]
    assert isinstance(snapshot, BookSnapshot) and isinstance(change, BookDelta)
    assert rule.check(change) is Verdict.SKIP
    rule.on_snapshot(snapshot)
    assert rule.check(change) is Verdict.APPLY and rule.last_seq == 297218
    assert rule.check(change) is Verdict.GAP  # prev_change_id 297217 again: a lost notification
    assert change.asks == ((5042.64, 20 / 5042.64), (5043.0, 10 / 5043.0)) and change.bids == ((5041.94, 0.0),)


def test_unknown_level_action_and_bad_numbers_are_dead_letters() -> None:
    frame = json.loads(json.dumps(DOCS["book_change"]))
    frame["params"]["data"]["bids"] = [["move", 1.0, 2.0]]
    with pytest.raises(ParseError) as err:
        parse(frame)
    assert err.value.reason is Reason.SCHEMA
    frame["params"]["data"]["bids"] = [["new", -1.0, 2.0]]
    with pytest.raises(ParseError) as err:
        parse(frame)
    assert err.value.reason is Reason.BAD_PRICE
    trade = json.loads(json.dumps(DOCS["trades_plain"]))
    trade["params"]["data"][0]["amount"] = -10
    with pytest.raises(ParseError) as err:
        parse(trade)
    assert err.value.reason is Reason.BAD_QTY


def test_ticker_mark_index_funding_and_open_interest_in_usd() -> None:
    parsed = parse(tardis("ticker.BTC-PERPETUAL.raw"))
    mark, oi = parsed.events
    assert parsed.kind == "ticker"
    assert isinstance(mark, MarkPrice) and (mark.price, mark.index, mark.funding) == (10094.1, 10091.15, 0.00016281)
    assert isinstance(oi, OpenInterest) and oi.qty == 66128281 / 10094.1 and oi.notional == 66128281
    assert oi.ts == 1564617604229 * NS_PER_MS


def test_control_frames_and_a_refused_request() -> None:
    for name in ("subscribe_ack", "set_heartbeat_ack", "test_ack"):
        assert parse(DOCS[name]).kind == "control"
    assert parse(DOCS["heartbeat"]).kind == parse(DOCS["test_request"]).kind == "control:heartbeat"
    with pytest.raises(ParseError) as err:
        parse(DOCS["error"])
    assert err.value.reason is Reason.CONTROL_ERROR and "bad_request" in err.value.detail
    with pytest.raises(ParseError) as err:
        parse(
            {"jsonrpc": "2.0", "method": "subscription", "params": {"channel": "nope.BTC-PERPETUAL.100ms", "data": 1}}
        )
    assert err.value.reason is Reason.UNKNOWN_CHANNEL


def test_instruments_rest_body_and_unknown_paths() -> None:
    parser = Parser()
    path = "/api/v2/public/get_instruments?currency=BTC&kind=future"
    assert parser.parse_rest(path, INSTRUMENTS, 1).kind == "instruments"
    info = parser.catalog.get("BTC-PERPETUAL")
    assert info is not None and info.inverse and info.tick == 0.5 and parser.catalog.get("BTC-27DEC24") is None
    assert deribit.listed_symbols(path, INSTRUMENTS) == {"BTC-PERPETUAL"}
    with pytest.raises(ParseError) as err:
        parser.parse_rest("/api/v2/public/nope", b"{}", 1)
    assert err.value.reason is Reason.UNKNOWN_REST_PATH
    with pytest.raises(ParseError) as err:
        parser.parse_rest(path, b'{"jsonrpc":"2.0","error":{"code":10009,"message":"not_enough_funds"}}', 1)
    assert err.value.reason is Reason.REST_ERROR


def test_live_requests_heartbeat_reply_and_probes() -> None:
    topics = ["book.BTC-PERPETUAL.100ms", "trades.BTC-PERPETUAL.100ms", "ticker.BTC-PERPETUAL.100ms"]
    assert [json.loads(m) for m in deribit.subscribe_messages(topics, 2, first_id=5)] == [
        {"jsonrpc": "2.0", "id": 5, "method": "public/subscribe", "params": {"channels": topics[:2]}},
        {"jsonrpc": "2.0", "id": 6, "method": "public/subscribe", "params": {"channels": topics[2:]}},
    ]
    assert json.loads(deribit.heartbeat_message() or "")["params"] == {"interval": 30}
    test_request = json.dumps(DOCS["test_request"], separators=(",", ":")).encode()
    assert json.loads(deribit.reply_to(test_request) or "")["method"] == "public/test"
    assert deribit.reply_to(json.dumps(DOCS["heartbeat"], separators=(",", ":")).encode()) is None
    book = json.dumps(DOCS["book_change"], separators=(",", ":")).encode()
    assert deribit.is_data(book) and not deribit.is_data(test_request)
    assert deribit.frame_key(book) == ("book|BTC-PERPETUAL", 297218)
    assert deribit.frame_key(json.dumps(DOCS["trades_mt"], separators=(",", ":")).encode()) == (
        "trades|BTC-PERPETUAL",
        30289432,
    )
    assert (
        deribit.native_symbol("btc") == "BTC-PERPETUAL" and deribit.native_symbol("ETH", "USDC") == "ETH_USDC-PERPETUAL"
    )
    assert deribit.instruments_paths(["BTC-PERPETUAL", "ETH_USDC-PERPETUAL"]) == [
        "/api/v2/public/get_instruments?currency=BTC&kind=future",
        "/api/v2/public/get_instruments?currency=USDC&kind=future",
    ]


# --- fuzz --------------------------------------------------------------------------------------

VALUES = st.one_of(st.none(), st.booleans(), st.integers(-5, 10**12), st.floats(allow_nan=True), st.text(max_size=8))
LEVEL = st.tuples(st.sampled_from(["new", "change", "delete", "x"]), VALUES, VALUES)
ROW = st.fixed_dictionaries(
    {},
    optional={
        "instrument_name": st.sampled_from(["BTC-PERPETUAL", "ETH_USDC-PERPETUAL", "BTC-27DEC24", "", "-PERPETUAL"]),
        "price": VALUES,
        "amount": VALUES,
        "direction": st.sampled_from(["buy", "sell", "x"]),
        "timestamp": VALUES,
        "liquidation": st.sampled_from(["M", "T", "MT", "X", None]),
        "change_id": VALUES,
        "prev_change_id": VALUES,
        "type": st.sampled_from(["snapshot", "change", "", "x"]),
        "bids": st.lists(LEVEL, max_size=3),
        "asks": st.lists(LEVEL, max_size=3),
        "mark_price": VALUES,
        "index_price": VALUES,
        "funding_8h": VALUES,
        "open_interest": VALUES,
    },
)
FRAME = st.fixed_dictionaries(
    {},
    optional={
        "jsonrpc": st.just("2.0"),
        "id": VALUES,
        "method": st.sampled_from(["subscription", "heartbeat", "", "x"]),
        "params": st.fixed_dictionaries(
            {},
            optional={
                "channel": st.sampled_from(
                    [
                        "trades.BTC-PERPETUAL.100ms",
                        "book.BTC-PERPETUAL.100ms",
                        "ticker.ETH_USDC-PERPETUAL.100ms",
                        "ticker.BTC-27DEC24.100ms",
                        "quote.BTC-PERPETUAL",
                        "nope",
                        "",
                    ]
                ),
                "data": st.one_of(ROW, st.lists(ROW, max_size=3), VALUES),
                "type": st.sampled_from(["heartbeat", "test_request"]),
            },
        ),
        "result": VALUES,
        "error": VALUES,
    },
)
FUZZ = settings(
    max_examples=int(os.environ.get("DERIBIT_FUZZ_EXAMPLES", "300")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
_PARSER = Parser()


def check(run) -> None:
    try:
        parsed = run()
    except ParseError as err:
        assert isinstance(err.reason, Reason) and err.reason != Reason.PARSER_EXCEPTION, err
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
        ["/api/v2/public/get_instruments?currency=BTC&kind=future", "/api/v2/public/get_instruments", "/x"]
    ),
    st.one_of(
        st.binary(max_size=100),
        st.fixed_dictionaries(
            {}, optional={"result": st.one_of(st.lists(ROW, max_size=2), VALUES), "error": VALUES}
        ).map(lambda d: json.dumps(d).encode()),
    ),
)
def test_fuzz_rest(path: str, body: bytes) -> None:
    check(lambda: Parser().parse_rest(path, body, 1))
