"""Hyperliquid live connector against a fake /ws server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json

from live_fakes import FakeHyperliquid, SimBook
from live_support import FakeMonotonic, capture, conn_events, make_live, rebuild_books, ws_payloads

from cascadewatch.connectors.frames import FrameDecoder
from cascadewatch.connectors.venues.hyperliquid import LIQUIDATORS

COIN = "BTC"
LIQUIDATOR = next(iter(LIQUIDATORS))


def _subscribed(fake: FakeHyperliquid) -> bool:
    return any(len(c.topics) == 3 and c.closed is None for c in fake.clients)


def _assert_book_is_the_servers(frames: list, fake: FakeHyperliquid) -> None:
    books, _ = rebuild_books(frames)
    book = books[COIN].book
    assert book.valid
    assert book.bids == fake.books[COIN].bids and book.asks == fake.books[COIN].asks


def test_ping_pong_one_subscription_per_request_and_inferred_liquidations() -> None:
    """``{"method":"ping"}`` goes out once per heartbeat_s of the sessions' clock and ``pong``
    comes back; each channel is its own subscribe request; every ``l2Book`` push replaces the
    book (the last equals the server's); a trade with the liquidator vault as buyer is an
    inferred long liquidation, as seller a short one."""
    with FakeHyperliquid() as fake:
        fake.books[COIN] = SimBook(seed=41)
        live = make_live("hyperliquid", fake, [COIN], "/ws", heartbeat_s=1.0)
        clock = FakeMonotonic()
        finished: list[int] = []

        async def script() -> None:
            while not _subscribed(fake):
                await asyncio.sleep(0.01)
            for i in range(30):
                await fake.book_push(COIN)
                if i == 10:
                    await fake.trade(COIN, users=(LIQUIDATOR, "0x" + "1" * 40))
                elif i == 20:
                    await fake.trade(COIN, users=("0x" + "2" * 40, LIQUIDATOR))
                else:
                    await fake.trade(COIN, users=("0x" + "3" * 40, "0x" + "4" * 40))
                await fake.asset_ctx(COIN)
                await asyncio.sleep(0.005)
            for beat in range(1, 3):
                clock.now += 1.0
                while len(fake.pings) < beat:
                    await asyncio.sleep(0.01)
            finished.append(fake.block_ms)

        def until(frames: list) -> bool:
            payloads = ws_payloads(frames)
            return (
                bool(finished)
                and payloads.count(b'{"channel":"pong"}') == 2
                and any(b'"time":%d,' % finished[0] in p and b"l2Book" in p for p in payloads)
            )

        done = fake.spawn(script())
        frames = capture("hyperliquid", live, until, clock=clock)
        done.result(2)
        requests = [json.loads(t) for t in fake.sent_to(lambda text: "ping" not in text)]
        _assert_book_is_the_servers(frames, fake)
        pings = len(fake.pings)

    assert pings == 2
    assert [r["subscription"] for r in requests] == [
        {"type": "l2Book", "coin": COIN},
        {"type": "trades", "coin": COIN},
        {"type": "activeAssetCtx", "coin": COIN},
    ]
    decoder = FrameDecoder()
    parsed = [decoder.decode(source, payload, recv) for recv, source, payload in frames]
    forced = [(e.side, e.qty) for p in parsed for e in p.events if type(e).__name__ == "Liquidation"]
    assert forced == [("long", 0.5), ("short", 0.5)]
    assert sum(p.kind == "trade+liquidation_inferred" for p in parsed) == 2
    _, statuses = rebuild_books(frames)
    assert statuses == []  # snapshots only: nothing can break


def test_a_dropped_connection_and_a_silent_feed_reconnect_and_the_book_matches_the_server() -> None:
    """The server cuts the connection: ``close``, reconnect, and the first push after the new
    subscription is the whole book. Then the next connection stays open and silent: after
    staleness_s of the sessions' clock, ``stale``, reconnect, resubscribe. The rebuilt book
    equals the server's at the end."""
    clock = FakeMonotonic()
    with FakeHyperliquid() as fake:
        fake.books[COIN] = SimBook(seed=42)
        live = make_live("hyperliquid", fake, [COIN], "/ws", staleness_s=30.0)
        finished: list[int] = []

        async def pushes(n: int) -> None:
            for _ in range(n):
                await fake.book_push(COIN)
                await asyncio.sleep(0.005)

        async def connected(count: int) -> None:
            while not _subscribed(fake) or len(fake.clients) < count:
                await asyncio.sleep(0.01)

        async def script() -> None:
            await connected(1)
            await pushes(10)
            await fake.drop()
            await connected(2)
            await pushes(10)
            fake.mute()
            await pushes(5)  # not sent: the connection is silent
            clock.now += 30.5
            await connected(3)
            await pushes(10)
            finished.append(fake.block_ms)

        def until(frames: list) -> bool:
            return bool(finished) and any(b'"time":%d,' % finished[0] in p for p in ws_payloads(frames))

        done = fake.spawn(script())
        frames = capture("hyperliquid", live, until, timeout=8.0, clock=clock)
        done.result(2)
        _assert_book_is_the_servers(frames, fake)
        connections = len(fake.clients)

    kinds = [e["event"] for e in conn_events(frames)]
    assert kinds[:6] == ["open", "close", "open", "stale", "close", "open"]
    assert connections == 3
