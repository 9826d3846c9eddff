"""Deribit live connector against a fake JSON-RPC /ws/api/v2 server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json

from live_fakes import FakeDeribit, SimBook
from live_support import FakeMonotonic, capture, conn_events, make_live, rebuild_books, ws_payloads

PERP = "BTC-PERPETUAL"
BOOK = f"book.{PERP}.100ms"


def _subscribed(fake: FakeDeribit) -> bool:
    return any(c.topics and c.closed is None for c in fake.clients)


def _assert_book_is_the_servers(frames: list, fake: FakeDeribit) -> None:
    books, _ = rebuild_books(frames)
    book = books[PERP].book
    server_bids, server_asks = fake.usd_book(PERP)
    assert book.valid
    assert book.bids.keys() == server_bids.keys() and book.asks.keys() == server_asks.keys()
    assert all(abs(book.bids[p] - q) < 1e-12 for p, q in server_bids.items())
    assert all(abs(book.asks[p] - q) < 1e-12 for p, q in server_asks.items())


def test_heartbeat_test_request_and_a_change_id_break_resubscribes_the_book() -> None:
    """``public/set_heartbeat`` goes out once per heartbeat_s of the sessions' clock (a fake one,
    moved by the test); the server's ``test_request`` is answered with ``public/test`` at once
    (the fake closes a connection that does not answer: it stays open); the instruments reply
    comes before any websocket frame; a ``prev_change_id`` that does not continue the chain
    makes the connector unsubscribe and subscribe the book, whose new snapshot resyncs it; the
    rebuilt book (USD amounts / price) equals the server's."""
    with FakeDeribit() as fake:
        fake.books[PERP] = SimBook(seed=31)
        live = make_live("deribit", fake, [PERP], "/ws/api/v2", heartbeat_s=1.0)
        clock = FakeMonotonic()
        finished: list[int] = []

        async def script() -> None:
            while not _subscribed(fake):
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.05)
            for i in range(60):
                await fake.book_change(PERP, break_chain=(i == 30))
                if i % 10 == 0:
                    await fake.trade(PERP, liquidation="T" if i == 20 else None)
                await asyncio.sleep(0.005)
            for beat in range(1, 3):
                clock.now += 1.0
                while len(fake.heartbeats_set) < beat:
                    await asyncio.sleep(0.01)
            await fake.test_request()  # closes the connection if public/test does not come
            finished.append(fake.books[PERP].u)

        def until(frames: list) -> bool:
            return bool(finished) and any(b'"change_id":%d' % finished[0] in p for p in ws_payloads(frames))

        done = fake.spawn(script())
        frames = capture("deribit", live, until, clock=clock)
        done.result(2)
        requests = [json.loads(t) for t in fake.sent_to(lambda text: True)]
        tests, heartbeats, connections = list(fake.tests), list(fake.heartbeats_set), len(fake.clients)
        _assert_book_is_the_servers(frames, fake)

    assert frames[0][1] == "deribit!rest" and b"/api/v2/public/get_instruments?currency=BTC" in frames[0][2]
    assert len(heartbeats) == 2 and len(tests) == 1 and connections == 1
    assert [r["params"] for r in requests if r["method"] == "public/set_heartbeat"] == [{"interval": 30}] * 2
    book_requests = [r["method"] for r in requests if r.get("params", {}).get("channels") == [BOOK]]
    assert book_requests == ["public/unsubscribe", "public/subscribe"]
    first = requests[0]
    assert first["method"] == "public/subscribe" and first["id"] == 1
    assert first["params"]["channels"] == [BOOK, f"trades.{PERP}.100ms", f"ticker.{PERP}.100ms"]
    assert len({r["id"] for r in requests if r["method"].startswith("public/") and r["id"] != 0}) == len(
        [r for r in requests if r["id"] != 0]
    )  # subscription ids are unique
    _, statuses = rebuild_books(frames)
    assert statuses == ["gap", "resync"]
    assert sum(b'"liquidation":"T"' in p for p in ws_payloads(frames)) == 1


def test_a_dropped_connection_and_a_silent_feed_reconnect_and_the_book_matches_the_server() -> None:
    """The server cuts the connection (no close frame): a ``close``, a reconnect, a fresh
    snapshot. Then it keeps the next connection open but sends nothing: after staleness_s of
    the sessions' clock the connector records ``stale``, reconnects and resubscribes. Changes
    keep coming on every connection and the rebuilt book equals the server's at the end."""
    clock = FakeMonotonic()
    with FakeDeribit() as fake:
        fake.books[PERP] = SimBook(seed=32)
        live = make_live("deribit", fake, [PERP], "/ws/api/v2", staleness_s=30.0)
        finished: list[int] = []

        async def changes(n: int) -> None:
            for _ in range(n):
                await fake.book_change(PERP)
                await asyncio.sleep(0.005)

        async def connected(count: int) -> None:
            while sum(1 for c in fake.clients if c.topics and c.closed is None) < 1 or len(fake.clients) < count:
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.05)

        async def script() -> None:
            await connected(1)
            await changes(20)
            await fake.drop()
            await connected(2)
            await changes(20)
            fake.mute()
            await changes(5)  # lost: the connection is silent
            clock.now += 30.5
            await connected(3)
            await changes(20)
            finished.append(fake.books[PERP].u)

        def until(frames: list) -> bool:
            return bool(finished) and any(b'"change_id":%d' % finished[0] in p for p in ws_payloads(frames))

        done = fake.spawn(script())
        frames = capture("deribit", live, until, timeout=8.0, clock=clock)
        done.result(2)
        _assert_book_is_the_servers(frames, fake)
        connections = len(fake.clients)

    kinds = [e["event"] for e in conn_events(frames)]
    assert kinds[:6] == ["open", "close", "open", "stale", "close", "open"]
    assert connections == 3
    snapshots = [p for p in ws_payloads(frames) if b'"type":"snapshot"' in p]
    assert len(snapshots) == 3  # one per connection
    _, statuses = rebuild_books(frames)
    assert "gap" not in statuses  # a reconnect restarts the book; no chain was broken
