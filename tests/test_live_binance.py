"""Binance USD-M live connector against a fake /market + /public server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json

from live_fakes import FakeBinance, binance_fixture_frames
from live_support import FakeMonotonic, capture, conn_events, make_live, rebuild_books, ws_payloads

RECORDED_SYMBOLS = ["SUSHIUSDT", "AKROUSDT", "KEEPUSDT", "CTKUSDT"]


def _subscribed(fake: FakeBinance, n_connections: int = 2) -> bool:
    return sum(1 for c in fake.clients if c.topics and c.closed is None) >= n_connections


def test_recorded_session_bootstraps_every_book_from_its_rest_snapshot() -> None:
    """The recorded 2021 session replayed by the fake: diffs arrive before the snapshots (as
    recorded), the connector buffers them, fetches /fapi/v1/depth, hands over snapshot then
    diffs, and every book syncs without a gap; nothing published is lost or repeated."""
    rest, recorded = binance_fixture_frames()
    with FakeBinance() as fake:
        for path, body in rest:
            if path.startswith("/fapi/v1/depth"):
                fake.depth_bodies[path.split("symbol=")[1].split("&")[0]] = [body]
        live = make_live("binance", fake, RECORDED_SYMBOLS, "/market/stream", "/public/stream")
        published: list[bytes] = []

        async def script() -> None:
            while not _subscribed(fake):
                await asyncio.sleep(0.01)
            for payload in recorded:
                stream = json.loads(payload)["stream"]
                if await fake.publish(stream, payload.decode()):
                    published.append(payload)
                await asyncio.sleep(0.001)

        done = fake.spawn(script())
        frames = capture("binance", live, lambda f: done.done() and set(published) <= set(ws_payloads(f)))
        done.result(1)

    out = [p for p in ws_payloads(frames) if p.startswith(b'{"stream"')]
    assert published and sorted(out) == sorted(published)  # each exactly once
    streams = {json.loads(p)["stream"].split("@", 1)[1] for p in published}
    assert streams == {"aggTrade", "depth@100ms"}  # the subscribed ones; bookTicker/kline were not asked for
    sources = [source for _, source, _ in frames]
    assert sources[0] == "binance-usdm!rest" and b"exchangeInfo" in frames[0][2]
    snapshots = [p for _, s, p in frames if s == "binance-usdm!rest" and b"/fapi/v1/depth" in p]
    assert len(snapshots) == 4
    books, statuses = rebuild_books(frames)
    assert set(books) == set(RECORDED_SYMBOLS)
    assert all(keeper.book.valid for keeper in books.values())
    assert "gap" not in statuses
    assert [e["event"] for e in conn_events(frames)][:2] == ["open", "open"]


def test_pu_break_resyncs_from_a_new_rest_snapshot_and_the_book_matches_the_server() -> None:
    """Generated diffs with U/u/pu; one diff is never sent: the next ``pu`` does not match, the
    connector hands the break over (the dataflow marks a gap), fetches a new snapshot, and the
    rebuilt book equals the server's. The server pings every 0.1 s: pongs keep it open."""
    from live_fakes import SimBook

    with FakeBinance(ping_interval=0.1) as fake:
        fake.books["BTCUSDT"] = SimBook(seed=7)
        live = make_live("binance", fake, ["BTCUSDT"], "/market/stream", "/public/stream")
        finished = []

        async def script() -> None:
            while not _subscribed(fake):
                await asyncio.sleep(0.01)
            for i in range(60):
                await fake.depth_diff("BTCUSDT", skip=(i == 25))
                await asyncio.sleep(0.005)
                if i == 25:
                    await asyncio.sleep(0.05)
            await asyncio.sleep(0.3)  # > 2 server pings with nothing else going on
            finished.append(fake.books["BTCUSDT"].u)

        done = fake.spawn(script())
        frames = capture(
            "binance", live, lambda f: bool(finished) and any(b'"u":%d,' % finished[0] in p for p in ws_payloads(f))
        )
        done.result(1)
        depth_requests = [path for path in fake.rest_log if path.startswith("/fapi/v1/depth")]
        server_bids, server_asks = dict(fake.books["BTCUSDT"].bids), dict(fake.books["BTCUSDT"].asks)
        connections = len(fake.clients)

    assert len(depth_requests) == 2  # bootstrap + resync after the break
    books, statuses = rebuild_books(frames)
    assert statuses == ["gap", "resync"]
    book = books["BTCUSDT"].book
    assert book.valid
    assert book.bids == server_bids and book.asks == server_asks
    assert connections == 2  # market + public, never reconnected: the pings were answered


def test_old_url_that_accepts_and_stays_silent_raises_a_stale_alarm_and_reconnects() -> None:
    """``/stream`` (the pre-2026 path) acks the subscription and sends nothing: once the
    configured staleness has passed (on the sessions' clock, here a fake one moved by the
    test) the connector records a ``stale`` event, closes and reconnects."""
    clock = FakeMonotonic()

    def until(frames: list) -> bool:
        acks = sum(1 for p in ws_payloads(frames) if p.startswith(b'{"result"'))
        if acks >= 2 and clock.now == clock.START_S:  # both connections subscribed: now stay silent 30.5 s
            clock.now += 30.5
        return sum(1 for e in conn_events(frames) if e["event"] == "open") >= 4

    with FakeBinance() as fake:
        live = make_live("binance", fake, ["BTCUSDT"], "/stream", "/stream", staleness_s=30.0)
        frames = capture("binance", live, until, timeout=5.0, clock=clock)
    for name in ("market", "public"):
        events = [e for e in conn_events(frames) if e["conn"] == name]
        kinds = [e["event"] for e in events]
        assert kinds[:4] == ["open", "stale", "close", "open"], (name, kinds)
        assert events[1]["reason"] == "no data for 30.5 s while subscribed"
        assert events[2]["reason"] == "stale"
    assert all(p.startswith(b'{"result"') for p in ws_payloads(frames))  # only subscription acks ever came
