"""Book recovery after a sequence gap, for every legal position of the new snapshot.

Binance (REST snapshot): the venue's :class:`~cascadewatch.connectors.venues.binance.LiveBooks`
is driven frame by frame with a simulated diff stream; what it hands over is rebuilt with the
dataflow's own books (``rebuild_books``). One withheld diff must give exactly one ``gap``, one
``resync`` and one snapshot request, wherever the snapshot falls relative to the buffered diffs,
and the rebuilt book must equal the venue's. The same cases run end to end against the fake
venue (``FakeBinance``) for the two positions a live venue produces: a quiet book (the
snapshot's ``lastUpdateId`` equals the breaking diff's ``u``, the case that looped) and a
snapshot ahead of the stream.

Bybit and OKX (snapshot on the websocket): a gap asks for one resubscription, and the
snapshot it brings resyncs the book whatever deltas of the old subscription arrive around it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable

import pytest
from live_fakes import FakeBinance, FakeBybit, FakeOkx, SimBook
from live_support import capture, make_live, rebuild_books, ws_payloads

from cascadewatch.connectors.live import Frame, resolve_settings
from cascadewatch.connectors.live_config import LiveConfig
from cascadewatch.connectors.venues import binance, bybit, okx
from cascadewatch.connectors.venues.live_common import THIS, Action, Emit, Fetch, Resubscribe

PATH = "/fapi/v1/depth?symbol=BTCUSDT&limit=1000"


class DiffStream:
    """A Binance book whose update ids run 1, 2, 3...; update ``i`` sets bid ``1000 - i % 7``
    to quantity ``i`` and ask ``1001 + i % 5`` to ``2 * i``. Diff ``k`` carries updates
    ``10k+1 .. 10k+10`` (``U``, ``u``; ``pu`` = the previous diff's ``u``)."""

    def diff(self, k: int) -> bytes:
        first, last = 10 * k + 1, 10 * k + 10
        bids: dict[str, str] = {}
        asks: dict[str, str] = {}
        for i in range(first, last + 1):
            bids[f"{1000 - i % 7}"] = f"{i}"
            asks[f"{1001 + i % 5}"] = f"{2 * i}"
        data = {
            "e": "depthUpdate",
            "E": 1,
            "T": 1,
            "s": "BTCUSDT",
            "U": first,
            "u": last,
            "pu": first - 1,
            "b": [[p, q] for p, q in bids.items()],
            "a": [[p, q] for p, q in asks.items()],
        }
        return json.dumps({"stream": "btcusdt@depth@100ms", "data": data}, separators=(",", ":")).encode()

    @staticmethod
    def state(last_update_id: int) -> tuple[dict[float, float], dict[float, float]]:
        bids: dict[float, float] = {}
        asks: dict[float, float] = {}
        for i in range(1, last_update_id + 1):
            bids[float(1000 - i % 7)] = float(i)
            asks[float(1001 + i % 5)] = float(2 * i)
        return bids, asks

    def snapshot(self, last_update_id: int) -> bytes:
        bids, asks = self.state(last_update_id)
        return json.dumps(
            {
                "lastUpdateId": last_update_id,
                "E": 1,
                "T": 1,
                "bids": [[f"{p:g}", f"{q:g}"] for p, q in bids.items()],
                "asks": [[f"{p:g}", f"{q:g}"] for p, q in asks.items()],
            },
            separators=(",", ":"),
        ).encode()


class Driver:
    """Feeds a LiveBooks and collects what it hands over, as the venue runner would."""

    def __init__(self) -> None:
        self.now = 0.0
        settings = resolve_settings("binance", LiveConfig(resync_timeout_s=5.0))
        self.books = binance.LiveBooks(["BTCUSDT"], settings, clock=lambda: self.now)
        self.frames: list[Frame] = []
        self.fetches: list[Fetch] = []
        self.recv = 0

    def apply(self, actions: Iterable[Action] | None, payload: bytes = b"") -> None:
        for action in actions or ():
            if action is THIS:
                self.frames.append((self.recv, "binance-usdm", payload))
            elif isinstance(action, Emit):
                self.frames.append(
                    (action.recv, "binance-usdm!rest" if action.rest else "binance-usdm", action.payload)
                )
            elif isinstance(action, Fetch):
                self.fetches.append(action)
            else:
                raise AssertionError(action)

    def diff(self, stream: DiffStream, k: int) -> None:
        self.recv += 1
        payload = stream.diff(k)
        self.apply(self.books.on_frame(self.recv, payload), payload)

    def snapshot(self, stream: DiffStream, last_update_id: int) -> None:
        self.recv += 1
        self.apply(self.books.on_rest(PATH, self.recv, stream.snapshot(last_update_id)))


def _synced_then_gap(driver: DiffStream, d: Driver) -> None:
    """Bootstrap (diff 0 buffered, snapshot inside it), diffs 1-3 in sync, diff 4 withheld, diff 5
    breaks the chain: one gap, one fetch so far after the bootstrap's."""
    d.diff(driver, 0)
    d.snapshot(driver, 5)
    for k in (1, 2, 3):
        d.diff(driver, k)
    d.diff(driver, 5)  # diff 4 (updates 41-50) never arrives


# (name, diffs buffered after the breaking diff 5 before the snapshot arrives, lastUpdateId)
POSITIONS = [
    ("equal to the breaking diff's u (quiet book)", [], 60),
    ("strictly inside the breaking diff", [], 55),
    ("equal to the withheld diff's u: bridged by pu", [6], 50),
    ("equal to a later buffered diff's u", [6, 7], 70),
    ("strictly inside a later buffered diff", [6, 7], 66),
    ("equal to the last buffered diff's u", [6, 7], 80),
]


@pytest.mark.parametrize(("name", "buffered", "last_update_id"), POSITIONS, ids=[p[0] for p in POSITIONS])
def test_one_gap_is_one_gap_one_request_and_one_resync(name: str, buffered: list[int], last_update_id: int) -> None:
    stream, d = DiffStream(), Driver()
    _synced_then_gap(stream, d)
    for k in buffered:
        d.diff(stream, k)
    d.snapshot(stream, last_update_id)
    for k in range(max(buffered, default=5) + 1, 12):
        d.diff(stream, k)
    assert [f.retry for f in d.fetches] == [False, False]  # bootstrap + the one resync
    assert d.books.gaps == 1 and d.books.stale_snapshots == 0 and d.books.invalid() == {}
    books, statuses = rebuild_books(d.frames)
    assert statuses == ["gap", "resync"]
    book = books["BTCUSDT"].book
    assert book.valid and (book.bids, book.asks) == stream.state(120)


def test_a_snapshot_before_the_buffered_stream_is_fetched_again_after_a_backoff() -> None:
    """``lastUpdateId`` inside the withheld diff: the first buffered diff neither contains it nor
    follows it. The snapshot is not handed over; the fetch again is a retry (the REST client
    backs off first); the next snapshot bridges. Still one gap and one resync."""
    stream, d = DiffStream(), Driver()
    _synced_then_gap(stream, d)
    d.diff(stream, 6)
    d.snapshot(stream, 45)
    assert [f.retry for f in d.fetches] == [False, False, True] and d.books.stale_snapshots == 1
    d.snapshot(stream, 63)
    for k in range(7, 12):
        d.diff(stream, k)
    books, statuses = rebuild_books(d.frames)
    assert statuses == ["gap", "resync"] and len(d.fetches) == 3
    assert books["BTCUSDT"].book.valid and (books["BTCUSDT"].book.bids, books["BTCUSDT"].book.asks) == stream.state(120)


def test_a_snapshot_after_the_last_buffered_diff_waits_for_the_diff_that_reaches_it() -> None:
    """``lastUpdateId`` beyond every buffered diff: held (nothing handed over, no request) until
    diff 7 arrives and contains it; without such a diff, fetched again after ``resync_timeout_s``."""
    stream, d = DiffStream(), Driver()
    _synced_then_gap(stream, d)
    d.diff(stream, 6)
    held_from = len(d.frames)
    d.snapshot(stream, 74)
    assert d.frames[held_from:] == [] and len(d.fetches) == 2
    d.now = 4.9
    assert d.books.tick(d.now) == []
    d.diff(stream, 7)
    assert d.frames[held_from][1] == "binance-usdm!rest"
    for k in range(8, 12):
        d.diff(stream, k)
    books, statuses = rebuild_books(d.frames)
    assert statuses == ["gap", "resync"] and len(d.fetches) == 2
    assert (books["BTCUSDT"].book.bids, books["BTCUSDT"].book.asks) == stream.state(120)

    stream, d = DiffStream(), Driver()
    _synced_then_gap(stream, d)
    d.snapshot(stream, 74)
    d.now = 5.0
    d.apply(d.books.tick(d.now))
    assert [f.retry for f in d.fetches] == [False, False, True] and d.books.stale_snapshots == 1


def test_a_break_inside_the_buffer_is_one_more_gap_and_keeps_the_diffs_after_it() -> None:
    """Two diffs lost (4, then 7 while buffering): the snapshot bridges diff 5, the buffer breaks
    at diff 8; that diff heads the next buffer and the second snapshot resyncs. Two gaps, two
    resyncs, three requests, the book equal to the venue's."""
    stream, d = DiffStream(), Driver()
    _synced_then_gap(stream, d)
    d.diff(stream, 6)
    d.diff(stream, 8)
    d.diff(stream, 9)
    d.snapshot(stream, 55)
    d.snapshot(stream, 90)
    d.diff(stream, 10)
    books, statuses = rebuild_books(d.frames)
    assert statuses == ["gap", "resync", "gap", "resync"] and len(d.fetches) == 3 and d.books.gaps == 2
    assert (books["BTCUSDT"].book.bids, books["BTCUSDT"].book.asks) == stream.state(110)


# ------------------------------------------------------------------------------ Binance end to end


def _subscribed(fake: FakeBinance) -> bool:
    return sum(1 for c in fake.clients if c.topics and c.closed is None) >= 2


@pytest.mark.parametrize("ahead", [False, True], ids=["quiet book", "snapshot ahead of the stream"])
def test_withheld_diff_against_the_fake_venue_costs_one_request(ahead: bool) -> None:
    """Diffs every 50 ms, one withheld. A quiet book's snapshot has ``lastUpdateId`` equal to the
    breaking diff's ``u`` (this looped: 29 requests, gaps and resyncs in 3 s); a busy one's
    falls inside the next diff. Either way: 2 requests (bootstrap + resync), one gap, one
    resync, the book equal to the server's."""
    with FakeBinance() as fake:
        fake.books["BTCUSDT"] = SimBook(seed=7)
        fake.snapshot_ahead = ahead
        live = make_live("binance", fake, ["BTCUSDT"], "/market/stream", "/public/stream")
        finished: list[int] = []

        async def script() -> None:
            while not _subscribed(fake):
                await asyncio.sleep(0.01)
            for i in range(30):
                await fake.depth_diff("BTCUSDT", skip=(i == 10))
                await asyncio.sleep(0.05)
            finished.append(fake.books["BTCUSDT"].u)

        done = fake.spawn(script())
        frames = capture(
            "binance",
            live,
            lambda f: bool(finished) and any(b'"u":%d,' % finished[0] in p for p in ws_payloads(f)),
            timeout=8.0,
        )
        done.result(1)
        depth_requests = [path for path in fake.rest_log if path.startswith("/fapi/v1/depth")]
        server = dict(fake.books["BTCUSDT"].bids), dict(fake.books["BTCUSDT"].asks)
    assert len(depth_requests) == 2
    books, statuses = rebuild_books(frames)
    assert statuses == ["gap", "resync"]
    assert books["BTCUSDT"].book.valid and (books["BTCUSDT"].book.bids, books["BTCUSDT"].book.asks) == server


# ------------------------------------------------------------------------------ Bybit and OKX


def _bybit_frame(kind: str, u: int, bid_qty: int = 1) -> bytes:
    data = {"s": "BTCUSDT", "b": [["100", f"{bid_qty}"]], "a": [["101", "1"]], "u": u, "seq": u * 10}
    return json.dumps(
        {"topic": "orderbook.50.BTCUSDT", "type": kind, "ts": 1, "data": data, "cts": 1}, separators=(",", ":")
    ).encode()


@pytest.mark.parametrize(
    ("late_deltas", "snapshot_u", "after"),
    [
        ([], 13, [14, 15]),  # the snapshot right after the delta that broke the chain
        ([14, 15], 15, [16]),  # old-subscription deltas before the snapshot, equal to its u
        ([14, 15], 17, [18]),  # the snapshot ahead of every delta seen
    ],
)
def test_bybit_gap_is_one_resubscribe_one_gap_one_resync(
    late_deltas: list[int], snapshot_u: int, after: list[int]
) -> None:
    """Bybit ``u`` steps by one; delta 12 is lost, 13 breaks. One resubscription, whatever old
    deltas arrive before the snapshot (``u <= snapshot u`` is skipped after it)."""
    books = bybit.LiveBooks(["BTCUSDT"], resolve_settings("bybit", LiveConfig()), clock=lambda: 0.0)
    frames: list[Frame] = []
    resubscribes = 0
    script = [("snapshot", 10), ("delta", 11), ("delta", 13)] + [("delta", u) for u in late_deltas]
    script += [("snapshot", snapshot_u)] + [("delta", u) for u in after]
    for recv, (kind, u) in enumerate(script):
        payload = _bybit_frame(kind, u, bid_qty=u)
        for action in books.on_frame(recv, payload):
            if action is THIS:
                frames.append((recv, "bybit-linear", payload))
            else:
                assert action == Resubscribe(("orderbook.50.BTCUSDT",))
                resubscribes += 1
    assert resubscribes == 1 and books.gaps == 1 and books.invalid() == {}
    rebuilt, statuses = rebuild_books(frames)
    assert statuses == ["gap", "resync"]
    assert rebuilt["BTCUSDT"].book.valid and rebuilt["BTCUSDT"].book.bids == {100.0: float(after[-1])}


def _okx_frame(action: str, seq: int, prev: int, qty: int) -> bytes:
    row = {"asks": [["101", "1", "0", "1"]], "bids": [["100", f"{qty}", "0", "1"]], "ts": "1", "checksum": 0}
    row |= {"seqId": seq, "prevSeqId": prev}
    return json.dumps(
        {"arg": {"channel": "books", "instId": "BTC-USDT-SWAP"}, "action": action, "data": [row]}, separators=(",", ":")
    ).encode()


@pytest.mark.parametrize(
    ("late", "snapshot_seq", "after"),
    [
        ([], 30, [(37, 30)]),  # snapshot right after the break
        ([(44, 37)], 44, [(51, 44)]),  # an old delta before the snapshot, equal to its seqId
        ([(44, 37)], 60, [(67, 60)]),  # snapshot ahead of every delta seen
    ],
)
def test_okx_gap_is_one_resubscribe_one_gap_one_resync(
    late: list[tuple[int, int]], snapshot_seq: int, after: list[tuple[int, int]]
) -> None:
    """OKX chains ``prevSeqId`` -> ``seqId``; the update with seqId 23 is lost, 30 breaks. A
    snapshot restarts the chain at its seqId (``prevSeqId == -1``)."""
    books = okx.LiveBooks(["BTC-USDT-SWAP"], resolve_settings("okx", LiveConfig()), clock=lambda: 0.0)
    frames: list[Frame] = []
    resubscribes = 0
    script = [("snapshot", 9, -1), ("update", 16, 9), ("update", 30, 23)] + [("update", s, p) for s, p in late]
    script += [("snapshot", snapshot_seq, -1)] + [("update", s, p) for s, p in after]
    for recv, (action, seq, prev) in enumerate(script):
        payload = _okx_frame(action, seq, prev, qty=seq)
        for reply in books.on_frame(recv, payload):
            if reply is THIS:
                frames.append((recv, "okx-swap", payload))
            else:
                assert reply == Resubscribe(("books:BTC-USDT-SWAP",))
                resubscribes += 1
    assert resubscribes == 1 and books.gaps == 1 and books.invalid() == {}
    rebuilt, statuses = rebuild_books(frames)
    assert statuses == ["gap", "resync"]
    assert rebuilt["BTC-USDT-SWAP"].book.valid and rebuilt["BTC-USDT-SWAP"].book.bids == {
        100.0: pytest.approx(after[-1][0] * 0.01)
    }  # ctVal


def _resync_once(fake: FakeBybit | FakeOkx, venue: str, symbol: str) -> None:
    fake.books[symbol] = SimBook(seed=3)
    path = "/v5/public/linear" if venue == "bybit" else "/ws/v5/public"
    live = make_live(venue, fake, [symbol], path)
    finished: list[int] = []

    async def script() -> None:
        while not any(c.topics and c.closed is None for c in fake.clients):
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)
        for i in range(20):
            if isinstance(fake, FakeBybit):
                await fake.book_delta(symbol, jump=(i == 8))
            else:
                await fake.book_update(symbol, break_chain=(i == 8))
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.3)
        finished.append(1)

    done = fake.spawn(script())
    frames = capture(venue, live, lambda f: bool(finished))
    done.result(1)
    subscribes = fake.sent_to(lambda t: "subscribe" in t and "unsubscribe" not in t)
    size = 0.01 if venue == "okx" else 1.0  # OKX books are in contracts of 0.01 BTC
    server = [
        {p: pytest.approx(q * size) for p, q in side.items()}
        for side in (fake.books[symbol].bids, fake.books[symbol].asks)
    ]
    rebuilt, statuses = rebuild_books(frames)
    assert statuses == ["gap", "resync"], venue
    assert len(subscribes) == 2, venue  # the first subscription and one resubscription
    assert [rebuilt[symbol].book.bids, rebuilt[symbol].book.asks] == server, venue


def test_bybit_fake_resyncs_after_a_gap_with_one_resubscription() -> None:
    """End to end: the fake skips one ``u``; the connector resubscribes once and the rebuilt
    book equals the server's."""
    with FakeBybit() as fake:
        _resync_once(fake, "bybit", "BTCUSDT")


def test_okx_fake_resyncs_after_a_gap_with_one_resubscription() -> None:
    """End to end: the fake breaks the ``prevSeqId`` chain once; one resubscription."""
    with FakeOkx() as fake:
        _resync_once(fake, "okx", "BTC-USDT-SWAP")


# ------------------------------------------------------------------------------ reconnects


def test_a_reconnect_refetches_only_the_books_its_connection_carried() -> None:
    """Two symbols, one stream per connection (6 market, 2 public). Closing the market ones
    (trades, no book) refetches nothing and leaves both books valid; closing the connection of
    ETHUSDT's book refetches ETHUSDT only: 3 depth requests in all (2 at start + 1)."""
    symbols = ["BTCUSDT", "ETHUSDT"]
    with FakeBinance() as fake:
        for seed, symbol in enumerate(symbols):
            fake.books[symbol] = SimBook(seed=seed + 1)
        live = make_live(
            "binance", fake, symbols, "/market/stream", "/public/stream", max_topics_per_connection=1, staleness_s=30.0
        )
        phase: list[str] = []

        async def diffs(n: int) -> None:
            for _ in range(n):
                for symbol in symbols:
                    await fake.depth_diff(symbol)
                await asyncio.sleep(0.02)

        async def script() -> None:
            while sum(1 for c in fake.clients if c.topics and c.closed is None) < 8:  # 6 market + 2 public
                await asyncio.sleep(0.01)
            await diffs(10)
            phase.append("market")
            await asyncio.sleep(0.1)
            for client in [c for c in fake.clients if c.path.startswith("/market") and c.closed is None]:
                await client.ws.close(1011, "test")
            await asyncio.sleep(0.5)  # reconnected (fast backoff)
            await diffs(10)
            phase.append("public")
            await asyncio.sleep(0.1)
            for client in [c for c in fake.clients if "ethusdt@depth@100ms" in c.topics and c.closed is None]:
                await client.ws.close(1011, "test")
            await asyncio.sleep(0.5)
            await diffs(10)
            await asyncio.sleep(0.2)
            phase.append("done")

        done = fake.spawn(script())
        frames = capture("binance", live, lambda f: "done" in phase, timeout=10.0)
        done.result(1)
        depth_requests = [p.split("symbol=")[1].split("&")[0] for p in fake.rest_log if p.startswith("/fapi/v1/depth")]
        server = {s: (dict(fake.books[s].bids), dict(fake.books[s].asks)) for s in symbols}
    assert sorted(depth_requests) == ["BTCUSDT", "ETHUSDT", "ETHUSDT"]
    closes = [json.loads(p) for _, s, p in frames if s.endswith("!conn") and b'"close"' in p]
    assert [c.get("books") for c in closes if c["reason"] != "shutdown"] == [[]] * 6 + [["ETHUSDT"]]
    books, statuses = rebuild_books(frames)
    assert statuses == []  # a disconnect is not a sequence gap; nothing to resync from a gap
    assert all(books[s].book.valid and (books[s].book.bids, books[s].book.asks) == server[s] for s in symbols)
