"""The live risk feed: a websocket server broadcasting snapshots and alerts.

The pipeline calls :meth:`RiskFeedServer.publish` (thread-safe, never blocks: it encodes
the item once and hands it to the server's event loop) from :class:`RiskFeedSink`. Each
connected client gets every alert and one snapshot per asset per second, for the assets
it subscribed to, as JSON text frames exactly as in the snapshots/alerts JSONL.

Protocol (``ws://127.0.0.1:8765`` by default, loopback only unless configured):

- optional bearer token: ``Authorization: Bearer <token>`` (or, from a browser, the
  subprotocol of :mod:`cascadewatch.connectors.webpage`); without it, or with a wrong one,
  the handshake is refused with HTTP 401;
- a plain HTTP ``GET`` on the same port serves the web risk page
  (:mod:`cascadewatch.connectors.webpage`; the page holds no data, the feed does);
- subscribe in the URL, ``ws://host:port/?assets=BTC,ETH-USDT`` (``BTC`` matches
  ``BTC-USDT``), or at any time with ``{"op": "subscribe", "assets": ["BTC"]}`` (an empty
  list: every asset); the server answers ``{"type": "subscribed", "assets": [...]}``;
- ``{"op": "history", "asset": "BTC-USDT"}``: the server answers with the asset's last hour
  (:class:`~cascadewatch.connectors.feed_history.FeedHistory`, the web page's asset view);
- on connect the server sends ``{"type": "hello", ...}`` (with ``"page"``: the alert
  thresholds, when the pipeline set them) then the latest snapshot of each subscribed asset,
  with ``?recent=1`` the last :data:`RECENT_ALERTS` alerts, then live items;
  ``{"type": "heartbeat", "ts": <ms>}`` every ``ping_interval_s`` plus websocket pings keep
  idle connections alive;
- each client has a bounded queue (``queue_size`` messages) and a bounded socket send
  buffer; a client that falls further behind is disconnected (close code 1008, "too slow")
  and counted, never slowing the pipeline or the other clients.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import threading
import time
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, urlsplit

import msgspec
from bytewax.outputs import FixedPartitionedSink, StatefulSinkPartition
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol

from cascadewatch.connectors.alerts import metrics
from cascadewatch.connectors.alerts.config import RiskFeedConfig
from cascadewatch.connectors.alerts.routing import asset_matches
from cascadewatch.connectors.feed_history import FeedHistory
from cascadewatch.connectors.webpage import SUBPROTOCOL, is_upgrade, page_response, token_matches

log = logging.getLogger("cascadewatch.riskfeed")
RECENT_ALERTS = 100
"""Alerts kept for a client that asks for them on connect (``?recent=1``: the web page's alert log)."""
_encoder = msgspec.json.Encoder()


@dataclass
class FeedStats:
    """Counters of the feed (read them from any thread)."""

    published: int = 0
    clients: int = 0
    connected_total: int = 0
    dropped_slow: int = 0
    refused: int = 0


@dataclass(eq=False)
class _Client:
    ws: ServerConnection
    queue: asyncio.Queue[str]
    assets: list[str] = field(default_factory=list)
    sender: asyncio.Task[None] | None = None
    dropped: bool = False

    def wants(self, asset: str | None) -> bool:
        return asset is None or asset_matches(asset, self.assets)


def _assets_from_query(path: str) -> list[str]:
    query = parse_qs(urlsplit(path).query)
    assets: list[str] = []
    for value in query.get("assets", []) + query.get("asset", []):
        assets.extend(a.strip() for a in value.split(",") if a.strip())
    return assets


class RiskFeedServer:
    """A websockets server in its own thread and event loop.

    ``port=0`` picks a free port (read :attr:`port` after :meth:`start`).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 8765,
        token: str | None = None,
        queue_size: int = 256,
        send_buffer_bytes: int | None = 262144,
        ping_interval_s: float | None = 20.0,
        ping_timeout_s: float | None = 20.0,
    ) -> None:
        self.host = host
        self.port = port
        self._token = token
        self.queue_size = queue_size
        self.send_buffer_bytes = send_buffer_bytes
        self.ping_interval_s = ping_interval_s
        self.ping_timeout_s = ping_timeout_s
        self.stats = FeedStats()
        self._clients: set[_Client] = set()
        self._latest: dict[str, str] = {}
        self._recent: deque[tuple[str | None, str]] = deque(maxlen=RECENT_ALERTS)
        self.history = FeedHistory()
        """The last hour per asset, for ``{"op": "history"}`` (the web page's asset view)."""
        self.page: dict[str, Any] = {}
        """What the web page needs beyond the items (``{"thresholds": {"warn_enter": ..}}``): sent in the hello."""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stopped: asyncio.Event | None = None
        self._error: BaseException | None = None

    @classmethod
    def from_config(cls, config: RiskFeedConfig) -> RiskFeedServer:
        """A server with the host, port, token and queue size of ``[riskfeed]``."""
        return cls(
            config.host,
            config.port,
            config.resolve_token(),
            config.queue_size,
            config.send_buffer_bytes,
            config.ping_interval_s,
            config.ping_timeout_s,
        )

    # -- lifecycle ---------------------------------------------------------------------

    def start(self, timeout: float = 10.0) -> RiskFeedServer:
        """Start serving; returns once the socket is bound (raises if it cannot be)."""
        self._thread = threading.Thread(target=self._run, name="riskfeed", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError("risk feed did not start in time")
        if self._error is not None:
            raise OSError(f"risk feed cannot listen on {self.host}:{self.port}: {self._error}") from self._error
        log.info(
            "risk feed listening on ws://%s:%d%s", self.host, self.port, " (token required)" if self._token else ""
        )
        if self._token is None and self.host not in ("127.0.0.1", "localhost", "::1"):
            log.warning("risk feed on %s without a token: anyone who can reach this port can read it", self.host)
        return self

    def stop(self) -> None:
        """Stop serving and wait for the server thread."""
        loop, stopped = self._loop, self._stopped
        if loop is not None and stopped is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(stopped.set)
            except RuntimeError:
                pass
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def __enter__(self) -> RiskFeedServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """The server's ``ws://host:port`` address."""
        return f"ws://{self.host}:{self.port}"

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._serve())
        except BaseException as exc:
            self._error = exc
        finally:
            self._ready.set()
            loop.close()

    async def _serve(self) -> None:
        self._stopped = asyncio.Event()
        async with serve(
            self._handler,
            self.host,
            self.port,
            process_request=self._authorize,
            select_subprotocol=_select_subprotocol,
            ping_interval=self.ping_interval_s,
            ping_timeout=self.ping_timeout_s,
            close_timeout=1.0,
            max_size=64 * 1024,
            write_limit=16 * 1024,
            server_header="cascadewatch-riskfeed",
        ) as server:
            self.port = _bound_port(server, self.port)
            self._ready.set()
            heartbeat = asyncio.create_task(self._heartbeat())
            await self._stopped.wait()
            heartbeat.cancel()
            for client in list(self._clients):
                if client.sender is not None:
                    client.sender.cancel()
            server.close(close_connections=True)
            await server.wait_closed()

    # -- the producer side (any thread) ------------------------------------------------

    def publish(self, item: Any) -> None:
        """Broadcast one snapshot or alert (dict or msgspec Struct). Never blocks."""
        self.publish_many((item,))

    def publish_many(self, items: Iterable[Any]) -> None:
        """Broadcast several items in order with one hand-over to the server loop."""
        loop = self._loop
        encoded: list[tuple[str, str | None, str, dict[str, Any]]] = []
        for item in items:
            if not isinstance(item, dict):
                item = msgspec.to_builtins(item)
            if not isinstance(item, dict) or item.get("type") not in ("snapshot", "alert"):
                continue
            encoded.append((item["type"], item.get("asset"), _encoder.encode(item).decode(), item))
        if not encoded or loop is None or loop.is_closed():
            return
        self.stats.published += len(encoded)
        try:
            loop.call_soon_threadsafe(self._fanout, encoded)
        except RuntimeError:  # the loop closed meanwhile
            pass

    # -- the server loop ---------------------------------------------------------------

    def _fanout(self, encoded: list[tuple[str, str | None, str, dict[str, Any]]]) -> None:
        for kind, asset, text, item in encoded:
            if kind == "snapshot" and asset:
                self._latest[asset] = text
                self.history.add(item)
            elif kind == "alert":
                self._recent.append((asset, text))
            for client in list(self._clients):
                if client.wants(asset):
                    self._offer(client, text)

    def _offer(self, client: _Client, text: str) -> None:
        try:
            client.queue.put_nowait(text)
        except asyncio.QueueFull:
            self._drop(client)

    def _drop(self, client: _Client) -> None:
        if client.dropped:
            return
        client.dropped = True
        self._clients.discard(client)
        self.stats.clients = len(self._clients)
        self.stats.dropped_slow += 1
        metrics.FEED_DROPPED.inc()
        metrics.FEED_CLIENTS.set(len(self._clients))
        log.warning(
            "risk feed: client %s too slow (%d messages queued), disconnected", _peer(client.ws), client.queue.qsize()
        )
        if client.sender is not None:
            client.sender.cancel()
        asyncio.get_running_loop().create_task(_close_slow(client.ws))

    async def _authorize(self, connection: ServerConnection, request: Request) -> Response | None:
        if not is_upgrade(request):
            return page_response(request, self._token)
        if self._token is None or token_matches(request, self._token):
            return None
        self.stats.refused += 1
        response = connection.respond(HTTPStatus.UNAUTHORIZED, "a valid 'Authorization: Bearer <token>' is required\n")
        response.headers["WWW-Authenticate"] = 'Bearer realm="cascadewatch-riskfeed"'
        return response

    async def _handler(self, ws: ServerConnection) -> None:
        sock = ws.transport.get_extra_info("socket")
        if sock is not None and self.send_buffer_bytes:
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.send_buffer_bytes)
            except OSError:
                pass
        path = ws.request.path if ws.request else ""
        client = _Client(ws, asyncio.Queue(self.queue_size), _assets_from_query(path))
        self._clients.add(client)
        self.stats.clients = len(self._clients)
        self.stats.connected_total += 1
        metrics.FEED_CLIENTS.set(len(self._clients))
        hello: dict[str, Any] = {"type": "hello", "server": "cascadewatch-riskfeed", "assets": client.assets}
        if self.page:
            hello["page"] = self.page
        self._offer(client, json.dumps(hello))
        self._send_latest(client)
        if parse_qs(urlsplit(path).query).get("recent") == ["1"]:
            for asset, text in self._recent:
                if client.wants(asset):
                    self._offer(client, text)
        client.sender = asyncio.create_task(self._sender(client))
        try:
            async for message in ws:
                self._control(client, message)
        except ConnectionClosed:
            pass
        finally:
            self._clients.discard(client)
            self.stats.clients = len(self._clients)
            metrics.FEED_CLIENTS.set(len(self._clients))
            if client.sender is not None:
                client.sender.cancel()

    def _send_latest(self, client: _Client) -> None:
        for asset in sorted(self._latest):
            if client.wants(asset):
                self._offer(client, self._latest[asset])

    def _control(self, client: _Client, message: str | bytes) -> None:
        try:
            request = json.loads(message)
        except (ValueError, RecursionError):  # RecursionError: nested deeper than Python's stack
            request = None
        if isinstance(request, dict) and request.get("op") == "history" and isinstance(request.get("asset"), str):
            self._offer(client, self.history.message(request["asset"]))
            return
        if (
            not isinstance(request, dict)
            or request.get("op") != "subscribe"
            or not isinstance(request.get("assets"), list)
        ):
            self._offer(client, json.dumps({"type": "error", "error": 'expected {"op": "subscribe", "assets": [...]}'}))
            return
        client.assets = [str(a) for a in request["assets"]]
        self._offer(client, json.dumps({"type": "subscribed", "assets": client.assets}))
        self._send_latest(client)

    async def _sender(self, client: _Client) -> None:
        try:
            while True:
                text = await client.queue.get()
                await client.ws.send(text)
        except (ConnectionClosed, asyncio.CancelledError):
            pass

    async def _heartbeat(self) -> None:
        interval = self.ping_interval_s or 20.0
        while True:
            await asyncio.sleep(interval)
            beat = json.dumps({"type": "heartbeat", "ts": int(time.time() * 1000)})
            for client in list(self._clients):
                self._offer(client, beat)


def _select_subprotocol(connection: ServerConnection, subprotocols: Sequence[Subprotocol]) -> Subprotocol | None:
    """:data:`SUBPROTOCOL` to a client that offers subprotocols (the page: its token rides in one)."""
    return Subprotocol(SUBPROTOCOL) if subprotocols else None


async def _close_slow(ws: ServerConnection) -> None:
    try:
        await asyncio.wait_for(ws.close(code=1008, reason="too slow: queue full"), timeout=2.0)
    except (TimeoutError, ConnectionClosed, OSError):
        pass
    finally:
        ws.transport.abort()


def _peer(ws: ServerConnection) -> str:
    try:
        host, port = ws.remote_address[:2]
        return f"{host}:{port}"
    except (TypeError, ValueError):
        return "?"


def _bound_port(server: Server, fallback: int) -> int:
    for sock in server.sockets:
        return int(sock.getsockname()[1])
    return fallback


class _RiskFeedPartition(StatefulSinkPartition[tuple[str, Any], None]):
    def __init__(self, server: RiskFeedServer, owned: bool, observe: bool) -> None:
        self.server = server
        self.owned = owned
        self.observe = observe

    def write_batch(self, items: list[tuple[str, Any]]) -> None:
        values = [value for _stream, value in items]
        if self.observe:
            for value in values:
                if isinstance(value, dict) and value.get("type") == "snapshot":
                    metrics.observe_snapshot(value)
        self.server.publish_many(values)

    def snapshot(self) -> None:
        return None

    def close(self) -> None:
        if self.owned:
            self.server.stop()


class RiskFeedSink(FixedPartitionedSink[tuple[str, Any], None]):
    """Publish snapshots and alerts (items ``(stream, (stream, value))``) to the risk feed.

    ``feed`` is a running :class:`RiskFeedServer` (the caller owns it) or a
    :class:`RiskFeedConfig` (the sink's single partition starts the server and stops it
    at the end of the flow). ``observe_metrics``: also update the per-asset Prometheus
    gauges from each snapshot. ``page``: what the web page is told in the hello (the alert
    thresholds, :attr:`RiskFeedServer.page`). Other item types (dead letters) are ignored.
    """

    def __init__(
        self, feed: RiskFeedServer | RiskFeedConfig, observe_metrics: bool = True, page: dict[str, Any] | None = None
    ) -> None:
        self.feed = feed
        self.observe_metrics = observe_metrics
        self.page = page or {}

    def list_parts(self) -> list[str]:
        """One partition: the server is one per process."""
        return ["riskfeed"]

    def part_fn(self, item_key: str) -> int:
        """Every item goes to the one partition."""
        return 0

    def build_part(self, step_id: str, for_part: str, resume_state: None) -> _RiskFeedPartition:
        """The partition that broadcasts items: on the given server, or on one it starts from ``[riskfeed]``."""
        if isinstance(self.feed, RiskFeedServer):
            self.feed.page = self.page or self.feed.page
            return _RiskFeedPartition(self.feed, owned=False, observe=self.observe_metrics)
        server = RiskFeedServer.from_config(self.feed)
        server.page = self.page
        return _RiskFeedPartition(server.start(), owned=True, observe=self.observe_metrics)
