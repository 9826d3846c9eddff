"""Rollover before a connection's lifetime limit: a new connection is opened and subscribed
before the old one closes, and nothing is lost or repeated across the switch."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest
from live_fakes import FakeBinance, FakeBybit, FakeOkx, SimBook
from live_support import capture, conn_events, make_live, rebuild_books, ws_payloads
from prometheus_client import REGISTRY

SERVER_LIFETIME_S = 1.0  # the fake closes every connection at this age, like Binance at 24 h
CLIENT_LIFETIME_S = 0.45  # the connector rolls over before it
RUN_S = 2.0

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
    with spec["fake"](lifetime_s=SERVER_LIFETIME_S) as fake:
        if venue != "binance":
            fake.books[symbol] = SimBook(seed=17)
        live = make_live(
            venue,
            fake,
            [symbol],
            spec["path"],
            spec["book_path"],
            max_lifetime_s=CLIENT_LIFETIME_S,
            rollover_overlap_s=0.15,
            heartbeat_s=0.1 if venue != "binance" else None,
        )
        published: list[int] = []
        finished: list[bool] = []

        async def script() -> None:
            while not any(c.topics and c.closed is None for c in fake.clients):
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.05)
            loop = asyncio.get_running_loop()
            end = loop.time() + RUN_S
            n = 0
            while loop.time() < end:
                frame = await _trade(fake, venue, symbol, n)
                if fake.live_clients(_topic(venue, symbol)):
                    published.append(int(spec["trade_id"].search(frame.encode()).group(1)))
                await _book(fake, venue, symbol)
                n += 1
                await asyncio.sleep(0.003)
            await asyncio.sleep(0.3)
            finished.append(True)

        done = fake.spawn(script())
        frames = capture(venue, live, lambda f: bool(finished), timeout=RUN_S + 4)
        done.result(1)
        server_book = fake.books.get(symbol)

    trade_ids = [int(m.group(1)) for p in ws_payloads(frames) if (m := spec["trade_id"].search(p))]
    assert len(trade_ids) > 100
    start = published.index(trade_ids[0])
    assert trade_ids == published[start:]  # every trade once, in order, across every switch
    events = conn_events(frames)
    rollovers = [e for e in events if e["event"] == "open" and e.get("reason") == "rollover"]
    assert len(rollovers) >= 2
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
