"""Rollover before a connection's lifetime limit: a new connection is opened and subscribed
before the old one closes, and nothing is lost or repeated across the switch.

The sessions run on a fake monotonic clock that the test moves: past the lifetime (the session
opens and subscribes a new connection while trades keep flowing on both), then past the
overlap (the session switches and closes the old one). No test waits for time to pass.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest
from live_fakes import FakeBinance, FakeBybit, FakeOkx, SimBook
from live_support import FakeMonotonic, capture, conn_events, make_live, rebuild_books, ws_payloads
from prometheus_client import REGISTRY

CLIENT_LIFETIME_S = 60.0  # the connector rolls over at this age (on its clock)
OVERLAP_S = 5.0  # both connections deliver this long (on its clock)
ROLLOVERS = 2

VENUES: dict[str, dict[str, Any]] = {
    "binance": {
        "fake": FakeBinance,
        "symbol": "BTCUSDT",
        "path": "/market/stream",
        "book_path": "/public/stream",
        "trade_id": re.compile(rb'"a":(\d+)'),
    },
    "bybit": {
        "fake": FakeBybit,
        "symbol": "BTCUSDT",
        "path": "/v5/public/linear",
        "book_path": None,
        "trade_id": re.compile(rb'"i":"trade-(\d+)"'),
    },
    "okx": {
        "fake": FakeOkx,
        "symbol": "BTC-USDT-SWAP",
        "path": "/ws/v5/public",
        "book_path": None,
        "trade_id": re.compile(rb'"tradeId":"(\d+)"'),
    },
}


async def _trade(fake: Any, venue: str, symbol: str, n: int) -> str:
    if venue == "binance":
        return await fake.agg_trade(symbol)
    if venue == "bybit":
        return await fake.trade(symbol, n)
    return await fake.trade(symbol)


async def _book(fake: Any, venue: str, symbol: str) -> None:
    if venue == "bybit":
        await fake.book_delta(symbol)
    elif venue == "okx":
        await fake.book_update(symbol)


@pytest.mark.parametrize("venue", sorted(VENUES))
def test_rollover_loses_and_repeats_nothing(venue: str) -> None:
    spec = VENUES[venue]
    symbol = spec["symbol"]
    duplicates_before = _duplicates(venue)
    topic = _topic(venue, symbol)
    clock = FakeMonotonic()
    with spec["fake"]() as fake:
        if venue != "binance":
            fake.books[symbol] = SimBook(seed=17)
        live = make_live(
            venue,
            fake,
            [symbol],
            spec["path"],
            spec["book_path"],
            max_lifetime_s=CLIENT_LIFETIME_S,
            rollover_overlap_s=OVERLAP_S,
            heartbeat_s=1.0 if venue != "binance" else None,
            staleness_s=1000.0,  # longer than the whole run: an idle connection (binance /public) never goes stale
        )
        published: list[int] = []
        finished: list[bool] = []

        async def publish(frames: int) -> None:
            for _ in range(frames):
                frame = await _trade(fake, venue, symbol, len(published))
                if fake.live_clients(topic):
                    published.append(int(spec["trade_id"].search(frame.encode()).group(1)))
                await _book(fake, venue, symbol)
                await asyncio.sleep(0.003)

        async def until_live_clients(count: int) -> None:
            """Keep trading until ``count`` connections carry the trade topic."""
            while len(fake.live_clients(topic)) != count:
                await publish(1)

        async def script() -> None:
            await until_live_clients(1)
            for _ in range(ROLLOVERS):
                await publish(40)
                clock.now += CLIENT_LIFETIME_S  # the lifetime is over: a new connection is subscribed
                await until_live_clients(2)
                await publish(40)  # both connections deliver these
                clock.now += OVERLAP_S  # the overlap is over: switch, close the old connection
                await until_live_clients(1)
            await publish(40)
            finished.append(True)

        def delivered_last(frames: list) -> bool:
            ids = (m.group(1) for p in ws_payloads(frames) if (m := spec["trade_id"].search(p)))
            return bool(finished) and b"%d" % published[-1] in ids

        done = fake.spawn(script())
        frames = capture(venue, live, delivered_last, timeout=30.0, clock=clock)
        done.result(1)
        server_book = fake.books.get(symbol)

    trade_ids = [int(m.group(1)) for p in ws_payloads(frames) if (m := spec["trade_id"].search(p))]
    assert len(trade_ids) > 100
    start = published.index(trade_ids[0])
    assert trade_ids == published[start:]  # every trade once, in order, across every switch
    events = conn_events(frames)
    rollovers = [e for e in events if e["event"] == "open" and e.get("reason") == "rollover"]
    assert len(rollovers) == ROLLOVERS * (2 if venue == "binance" else 1)  # binance: /market and /public
    closes = [e for e in events if e["event"] == "close" and e.get("reason") != "shutdown"]
    assert closes == []  # no disconnect: the server never had to close a connection
    assert _duplicates(venue) > duplicates_before  # both connections delivered the overlap; repeats dropped
    if server_book is not None:
        books, statuses = rebuild_books(frames)
        assert "gap" not in statuses
        book = books[symbol].book
        assert book.valid
        scale = 0.01 if venue == "okx" else 1.0
        assert book.bids.keys() == server_book.bids.keys()
        assert all(abs(book.bids[p] - q * scale) < 1e-9 for p, q in server_book.bids.items())


def _topic(venue: str, symbol: str) -> str:
    return {"binance": f"{symbol.lower()}@aggTrade", "bybit": f"publicTrade.{symbol}", "okx": f"trades:{symbol}"}[venue]


def _duplicates(venue: str) -> float:
    source = {"binance": "binance-usdm", "bybit": "bybit-linear", "okx": "okx-swap"}[venue]
    connection = "market" if venue == "binance" else "public"
    labels = {"venue": source, "connection": connection}
    return REGISTRY.get_sample_value("cascadewatch_feed_rollover_duplicates_total", labels) or 0.0
