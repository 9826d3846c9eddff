"""The REST scheduler: weight budget, priorities, backoff, Retry-After; and a gap storm across
50 Binance symbols on a simulated clock that stays within the venue's weight limit."""

from __future__ import annotations

import json
import math
import random
from collections.abc import Iterable

import pytest
from live_support import rebuild_books

from cascadewatch.connectors.live import Frame, resolve_settings
from cascadewatch.connectors.live_config import BackoffConfig, LiveConfig
from cascadewatch.connectors.rest import Reply
from cascadewatch.connectors.rest_budget import Request, RestLimits, RestScheduler
from cascadewatch.connectors.venues import binance
from cascadewatch.connectors.venues.live_common import THIS, Action, Emit, Fetch

BACKOFF = BackoffConfig(initial_s=1.0, max_s=30.0, factor=2.0, jitter=0.25, reset_after_s=60.0)
HEADER = "X-MBX-USED-WEIGHT-1m"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _scheduler(clock: Clock, limit: int = 100, permanent_retry_s: float = 60.0) -> RestScheduler:
    limits = RestLimits(limit, weight_header=HEADER, permanent_retry_s=permanent_retry_s)
    return RestScheduler("binance-usdm", limits, BACKOFF, random.Random(3), clock)


def test_the_longest_invalid_book_goes_first_and_a_queued_path_is_not_queued_twice() -> None:
    clock = Clock()
    rest = _scheduler(clock)
    assert rest.submit("/poll", weight=1)  # a poll: after every book
    assert rest.submit("/depth?symbol=B", weight=20, since=5.0)
    assert rest.submit("/depth?symbol=A", weight=20, since=2.0)
    assert not rest.submit("/depth?symbol=A", weight=20, since=1.0)
    order = [rest.next_request()[0] for _ in range(3)]
    assert [r.path for r in order if r is not None] == ["/depth?symbol=A", "/depth?symbol=B", "/poll"]
    assert rest.next_request() == (None, math.inf)


def test_the_budget_holds_requests_until_weight_leaves_the_window_and_counts_the_throttle() -> None:
    clock = Clock()
    rest = _scheduler(clock, limit=50)
    for symbol in "ABC":
        rest.submit(f"/depth?symbol={symbol}", weight=20, since=0.0)
    first, _ = rest.next_request()
    clock.now = 10.0
    second, _ = rest.next_request()
    assert first is not None and second is not None
    request, wait = rest.next_request()
    assert request is None and wait == pytest.approx(50.0)  # the first 20 leave the window at t=60
    assert rest.throttles == 1
    rest.next_request()
    assert rest.throttles == 1  # one throttle per request held, not per look
    clock.now = 60.0
    third, _ = rest.next_request()
    assert third is not None and third.path == "/depth?symbol=C"


def test_the_used_weight_header_counts_other_clients_on_the_ip() -> None:
    clock = Clock()
    rest = _scheduler(clock, limit=100)
    rest.submit("/a", weight=20)
    request, _ = rest.next_request()
    assert request is not None
    assert rest.on_reply(request, Reply(200, b"{}", headers={HEADER.lower(): "90"}))  # 70 used by others
    rest.submit("/b", weight=20)
    assert rest.next_request() == (None, pytest.approx(60.0))
    clock.now = 60.0
    assert rest.next_request()[0] is not None


def test_failures_back_off_per_path_with_jitter_and_retry_after_stops_the_venue() -> None:
    clock = Clock()
    rest = _scheduler(clock)
    rest.submit("/a")
    rest.submit("/b")
    a, _ = rest.next_request()
    assert a is not None and a.path == "/a"
    assert not rest.on_reply(a, Reply(500))
    b, _ = rest.next_request()
    assert b is not None and b.path == "/b"  # /a backs off, /b does not
    request, wait = rest.next_request()
    assert request is None and 0.75 <= wait <= 1.25 and rest.failures == {"/a": "http_500"}
    clock.now = 2.0
    assert not rest.on_reply(b, Reply(429, retry_after=30.0))
    request, wait = rest.next_request()
    assert request is None and wait == pytest.approx(30.0)  # /a is ready but the venue said wait
    clock.now = 32.0
    first, _ = rest.next_request()
    second, _ = rest.next_request()
    assert first is not None and second is not None and {first.path, second.path} == {"/a", "/b"}


def test_a_permanent_error_is_retried_on_the_slow_schedule() -> None:
    clock = Clock()
    rest = _scheduler(clock, permanent_retry_s=60.0)
    rest.submit("/depth", weight=20, since=0.0)
    for attempt in range(3):
        request, _ = rest.next_request()
        assert request is not None and request.attempts == attempt + 1
        assert not rest.on_reply(request, Reply(403, b'{"code":-2015}'))
        assert rest.next_request() == (None, pytest.approx(60.0))
        assert rest.failures == {"/depth": "http_403"}
        clock.now += 60.0
    request, _ = rest.next_request()
    assert request is not None and rest.on_reply(request, Reply(200, b"{}")) and rest.failures == {}


def test_a_stale_answer_backs_off_growing_and_a_new_need_starts_again() -> None:
    clock = Clock()
    rest = _scheduler(clock)
    waits = []
    for _ in range(4):
        assert rest.submit("/depth", retry=True)
        request, wait = rest.next_request()
        waits.append(wait)
        clock.now += wait
        request, _ = rest.next_request()
        assert request is not None and rest.on_reply(request, Reply(200, b"{}"))
    assert [round(w) for w in waits] == [1, 2, 4, 8]  # 1, 2, 4, 8 s +-25 %
    assert rest.submit("/depth") and rest.next_request()[0] is not None  # not a retry: at once


# ------------------------------------------------------------------------------ gap storm


def _diff(symbol: str, k: int) -> bytes:
    data = {"e": "depthUpdate", "E": 1, "T": 1, "s": symbol, "U": 10 * k + 1, "u": 10 * k + 10, "pu": 10 * k}
    data |= {"b": [["100", f"{k + 1}"]], "a": [["101", "1"]]}
    return json.dumps({"stream": f"{symbol.lower()}@depth@100ms", "data": data}, separators=(",", ":")).encode()


def _snapshot(last_update_id: int) -> bytes:
    return b'{"lastUpdateId":%d,"E":1,"T":1,"bids":[["100","1"]],"asks":[["101","1"]]}' % last_update_id


class StormVenue:
    """50 symbols; each publishes diff ``k`` at ``k * 0.1`` s (``U = 10k+1, u = 10k+10``); diff
    ``STORM_K`` of every symbol is withheld (a gap storm at t = 10 s). A snapshot at time t
    has ``lastUpdateId`` equal to the ``u`` of the last published diff (a quiet book) for even
    symbols, inside the next one for odd symbols, and for every fifth symbol the first
    snapshot after the storm is stale (before the withheld diff). Other clients on the IP use
    600 weight a minute; the answer header reports it with ours."""

    STORM_K = 100
    LATENCY = 0.2
    OTHERS = 600

    def __init__(self, symbols: list[str], clock: Clock) -> None:
        self.symbols = symbols
        self.clock = clock
        self.sent: list[tuple[float, int]] = []
        self.stale_left = {s for i, s in enumerate(symbols) if i % 5 == 0}

    def published(self) -> int:
        return int(self.clock.now / 0.1 + 1e-9)

    def answer(self, request: Request) -> Reply:
        symbol = request.path.split("symbol=")[1].split("&")[0]
        k = self.published()
        if k > self.STORM_K and symbol in self.stale_left:
            self.stale_left.discard(symbol)
            last = 10 * (self.STORM_K - 1) + 5
        elif self.symbols.index(symbol) % 2 == 0:
            last = 10 * k + 10
        else:
            last = 10 * (k + 1) + 5
        used = sum(w for t, w in self.sent if t > self.clock.now - 60.0) + self.OTHERS
        return Reply(200, _snapshot(last), headers={HEADER.lower(): str(used)})


def test_a_gap_storm_across_50_symbols_stays_within_the_weight_budget() -> None:
    """Every symbol of 50 loses one diff at t = 10 s (ten stale first answers among them).
    Bootstrap (50 x 20 weight) and the storm (60 x 20) exceed what the minute allows with the
    600 used by others: the scheduler holds the rest until the bootstrap weight leaves the
    window. Measured: in no 60 s window does the venue see more than 2,400 weight (ours plus
    others'); 110 snapshot requests for 50 gaps (+50 at bootstrap, +10 for the stale ones);
    exactly 50 gaps and 50 resyncs; requests held back are counted as throttles; every book
    valid again by t = 65 s (61.7 s measured: the bootstrap weight leaves the window at 60 s,
    then the stale ones wait their backoff)."""
    symbols = [f"S{i:02d}USDT" for i in range(50)]
    clock = Clock()
    settings = resolve_settings("binance", LiveConfig())
    books = binance.LiveBooks(symbols, settings, clock=clock)
    rest = RestScheduler(
        "binance-usdm",
        RestLimits(settings.rest_weight_per_min, weight_header=HEADER),
        BACKOFF,
        random.Random(11),
        clock,
    )
    venue = StormVenue(symbols, clock)
    frames: list[Frame] = []
    in_flight: list[tuple[float, Request]] = []
    delivered = -1
    valid_again: float | None = None

    def apply(actions: Iterable[Action] | None, payload: bytes = b"") -> None:
        for action in actions or ():
            if action is THIS:
                frames.append((0, "binance-usdm", payload))
            elif isinstance(action, Emit):
                frames.append((0, "binance-usdm!rest" if action.rest else "binance-usdm", action.payload))
            elif isinstance(action, Fetch):
                assert rest.submit(action.path, action.weight, action.since, action.retry)

    while clock.now < 120.0:
        for k in range(delivered + 1, venue.published() + 1):
            if k != venue.STORM_K:
                for symbol in symbols:
                    payload = _diff(symbol, k)
                    apply(books.on_frame(0, payload), payload)
        delivered = venue.published()
        while True:
            request, wait = rest.next_request()
            if request is None:
                break
            venue.sent.append((clock.now, request.weight))
            in_flight.append((clock.now + venue.LATENCY, request))
        for due, request in [item for item in in_flight if item[0] <= clock.now]:
            in_flight.remove((due, request))
            reply = venue.answer(request)
            assert rest.on_reply(request, reply)
            apply(books.on_rest(request.path, 0, reply.body))
        if books.gaps == 50 and valid_again is None and not books.invalid():
            valid_again = clock.now
        clock.now = round(clock.now + 0.05, 2)

    for t, _ in venue.sent:
        window = sum(w for s, w in venue.sent if t - 60.0 < s <= t)
        assert window + venue.OTHERS <= 2400
    assert len(venue.sent) == 110 and books.gaps == 50 and books.stale_snapshots == 10
    # 1,800 weight left by others, 1,000 spent at bootstrap: 40 storm requests fit at t = 10 s;
    # the 10 others and the retries of the 8 stale answers among those 40 wait for t = 60 s
    assert rest.throttles == 18
    assert valid_again is not None and valid_again <= 65.0
    rebuilt, statuses = rebuild_books(frames)
    assert statuses.count("gap") == 50 and statuses.count("resync") == 50
    assert all(keeper.book.valid for keeper in rebuilt.values())


def test_the_venue_header_reaches_the_scheduler_through_http() -> None:
    """A real HTTP answer of the fake venue carries ``X-MBX-USED-WEIGHT-1m`` (2,370 used by
    others plus our 20): the next depth request (20) would pass 2,400 and waits the minute."""
    from live_fakes import FakeBinance, SimBook

    from cascadewatch.connectors.rest import http_get

    clock = Clock()
    with FakeBinance() as fake:
        fake.books["BTCUSDT"] = SimBook(seed=1)
        fake.used_weight_others = 2370
        rest = RestScheduler("binance-usdm", RestLimits(2400, weight_header=HEADER), BACKOFF, random.Random(1), clock)
        rest.submit("/fapi/v1/depth?symbol=BTCUSDT&limit=1000", weight=20, since=0.0)
        request, _ = rest.next_request()
        assert request is not None
        reply = http_get(fake.rest_url + request.path, 2.0)
    assert reply.status == 200 and reply.header_int(HEADER) == 2390
    assert rest.on_reply(request, reply)
    rest.submit("/fapi/v1/depth?symbol=ETHUSDT&limit=1000", weight=20, since=0.0)
    assert rest.next_request() == (None, pytest.approx(60.0)) and rest.throttles == 1
