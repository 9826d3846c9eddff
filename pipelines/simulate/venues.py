"""Venue frame writers: what Binance USD-M, Bybit v5 linear, OKX v5, BitMEX, Deribit and Hyperliquid
would publish.

Each writer turns the simulated market of its venue into the exact text frames of the venue's
public feeds, with the venue's real limits, and hands them to a :class:`FrameSink` that writes
them in receive-time order into a recording (``cascadewatch.connectors.recording`` format):

- Binance USD-M, combined stream ``/stream?streams=...``: ``aggTrade`` (one per price level of a
  taker order), ``depthUpdate`` (``U``/``u``/``pu``), ``forceOrder`` (at most ONE per symbol per
  second: the latest; the others are hidden, as on the venue), ``markPriceUpdate`` (1 s); REST
  ``exchangeInfo`` at start, ``/fapi/v1/depth`` snapshots (``U <= lastUpdateId <= u`` of the
  first diff after it) and ``/fapi/v1/openInterest`` polls.
- Bybit v5 linear: ``publicTrade`` (one frame per taker order), ``orderbook.50`` (snapshot, then
  deltas of the top-50 view with ``u`` + 1 and a growing ``seq``), ``allLiquidation`` (every
  liquidation, batched per 500 ms, ``S: "Buy"`` = a long liquidated, ``p`` = bankruptcy price),
  ``tickers`` (snapshot then deltas each second with mark, index, funding, open interest); REST
  ``instruments-info`` at start.
- OKX v5 public: ``trades`` (sizes in contracts of 0.01 BTC), ``books`` (400 levels; snapshot
  ``prevSeqId = -1`` then updates chained ``prevSeqId`` = previous ``seqId``, with the CRC32
  checksum of the top 25 levels), ``liquidation-orders`` (at most one per instrument per second,
  contracts, ``posSide``), ``mark-price`` (1 s), ``open-interest`` (3 s), ``funding-rate``
  (60 s); subscribe acknowledgements and REST ``instruments`` at start.
- BitMEX realtime (opt-in: only when a run names ``bitmex``), XBTUSDT: ``orderBookL2_25``
  (``partial``, then insert/update/delete by level id), ``trade``, ``liquidation`` (every
  liquidation order), ``instrument`` (mark, index, funding, open interest each second); the
  welcome, acks and the instrument partial on connect, REST ``/api/v1/instrument/active``.
- Deribit and Hyperliquid (:class:`DeribitFeed`, :class:`HyperliquidFeed`; only scenarios that
  name them, ``multi-venue-wide``): see their docstrings.

Prices are integer ticks of 0.1 and sizes integer lots of 0.001 BTC; they are formatted as the
venues do (Binance and Bybit ``"96512.30"`` / ``"0.125"``, OKX ``"96512.3"`` / ``"12.5"``).
Receive time = event time + the venue's latency + a small random jitter, non-decreasing per
connection. Faults on request: a disconnect (``close`` line, silence, ``open``, fresh snapshot)
and a sequence gap (one book frame lost, then the resynchronising snapshot a live client
would fetch).
"""

from __future__ import annotations

import heapq
import random
import zlib
from collections import Counter
from datetime import UTC, datetime, timedelta

from cascadewatch.connectors.recording import RecordingWriter
from cascadewatch.connectors.units import NS_PER_MS
from cascadewatch.connectors.venues.registry import venue_module, venue_name
from cascadewatch.pipelines.simulate.book import Book

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

__all__ = [
    "FrameSink",
    "BinanceFeed",
    "BybitFeed",
    "OkxFeed",
    "BitmexFeed",
    "DeribitFeed",
    "HyperliquidFeed",
    "NullFeed",
    "FRAME_WRITERS",
    "frame_writer",
]


def px2(t: int) -> str:
    """Ticks of 0.1 -> ``"96512.30"`` (Binance, Bybit BTCUSDT)."""
    q, r = divmod(t, 10)
    return f"{q}.{r}0"


def px1(t: int) -> str:
    """Ticks of 0.1 -> ``"96512.3"`` / ``"96512"`` (OKX)."""
    q, r = divmod(t, 10)
    return f"{q}.{r}" if r else str(q)


def qty3(lots: int) -> str:
    """Lots of 0.001 BTC -> ``"0.125"``."""
    q, r = divmod(lots, 1000)
    return f"{q}.{r:03d}"


def contracts(lots: int) -> str:
    """Lots of 0.001 BTC -> OKX contracts of 0.01 BTC: ``"12.5"`` / ``"3"``."""
    q, r = divmod(lots, 10)
    return f"{q}.{r}" if r else str(q)


class _Strings:
    """Per-book caches of the formatted price of each cell (formatting is the hot path)."""

    def __init__(self, book: Book, fmt) -> None:
        self._ticks = book.ticks
        self._fmt = fmt
        self._cache: dict[int, str] = {}

    def __call__(self, cell: int) -> str:
        s = self._cache.get(cell)
        if s is None:
            s = self._cache[cell] = self._fmt(self._ticks[cell])
        return s


class FrameSink:
    """Orders frames by receive time and writes those older than the watermark (``writer``
    ``None``: a run without a recording, whose feeds are :class:`NullFeed`)."""

    def __init__(self, writer: RecordingWriter | None) -> None:
        self.writer = writer
        self._heap: list[tuple[int, int, str, str]] = []
        self._n = 0

    def push(self, recv_ns: int, source: str, payload: str) -> None:
        """Queue a frame to be written once time passes ``recv_ns``."""
        self._n += 1
        heapq.heappush(self._heap, (recv_ns, self._n, source, payload))

    def release(self, upto_ns: int) -> None:
        """Write every frame received before ``upto_ns`` (no later frame can precede them)."""
        if self.writer is None:
            self._heap.clear()
            return
        heap, write = self._heap, self.writer.write
        while heap and heap[0][0] < upto_ns:
            recv, _, source, payload = heapq.heappop(heap)
            write(recv, source, payload)

    def close(self) -> None:
        """Write every frame still queued."""
        self.release(1 << 62)


class Feed:
    """What the three writers share: connection state, receive times, fault plumbing.

    The runner calls ``connect``/``disconnect``, ``trade`` for every taker order, ``liquidation``
    for every forced close, ``publish_book`` at the end of every step and ``second`` at every
    whole second (mark price, open interest, throttled liquidation feeds).
    """

    venue = ""
    """The venue written: its name in the venue registry (``connectors/venues/registry.py``)."""
    url = ""

    def __init__(self, sink: FrameSink, book: Book, rng: random.Random, latency_ms: float) -> None:
        self.source = venue_module(self.venue).SOURCE
        self.sink = sink
        self.book = book
        self.rng = rng
        self.latency_ms = latency_ms
        self.connected = False
        self.connections = 0
        self._last_ws = 0
        self._last_rest = 0
        self.drop_next_book = False
        self.resync_at: int | None = None
        self.counts: Counter[str] = Counter()

    # ----------------------------------------------------------------- plumbing
    def _ws(self, ms: int, payload: str, kind: str) -> None:
        if not self.connected:
            return
        recv = ms * NS_PER_MS + int((self.latency_ms + self.rng.random() * 6.0) * NS_PER_MS)
        if recv <= self._last_ws:
            recv = self._last_ws + 1_000
        self._last_ws = recv
        self.sink.push(recv, self.source, payload)
        self.counts[kind] += 1

    def _rest(self, ms: int, path: str, body: str) -> None:
        recv = max(ms * NS_PER_MS + 2 * NS_PER_MS + int(self.rng.random() * NS_PER_MS), self._last_rest + 1_000)
        self._last_rest = recv
        self.sink.push(recv, self.source + "!rest", '{"path":"%s","body":%s}' % (path, body))
        self.counts["rest"] += 1

    def _conn(self, ms: int, event: str, extra: str = "") -> None:
        recv = max(ms * NS_PER_MS, self._last_ws + 1_000)
        self._last_ws = recv
        self.sink.push(recv, self.source + "!conn", '{"event":"%s","url":"%s"%s}' % (event, self.url, extra))
        self.counts["conn"] += 1

    def connect(self, ms: int) -> None:
        """Open the connection (``!conn`` open line), subscribe, and receive the book snapshot."""
        self.connected = True
        self.connections += 1
        self._conn(ms, "open")
        self._on_connect(ms)

    def disconnect(self, ms: int, reason: str = "simulated disconnect") -> None:
        self._conn(ms, "close", ',"code":1006,"reason":"%s"' % reason)
        self.connected = False

    def lose_book_frame(self) -> None:
        """Fault: the next book frame is lost; the client resyncs about 1.5 s later."""
        self.drop_next_book = True

    def publish_book(self, ms: int) -> None:
        book = self.book
        if not (book.changed_bids or book.changed_asks):
            self._maybe_resync(ms)
            return
        send = self.connected and not self.drop_next_book
        if self.connected and self.drop_next_book:
            self.drop_next_book = False
            self.resync_at = ms + 1500
            self.counts["book_lost"] += 1
        self._book_frame(ms, send)
        book.changed_bids.clear()
        book.changed_asks.clear()
        self._maybe_resync(ms)

    def _maybe_resync(self, ms: int) -> None:
        if self.resync_at is not None and ms >= self.resync_at:
            self.resync_at = None
            if self.connected:
                self._resync(ms)

    # venue specific
    def _on_connect(self, ms: int) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _book_frame(self, ms: int, send: bool) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _resync(self, ms: int) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def trade(self, ms: int, side: str, fills: list[tuple[int, int]]) -> None:  # pragma: no cover
        raise NotImplementedError

    def liquidation(
        self, ms: int, position: str, lots: int, fills: list[tuple[int, int]], bankruptcy: int
    ) -> None:  # pragma: no cover
        """A forced close of ``lots`` (``fills``: what traded in the book, possibly nothing)."""
        raise NotImplementedError

    def second(
        self, ms: int, mark: float, index: float, funding: float, oi_lots: int, last: int
    ) -> None:  # pragma: no cover
        raise NotImplementedError


class BinanceFeed(Feed):
    """Binance USD-M futures, combined stream, BTCUSDT (see the module docstring)."""

    venue = "binance"

    def __init__(self, sink: FrameSink, book: Book, rng: random.Random, latency_ms: float, depth_ms: int) -> None:
        super().__init__(sink, book, rng, latency_ms)
        self.px = _Strings(book, px2)
        self.depth_stream = "btcusdt@depth" if depth_ms == 250 else f"btcusdt@depth@{depth_ms}ms"
        self.url = (
            "wss://fstream.binance.com/stream?streams=btcusdt@aggTrade/"
            f"{self.depth_stream}/btcusdt@forceOrder/btcusdt@markPrice@1s"
        )
        self.u = 7_400_000_000_000 + rng.randrange(1_000_000_000)
        self.agg_id = 2_900_000_000 + rng.randrange(10_000_000)
        self.trade_id = 6_300_000_000 + rng.randrange(10_000_000)
        self._liq: str | None = None

    def _on_connect(self, ms: int) -> None:
        if self.connections == 1:
            self._rest(ms, "/fapi/v1/exchangeInfo", self._exchange_info(ms))
        self._ws(ms + 1, '{"result":null,"id":1}', "control")
        self._depth_snapshot(ms + 3)

    @staticmethod
    def _exchange_info(ms: int) -> str:
        return (
            '{"timezone":"UTC","serverTime":%d,"futuresType":"U_MARGINED","rateLimits":[],"exchangeFilters":[],'
            '"assets":[{"asset":"USDT","marginAvailable":true,"autoAssetExchange":"-10000"}],'
            '"symbols":[{"symbol":"BTCUSDT","pair":"BTCUSDT","contractType":"PERPETUAL","deliveryDate":4133404800000,'
            '"onboardDate":1569398400000,"status":"TRADING","maintMarginPercent":"2.5000","requiredMarginPercent":"5.0000",'
            '"baseAsset":"BTC","quoteAsset":"USDT","marginAsset":"USDT","pricePrecision":2,"quantityPrecision":3,'
            '"baseAssetPrecision":8,"quotePrecision":8,"underlyingType":"COIN","underlyingSubType":["PoW"],'
            '"triggerProtect":"0.0500","liquidationFee":"0.012500","marketTakeBound":"0.05",'
            '"filters":[{"minPrice":"261.10","maxPrice":"809484","filterType":"PRICE_FILTER","tickSize":"0.10"},'
            '{"stepSize":"0.001","filterType":"LOT_SIZE","maxQty":"1000","minQty":"0.001"},'
            '{"stepSize":"0.001","filterType":"MARKET_LOT_SIZE","maxQty":"120","minQty":"0.001"},'
            '{"notional":"100","filterType":"MIN_NOTIONAL"}],'
            '"orderTypes":["LIMIT","MARKET","STOP","STOP_MARKET","TAKE_PROFIT","TAKE_PROFIT_MARKET","TRAILING_STOP_MARKET"],'
            '"timeInForce":["GTC","IOC","FOK","GTX","GTD"]}]}' % ms
        )

    def _depth_snapshot(self, ms: int) -> None:
        """REST ``/fapi/v1/depth``: the book now; the next diff will start at ``U = lastUpdateId``."""
        book = self.book
        px = self.px
        bids = ",".join('["%s","%s"]' % (px(c), qty3(q)) for c, q in book.levels("bid", 1000))
        asks = ",".join('["%s","%s"]' % (px(c), qty3(q)) for c, q in book.levels("ask", 1000))
        body = '{"lastUpdateId":%d,"E":%d,"T":%d,"bids":[%s],"asks":[%s]}' % (self.u + 1, ms, ms - 1, bids, asks)
        self._rest(ms, "/fapi/v1/depth?symbol=BTCUSDT&limit=1000", body)

    def _resync(self, ms: int) -> None:
        self._depth_snapshot(ms)

    def _book_frame(self, ms: int, send: bool) -> None:
        book = self.book
        n = len(book.changed_bids) + len(book.changed_asks)
        pu = self.u
        first = pu + 1
        self.u = pu + n + self.rng.randrange(2 * n + 1)
        if not send:
            return
        px = self.px
        b = ",".join('["%s","%s"]' % (px(c), qty3(book.bids[c])) for c in sorted(book.changed_bids))
        a = ",".join('["%s","%s"]' % (px(c), qty3(book.asks[c])) for c in sorted(book.changed_asks))
        self._ws(
            ms,
            '{"stream":"%s","data":{"e":"depthUpdate","E":%d,"T":%d,"s":"BTCUSDT","U":%d,"u":%d,"pu":%d,'
            '"b":[%s],"a":[%s]}}' % (self.depth_stream, ms, ms - 2, first, self.u, pu, b, a),
            "book",
        )

    def trade(self, ms: int, side: str, fills: list[tuple[int, int]]) -> None:
        """Write the taker ``fills`` (cell, lots) of a ``side`` order at ``ms`` as aggTrade frames."""
        m = "true" if side == "sell" else "false"
        px = self.px
        for c, q in fills:
            n = 1 + (q > 50) + (q > 500)
            f = self.trade_id + 1
            self.trade_id += n
            self.agg_id += 1
            self._ws(
                ms + 1,
                '{"stream":"btcusdt@aggTrade","data":{"e":"aggTrade","E":%d,"a":%d,"s":"BTCUSDT","p":"%s",'
                '"q":"%s","f":%d,"l":%d,"T":%d,"m":%s}}'
                % (ms + 1, self.agg_id, px(c), qty3(q), f, self.trade_id, ms, m),
                "trade",
            )

    def liquidation(self, ms: int, position: str, lots: int, fills: list[tuple[int, int]], bankruptcy: int) -> None:
        """Hold the liquidation order of a ``position`` until the second's push.

        Binance pushes at most one per second: a newer one hides the one held.
        """
        if self._liq is not None:
            self.counts["liquidation_hidden"] += 1
        filled = sum(q for _, q in fills)
        self._liq = (
            '{"stream":"btcusdt@forceOrder","data":{"e":"forceOrder","E":%%d,"o":{"s":"BTCUSDT","S":"%s","o":"LIMIT",'
            '"f":"IOC","q":"%s","p":"%s","ap":"%.2f","X":"%s","l":"%s","z":"%s","T":%d}}}'
            % (
                "SELL" if position == "long" else "BUY",
                qty3(lots),
                px2(bankruptcy),
                self.book.avg_tick(fills) / 10.0 if fills else 0.0,
                "FILLED" if filled == lots else "EXPIRED",
                qty3(fills[-1][1] if fills else 0),
                qty3(filled),
                ms,
            )
        )

    def second(self, ms: int, mark: float, index: float, funding: float, oi_lots: int, last: int) -> None:
        """The per-second frames: the held liquidation, mark price and funding, open interest."""
        if self._liq is not None:
            self._ws(ms + 4, self._liq % (ms + 4), "liquidation")
            self._liq = None
        next_funding = (ms // 28_800_000 + 1) * 28_800_000
        self._ws(
            ms,
            '{"stream":"btcusdt@markPrice@1s","data":{"e":"markPriceUpdate","E":%d,"s":"BTCUSDT","p":"%.8f",'
            '"P":"%.8f","i":"%.8f","r":"%.8f","T":%d}}' % (ms, mark / 10, mark / 10, index / 10, funding, next_funding),
            "mark_price",
        )
        if ms % 5000 == 0 and self.connected:
            self._rest(
                ms,
                "/fapi/v1/openInterest?symbol=BTCUSDT",
                '{"symbol":"BTCUSDT","openInterest":"%s","time":%d}' % (qty3(oi_lots), ms),
            )


class BybitFeed(Feed):
    """Bybit v5 public linear, BTCUSDT (see the module docstring)."""

    venue = "bybit"
    url = "wss://stream.bybit.com/v5/public/linear"
    DEPTH = 50

    def __init__(self, sink: FrameSink, book: Book, rng: random.Random, latency_ms: float) -> None:
        super().__init__(sink, book, rng, latency_ms)
        self.u = 40_000_000 + rng.randrange(1_000_000)
        self.seq = 320_000_000_000 + rng.randrange(1_000_000_000)
        self.cs = 9_000_000_000 + rng.randrange(1_000_000)
        self.px = _Strings(book, px2)
        self._pub_b: dict[int, int] = {}
        self._pub_a: dict[int, int] = {}
        self._pub_edge = (-1, -1, 0, 0)  # best bid, best ask, deepest published bid and ask cells
        self._ticker_snapshot = False
        self._liqs: list[str] = []
        self._last_px = 0
        self._conn_id = "".join(rng.choice("0123456789abcdefghijklmnopqrstuv") for _ in range(20))

    def _uuid(self) -> str:
        r = self.rng.getrandbits(128)
        h = f"{r:032x}"
        return f"{h[:8]}-{h[8:12]}-5{h[13:16]}-{h[16:20]}-{h[20:]}"

    def _on_connect(self, ms: int) -> None:
        if self.connections == 1:
            self._rest(
                ms,
                "/v5/market/instruments-info?category=linear&symbol=BTCUSDT",
                '{"retCode":0,"retMsg":"OK","result":{"category":"linear","list":[{"symbol":"BTCUSDT",'
                '"contractType":"LinearPerpetual","status":"Trading","baseCoin":"BTC","quoteCoin":"USDT",'
                '"launchTime":"1585526400000","deliveryTime":"0","deliveryFeeRate":"","priceScale":"2",'
                '"leverageFilter":{"minLeverage":"1","maxLeverage":"100.00","leverageStep":"0.01"},'
                '"priceFilter":{"minPrice":"0.10","maxPrice":"1999999.80","tickSize":"0.10"},'
                '"lotSizeFilter":{"maxOrderQty":"1190.000","minOrderQty":"0.001","qtyStep":"0.001",'
                '"postOnlyMaxOrderQty":"1190.000","maxMktOrderQty":"119.000","minNotionalValue":"5"},'
                '"unifiedMarginTrade":true,"fundingInterval":480,"settleCoin":"USDT","copyTrading":"both",'
                '"upperFundingRate":"0.005","lowerFundingRate":"-0.005","isPreListing":false}],'
                '"nextPageCursor":""},"retExtInfo":{},"time":%d}' % ms,
            )
        self._ws(
            ms + 1,
            '{"success":true,"ret_msg":"","conn_id":"%s","req_id":"","op":"subscribe"}' % self._conn_id,
            "control",
        )
        self._snapshot(ms + 2)
        self._ticker_snapshot = True

    def _view(self) -> tuple[dict[int, int], dict[int, int]]:
        book = self.book
        b = dict(book.levels("bid", self.DEPTH, 400))
        a = dict(book.levels("ask", self.DEPTH, 400))
        self._pub_edge = (
            book.bb,
            book.ba,
            min(b) if len(b) >= self.DEPTH else -1,
            max(a) if len(a) >= self.DEPTH else book.n,
        )
        return b, a

    def _snapshot(self, ms: int) -> None:
        self._pub_b, self._pub_a = self._view()
        px = self.px
        b = ",".join('["%s","%s"]' % (px(c), qty3(q)) for c, q in self._pub_b.items())
        a = ",".join('["%s","%s"]' % (px(c), qty3(q)) for c, q in self._pub_a.items())
        self.u += 1
        self.seq += 1 + self.rng.randrange(50)
        self._ws(
            ms,
            '{"topic":"orderbook.50.BTCUSDT","type":"snapshot","ts":%d,"data":{"s":"BTCUSDT","b":[%s],"a":[%s],'
            '"u":%d,"seq":%d},"cts":%d}' % (ms, b, a, self.u, self.seq, ms - 2),
            "book",
        )

    def _resync(self, ms: int) -> None:
        self._snapshot(ms)

    def _book_frame(self, ms: int, send: bool) -> None:
        book = self.book
        bb, ba, deep_b, deep_a = self._pub_edge
        if (
            bb == book.bb
            and ba == book.ba
            and all(c < deep_b for c in book.changed_bids)
            and all(c > deep_a for c in book.changed_asks)
        ):
            return  # nothing changed inside the published top 50
        new_b, new_a = self._view()
        old_b, old_a = self._pub_b, self._pub_a
        db = [(c, q) for c, q in new_b.items() if old_b.get(c) != q] + [(c, 0) for c in old_b if c not in new_b]
        da = [(c, q) for c, q in new_a.items() if old_a.get(c) != q] + [(c, 0) for c in old_a if c not in new_a]
        self._pub_b, self._pub_a = new_b, new_a
        if not (db or da):
            return
        self.u += 1
        self.seq += 1 + self.rng.randrange(50)
        if not send:
            return
        px = self.px
        db.sort(reverse=True)
        da.sort()
        b = ",".join('["%s","%s"]' % (px(c), qty3(q)) for c, q in db)
        a = ",".join('["%s","%s"]' % (px(c), qty3(q)) for c, q in da)
        self._ws(
            ms,
            '{"topic":"orderbook.50.BTCUSDT","type":"delta","ts":%d,"data":{"s":"BTCUSDT","b":[%s],"a":[%s],'
            '"u":%d,"seq":%d},"cts":%d}' % (ms, b, a, self.u, self.seq, ms - 2),
            "book",
        )

    def trade(self, ms: int, side: str, fills: list[tuple[int, int]]) -> None:
        """Write the taker ``fills`` (cell, lots) of a ``side`` order at ``ms`` as publicTrade frames."""
        s = "Buy" if side == "buy" else "Sell"
        tick = self.book.tick
        rows = []
        for c, q in fills:
            t = tick(c)
            last = self._last_px
            direction = (
                "PlusTick"
                if t > last
                else "MinusTick"
                if t < last
                else "ZeroPlusTick"
                if side == "buy"
                else "ZeroMinusTick"
            )
            self._last_px = t
            rows.append(
                '{"T":%d,"s":"BTCUSDT","S":"%s","v":"%s","p":"%s","L":"%s","i":"%s","BT":false}'
                % (ms, s, qty3(q), px2(t), direction, self._uuid())
            )
        self._ws(
            ms + 2,
            '{"topic":"publicTrade.BTCUSDT","type":"snapshot","ts":%d,"data":[%s]}' % (ms + 2, ",".join(rows)),
            "trade",
        )

    def liquidation(self, ms: int, position: str, lots: int, fills: list[tuple[int, int]], bankruptcy: int) -> None:
        """Queue a liquidation of a ``position`` for the next allLiquidation push."""
        self._liqs.append(
            '{"T":%d,"s":"BTCUSDT","S":"%s","v":"%s","p":"%s"}'
            % (ms, "Buy" if position == "long" else "Sell", qty3(lots), px2(bankruptcy))
        )

    def half_second(self, ms: int) -> None:
        """``allLiquidation`` pushes every 500 ms what was liquidated since the last push."""
        if self._liqs:
            self._ws(
                ms,
                '{"topic":"allLiquidation.BTCUSDT","type":"snapshot","ts":%d,"data":[%s]}' % (ms, ",".join(self._liqs)),
                "liquidation",
            )
            self._liqs = []

    def second(self, ms: int, mark: float, index: float, funding: float, oi_lots: int, last: int) -> None:
        """The per-second frames: the due allLiquidation push, then the tickers.

        Tickers carry mark, index, open interest and funding.
        """
        self.half_second(ms)
        book = self.book
        self.cs += 1 + self.rng.randrange(1000)
        mark_t, index_t = int(round(mark)), int(round(index))
        bb, ba = (book.bb, book.ba) if 0 <= book.bb and book.ba < book.n else (book.last_cell, book.last_cell + 1)
        oi_value = oi_lots * 0.001 * mark / 10
        next_funding = (ms // 28_800_000 + 1) * 28_800_000
        common = (
            '"markPrice":"%s","indexPrice":"%s","openInterest":"%s","openInterestValue":"%.2f","fundingRate":"%.6f",'
            '"lastPrice":"%s","bid1Price":"%s","bid1Size":"%s","ask1Price":"%s","ask1Size":"%s"'
            % (
                px2(mark_t),
                px2(index_t),
                qty3(oi_lots),
                oi_value,
                funding,
                px2(last),
                px2(book.tick(bb)),
                qty3(book.bids[bb]),
                px2(book.tick(ba)),
                qty3(book.asks[ba]),
            )
        )
        if self._ticker_snapshot:
            self._ticker_snapshot = False
            self._ws(
                ms,
                '{"topic":"tickers.BTCUSDT","type":"snapshot","data":{"symbol":"BTCUSDT","tickDirection":"ZeroPlusTick",'
                '"price24hPcnt":"0.004120","prevPrice24h":"%s","highPrice24h":"%s","lowPrice24h":"%s","prevPrice1h":"%s",'
                '"nextFundingTime":"%d","turnover24h":"4893217761.2011","volume24h":"50712.430",'
                '"curPreListingPhase":"",%s},"cs":%d,"ts":%d}'
                % (
                    px2(last),
                    px2(int(last * 1.012)),
                    px2(int(last * 0.987)),
                    px2(last),
                    next_funding,
                    common,
                    self.cs,
                    ms,
                ),
                "ticker",
            )
        else:
            self._ws(
                ms,
                '{"topic":"tickers.BTCUSDT","type":"delta","data":{"symbol":"BTCUSDT",%s},"cs":%d,"ts":%d}'
                % (common, self.cs, ms),
                "ticker",
            )


class OkxFeed(Feed):
    """OKX v5 public, BTC-USDT-SWAP (see the module docstring)."""

    venue = "okx"
    url = "wss://ws.okx.com:8443/ws/v5/public"
    CHANNELS = ("trades", "books", "mark-price", "open-interest", "funding-rate")

    def __init__(self, sink: FrameSink, book: Book, rng: random.Random, latency_ms: float) -> None:
        super().__init__(sink, book, rng, latency_ms)
        self.seq_id = 18_000_000_000 + rng.randrange(1_000_000_000)
        self.trade_id = 1_700_000_000 + rng.randrange(10_000_000)
        self._liq: str | None = None
        self._conn_id = "%08x" % rng.getrandbits(32)
        self.px = _Strings(book, px1)
        self._top = (-1, -1, 0, 0, 0)  # best bid, best ask, 25th bid and ask cells, checksum
        self._parts: tuple[dict[int, str], dict[int, str]] = ({}, {})  # cell -> "px:sz" of bids, asks

    def _on_connect(self, ms: int) -> None:
        if self.connections == 1:
            self._rest(
                ms,
                "/api/v5/public/instruments?instType=SWAP",
                '{"code":"0","msg":"","data":[{"alias":"","auctionEndTime":"","baseCcy":"","category":"1",'
                '"ctMult":"1","ctType":"linear","ctVal":"0.01","ctValCcy":"BTC","expTime":"","instFamily":"BTC-USDT",'
                '"instId":"BTC-USDT-SWAP","instType":"SWAP","lever":"100","listTime":"1611916828000","lotSz":"0.01",'
                '"maxIcebergSz":"100000000.0000000000000000","maxLmtAmt":"20000000","maxLmtSz":"100000000",'
                '"maxMktAmt":"","maxMktSz":"12000","maxStopSz":"12000","maxTriggerSz":"100000000.0000000000000000",'
                '"maxTwapSz":"100000000.0000000000000000","minSz":"0.01","optType":"","quoteCcy":"","ruleType":"normal",'
                '"settleCcy":"USDT","state":"live","stk":"","tickSz":"0.1","uly":"BTC-USDT"}]}',
            )
        ack = 1
        for ch in self.CHANNELS:
            self._ws(
                ms + ack,
                '{"event":"subscribe","arg":{"channel":"%s","instId":"BTC-USDT-SWAP"},"connId":"%s"}'
                % (ch, self._conn_id),
                "control",
            )
            ack += 1
        self._ws(
            ms + ack,
            '{"event":"subscribe","arg":{"channel":"liquidation-orders","instType":"SWAP"},"connId":"%s"}'
            % self._conn_id,
            "control",
        )
        self._snapshot(ms + ack + 1)

    def _levels(self, side: str, levels: list[tuple[int, int]]) -> list[str]:
        px = self.px
        return [
            '["%s","%s","0","%d"]' % (px(c), contracts(q), 1 + q // 400) if q else '["%s","0","0","0"]' % px(c)
            for c, q in levels
        ]

    def _checksum(self) -> int:
        """CRC32 (signed) of ``bid:sz:ask:sz:...`` over the top 25 levels, as OKX defines it.

        Recomputed only when a change can have touched the top 25 levels.
        """
        book = self.book
        parts_b, parts_a = self._parts
        for c in book.changed_bids:
            parts_b.pop(c, None)
        for c in book.changed_asks:
            parts_a.pop(c, None)
        bb, ba, deep_b, deep_a, crc = self._top
        if (
            bb == book.bb
            and ba == book.ba
            and all(c < deep_b for c in book.changed_bids)
            and all(c > deep_a for c in book.changed_asks)
        ):
            return crc
        px = self.px
        bids = book.levels("bid", 25)
        asks = book.levels("ask", 25)
        parts = []
        for i in range(max(len(bids), len(asks))):
            if i < len(bids):
                c = bids[i][0]
                part = parts_b.get(c)
                if part is None:
                    part = parts_b[c] = "%s:%s" % (px(c), contracts(bids[i][1]))
                parts.append(part)
            if i < len(asks):
                c = asks[i][0]
                part = parts_a.get(c)
                if part is None:
                    part = parts_a[c] = "%s:%s" % (px(c), contracts(asks[i][1]))
                parts.append(part)
        if len(parts_b) > 2000 or len(parts_a) > 2000:
            parts_b.clear()
            parts_a.clear()
        crc = zlib.crc32(":".join(parts).encode())
        crc = crc - (1 << 32) if crc >= 1 << 31 else crc
        self._top = (
            book.bb,
            book.ba,
            bids[-1][0] if len(bids) == 25 else -1,
            asks[-1][0] if len(asks) == 25 else book.n,
            crc,
        )
        return crc

    def _snapshot(self, ms: int) -> None:
        book = self.book
        bids = ",".join(self._levels("bid", book.levels("bid", 400)))
        asks = ",".join(self._levels("ask", book.levels("ask", 400)))
        self.seq_id += 1 + self.rng.randrange(20)
        self._ws(
            ms,
            '{"arg":{"channel":"books","instId":"BTC-USDT-SWAP"},"action":"snapshot","data":[{"asks":[%s],"bids":[%s],'
            '"ts":"%d","checksum":%d,"prevSeqId":-1,"seqId":%d}]}' % (asks, bids, ms, self._checksum(), self.seq_id),
            "book",
        )

    def _resync(self, ms: int) -> None:
        self._snapshot(ms)

    def _book_frame(self, ms: int, send: bool) -> None:
        book = self.book
        prev = self.seq_id
        self.seq_id += 1 + self.rng.randrange(3 * (len(book.changed_bids) + len(book.changed_asks)) + 1)
        if not send:
            self._top = (-2, -2, 0, 0, 0)  # changes we do not look at: the cached checksum is stale
            self._parts[0].clear()
            self._parts[1].clear()
            return
        asks = ",".join(self._levels("ask", [(c, book.asks[c]) for c in sorted(book.changed_asks)]))
        bids = ",".join(self._levels("bid", [(c, book.bids[c]) for c in sorted(book.changed_bids, reverse=True)]))
        self._ws(
            ms,
            '{"arg":{"channel":"books","instId":"BTC-USDT-SWAP"},"action":"update","data":[{"asks":[%s],"bids":[%s],'
            '"ts":"%d","checksum":%d,"prevSeqId":%d,"seqId":%d}]}'
            % (asks, bids, ms, self._checksum(), prev, self.seq_id),
            "book",
        )

    def trade(self, ms: int, side: str, fills: list[tuple[int, int]]) -> None:
        """Write the taker ``fills`` (cell, lots) of a ``side`` order at ``ms`` as one trades frame."""
        px = self.px
        rows = []
        for c, q in fills:
            self.trade_id += 1
            rows.append(
                '{"instId":"BTC-USDT-SWAP","tradeId":"%d","px":"%s","sz":"%s","side":"%s","ts":"%d","count":"%d"}'
                % (self.trade_id, px(c), contracts(q), side, ms, 1 + q // 300)
            )
        self._ws(ms + 3, '{"arg":{"channel":"trades","instId":"BTC-USDT-SWAP"},"data":[%s]}' % ",".join(rows), "trade")

    def liquidation(self, ms: int, position: str, lots: int, fills: list[tuple[int, int]], bankruptcy: int) -> None:
        """Hold the liquidation of a ``position`` (OKX pushes at most one per second; a newer one hides it)."""
        if self._liq is not None:
            self.counts["liquidation_hidden"] += 1
        self._liq = (
            '{"arg":{"channel":"liquidation-orders","instType":"SWAP"},"data":[{"details":[{"bkLoss":"0","bkPx":"%s","ccy":"",'
            '"posSide":"%s","side":"%s","sz":"%s","ts":"%d"}],"instFamily":"BTC-USDT","instId":"BTC-USDT-SWAP",'
            '"instType":"SWAP","uly":"BTC-USDT"}]}'
            % (px1(bankruptcy), position, "sell" if position == "long" else "buy", contracts(lots), ms)
        )

    def second(self, ms: int, mark: float, index: float, funding: float, oi_lots: int, last: int) -> None:
        """The per-second frames: the held liquidation, mark price, open interest, funding."""
        if self._liq is not None:
            self._ws(ms + 7, self._liq, "liquidation")
            self._liq = None
        self._ws(
            ms + 2,
            '{"arg":{"channel":"mark-price","instId":"BTC-USDT-SWAP"},"data":[{"instId":"BTC-USDT-SWAP",'
            '"instType":"SWAP","markPx":"%s","ts":"%d"}]}' % (px1(int(round(mark))), ms),
            "mark_price",
        )
        if ms % 3000 == 0:
            self._ws(
                ms + 5,
                '{"arg":{"channel":"open-interest","instId":"BTC-USDT-SWAP"},"data":[{"instId":"BTC-USDT-SWAP",'
                '"instType":"SWAP","oi":"%s","oiCcy":"%s","oiUsd":"%.4f","ts":"%d"}]}'
                % (contracts(oi_lots), qty3(oi_lots), oi_lots * 0.001 * mark / 10, ms),
                "open_interest",
            )
        if ms % 60_000 == 0:
            next_funding = (ms // 28_800_000 + 1) * 28_800_000
            self._ws(
                ms + 6,
                '{"arg":{"channel":"funding-rate","instId":"BTC-USDT-SWAP"},"data":[{"fundingRate":"%.10f",'
                '"fundingTime":"%d","instId":"BTC-USDT-SWAP","instType":"SWAP","method":"current_period",'
                '"maxFundingRate":"0.0075","minFundingRate":"-0.0075","nextFundingRate":"","nextFundingTime":"%d",'
                '"premium":"%.10f","settFundingRate":"0.0001","settState":"settled","ts":"%d"}]}'
                % (funding, next_funding, next_funding + 28_800_000, funding - 0.0001, ms),
                "funding",
            )


class BitmexFeed(Feed):
    """BitMEX realtime, XBTUSDT (linear: one contract is 1e-6 BTC, so a lot of 0.001 BTC is 1,000
    contracts; asset BTC-USDT like the other simulated venues). Opt-in: only a run that names
    ``bitmex`` among its venues writes it (``cascadewatch simulate --venues``).

    ``orderBookL2_25``: a ``partial`` of the top 25 levels per side on (re)subscription, then per
    step the changes of that view as ``insert`` / ``update`` / ``delete`` messages by level id
    (one id per price; the side is part of the key); ``trade`` (one row per fill); ``liquidation``
    (every liquidation order: ``insert`` with ``leavesQty``, ``Sell`` = a long, ``delete`` at the
    next second); ``instrument`` (the ``partial`` row with the multipliers, then ``markPrice``,
    ``indicativeSettlePrice``, ``fundingRate`` and ``openInterest`` every second); REST
    ``/api/v1/instrument/active`` at start. A lost book message is repaired by resubscribing.
    """

    venue = "bitmex"
    url = "wss://ws.bitmex.com/realtime"
    DEPTH = 25
    CONTRACTS_PER_LOT = 1000
    TOPICS = ("orderBookL2_25:XBTUSDT", "trade:XBTUSDT", "liquidation:XBTUSDT", "instrument:XBTUSDT")
    INSTRUMENT = (
        '{"symbol":"XBTUSDT","rootSymbol":"XBT","state":"Open","typ":"FFWCSX","positionCurrency":"XBT",'
        '"underlying":"XBT","quoteCurrency":"USDT","underlyingSymbol":"XBTT=","reference":"BMEX",'
        '"referenceSymbol":".BXBTT","maxOrderQty":10000000000,"maxPrice":10000000,"lotSize":1000,"tickSize":0.1,'
        '"multiplier":1,"settlCurrency":"USDt","underlyingToPositionMultiplier":1000000,'
        '"quoteToSettleMultiplier":1000000,"isQuanto":false,"isInverse":false,"initMargin":0.01,'
        '"maintMargin":0.005,"fundingInterval":"2000-01-01T08:00:00.000Z"%s}'
    )

    def __init__(self, sink: FrameSink, book: Book, rng: random.Random, latency_ms: float) -> None:
        super().__init__(sink, book, rng, latency_ms)
        self.px = _Strings(book, px1)
        self._pub: tuple[dict[int, int], dict[int, int]] = ({}, {})  # published view: cell -> lots
        self._done: list[str] = []  # liquidation orders to delete at the next second

    @staticmethod
    def iso(ms: int) -> str:
        """Epoch ms -> BitMEX ``2026-01-15T00:00:00.250Z``.

        >>> BitmexFeed.iso(1_768_435_200_250)
        '2026-01-15T00:00:00.250Z'
        """
        moment = _EPOCH + timedelta(milliseconds=ms)
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"

    def _id(self, cell: int) -> int:
        return 8_800_000_000 - self.book.tick(cell)

    def _on_connect(self, ms: int) -> None:
        if self.connections == 1:
            self._rest(ms, "/api/v1/instrument/active", "[%s]" % (self.INSTRUMENT % ""))
        self._ws(
            ms,
            '{"info":"Welcome to the BitMEX Realtime API.","version":"2.0.0","timestamp":"%s",'
            '"docs":"https://www.bitmex.com/app/wsAPI","heartbeatEnabled":false,"limit":{"remaining":39}}'
            % self.iso(ms),
            "control",
        )
        request = '{"op":"subscribe","args":["%s"]}' % '","'.join(self.TOPICS)
        for topic in self.TOPICS:
            self._ws(ms + 1, '{"success":true,"subscribe":"%s","request":%s}' % (topic, request), "control")
        self._ws(
            ms + 2,
            '{"table":"instrument","action":"partial","keys":["symbol"],"filter":{"symbol":"XBTUSDT"},"data":[%s]}'
            % (self.INSTRUMENT % (',"timestamp":"%s"' % self.iso(ms))),
            "instrument",
        )
        self._ws(
            ms + 2,
            '{"table":"liquidation","action":"partial","keys":["orderID"],"filter":{"symbol":"XBTUSDT"},"data":[]}',
            "liquidation",
        )
        self._partial(ms + 3)

    def _view(self) -> tuple[dict[int, int], dict[int, int]]:
        return dict(self.book.levels("bid", self.DEPTH, 400)), dict(self.book.levels("ask", self.DEPTH, 400))

    def _rows(self, levels: list[tuple[int, int]], side: str, action: str, stamp: str) -> str:
        px, k = self.px, self.CONTRACTS_PER_LOT
        rows = []
        for c, q in levels:
            size = "" if action == "delete" else ',"size":%d' % (q * k)
            price = ',"price":%s' % px(c) if action in ("partial", "insert") else ""
            rows.append(
                '{"symbol":"XBTUSDT","id":%d,"side":"%s"%s%s,"timestamp":"%s"}'
                % (self._id(c), side, size, price, stamp)
            )
        return ",".join(rows)

    def _partial(self, ms: int) -> None:
        self._pub = self._view()
        bids, asks = self._pub
        stamp = self.iso(ms)
        rows = [
            r
            for r in (
                self._rows(sorted(asks.items(), reverse=True), "Sell", "partial", stamp),
                self._rows(list(bids.items()), "Buy", "partial", stamp),
            )
            if r
        ]
        self._ws(
            ms,
            '{"table":"orderBookL2_25","action":"partial","keys":["symbol","id","side"],'
            '"filter":{"symbol":"XBTUSDT"},"data":[%s]}' % ",".join(rows),
            "book",
        )

    def _resync(self, ms: int) -> None:
        """A broken book is resubscribed: the acks, then a fresh ``partial``."""
        topic = self.TOPICS[0]
        for op in ("unsubscribe", "subscribe"):
            self._ws(
                ms, '{"success":true,"%s":"%s","request":{"op":"%s","args":["%s"]}}' % (op, topic, op, topic), "control"
            )
        self._partial(ms + 1)

    def _book_frame(self, ms: int, send: bool) -> None:
        new = self._view()
        old = self._pub
        self._pub = new
        stamp = self.iso(ms)
        for side, before, after in (("Buy", old[0], new[0]), ("Sell", old[1], new[1])):
            for action, levels in (
                ("delete", [(c, q) for c, q in before.items() if c not in after]),
                ("insert", [(c, q) for c, q in after.items() if c not in before]),
                ("update", [(c, q) for c, q in after.items() if c in before and before[c] != q]),
            ):
                if levels and send:
                    self._ws(
                        ms,
                        '{"table":"orderBookL2_25","action":"%s","data":[%s]}'
                        % (action, self._rows(sorted(levels), side, action, stamp)),
                        "book",
                    )

    def trade(self, ms: int, side: str, fills: list[tuple[int, int]]) -> None:
        """Write the taker ``fills`` (cell, lots) of a ``side`` order at ``ms``: one ``trade`` insert."""
        s = "Buy" if side == "buy" else "Sell"
        stamp = self.iso(ms)
        rows = [
            '{"timestamp":"%s","symbol":"XBTUSDT","side":"%s","size":%d,"price":%s,"trdMatchID":"%032x"}'
            % (stamp, s, q * self.CONTRACTS_PER_LOT, self.px(c), self.rng.getrandbits(128))
            for c, q in fills
        ]
        if rows:
            self._ws(ms + 2, '{"table":"trade","action":"insert","data":[%s]}' % ",".join(rows), "trade")

    def liquidation(self, ms: int, position: str, lots: int, fills: list[tuple[int, int]], bankruptcy: int) -> None:
        """Every liquidation order as it enters the book (``Sell``: a long); deleted at the next second.
        One sent while the client is disconnected is lost to it (counted as ``liquidation_missed``)."""
        if not self.connected:
            self.counts["liquidation_missed"] += 1
        order = "%032x" % self.rng.getrandbits(128)
        order = f"{order[:8]}-{order[8:12]}-{order[12:16]}-{order[16:20]}-{order[20:]}"
        q, r = divmod(bankruptcy, 10)
        self._ws(
            ms + 3,
            '{"table":"liquidation","action":"insert","data":[{"orderID":"%s","symbol":"XBTUSDT","side":"%s",'
            '"price":%s,"leavesQty":%d}]}'
            % (
                order,
                "Sell" if position == "long" else "Buy",
                f"{q}.{r}" if r else str(q),
                lots * self.CONTRACTS_PER_LOT,
            ),
            "liquidation",
        )
        self._done.append(order)

    def second(self, ms: int, mark: float, index: float, funding: float, oi_lots: int, last: int) -> None:
        """The per-second frames: done liquidation orders deleted, then the instrument update."""
        if self._done:
            rows = ",".join('{"orderID":"%s","symbol":"XBTUSDT"}' % order for order in self._done)
            self._ws(ms, '{"table":"liquidation","action":"delete","data":[%s]}' % rows, "liquidation")
            self._done = []
        self._ws(
            ms,
            '{"table":"instrument","action":"update","data":[{"symbol":"XBTUSDT","markPrice":%.2f,'
            '"indicativeSettlePrice":%.2f,"fundingRate":%.6f,"openInterest":%d,"timestamp":"%s"}]}'
            % (mark / 10, index / 10, funding, oi_lots * self.CONTRACTS_PER_LOT, self.iso(ms)),
            "instrument",
        )


def usd_amount(lots: int, tick: int) -> int:
    """Lots of 0.001 BTC at ``tick`` (0.1 USD) -> Deribit's USD amount: whole 10 USD contracts,
    at least one for a non-zero size."""
    if lots <= 0:
        return 0
    return max(10, int(round(lots * tick / 100_000.0)) * 10)


class _HeldTrade:
    """A taker order's fills held until the writer knows whether a liquidation caused them
    (the runner calls ``trade`` then, for a forced order, ``liquidation`` with the same fills)."""

    __slots__ = ("ms", "side", "fills")

    def __init__(self, ms: int, side: str, fills: list[tuple[int, int]]) -> None:
        self.ms = ms
        self.side = side
        self.fills = fills


class DeribitFeed(Feed):
    """Deribit JSON-RPC, BTC-PERPETUAL (inverse: every amount in USD, 10 USD contracts).

    ``trades.BTC-PERPETUAL.100ms`` (one notification per taker order; a liquidation engine's order
    carries ``liquidation: "T"``), ``book.BTC-PERPETUAL.100ms`` (a 400-level snapshot, then the
    changed levels chained ``prev_change_id`` -> ``change_id``), ``ticker.BTC-PERPETUAL.100ms``
    (1 s: mark, index, ``funding_8h``, open interest in USD); REST ``get_instruments`` and the
    subscribe / set_heartbeat answers at start. A liquidation the engine absorbs without a fill
    is not published (Deribit shows liquidations only as flagged fills); ADL is not published.
    """

    venue = "deribit"
    url = "wss://www.deribit.com/ws/api/v2"
    CHANNELS = ("book.BTC-PERPETUAL.100ms", "trades.BTC-PERPETUAL.100ms", "ticker.BTC-PERPETUAL.100ms")

    def __init__(self, sink: FrameSink, book: Book, rng: random.Random, latency_ms: float) -> None:
        super().__init__(sink, book, rng, latency_ms)
        self.change_id = 60_000_000_000 + rng.randrange(1_000_000_000)
        self.trade_seq = 180_000_000 + rng.randrange(10_000_000)
        self.trade_id = 290_000_000 + rng.randrange(10_000_000)
        self.rpc_id = 0
        self.px = _Strings(book, px1)
        self._held: _HeldTrade | None = None

    def _rpc(self, ms: int, result: str) -> None:
        self.rpc_id += 1
        self._ws(
            ms,
            '{"jsonrpc":"2.0","id":%d,"result":%s,"usIn":%d000,"usOut":%d050,"usDiff":50,"testnet":false}'
            % (self.rpc_id, result, ms, ms),
            "control",
        )

    def _on_connect(self, ms: int) -> None:
        if self.connections == 1:
            self._rest(
                ms,
                "/api/v2/public/get_instruments?currency=BTC&kind=future",
                '{"jsonrpc":"2.0","result":[{"tick_size":0.5,"taker_commission":0.0005,"settlement_period":"perpetual",'
                '"settlement_currency":"BTC","quote_currency":"USD","price_index":"btc_usd","min_trade_amount":10.0,'
                '"max_leverage":50,"maker_commission":0.0,"kind":"future","is_active":true,"instrument_name":"BTC-PERPETUAL",'
                '"instrument_id":124972,"instrument_type":"reversed","counter_currency":"USD","contract_size":10.0,'
                '"base_currency":"BTC"}],"usIn":%d000,"usOut":%d100,"usDiff":100,"testnet":false}' % (ms, ms),
            )
        self._rpc(ms + 1, "[%s]" % ",".join('"%s"' % c for c in self.CHANNELS))
        self._snapshot(ms + 2)
        self._rpc(ms + 3, '"ok"')  # public/set_heartbeat

    def _levels(self, levels: list[tuple[int, int]], action: str) -> str:
        px, tick = self.px, self.book.tick
        return ",".join(
            '["%s",%s,%d.0]' % (action, px(c), usd_amount(q, tick(c))) if q else '["delete",%s,0.0]' % px(c)
            for c, q in levels
        )

    def _snapshot(self, ms: int) -> None:
        book = self.book
        self.change_id += 1 + self.rng.randrange(20)
        self._ws(
            ms,
            '{"jsonrpc":"2.0","method":"subscription","params":{"channel":"book.BTC-PERPETUAL.100ms","data":'
            '{"type":"snapshot","timestamp":%d,"instrument_name":"BTC-PERPETUAL","change_id":%d,"bids":[%s],"asks":[%s]}}}'
            % (
                ms,
                self.change_id,
                self._levels(book.levels("bid", 400), "new"),
                self._levels(book.levels("ask", 400), "new"),
            ),
            "book",
        )

    def _resync(self, ms: int) -> None:
        self._snapshot(ms)

    def _book_frame(self, ms: int, send: bool) -> None:
        book = self.book
        prev = self.change_id
        self.change_id += 1 + self.rng.randrange(len(book.changed_bids) + len(book.changed_asks) + 1)
        if not send:
            return
        bids = self._levels([(c, book.bids[c]) for c in sorted(book.changed_bids, reverse=True)], "change")
        asks = self._levels([(c, book.asks[c]) for c in sorted(book.changed_asks)], "change")
        self._ws(
            ms,
            '{"jsonrpc":"2.0","method":"subscription","params":{"channel":"book.BTC-PERPETUAL.100ms","data":'
            '{"type":"change","timestamp":%d,"prev_change_id":%d,"instrument_name":"BTC-PERPETUAL","change_id":%d,'
            '"bids":[%s],"asks":[%s]}}}' % (ms, prev, self.change_id, bids, asks),
            "book",
        )

    def _flush(self, liquidation: bool = False) -> None:
        held, self._held = self._held, None
        if held is None:
            return
        px, tick = self.px, self.book.tick
        flag = ',"liquidation":"T"' if liquidation else ""
        rows = []
        for c, q in held.fills:
            self.trade_seq += 1
            self.trade_id += 1
            rows.append(
                '{"trade_seq":%d,"trade_id":"%d","timestamp":%d,"tick_direction":0,"price":%s,'
                '"instrument_name":"BTC-PERPETUAL","direction":"%s","amount":%d.0%s}'
                % (self.trade_seq, self.trade_id, held.ms, px(c), held.side, usd_amount(q, tick(c)), flag)
            )
        self._ws(
            held.ms + 2,
            '{"jsonrpc":"2.0","method":"subscription","params":{"channel":"trades.BTC-PERPETUAL.100ms","data":[%s]}}'
            % ",".join(rows),
            "liquidation" if liquidation else "trade",
        )

    def publish_book(self, ms: int) -> None:
        """Write the held trade, then the step's book changes."""
        self._flush()
        super().publish_book(ms)

    def trade(self, ms: int, side: str, fills: list[tuple[int, int]]) -> None:
        """Hold the taker ``fills`` (cell, lots) of a ``side`` order: a liquidation may flag them."""
        self._flush()
        self._held = _HeldTrade(ms, side, fills)

    def liquidation(self, ms: int, position: str, lots: int, fills: list[tuple[int, int]], bankruptcy: int) -> None:
        """Flag the held fills of the engine's order as liquidation fills of the taker (``T``)."""
        held = self._held
        self._flush(liquidation=held is not None and held.fills is fills)

    def second(self, ms: int, mark: float, index: float, funding: float, oi_lots: int, last: int) -> None:
        """The ticker: mark, index, 8-hour funding, open interest in USD, best bid and ask."""
        self._flush()
        book = self.book
        bb, ba = (book.bb, book.ba) if 0 <= book.bb and book.ba < book.n else (book.last_cell, book.last_cell + 1)
        mark_t = int(round(mark))
        self._ws(
            ms + 4,
            '{"jsonrpc":"2.0","method":"subscription","params":{"channel":"ticker.BTC-PERPETUAL.100ms","data":'
            '{"timestamp":%d,"state":"open","open_interest":%d.0,"mark_price":%s,"last_price":%s,'
            '"instrument_name":"BTC-PERPETUAL","index_price":%s,"funding_8h":%.8f,"current_funding":%.8f,'
            '"best_bid_price":%s,"best_ask_price":%s}}}'
            % (
                ms,
                usd_amount(oi_lots, mark_t),
                px1(mark_t),
                px1(last),
                px1(int(round(index))),
                funding,
                funding / 8,
                px1(book.tick(bb)),
                px1(book.tick(ba)),
            ),
            "ticker",
        )


class HyperliquidFeed(Feed):
    """Hyperliquid, BTC (sizes in coins, quoted in USDC).

    ``trades`` (one frame per taker order, ``users`` = [buyer, seller]), ``l2Book`` (the top 20
    levels per side, pushed whole at most every 500 ms, a block's cadence), ``activeAssetCtx``
    (1 s: mark, oracle = the index, hourly funding, open interest); the subscription answers at
    start. Liquidations are not published: the simulated engine works every liquidation through
    the book on the liquidated account's behalf (Hyperliquid's first, market-order tier), and those
    fills look like any trade. Backstop takeovers by HLP's liquidator vault (what the parser can
    infer) are not simulated; ADL is not published.
    """

    venue = "hyperliquid"
    url = "wss://api.hyperliquid.xyz/ws"
    PUSH_MS = 500
    DEPTH = 20

    def __init__(self, sink: FrameSink, book: Book, rng: random.Random, latency_ms: float) -> None:
        super().__init__(sink, book, rng, latency_ms)
        self.tid = 500_000_000_000_000 + rng.randrange(10**12)
        self.px = _Strings(book, px1)
        self._last_push = -(10**15)
        self._dirty = False

    def _user(self) -> str:
        return "0x%040x" % self.rng.getrandbits(160)

    def _on_connect(self, ms: int) -> None:
        for i, kind in enumerate(("l2Book", "trades", "activeAssetCtx")):
            self._ws(
                ms + 1 + i,
                '{"channel":"subscriptionResponse","data":{"method":"subscribe","subscription":{"type":"%s","coin":"BTC"}}}'
                % kind,
                "control",
            )
        self._push(ms + 4)

    def _push(self, ms: int) -> None:
        book, px = self.book, self.px
        sides = [
            ",".join(
                '{"px":"%s","sz":"%s","n":%d}' % (px(c), qty3(q), 1 + q // 400)
                for c, q in book.levels(side, self.DEPTH)
            )
            for side in ("bid", "ask")
        ]
        bids, asks = sides
        self._ws(
            ms, '{"channel":"l2Book","data":{"coin":"BTC","time":%d,"levels":[[%s],[%s]]}}' % (ms, bids, asks), "book"
        )
        self._last_push = ms
        self._dirty = False

    def _resync(self, ms: int) -> None:
        self._push(ms)

    def _book_frame(self, ms: int, send: bool) -> None:
        self._dirty = True
        if send and ms - self._last_push >= self.PUSH_MS:
            self._push(ms)

    def _rows(self, ms: int, side: str, fills: list[tuple[int, int]], users: tuple[str, str]) -> str:
        px = self.px
        rows = []
        for c, q in fills:
            self.tid += 1 + self.rng.randrange(1000)
            rows.append(
                '{"coin":"BTC","side":"%s","px":"%s","sz":"%s","time":%d,"hash":"0x%064x","tid":%d,"users":["%s","%s"]}'
                % ("B" if side == "buy" else "A", px(c), qty3(q), ms, self.rng.getrandbits(256), self.tid, *users)
            )
        return '{"channel":"trades","data":[%s]}' % ",".join(rows)

    def trade(self, ms: int, side: str, fills: list[tuple[int, int]]) -> None:
        """Write the taker ``fills`` (cell, lots) of a ``side`` order at ``ms`` as one trades frame."""
        taker, maker = self._user(), self._user()
        self._ws(ms + 2, self._rows(ms, side, fills, (taker, maker) if side == "buy" else (maker, taker)), "trade")

    def liquidation(self, ms: int, position: str, lots: int, fills: list[tuple[int, int]], bankruptcy: int) -> None:
        """Nothing: the engine's order went to the book as the liquidated account's own order
        (Hyperliquid's first tier), so its fills are ordinary trades, already written."""
        return None

    def second(self, ms: int, mark: float, index: float, funding: float, oi_lots: int, last: int) -> None:
        """A pending book push, then the asset context (hourly funding = the 8-hour rate / 8)."""
        if self._dirty:
            self._push(ms)
        self._ws(
            ms + 3,
            '{"channel":"activeAssetCtx","data":{"coin":"BTC","ctx":{"funding":"%.10f","openInterest":"%s",'
            '"prevDayPx":"%s","dayNtlVlm":"1000000000.0","premium":"%.8f","oraclePx":"%s","markPx":"%s",'
            '"midPx":"%s","impactPxs":["%s","%s"]}}}'
            % (
                funding / 8,
                qty3(oi_lots),
                px1(last),
                (mark - index) / index if index > 0 else 0.0,
                px1(int(round(index))),
                px1(int(round(mark))),
                px1(last),
                px1(last),
                px1(last),
            ),
            "mark_price",
        )


class NullFeed(Feed):
    """A venue that publishes nothing (a run without a recording: market facts only). Book
    changes are dropped at every step, as a writer would after publishing them; ``venue`` is the
    registry name of the venue it stands for."""

    def __init__(self, sink: FrameSink, book: Book, rng: random.Random, latency_ms: float, venue: str) -> None:
        self.venue = venue
        super().__init__(sink, book, rng, latency_ms)

    def _on_connect(self, ms: int) -> None:
        return None

    def publish_book(self, ms: int) -> None:
        """Drop the step's book changes."""
        self.book.changed_bids.clear()
        self.book.changed_asks.clear()

    def trade(self, ms: int, side: str, fills: list[tuple[int, int]]) -> None:
        """Nothing to publish."""
        return None

    def liquidation(self, ms: int, position: str, lots: int, fills: list[tuple[int, int]], bankruptcy: int) -> None:
        """Nothing to publish."""
        return None

    def half_second(self, ms: int) -> None:
        """Nothing to push."""
        return None

    def second(self, ms: int, mark: float, index: float, funding: float, oi_lots: int, last: int) -> None:
        """Nothing to publish."""
        return None


FRAME_WRITERS: dict[str, type[Feed]] = {
    writer.venue: writer for writer in (BinanceFeed, BybitFeed, OkxFeed, BitmexFeed, DeribitFeed, HyperliquidFeed)
}
"""Venue registry name -> its frame writer (a venue without one cannot be simulated)."""


def frame_writer(source: str) -> type[Feed]:
    """The frame writer of the venue whose source token is ``source`` (``okx-swap``)."""
    name = venue_name(source)
    try:
        return FRAME_WRITERS[name]
    except KeyError:
        raise KeyError(f"venue {name!r} has no frame writer; simulated: {', '.join(FRAME_WRITERS)}") from None
