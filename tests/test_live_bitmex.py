"""BitMEX live connector against a fake ``/realtime`` server on 127.0.0.1 (tests/live_fakes.py
``FakeBitmex``): the partial bootstrap, the text ping, a broken level-id rule and its
resubscription, dropped connections and a silent feed; the rebuilt book equals the server's."""

from __future__ import annotations

import asyncio
import json

from live_fakes import FakeBitmex, SimBook
from live_support import FakeMonotonic, capture, conn_events, make_live, rebuild_books, ws_payloads

SYMBOL = "XBTUSD"
BOOK_TOPIC = "orderBookL2_25:XBTUSD"


def _subscribed(fake: FakeBitmex) -> bool:
    return any(BOOK_TOPIC in c.topics and c.closed is None for c in fake.clients)


def _server_book(fake: FakeBitmex) -> tuple[dict[float, float], dict[float, float]]:
    """The server's levels in base units: XBTUSD sizes are USD, so BTC = size / price."""
    book = fake.books[SYMBOL]
    return {p: q / p for p, q in book.bids.items()}, {p: q / p for p, q in book.asks.items()}


def _same(client: dict[float, float], server: dict[float, float]) -> bool:
    return client.keys() == server.keys() and all(abs(client[p] - q) < 1e-12 for p, q in server.items())


def test_partial_ping_and_a_broken_id_rule_resubscribes_and_the_book_matches_the_server() -> None:
    """The instrument list comes first; the book starts from the subscription's ``partial``;
    ``ping`` goes out once per heartbeat_s of the sessions' clock (moved by the test) and the
    ``pong`` reaches the parser; an ``update`` naming an id the client never saw inserted is
    handed over (the dataflow marks the gap), the book topic is unsubscribed and subscribed
    again, the new ``partial`` resyncs, and the rebuilt book equals the server's."""
    with FakeBitmex() as fake:
        fake.books[SYMBOL] = SimBook(seed=41, mid=30000.0)
        live = make_live("bitmex", fake, [SYMBOL], "/realtime", heartbeat_s=1.0)
        clock = FakeMonotonic()
        finished: list[bool] = []

        async def script() -> None:
            while not _subscribed(fake):
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.05)
            for i in range(60):
                if i == 25:
                    await fake.lost_insert(SYMBOL)
                await fake.book_change(SYMBOL)
                if i % 10 == 0:
                    await fake.trade(SYMBOL)
                await asyncio.sleep(0.005)
            for beat in range(1, 4):  # three heartbeat periods (less than staleness_s): one ping each
                clock.now += 1.0
                while len(fake.pings) < beat:
                    await asyncio.sleep(0.01)
            await fake.publish(f"trade:{SYMBOL}", '{"table":"trade","action":"insert","data":[]}')
            finished.append(True)

        def until(frames: list) -> bool:
            payloads = ws_payloads(frames)
            return bool(finished) and payloads.count(b"pong") == 3 and payloads[-1].endswith(b'"data":[]}')

        done = fake.spawn(script())
        frames = capture("bitmex", live, until, clock=clock)
        done.result(1)
        requests = [json.loads(t) for t in fake.sent_to(lambda text: text != "ping")]
        server_bids, server_asks = _server_book(fake)
        pings = list(fake.pings)

    assert frames[0][1] == "bitmex!rest" and b"/api/v1/instrument/active" in frames[0][2]
    assert json.loads(ws_payloads(frames)[0])["info"] == "Welcome to the BitMEX Realtime API."
    assert len(pings) == 3 and ws_payloads(frames).count(b"pong") == 3
    book_requests = [r["op"] for r in requests if r["args"] == [BOOK_TOPIC]]
    assert book_requests == ["unsubscribe", "subscribe"]
    assert set(requests[0]["args"]) == {BOOK_TOPIC, "trade:XBTUSD", "liquidation:XBTUSD", "instrument:XBTUSD"}
    books, statuses = rebuild_books(frames)
    assert statuses == ["gap", "resync"]
    book = books[SYMBOL].book
    assert book.valid and _same(book.bids, server_bids) and _same(book.asks, server_asks)


def test_dropped_connections_reconnect_and_each_partial_restores_the_book() -> None:
    """The server drops every connection after 0.4 s: each drop is a ``close`` (the dataflow's
    ``disconnect``); the connector reconnects, subscribes again, the new ``partial`` restores
    the book, trades and liquidations flow on every connection, and the final book equals the
    server's."""
    with FakeBitmex() as fake:
        fake.drop_after_s = 0.4
        fake.books[SYMBOL] = SimBook(seed=43, mid=30000.0)
        live = make_live("bitmex", fake, [SYMBOL], "/realtime")
        stop: list[bool] = []

        async def script() -> None:
            n = 0
            while not stop:
                await fake.book_change(SYMBOL)
                await fake.trade(SYMBOL, 30000.0 + n % 3)
                if n % 5 == 0:
                    await fake.liquidation(SYMBOL, "Sell", 29990.0, 1000)
                n += 1
                await asyncio.sleep(0.01)

        done = fake.spawn(script())
        frames = capture("bitmex", live, lambda f: sum(e["event"] == "open" for e in conn_events(f)) >= 3)
        stop.append(True)
        done.result(1)
        server_bids, server_asks = _server_book(fake)
        partials = sum(1 for p in ws_payloads(frames) if b'"action":"partial"' in p)

    kinds = [e["event"] for e in conn_events(frames)]
    assert kinds[:5] == ["open", "close", "open", "close", "open"]
    assert partials >= 3  # one per connection
    opens = [i for i, (_, s, p) in enumerate(frames) if s.endswith("!conn") and b'"open"' in p]
    liquidations = [i for i, (_, s, p) in enumerate(frames) if p.startswith(b'{"table":"liquidation"')]
    for start, end in zip(opens, opens[1:], strict=False):
        assert any(start < i < end for i in liquidations)
    books, statuses = rebuild_books(frames)
    assert "gap" not in statuses
    book = books[SYMBOL].book
    last_close = max(i for i, (_, s, p) in enumerate(frames) if s.endswith("!conn") and b'"close"' in p)
    if last_close < opens[-1]:  # the last connection was up at the end: its book is the server's
        assert book.valid and _same(book.bids, server_bids) and _same(book.asks, server_asks)


def test_a_silent_feed_raises_a_stale_alarm_and_reconnects() -> None:
    """The server acks the subscriptions and then sends nothing (no partial): once staleness_s
    has passed on the sessions' clock the connector records ``stale``, closes and reconnects."""
    clock = FakeMonotonic()

    def until(frames: list) -> bool:
        acks = sum(1 for p in ws_payloads(frames) if p.startswith(b'{"success":true'))
        if acks >= 4 and clock.now == clock.START_S:  # subscribed: now stay silent 30.5 s
            clock.now += 30.5
        return sum(1 for e in conn_events(frames) if e["event"] == "open") >= 2

    with FakeBitmex() as fake:
        fake.books[SYMBOL] = SimBook(seed=47)
        fake.silent_paths = {"/realtime"}
        live = make_live("bitmex", fake, [SYMBOL], "/realtime", staleness_s=30.0)
        frames = capture("bitmex", live, until, timeout=5.0, clock=clock)
    events = conn_events(frames)
    assert [e["event"] for e in events][:4] == ["open", "stale", "close", "open"]
    assert events[1]["reason"] == "no data for 30.5 s while subscribed"
    assert not any(p.startswith(b'{"table"') for p in ws_payloads(frames))  # only the welcome and acks came
