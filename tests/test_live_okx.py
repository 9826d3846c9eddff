"""OKX v5 live connector against a fake /ws/v5/public server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json

from live_fakes import FakeOkx, SimBook
from live_support import FakeMonotonic, capture, make_live, rebuild_books, ws_payloads

SWAP = "BTC-USDT-SWAP"
CT_VAL = 0.01  # BTC-USDT-SWAP contract value in the instruments reply


def _subscribed(fake: FakeOkx) -> bool:
    return any(c.topics and c.closed is None for c in fake.clients)


def test_text_ping_pong_seqid_chain_and_a_break_resubscribes() -> None:
    """The text ``ping`` goes out once per heartbeat_s of the sessions' clock (a fake one,
    moved by the test) and ``pong`` comes back; the instruments
    REST reply (contract values) is handed over before any websocket frame; the ``books``
    chain ``prevSeqId -> seqId`` is followed and a broken link makes the connector resubscribe;
    the new snapshot resyncs and the rebuilt book (contracts x ctVal) equals the server's."""
    with FakeOkx() as fake:
        fake.books[SWAP] = SimBook(seed=11)
        live = make_live("okx", fake, [SWAP], "/ws/v5/public", heartbeat_s=1.0)
        clock = FakeMonotonic()
        finished: list[int] = []

        async def script() -> None:
            while not _subscribed(fake):
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.05)
            for i in range(60):
                await fake.book_update(SWAP, break_chain=(i == 30))
                if i % 10 == 0:
                    await fake.trade(SWAP)
                await asyncio.sleep(0.005)
            for beat in range(1, 4):  # three heartbeat periods (less than staleness_s): one ping each
                clock.now += 1.0
                while len(fake.pings) < beat:
                    await asyncio.sleep(0.01)
            finished.append(fake.books[SWAP].u)

        def until(frames: list) -> bool:
            payloads = ws_payloads(frames)
            return (
                bool(finished)
                and payloads.count(b"pong") == 3
                and any(b'"seqId":%d,' % finished[0] in p for p in payloads)
            )

        done = fake.spawn(script())
        frames = capture("okx", live, until, clock=clock)
        done.result(1)
        requests = [json.loads(t) for t in fake.sent_to(lambda text: text != "ping")]
        server = fake.books[SWAP]
        server_bids = {p: q * CT_VAL for p, q in server.bids.items()}
        server_asks = {p: q * CT_VAL for p, q in server.asks.items()}
        pings = list(fake.pings)

    assert frames[0][1] == "okx-swap!rest" and b"/api/v5/public/instruments" in frames[0][2]
    assert len(pings) == 3 and ws_payloads(frames).count(b"pong") == 3
    book_requests = [r["op"] for r in requests if r["args"] == [{"channel": "books", "instId": SWAP}]]
    assert book_requests == ["unsubscribe", "subscribe"]
    first = requests[0]["args"]
    assert {"channel": "liquidation-orders", "instType": "SWAP"} in first
    books, statuses = rebuild_books(frames)
    assert statuses == ["gap", "resync"]
    book = books[SWAP].book
    assert book.valid
    assert book.bids.keys() == server_bids.keys() and book.asks.keys() == server_asks.keys()
    assert all(abs(book.bids[p] - q) < 1e-9 for p, q in server_bids.items())
    assert all(abs(book.asks[p] - q) < 1e-9 for p, q in server_asks.items())
