"""Fake venue servers on 127.0.0.1 for the live connector tests.

Each fake runs a websockets server and a REST server (``http.server``) on its own thread and
event loop, speaks one venue's protocol (subscribe requests and acks, heartbeats, snapshots and
sequence numbers), publishes frames to the connections subscribed to a topic, and misbehaves
on cue (goes silent, drops connections, skips a sequence number, closes at a lifetime limit).

Books are simulated (:class:`SimBook`) so that a test can compare the client's book, rebuilt
from what the connector handed over, with the server's book.
"""

from __future__ import annotations

import asyncio
import json
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

FIXTURES = Path(__file__).parent / "fixtures"


@dataclass
class Client:
    """One connection the fake accepted."""

    ws: ServerConnection
    path: str
    opened: float
    topics: set[str] = field(default_factory=set)
    received: list[tuple[float, str]] = field(default_factory=list)
    closed: float | None = None


class SimBook:
    """A random-walk book: level changes with an update id (``u``) that grows per message."""

    def __init__(self, seed: int = 1, mid: float = 30000.0, levels: int = 20, step: float = 0.5) -> None:
        self.rng = random.Random(seed)
        self.step = step
        self.bids = {round(mid - step * (i + 1), 1): float(self.rng.randint(1, 50)) for i in range(levels)}
        self.asks = {round(mid + step * (i + 1), 1): float(self.rng.randint(1, 50)) for i in range(levels)}
        self.u = 1000

    def change(self) -> tuple[list[list[str]], list[list[str]]]:
        """Apply one random change to each side; return the changed levels (venue strings)."""
        out = []
        for side, sign in ((self.bids, -1), (self.asks, 1)):
            best = max(self.bids) if sign < 0 else min(self.asks)
            price = round(best + sign * self.step * self.rng.randint(0, 10), 1)
            qty = (
                0.0 if (price in side and self.rng.random() < 0.3 and len(side) > 5) else float(self.rng.randint(1, 80))
            )
            if qty:
                side[price] = qty
            else:
                side.pop(price, None)
            out.append([[f"{price:.1f}", f"{qty:g}"]])
        return out[0], out[1]

    def levels(self) -> tuple[list[list[str]], list[list[str]]]:
        bids = [[f"{p:.1f}", f"{q:g}"] for p, q in sorted(self.bids.items(), reverse=True)]
        asks = [[f"{p:.1f}", f"{q:g}"] for p, q in sorted(self.asks.items())]
        return bids, asks


class FakeVenue:
    """Websocket + REST fake; subclasses implement :meth:`on_message` and :meth:`rest`."""

    ws_paths: tuple[str, ...] = ()

    def __init__(self, ping_interval: float | None = None, lifetime_s: float | None = None) -> None:
        self.ping_interval = ping_interval
        self.lifetime_s = lifetime_s
        self.clients: list[Client] = []
        self.rest_log: list[str] = []
        self.silent_paths: set[str] = set()
        self.drop_after_s: float | None = None
        self.refuse: set[str] = set()
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._server: Any = None
        self._http: ThreadingHTTPServer | None = None
        self.ws_port = 0
        self.rest_port = 0

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> FakeVenue:
        self._thread.start()
        self._server = self.call(self._start_ws())
        self.ws_port = self._server.sockets[0].getsockname()[1]
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                fake.rest_log.append(self.path)
                status, body = fake.rest(self.path)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for name, value in fake.rest_headers(self.path).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self._http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.rest_port = self._http.server_address[1]
        threading.Thread(target=self._http.serve_forever, daemon=True).start()
        return self

    async def _start_ws(self) -> Any:
        return await serve(
            self._handler, "127.0.0.1", 0, ping_interval=self.ping_interval, ping_timeout=self.ping_interval
        )

    def stop(self) -> None:
        async def shutdown() -> None:
            self._server.close()
            await self._server.wait_closed()

        try:
            self.call(shutdown(), timeout=5)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            if self._http is not None:
                self._http.shutdown()

    def __enter__(self) -> FakeVenue:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def call(self, coroutine: Any, timeout: float = 10.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def spawn(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop)

    def ws_url(self, path: str) -> str:
        return f"ws://127.0.0.1:{self.ws_port}{path}"

    @property
    def rest_url(self) -> str:
        return f"http://127.0.0.1:{self.rest_port}"

    # -- connections -----------------------------------------------------------------------

    async def _handler(self, ws: ServerConnection) -> None:
        client = Client(ws, ws.request.path, time.monotonic())
        self.clients.append(client)
        killers = []
        for limit in (self.lifetime_s, self.drop_after_s):
            if limit is not None:
                killers.append(
                    asyncio.get_running_loop().call_later(
                        limit, lambda: asyncio.ensure_future(ws.close(1000, "lifetime"))
                    )
                )
        try:
            async for message in ws:
                text = message if isinstance(message, str) else message.decode()
                client.received.append((time.monotonic(), text))
                await self.on_message(client, text)
        except ConnectionClosed:
            pass
        finally:
            client.closed = time.monotonic()
            for killer in killers:
                killer.cancel()

    async def on_message(self, client: Client, text: str) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def rest(self, path: str) -> tuple[int, bytes]:  # pragma: no cover - abstract
        raise NotImplementedError

    def rest_headers(self, path: str) -> dict[str, str]:
        """Extra headers of a REST answer (a venue's rate-limit report)."""
        return {}

    def live_clients(self, topic: str) -> list[Client]:
        return [c for c in self.clients if c.closed is None and topic in c.topics and c.path not in self.silent_paths]

    async def publish(self, topic: str, payload: str) -> int:
        """Send ``payload`` to every open connection subscribed to ``topic``."""
        sent = 0
        for client in self.live_clients(topic):
            try:
                await client.ws.send(payload)
                sent += 1
            except ConnectionClosed:
                pass
        return sent

    def sent_to(self, predicate: Callable[[str], bool]) -> list[str]:
        return [text for client in self.clients for _, text in client.received if predicate(text)]


# ----------------------------------------------------------------------------------- Binance


class FakeBinance(FakeVenue):
    """``/market/stream`` and ``/public/stream`` (combined streams, SUBSCRIBE by message);
    ``/stream`` is the old URL: it acks subscriptions and sends nothing."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.silent_paths = {"/stream"}
        self.exchange_info: bytes = _binance_exchange_info()
        self.books: dict[str, SimBook] = {}
        self.depth_bodies: dict[str, list[bytes]] = {}  # symbol -> scripted snapshot bodies
        self.agg_id = 0
        self._lock = threading.Lock()  # REST runs on the http thread, diffs on the loop
        self._published: dict[str, int] = {}  # symbol -> u of the last diff sent (or skipped)
        self._pending: dict[str, tuple[list[list[str]], list[list[str]]]] = {}
        self.snapshot_ahead = True  # False: a quiet book, lastUpdateId == the last diff's u
        self.weights: list[tuple[float, int]] = []  # (time, weight) of the REST requests answered
        self.used_weight_others = 0  # weight other clients on "our IP" used in the last minute
        self.depth_status: tuple[int, bytes] | None = None  # e.g. (403, body): the depth endpoint fails

    def rest_headers(self, path: str) -> dict[str, str]:
        """``X-MBX-USED-WEIGHT-1m``: the weight of the requests of the last 60 s (depth at
        ``limit=1000`` weighs 20, every other path 1), plus ``used_weight_others``."""
        now = time.monotonic()
        weight = 20 if path.startswith("/fapi/v1/depth") else 1
        self.weights = [(t, w) for t, w in self.weights if t > now - 60.0] + [(now, weight)]
        return {"X-MBX-USED-WEIGHT-1m": str(sum(w for _, w in self.weights) + self.used_weight_others)}

    async def on_message(self, client: Client, text: str) -> None:
        request = json.loads(text)
        method = request.get("method")
        params = request.get("params", [])
        if method in ("SUBSCRIBE", "UNSUBSCRIBE") and method not in self.refuse:
            (client.topics.update if method == "SUBSCRIBE" else client.topics.difference_update)(params)
            await client.ws.send(json.dumps({"result": None, "id": request.get("id")}))
        else:
            await client.ws.send(json.dumps({"error": {"code": 2, "msg": "Invalid request"}, "id": request.get("id")}))

    def rest(self, path: str) -> tuple[int, bytes]:
        url = urlsplit(path)
        query = parse_qs(url.query)
        if url.path == "/fapi/v1/exchangeInfo":
            return 200, self.exchange_info
        if url.path == "/fapi/v1/depth":
            symbol = query["symbol"][0]
            if self.depth_status is not None:
                return self.depth_status
            scripted = self.depth_bodies.get(symbol)
            if scripted:
                return 200, scripted.pop(0)
            if symbol not in self.books:
                return 400, b'{"code":-1121,"msg":"Invalid symbol."}'
            return 200, self._snapshot(symbol)
        if url.path == "/fapi/v1/openInterest":
            return 200, json.dumps({"symbol": query["symbol"][0], "openInterest": "1000.5", "time": _ms()}).encode()
        return 404, b"{}"

    def _snapshot(self, symbol: str) -> bytes:
        """The engine is ahead of the stream: one more update, not pushed yet, is in the snapshot
        (so ``lastUpdateId`` falls inside the next diff's ``[U, u]``, as on Binance). With
        ``snapshot_ahead = False`` the book is quiet: ``lastUpdateId`` is the ``u`` of the last
        diff (sent or withheld), as on Binance for a symbol whose book did not move."""
        with self._lock:
            book = self.books[symbol]
            self._published.setdefault(symbol, book.u)
            if self.snapshot_ahead:
                bids, asks = book.change()
                book.u += 1
                pending = self._pending.setdefault(symbol, ([], []))
                pending[0].extend(bids)
                pending[1].extend(asks)
            levels_bids, levels_asks = book.levels()
            return json.dumps(
                {"lastUpdateId": book.u, "E": _ms(), "T": _ms(), "bids": levels_bids, "asks": levels_asks}
            ).encode()

    async def depth_diff(self, symbol: str, skip: bool = False) -> None:
        """One diff of ``symbol``'s simulated book; ``skip``: apply it but do not send it (a gap)."""
        with self._lock:
            book = self.books[symbol]
            previous = self._published.setdefault(symbol, book.u)
            bids, asks = book.change()
            book.u += 3
            pending_bids, pending_asks = self._pending.pop(symbol, ([], []))
            self._published[symbol] = book.u
            data = {
                "e": "depthUpdate",
                "E": _ms(),
                "T": _ms(),
                "s": symbol,
                "U": previous + 1,
                "u": book.u,
                "pu": previous,
                "b": pending_bids + bids,
                "a": pending_asks + asks,
            }
        if skip:
            return
        stream = f"{symbol.lower()}@depth@100ms"
        await self.publish(stream, json.dumps({"stream": stream, "data": data}, separators=(",", ":")))

    async def agg_trade(self, symbol: str, price: float = 30000.0, qty: float = 0.01) -> str:
        self.agg_id += 1
        stream = f"{symbol.lower()}@aggTrade"
        data = {
            "e": "aggTrade",
            "E": _ms(),
            "a": self.agg_id,
            "s": symbol,
            "p": f"{price:.1f}",
            "q": f"{qty}",
            "f": self.agg_id,
            "l": self.agg_id,
            "T": _ms(),
            "m": False,
        }
        frame = json.dumps({"stream": stream, "data": data}, separators=(",", ":"))
        await self.publish(stream, frame)
        return frame

    async def force_order(self, symbol: str, price: float, qty: float, side: str = "SELL") -> None:
        stream = f"{symbol.lower()}@forceOrder"
        order = {
            "s": symbol,
            "S": side,
            "o": "LIMIT",
            "f": "IOC",
            "q": f"{qty}",
            "p": f"{price:.1f}",
            "ap": f"{price:.1f}",
            "X": "FILLED",
            "l": f"{qty}",
            "z": f"{qty}",
            "T": _ms(),
        }
        await self.publish(
            stream,
            json.dumps({"stream": stream, "data": {"e": "forceOrder", "E": _ms(), "o": order}}, separators=(",", ":")),
        )


def _binance_exchange_info() -> bytes:
    for line in (FIXTURES / "recordings" / "binance-usdm-2021-07-22-head.rec").open("rb"):
        if b"/fapi/v1/exchangeInfo" in line:
            envelope = json.loads(line.split(b" ", 2)[2])
            body = envelope["body"]
            body["symbols"].append({**body["symbols"][0], "symbol": "FAKEUSDT", "baseAsset": "FAKE"})
            return json.dumps(body, separators=(",", ":")).encode()
    raise AssertionError("no exchangeInfo in the fixture")


def binance_fixture_frames() -> tuple[list[tuple[str, bytes]], list[bytes]]:
    """The recorded Binance session: its REST lines ``(path, body)`` and websocket frames."""
    rest, ws = [], []
    for line in (FIXTURES / "recordings" / "binance-usdm-2021-07-22-head.rec").open("rb"):
        if line.startswith(b"#"):
            continue
        _, source, payload = line.rstrip(b"\n").split(b" ", 2)
        if source == b"binance-usdm!rest":
            envelope = json.loads(payload)
            rest.append((envelope["path"], json.dumps(envelope["body"], separators=(",", ":")).encode()))
        elif source == b"binance-usdm":
            ws.append(payload)
    return rest, ws


# ----------------------------------------------------------------------------------- Bybit


class FakeBybit(FakeVenue):
    """``/v5/public/linear``: op subscribe/unsubscribe/ping; ``orderbook.50.X`` starts with a snapshot."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.books: dict[str, SimBook] = {}
        self.pings: list[float] = []

    async def on_message(self, client: Client, text: str) -> None:
        request = json.loads(text)
        op = request.get("op")
        conn_id = f"conn-{id(client) % 10000}"
        if op == "ping":
            self.pings.append(time.monotonic())
            await client.ws.send(
                json.dumps({"success": True, "ret_msg": "pong", "conn_id": conn_id, "req_id": "", "op": "ping"})
            )
            return
        if op in ("subscribe", "unsubscribe"):
            args = request.get("args", [])
            if op in self.refuse:
                await client.ws.send(
                    json.dumps(
                        {
                            "success": False,
                            "ret_msg": "error:handler not found",
                            "conn_id": conn_id,
                            "req_id": request.get("req_id", ""),
                            "op": op,
                        }
                    )
                )
                return
            (client.topics.update if op == "subscribe" else client.topics.difference_update)(args)
            await client.ws.send(
                json.dumps(
                    {"success": True, "ret_msg": "", "conn_id": conn_id, "req_id": request.get("req_id", ""), "op": op}
                )
            )
            if op == "subscribe":
                for topic in args:
                    if topic.startswith("orderbook.") and client.path not in self.silent_paths:
                        symbol = topic.split(".", 2)[2]
                        if symbol in self.books:
                            await client.ws.send(self.book_frame(symbol, "snapshot"))

    def book_frame(self, symbol: str, kind: str, bids: Any = None, asks: Any = None) -> str:
        book = self.books[symbol]
        if kind == "snapshot":
            bids, asks = book.levels()
        data = {"s": symbol, "b": bids, "a": asks, "u": book.u, "seq": book.u * 10}
        return json.dumps(
            {"topic": f"orderbook.50.{symbol}", "type": kind, "ts": _ms(), "data": data, "cts": _ms()},
            separators=(",", ":"),
        )

    async def book_delta(self, symbol: str, jump: bool = False) -> None:
        book = self.books[symbol]
        bids, asks = book.change()
        book.u += 2 if jump else 1
        await self.publish(f"orderbook.50.{symbol}", self.book_frame(symbol, "delta", bids, asks))

    async def trade(self, symbol: str, n: int, price: float = 30000.0) -> str:
        data = [
            {
                "T": _ms(),
                "s": symbol,
                "S": "Buy",
                "v": "0.010",
                "p": f"{price:.2f}",
                "L": "PlusTick",
                "i": f"trade-{n}",
                "BT": False,
            }
        ]
        frame = json.dumps(
            {"topic": f"publicTrade.{symbol}", "type": "snapshot", "ts": _ms(), "data": data}, separators=(",", ":")
        )
        await self.publish(f"publicTrade.{symbol}", frame)
        return frame

    def rest(self, path: str) -> tuple[int, bytes]:
        url = urlsplit(path)
        if url.path == "/v5/market/instruments-info":
            symbol = parse_qs(url.query).get("symbol", ["BTCUSDT"])[0]
            for line in (FIXTURES / "bybit" / "docs_rest.jsonl").open():
                entry = json.loads(line)
                if entry["path"].startswith("/v5/market/instruments-info") and "linear" in entry["path"]:
                    body = entry["body"]
                    body["result"]["list"] = [
                        dict(item, symbol=symbol, baseCoin=symbol[:-4]) for item in body["result"]["list"][:1]
                    ]
                    return 200, json.dumps(body, separators=(",", ":")).encode()
        return 404, b'{"retCode":10001,"retMsg":"not found"}'


# ----------------------------------------------------------------------------------- OKX


class FakeOkx(FakeVenue):
    """``/ws/v5/public``: op subscribe/unsubscribe with ``{channel, instId}`` args, text ping/pong;
    ``books`` starts with a snapshot and chains ``prevSeqId`` -> ``seqId``."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.books: dict[str, SimBook] = {}
        self.pings: list[float] = []
        self.trade_id = 5000

    @staticmethod
    def topic(arg: dict[str, str]) -> str:
        return f"{arg['channel']}:{arg.get('instId') or arg.get('instType')}"

    async def on_message(self, client: Client, text: str) -> None:
        if text == "ping":
            self.pings.append(time.monotonic())
            await client.ws.send("pong")
            return
        request = json.loads(text)
        op = request.get("op")
        if op not in ("subscribe", "unsubscribe"):
            await client.ws.send(json.dumps({"event": "error", "code": "60012", "msg": f"Invalid request: {text}"}))
            return
        for arg in request.get("args", []):
            topic = self.topic(arg)
            if op == "subscribe":
                client.topics.add(topic)
            else:
                client.topics.discard(topic)
            await client.ws.send(json.dumps({"event": op, "arg": arg, "connId": "a4d3ae55"}))
            if op == "subscribe" and arg["channel"] == "books" and arg.get("instId") in self.books:
                await client.ws.send(self.book_frame(arg["instId"], "snapshot"))

    def book_frame(self, symbol: str, action: str, bids: Any = None, asks: Any = None, prev: int | None = None) -> str:
        book = self.books[symbol]
        if action == "snapshot":
            bids, asks = book.levels()
        row = {
            "asks": [[p, q, "0", "1"] for p, q in asks],
            "bids": [[p, q, "0", "1"] for p, q in bids],
            "ts": str(_ms()),
            "checksum": 0,
            "seqId": book.u,
            "prevSeqId": -1 if action == "snapshot" else prev,
        }
        return json.dumps(
            {"arg": {"channel": "books", "instId": symbol}, "action": action, "data": [row]}, separators=(",", ":")
        )

    async def book_update(self, symbol: str, break_chain: bool = False) -> None:
        book = self.books[symbol]
        previous = book.u
        bids, asks = book.change()
        book.u += 7
        prev = previous - 1 if break_chain else previous
        await self.publish(f"books:{symbol}", self.book_frame(symbol, "update", bids, asks, prev))

    async def trade(self, symbol: str, price: float = 30000.0) -> str:
        self.trade_id += 1
        row = {
            "instId": symbol,
            "tradeId": str(self.trade_id),
            "px": f"{price:.1f}",
            "sz": "3",
            "side": "buy",
            "ts": str(_ms()),
        }
        frame = json.dumps({"arg": {"channel": "trades", "instId": symbol}, "data": [row]}, separators=(",", ":"))
        await self.publish(f"trades:{symbol}", frame)
        return frame

    def rest(self, path: str) -> tuple[int, bytes]:
        url = urlsplit(path)
        if url.path == "/api/v5/public/instruments":
            body = (
                Path(__file__).parent.parent / "connectors" / "venues" / "data" / "okx_instruments.json"
            ).read_bytes()
            return 200, body
        return 404, b'{"code":"51000","msg":"not found","data":[]}'


# ----------------------------------------------------------------------------------- BitMEX


class FakeBitmex(FakeVenue):
    """``/realtime``: the welcome, ``{"op": "subscribe"|"unsubscribe", "args": ["table:SYMBOL"]}``
    acked per topic, text ping/pong; ``orderBookL2_25`` starts with a ``partial`` and then sends
    insert/update/delete by level id (id = a function of the price, as BitMEX's); REST
    ``/api/v1/instrument/active`` from the recorded session's reply. A test can make the server
    lose a book message (the next one names an id the client never saw: a broken id rule)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.books: dict[str, SimBook] = {}
        self.pings: list[float] = []
        self.liquidation_id = 0

    @staticmethod
    def level_id(price: float) -> int:
        """BitMEX's XBTUSD ids fall as the price rises; one id per price (side is part of the key)."""
        return 8_800_000_000 - int(round(price * 100))

    async def on_message(self, client: Client, text: str) -> None:
        if text == "ping":
            self.pings.append(time.monotonic())
            await client.ws.send("pong")
            return
        request = json.loads(text)
        op = request.get("op")
        if op not in ("subscribe", "unsubscribe"):
            await client.ws.send(
                json.dumps({"status": 400, "error": f"Unknown or missing op: {op}", "request": request})
            )
            return
        for topic in request.get("args", []):
            (client.topics.add if op == "subscribe" else client.topics.discard)(topic)
            await client.ws.send(json.dumps({"success": True, op: topic, "request": request}, separators=(",", ":")))
            table, _, symbol = topic.partition(":")
            if op == "subscribe" and table == "orderBookL2_25" and symbol in self.books:
                if client.path not in self.silent_paths:
                    await client.ws.send(self.partial(symbol))

    async def _handler(self, ws: ServerConnection) -> None:  # the welcome first, as BitMEX does
        welcome = {
            "info": "Welcome to the BitMEX Realtime API.",
            "version": "2.0.0",
            "timestamp": _iso(),
            "docs": "https://www.bitmex.com/app/wsAPI",
            "heartbeatEnabled": False,
            "limit": {"remaining": 39},
        }
        await ws.send(json.dumps(welcome, separators=(",", ":")))
        await super()._handler(ws)

    def _rows(self, symbol: str, levels: dict[float, float], side: str, action: str) -> list[dict[str, Any]]:
        rows = []
        for price, size in levels.items():
            row: dict[str, Any] = {"symbol": symbol, "id": self.level_id(price), "side": side}
            if action != "delete":
                row["size"] = int(size)
            if action in ("partial", "insert"):
                row["price"] = price
            row["timestamp"] = _iso()
            rows.append(row)
        return rows

    def partial(self, symbol: str) -> str:
        book = self.books[symbol]
        rows = self._rows(symbol, book.asks, "Sell", "partial") + self._rows(symbol, book.bids, "Buy", "partial")
        return json.dumps(
            {
                "table": "orderBookL2_25",
                "action": "partial",
                "keys": ["symbol", "id", "side"],
                "filter": {"symbol": symbol},
                "data": rows,
            },
            separators=(",", ":"),
        )

    async def book_change(self, symbol: str, lose: bool = False) -> None:
        """One random change per side, sent as insert / update / delete messages; ``lose``: the
        messages of this change are not sent (the next change may then name an unseen id)."""
        book = self.books[symbol]
        before = (dict(book.bids), dict(book.asks))
        book.change()
        messages = []
        for (old, new), side in zip(((before[0], book.bids), (before[1], book.asks)), ("Buy", "Sell"), strict=True):
            inserted = {p: q for p, q in new.items() if p not in old}
            updated = {p: q for p, q in new.items() if p in old and old[p] != q}
            deleted = {p: 0.0 for p in old if p not in new}
            for action, levels in (("insert", inserted), ("update", updated), ("delete", deleted)):
                if levels:
                    messages.append(
                        json.dumps(
                            {
                                "table": "orderBookL2_25",
                                "action": action,
                                "data": self._rows(symbol, levels, side, action),
                            },
                            separators=(",", ":"),
                        )
                    )
        if lose:
            return
        for message in messages:
            await self.publish(f"orderBookL2_25:{symbol}", message)

    async def lost_insert(self, symbol: str) -> None:
        """A bid level is inserted on the server but its ``insert`` is lost; the next ``update``
        names its id: the client's id rule breaks."""
        book = self.books[symbol]
        price = min(book.bids) - book.step
        book.bids[price] = 5.0
        book.bids[price] = 7.0
        rows = self._rows(symbol, {price: 7.0}, "Buy", "update")
        message = json.dumps({"table": "orderBookL2_25", "action": "update", "data": rows}, separators=(",", ":"))
        await self.publish(f"orderBookL2_25:{symbol}", message)

    async def trade(self, symbol: str, price: float = 30000.0, size: int = 100) -> str:
        row = {"timestamp": _iso(), "symbol": symbol, "side": "Buy", "size": size, "price": price, "trdMatchID": "x"}
        message = json.dumps({"table": "trade", "action": "insert", "data": [row]}, separators=(",", ":"))
        await self.publish(f"trade:{symbol}", message)
        return message

    async def liquidation(self, symbol: str, side: str, price: float, contracts: int) -> str:
        self.liquidation_id += 1
        row = {
            "orderID": f"liq-{self.liquidation_id}",
            "symbol": symbol,
            "side": side,
            "price": price,
            "leavesQty": contracts,
        }
        message = json.dumps({"table": "liquidation", "action": "insert", "data": [row]}, separators=(",", ":"))
        await self.publish(f"liquidation:{symbol}", message)
        return message

    def rest(self, path: str) -> tuple[int, bytes]:
        if urlsplit(path).path == "/api/v1/instrument/active":
            return 200, _bitmex_instruments()
        return 404, b'{"error":{"message":"Not Found","name":"HTTPError"}}'


def _bitmex_instruments() -> bytes:
    """The recorded session's ``/api/v1/instrument/active`` reply (real, 2021-07-22)."""
    from cascadewatch.connectors.recording import RecordingReader

    for frame in RecordingReader(FIXTURES / "bitmex" / "bitmex-2021-07-22-head.rec.zst"):
        if frame.source == "bitmex!rest":
            return json.dumps(json.loads(frame.payload)["body"], separators=(",", ":")).encode()
    raise AssertionError("no instrument reply in the BitMEX fixture")


def _iso() -> str:
    now = time.time_ns() // 1_000_000
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now // 1000)) + f".{now % 1000:03d}Z"


# ----------------------------------------------------------------------------------- Deribit


class FakeDeribit(FakeVenue):
    """``/ws/api/v2``: JSON-RPC ``public/subscribe`` / ``public/unsubscribe`` / ``public/set_heartbeat``
    / ``public/test``; ``book.X.100ms`` starts with a snapshot and chains ``prev_change_id`` ->
    ``change_id``; amounts are USD (10 USD per BTC-PERPETUAL contract). A ``test_request`` left
    unanswered for ``test_timeout_s`` closes the connection, as Deribit does."""

    CONTRACT_USD = 10

    def __init__(self, test_timeout_s: float = 1.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.books: dict[str, SimBook] = {}
        self.heartbeats_set: list[float] = []  # set_heartbeat requests received
        self.tests: list[float] = []  # public/test requests received
        self.test_timeout_s = test_timeout_s
        self.muted: set[int] = set()  # ids of clients that get no more notifications
        self.trade_seq = 7000

    def live_clients(self, topic: str) -> list[Client]:
        return [c for c in super().live_clients(topic) if id(c) not in self.muted]

    def mute(self) -> None:
        """The open connections stay open and get nothing more (a silent feed)."""
        self.muted.update(id(c) for c in self.clients if c.closed is None)

    async def drop(self) -> None:
        """Cut every open connection without a close frame."""
        for client in self.clients:
            if client.closed is None:
                client.ws.transport.abort()

    async def on_message(self, client: Client, text: str) -> None:
        request = json.loads(text)
        method, rid = request.get("method"), request.get("id")
        if method == "public/test":
            self.tests.append(time.monotonic())
            await client.ws.send(self._result(rid, {"version": "1.2.26"}))
        elif method == "public/set_heartbeat":
            self.heartbeats_set.append(time.monotonic())
            await client.ws.send(self._result(rid, "ok"))
        elif method in ("public/subscribe", "public/unsubscribe") and method not in self.refuse:
            channels = request["params"]["channels"]
            (client.topics.update if method == "public/subscribe" else client.topics.difference_update)(channels)
            await client.ws.send(self._result(rid, channels))
            for channel in channels if method == "public/subscribe" else ():
                kind, symbol, _ = channel.split(".")
                if kind == "book" and symbol in self.books and client.path not in self.silent_paths:
                    await client.ws.send(self.book_frame(symbol, "snapshot"))
        else:
            error = {"message": "bad_request", "code": 11050}
            await client.ws.send(json.dumps({"jsonrpc": "2.0", "id": rid, "error": error}))

    @staticmethod
    def _result(rid: Any, result: Any) -> str:
        return json.dumps({"jsonrpc": "2.0", "id": rid, "result": result, "usIn": 1, "usOut": 2, "usDiff": 1})

    async def test_request(self) -> None:
        """Send ``test_request`` to every open connection; close the ones that do not answer in time."""
        asked = time.monotonic()
        frame = json.dumps({"jsonrpc": "2.0", "method": "heartbeat", "params": {"type": "test_request"}})
        clients = [c for c in self.clients if c.closed is None]
        for client in clients:
            await client.ws.send(frame)
        await asyncio.sleep(self.test_timeout_s)
        if not any(t >= asked for t in self.tests):
            for client in clients:
                await client.ws.close(1000, "test_request not answered")

    def _levels(self, levels: list[list[str]], action: str) -> list[list[Any]]:
        return [["delete" if float(q) == 0 else action, float(p), float(q) * self.CONTRACT_USD] for p, q in levels]

    def book_frame(self, symbol: str, kind: str, bids: Any = None, asks: Any = None, prev: int | None = None) -> str:
        book = self.books[symbol]
        data: dict[str, Any] = {"type": kind, "timestamp": _ms(), "instrument_name": symbol, "change_id": book.u}
        if kind == "snapshot":
            bids, asks = book.levels()
            data.update(bids=self._levels(bids, "new"), asks=self._levels(asks, "new"))
        else:
            data.update(prev_change_id=prev, bids=self._levels(bids, "change"), asks=self._levels(asks, "change"))
        channel = f"book.{symbol}.100ms"
        return json.dumps(
            {"jsonrpc": "2.0", "method": "subscription", "params": {"channel": channel, "data": data}},
            separators=(",", ":"),
        )

    async def book_change(self, symbol: str, break_chain: bool = False) -> None:
        book = self.books[symbol]
        previous = book.u
        bids, asks = book.change()
        book.u += 3
        prev = previous - 1 if break_chain else previous
        await self.publish(f"book.{symbol}.100ms", self.book_frame(symbol, "change", bids, asks, prev))

    def usd_book(self, symbol: str) -> tuple[dict[float, float], dict[float, float]]:
        """The server's book in base units (USD amount / price), as the client must hold it."""
        book = self.books[symbol]
        return (
            {p: q * self.CONTRACT_USD / p for p, q in book.bids.items()},
            {p: q * self.CONTRACT_USD / p for p, q in book.asks.items()},
        )

    async def trade(self, symbol: str, price: float = 30000.0, liquidation: str | None = None) -> str:
        self.trade_seq += 1
        row: dict[str, Any] = {
            "trade_seq": self.trade_seq,
            "trade_id": str(self.trade_seq * 3),
            "timestamp": _ms(),
            "tick_direction": 0,
            "price": price,
            "mark_price": price,
            "index_price": price,
            "instrument_name": symbol,
            "direction": "sell",
            "amount": 20.0,
        }
        if liquidation is not None:
            row["liquidation"] = liquidation
        channel = f"trades.{symbol}.100ms"
        frame = json.dumps(
            {"jsonrpc": "2.0", "method": "subscription", "params": {"channel": channel, "data": [row]}},
            separators=(",", ":"),
        )
        await self.publish(channel, frame)
        return frame

    def rest(self, path: str) -> tuple[int, bytes]:
        if urlsplit(path).path == "/api/v2/public/get_instruments":
            body = json.loads((FIXTURES / "deribit" / "docs_frames.json").read_text())["rest"][0]["frame"]
            return 200, json.dumps(body, separators=(",", ":")).encode()
        return 400, b'{"jsonrpc":"2.0","error":{"message":"bad_request","code":11050}}'


# ----------------------------------------------------------------------------------- Hyperliquid


class FakeHyperliquid(FakeVenue):
    """``/ws``: ``{"method": "subscribe", "subscription": {"type", "coin"}}`` one at a time,
    ``{"method": "ping"}`` -> ``{"channel": "pong"}``; ``l2Book`` pushes the whole book, the first
    one right after the subscription."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.books: dict[str, SimBook] = {}
        self.pings: list[float] = []
        self.muted: set[int] = set()
        self.tid = 90_000
        self.block_ms = _ms()

    def live_clients(self, topic: str) -> list[Client]:
        return [c for c in super().live_clients(topic) if id(c) not in self.muted]

    def mute(self) -> None:
        """The open connections stay open and get nothing more (a silent feed)."""
        self.muted.update(id(c) for c in self.clients if c.closed is None)

    async def drop(self) -> None:
        """Cut every open connection without a close frame."""
        for client in self.clients:
            if client.closed is None:
                client.ws.transport.abort()

    async def on_message(self, client: Client, text: str) -> None:
        request = json.loads(text)
        method = request.get("method")
        if method == "ping":
            self.pings.append(time.monotonic())
            await client.ws.send('{"channel":"pong"}')
            return
        subscription = request.get("subscription") or {}
        if method not in ("subscribe", "unsubscribe") or method in self.refuse:
            await client.ws.send(json.dumps({"channel": "error", "data": f"Invalid request: {text}"}))
            return
        topic = f"{subscription.get('type')}:{subscription.get('coin')}"
        (client.topics.add if method == "subscribe" else client.topics.discard)(topic)
        await client.ws.send(json.dumps({"channel": "subscriptionResponse", "data": request}, separators=(",", ":")))
        coin = subscription.get("coin")
        if method == "subscribe" and subscription.get("type") == "l2Book" and coin in self.books:
            await client.ws.send(self.book_frame(coin))

    def book_frame(self, coin: str) -> str:
        bids, asks = self.books[coin].levels()
        levels = [[{"px": p, "sz": q, "n": 1} for p, q in side] for side in (bids, asks)]
        return json.dumps(
            {"channel": "l2Book", "data": {"coin": coin, "time": self.block_ms, "levels": levels}},
            separators=(",", ":"),
        )

    async def book_push(self, coin: str) -> None:
        """One block: the book changes and its whole view is pushed."""
        self.books[coin].change()
        self.block_ms += 1
        await self.publish(f"l2Book:{coin}", self.book_frame(coin))

    async def trade(self, coin: str, price: float = 30000.0, users: tuple[str, str] | None = None) -> str:
        self.tid += 7
        row: dict[str, Any] = {
            "coin": coin,
            "side": "A",
            "px": f"{price:.1f}",
            "sz": "0.5",
            "hash": "0x" + "0" * 64,
            "time": self.block_ms,
            "tid": self.tid,
        }
        if users is not None:
            row["users"] = list(users)
        frame = json.dumps({"channel": "trades", "data": [row]}, separators=(",", ":"))
        await self.publish(f"trades:{coin}", frame)
        return frame

    async def asset_ctx(self, coin: str, mark: float = 30000.0) -> None:
        ctx = {"funding": "0.0000125", "openInterest": "1000.5", "oraclePx": f"{mark - 1:.1f}", "markPx": f"{mark:.1f}"}
        frame = json.dumps({"channel": "activeAssetCtx", "data": {"coin": coin, "ctx": ctx}}, separators=(",", ":"))
        await self.publish(f"activeAssetCtx:{coin}", frame)

    def rest(self, path: str) -> tuple[int, bytes]:
        return 405, b'{"error":"POST only"}'


def _ms() -> int:
    return time.time_ns() // 1_000_000
