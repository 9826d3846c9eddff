"""Bybit v5 linear live connector against a fake /v5/public/linear server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json

import pytest
from live_fakes import FakeBybit, SimBook
from live_support import FakeMonotonic, capture, conn_events, make_live, rebuild_books, ws_payloads

from cascadewatch.connectors.frames import FrameDecoder
from cascadewatch.connectors.venues.base import ParseError


def _refusal(payload: bytes) -> bool:
    return json.loads(payload).get("success") is False


def _subscribed(fake: FakeBybit) -> bool:
    return any(c.topics and c.closed is None for c in fake.clients)


def test_ping_pong_and_a_u_jump_resubscribes_the_book_which_then_matches_the_server() -> None:
    """``{"op":"ping"}`` goes out once per heartbeat_s of the sessions' clock (a fake one, moved
    by the test; the fake answers ``ret_msg: pong``); the
    book starts from the subscription snapshot; a delta whose ``u`` jumps is handed over (the
    dataflow marks the gap), the topic is unsubscribed and subscribed again, the new snapshot
    resyncs the book, and the rebuilt book equals the server's."""
    with FakeBybit() as fake:
        fake.books["BTCUSDT"] = SimBook(seed=3)
        live = make_live("bybit", fake, ["BTCUSDT"], "/v5/public/linear", heartbeat_s=1.0)
        clock = FakeMonotonic()
        finished: list[int] = []

        async def script() -> None:
            while not _subscribed(fake):
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.05)
            for i in range(60):
                await fake.book_delta("BTCUSDT", jump=(i == 20))
                await asyncio.sleep(0.005)
            for beat in range(1, 4):  # three heartbeat periods (less than staleness_s): one ping each
                clock.now += 1.0
                while len(fake.pings) < beat:
                    await asyncio.sleep(0.01)
            finished.append(fake.books["BTCUSDT"].u)

        def until(frames: list) -> bool:
            payloads = ws_payloads(frames)
            pongs = sum(1 for p in payloads if b'"pong"' in p)
            return bool(finished) and pongs == 3 and any(b'"u":%d,' % finished[0] in p for p in payloads)

        done = fake.spawn(script())
        frames = capture("bybit", live, until, clock=clock)
        done.result(1)
        sent = fake.sent_to(lambda text: '"op":"ping"' not in text)
        server_bids, server_asks = dict(fake.books["BTCUSDT"].bids), dict(fake.books["BTCUSDT"].asks)
        pings = list(fake.pings)

    assert len(pings) == 3
    assert sum(1 for p in ws_payloads(frames) if b'"pong"' in p) == 3  # pongs reach the parser (control)
    requests = [json.loads(text) for text in sent]
    resync = [r["op"] for r in requests if r["args"] == ["orderbook.50.BTCUSDT"]]
    assert resync == ["unsubscribe", "subscribe"]
    books, statuses = rebuild_books(frames)
    assert statuses == ["gap", "resync"]
    assert books["BTCUSDT"].book.valid
    assert books["BTCUSDT"].book.bids == server_bids and books["BTCUSDT"].book.asks == server_asks


def test_dropped_connections_reconnect_within_the_backoff_bound() -> None:
    """The server drops every connection after 0.3 s: each drop is a ``close`` event (the
    dataflow's ``disconnect``), the connector reconnects within the backoff bound, subscribes
    again and the data flows again after each reconnect."""
    with FakeBybit() as fake:
        fake.drop_after_s = 0.3
        fake.books["BTCUSDT"] = SimBook(seed=5)
        live = make_live("bybit", fake, ["BTCUSDT"], "/v5/public/linear")
        stop: list[bool] = []

        async def script() -> None:
            n = 0
            while not stop:
                await fake.trade("BTCUSDT", n)
                n += 1
                await asyncio.sleep(0.01)

        done = fake.spawn(script())
        frames = capture("bybit", live, lambda f: sum(e["event"] == "open" for e in conn_events(f)) >= 4)
        stop.append(True)
        done.result(1)
        connections = len(fake.clients)

    events = conn_events(frames)
    kinds = [e["event"] for e in events]
    assert kinds[:6] == ["open", "close", "open", "close", "open", "close"][: len(kinds[:6])]
    assert connections >= 4
    times = [(recv, json.loads(p)["event"]) for recv, s, p in frames if s.endswith("!conn")]
    for (t_close, kind), (t_open, next_kind) in zip(times, times[1:], strict=False):
        if kind == "close" and next_kind == "open":
            assert (t_open - t_close) / 1e9 < 0.2 * 1.2 + 0.3  # backoff max_s (1 + jitter) + connect
    decoder = FrameDecoder()
    states = [decoder.decode(s, p, r).events[0].state for r, s, p in frames if s.endswith("!conn")]
    assert states[:4] == ["connect", "disconnect", "connect", "disconnect"]
    # trades flow on every connection
    trade_positions = [i for i, (_, s, p) in enumerate(frames) if b"publicTrade" in p]
    opens = [i for i, (_, s, p) in enumerate(frames) if s.endswith("!conn") and b'"open"' in p]
    for start, end in zip(opens, opens[1:], strict=False):
        assert any(start < i < end for i in trade_positions)


def test_a_refused_subscription_is_a_counted_dead_letter() -> None:
    """A subscription the venue refuses (``success: false``) is handed over and becomes a
    ``control_error`` dead letter, not a silent nothing."""
    with FakeBybit() as fake:
        fake.refuse = {"subscribe"}
        live = make_live("bybit", fake, ["BTCUSDT"], "/v5/public/linear")
        frames = capture("bybit", live, lambda f: any(_refusal(p) for p in ws_payloads(f)))
    refused = [p for p in ws_payloads(frames) if _refusal(p)]
    assert refused
    with pytest.raises(ParseError) as excinfo:
        FrameDecoder().decode("bybit-linear", refused[0], 1)
    assert excinfo.value.reason == "control_error"
