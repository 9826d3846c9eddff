"""Hyperliquid parser: frames from the tardis-node tests and the websocket docs, known answers,
one test per venue rule (inferred liquidations included), fuzz."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cascadewatch.connectors.events import BookSnapshot, Liquidation, MarkPrice, OpenInterest, Trade
from cascadewatch.connectors.reasons import Reason
from cascadewatch.connectors.units import NS_PER_MS
from cascadewatch.connectors.venues import hyperliquid
from cascadewatch.connectors.venues.base import Parsed, ParseError
from cascadewatch.connectors.venues.hyperliquid import LIQUIDATORS, Parser

FIXTURES = Path(__file__).parent / "fixtures" / "hyperliquid"
TARDIS = [json.loads(line)["msg"] for line in (FIXTURES / "tardis.jsonl").read_text().splitlines()]
DOCS = {f["name"]: f["frame"] for f in json.loads((FIXTURES / "docs_frames.json").read_text())["frames"]}


def parse(frame: dict, recv: int = 7) -> Parsed:
    return Parser().parse_ws(json.dumps(frame).encode(), recv)


def test_every_fixture_frame_parses_or_is_a_known_skip() -> None:
    kinds = [parse(m).kind for m in TARDIS]
    assert kinds == ["trade"] * 4 + ["book"] * 2 + ["asset_ctx", "skipped:activeSpotAssetCtx"] + ["skipped:bbo"] * 2


def test_trades_side_b_is_a_taker_buy_and_sizes_are_coins() -> None:
    parsed = parse(TARDIS[2])
    assert parsed.kind == "trade" and len(parsed.events) == 3
    assert parsed.events[0] == Trade(
        venue="hyperliquid",
        symbol="BTC",
        instrument="BTC-USDC-PERP",
        ts=1730160006192 * NS_PER_MS,
        recv=7,
        price=69997.0,
        qty=0.38111,
        side="buy",
    )
    assert parse(TARDIS[0]).events[0].side == "sell"  # "A": the taker sold


def test_l2book_every_push_is_a_snapshot_and_an_empty_book_is_valid_input() -> None:
    [book] = parse(DOCS["l2book"]).events
    assert isinstance(book, BookSnapshot) and book.seq == 0 and book.ts == 1751430933565 * NS_PER_MS
    assert book.bids == ((106296.0, 1.5), (106295.0, 0.25)) and book.asks == ((106297.0, 2.0), (106298.0, 0.5))
    [empty] = parse(TARDIS[4]).events
    assert isinstance(empty, BookSnapshot) and empty.bids == empty.asks == ()


def test_asset_ctx_mark_oracle_funding_per_8h_and_open_interest_in_coins() -> None:
    """``funding`` is hourly on Hyperliquid: the event carries 8 x the rate; ``ts`` is the receive
    time (the frame has none)."""
    mark, oi = parse(DOCS["asset_ctx"], recv=99).events
    assert isinstance(mark, MarkPrice) and (mark.price, mark.index) == (106290.0, 106280.0)
    assert mark.funding == 8 * 0.0000125 and mark.ts == 99
    assert isinstance(oi, OpenInterest) and oi.qty == 30000.5 and oi.notional == 30000.5 * 106290.0


def test_trades_with_the_liquidator_vault_are_inferred_liquidations() -> None:
    """The HLP liquidator vault buying takes over a long (``long``), selling a short; other
    trades with ``users`` are only trades."""
    parsed = parse(DOCS["trades_backstop"])
    assert parsed.kind == "trade+liquidation_inferred"
    assert [type(e) for e in parsed.events] == [Trade, Liquidation, Trade, Liquidation]
    first, second = parsed.events[1], parsed.events[3]
    assert isinstance(first, Liquidation) and isinstance(second, Liquidation)
    assert (first.side, first.price, first.qty, first.notional) == ("long", 3500.5, 12.0, 3500.5 * 12.0)
    assert (second.side, second.qty) == ("short", 2.0)
    assert first.instrument == "ETH-USDC-PERP"
    plain = parse(DOCS["trades_users"])
    assert plain.kind == "trade" and [type(e) for e in plain.events] == [Trade]
    assert all(address == address.lower() for address in LIQUIDATORS)


def test_spot_coins_control_frames_and_unknown_channels() -> None:
    spot = json.loads(json.dumps(TARDIS[0]))
    spot["data"][0]["coin"] = "@107"
    assert parse(spot).kind == "skipped:not_perp"
    assert parse(DOCS["subscription_response"]).kind == parse(DOCS["pong"]).kind == "control"
    assert parse(DOCS["error"]).kind == "control:error"
    with pytest.raises(ParseError) as err:
        parse({"channel": "nope", "data": {}})
    assert err.value.reason is Reason.UNKNOWN_CHANNEL
    bad = json.loads(json.dumps(DOCS["l2book"]))
    bad["data"]["levels"][0][0]["px"] = "0"
    with pytest.raises(ParseError) as err:
        parse(bad)
    assert err.value.reason is Reason.BAD_PRICE
    with pytest.raises(ParseError) as err:
        Parser().parse_rest("/info", b"{}", 1)
    assert err.value.reason is Reason.UNKNOWN_REST_PATH


def test_live_requests_one_subscription_each_ping_and_probes() -> None:
    topics = ["l2Book:BTC", "trades:BTC"]
    assert [json.loads(m) for m in hyperliquid.subscribe_messages(topics, 50)] == [
        {"method": "subscribe", "subscription": {"type": "l2Book", "coin": "BTC"}},
        {"method": "subscribe", "subscription": {"type": "trades", "coin": "BTC"}},
    ]
    assert json.loads(hyperliquid.heartbeat_message() or "") == {"method": "ping"}
    book = json.dumps(DOCS["l2book"], separators=(",", ":")).encode()
    assert hyperliquid.is_data(book) and not hyperliquid.is_data(b'{"channel":"pong"}')
    assert hyperliquid.frame_key(book) == ("l2Book|BTC", 1751430933565)
    assert hyperliquid.instruments_paths(["BTC"]) == [] and hyperliquid.native_symbol("eth") == "ETH"
    meta = b'{"universe":[{"name":"BTC","szDecimals":5},{"name":"OLD","isDelisted":true}]}'
    assert hyperliquid.listed_symbols("/info", meta) == {"BTC"}


# --- fuzz --------------------------------------------------------------------------------------

VALUES = st.one_of(st.none(), st.booleans(), st.integers(-5, 10**12), st.floats(allow_nan=True), st.text(max_size=8))
LEVEL = st.fixed_dictionaries({}, optional={"px": VALUES, "sz": VALUES, "n": VALUES})
ROW = st.fixed_dictionaries(
    {},
    optional={
        "coin": st.sampled_from(["BTC", "@1", "A/B", "", "xyz:TSLA"]),
        "side": st.sampled_from(["A", "B", "X"]),
        "px": VALUES,
        "sz": VALUES,
        "time": VALUES,
        "tid": VALUES,
        "users": st.lists(st.sampled_from([*LIQUIDATORS, "0x1", ""]), max_size=3),
        "levels": st.one_of(st.lists(st.lists(LEVEL, max_size=2), max_size=3), VALUES),
        "ctx": st.fixed_dictionaries(
            {}, optional={"markPx": VALUES, "oraclePx": VALUES, "funding": VALUES, "openInterest": VALUES}
        ),
    },
)
FRAME = st.fixed_dictionaries(
    {},
    optional={
        "channel": st.sampled_from(["trades", "l2Book", "activeAssetCtx", "pong", "error", "bbo", "nope"]),
        "data": st.one_of(ROW, st.lists(ROW, max_size=3), VALUES),
    },
)
FUZZ = settings(
    max_examples=int(os.environ.get("HYPERLIQUID_FUZZ_EXAMPLES", "300")),
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
        if isinstance(event, BookSnapshot):
            assert all(p > 0 and q >= 0 for p, q in event.bids + event.asks)


@FUZZ
@given(st.one_of(st.binary(max_size=200), st.text(max_size=200)))
def test_fuzz_arbitrary_payloads(payload: bytes | str) -> None:
    check(lambda: _PARSER.parse_ws(payload, 1))


@FUZZ
@given(FRAME)
def test_fuzz_plausible_frames(frame: dict) -> None:
    check(lambda: _PARSER.parse_ws(json.dumps(frame).encode(), 1))
