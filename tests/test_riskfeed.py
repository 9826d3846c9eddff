"""The risk feed: subscriptions, token, heartbeat, 100 clients with one that never reads, the sink."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import threading
import time
from typing import Any

import bytewax.operators as op
import pytest
from bytewax.dataflow import Dataflow
from bytewax.testing import TestingSource, run_main
from prometheus_client import REGISTRY
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect as sync_connect

from cascadewatch.connectors.alerts.config import RiskFeedConfig
from cascadewatch.connectors.riskfeed import RiskFeedServer, RiskFeedSink
from cascadewatch.connectors.sinks import to_stream


def snapshot(asset: str, ts: int, **extra: Any) -> dict[str, Any]:
    return {"type": "snapshot", "ts": ts, "asset": asset, "price": 100.0, **extra}


def alert(asset: str, ts: int) -> dict[str, Any]:
    return {
        "type": "alert",
        "id": f"{asset}{ts}",
        "dedup_key": f"{asset}:cascade:down",
        "action": "trigger",
        "severity": "warning",
        "kind": "cascade",
        "asset": asset,
        "direction": "down",
        "ts": ts,
        "summary": "s",
    }


async def recv_json(ws: Any, timeout: float = 5.0) -> dict[str, Any]:
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def recv_until(ws: Any, predicate: Any, timeout: float = 5.0) -> list[dict[str, Any]]:
    got = []
    deadline = time.monotonic() + timeout
    while True:
        message = await recv_json(ws, max(0.01, deadline - time.monotonic()))
        got.append(message)
        if predicate(message):
            return got


def test_subscriptions_hello_and_latest_snapshot() -> None:
    async def scenario(server: RiskFeedServer) -> None:
        server.publish(snapshot("BTC-USDT", 1000))  # before anyone connects: kept as the latest
        await asyncio.sleep(0.1)
        async with connect(server.url + "/?assets=BTC") as btc, connect(server.url) as everyone:
            assert await recv_json(btc) == {"type": "hello", "server": "cascadewatch-riskfeed", "assets": ["BTC"]}
            assert await recv_json(btc) == snapshot("BTC-USDT", 1000)
            assert (await recv_json(everyone))["assets"] == []
            assert await recv_json(everyone) == snapshot("BTC-USDT", 1000)
            server.publish_many(
                [
                    snapshot("ETH-USDT", 2000),
                    snapshot("BTC-USDT", 2000),
                    alert("ETH-USDT", 2000),
                    alert("BTC-USDT", 2000),
                    {"type": "dead_letter", "reason": "x"},
                ]
            )
            assert [await recv_json(btc) for _ in range(2)] == [snapshot("BTC-USDT", 2000), alert("BTC-USDT", 2000)]
            assert [await recv_json(everyone) for _ in range(4)] == [
                snapshot("ETH-USDT", 2000),
                snapshot("BTC-USDT", 2000),
                alert("ETH-USDT", 2000),
                alert("BTC-USDT", 2000),
            ]
            await btc.send(json.dumps({"op": "subscribe", "assets": ["ETH-USDT"]}))
            assert await recv_json(btc) == {"type": "subscribed", "assets": ["ETH-USDT"]}
            assert await recv_json(btc) == snapshot("ETH-USDT", 2000)
            server.publish_many([snapshot("BTC-USDT", 3000), snapshot("ETH-USDT", 3000)])
            assert await recv_json(btc) == snapshot("ETH-USDT", 3000)
            await btc.send("nonsense")
            assert (await recv_json(btc))["type"] == "error"

    with RiskFeedServer(port=0, ping_interval_s=None) as server:
        asyncio.run(scenario(server))


def test_token_is_required_when_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CW_TEST_FEED_TOKEN", "s3cret-token")
    server = RiskFeedServer.from_config(RiskFeedConfig(port=0, token_env="CW_TEST_FEED_TOKEN"))

    async def scenario() -> None:
        for headers in (None, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic s3cret-token"}):
            with pytest.raises(InvalidStatus) as refused:
                async with connect(server.url, additional_headers=headers):
                    pass
            assert refused.value.response.status_code == 401
        async with connect(server.url, additional_headers={"Authorization": "Bearer s3cret-token"}) as ws:
            assert (await recv_json(ws))["type"] == "hello"

    with server:
        asyncio.run(scenario())
        assert server.stats.refused == 3


def test_heartbeat_keeps_idle_clients_informed() -> None:
    async def scenario(server: RiskFeedServer) -> None:
        async with connect(server.url) as ws:
            messages = await recv_until(ws, lambda m: m["type"] == "heartbeat", timeout=3)
            assert isinstance(messages[-1]["ts"], int)

    with RiskFeedServer(port=0, ping_interval_s=0.2, ping_timeout_s=5) as server:
        asyncio.run(scenario(server))


def _never_reading_client(port: int) -> socket.socket:
    """A websocket handshake on a socket with a tiny receive buffer that is never read again."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        f"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    assert head.startswith(b"HTTP/1.1 101")
    return sock


def test_100_clients_one_never_reads_is_dropped_others_get_everything_on_time() -> None:
    assets, ticks, padding = ("BTC-USDT", "ETH-USDT", "SOL-USDT"), 30, "x" * 2000
    server = RiskFeedServer(port=0, queue_size=16, send_buffer_bytes=8192, ping_interval_s=None)
    publish_times: list[float] = []

    def producer() -> None:
        for tick in range(ticks):
            items = [snapshot(a, tick * 1000, sent=time.monotonic(), pad=padding) for a in assets]
            started = time.perf_counter()
            server.publish_many(items)
            publish_times.append(time.perf_counter() - started)
            time.sleep(0.05)

    async def client(url: str, ready: asyncio.Event) -> list[tuple[str, int, float]]:
        got = []
        async with connect(url, max_queue=None) as ws:
            assert (await recv_json(ws))["type"] == "hello"
            ready.set()
            while len(got) < ticks * len(assets):
                message = await recv_json(ws, timeout=10)
                if message["type"] == "snapshot":
                    got.append((message["asset"], message["ts"], time.monotonic() - message["sent"]))
        return got

    async def scenario() -> None:
        slow = _never_reading_client(server.port)
        readies = [asyncio.Event() for _ in range(99)]
        tasks = []
        for i, ready in enumerate(readies):
            tasks.append(asyncio.create_task(client(server.url, ready)))
            if i % 20 == 19:
                await asyncio.gather(*(r.wait() for r in readies[: i + 1]))
        await asyncio.wait_for(asyncio.gather(*(r.wait() for r in readies)), 20)
        assert server.stats.clients == 100
        thread = threading.Thread(target=producer)
        thread.start()
        results = await asyncio.wait_for(asyncio.gather(*tasks), 30)
        thread.join()
        expected = [(a, t * 1000) for t in range(ticks) for a in assets]
        for got in results:
            assert [(a, t) for a, t, _ in got] == expected
        worst = max(lag for got in results for _, _, lag in got)
        assert worst < 1.0, f"a fast client got a snapshot {worst:.2f}s late"
        assert server.stats.dropped_slow == 1
        assert (REGISTRY.get_sample_value("cascadewatch_riskfeed_dropped_total") or 0) >= 1
        assert server.stats.connected_total == 100
        # publish only enqueues: it never waits on a client (a publish blocked behind the
        # never-reading client would take until the end of the test). The bound is loose because
        # the event loop thread shares the GIL with 100 clients on a loaded 2-core machine.
        assert sorted(publish_times)[len(publish_times) // 2] < 0.01
        assert max(publish_times) < 0.5
        slow.close()

    with server:
        asyncio.run(scenario())


def test_sink_in_a_flow_publishes_snapshots_and_alerts_and_sets_gauges() -> None:
    items = [
        to_stream("snapshots", snapshot("BTC-USDT", 1000, prob_down=0.42, prob_up=0.05, down={"cascade": None})),
        to_stream("alerts", alert("BTC-USDT", 1000)),
        to_stream("dead_letters", {"reason": "schema"}),
        to_stream("snapshots", snapshot("BTC-USDT", 2000, prob_down=0.61, down={"cascade": "liquidation"})),
    ]
    with RiskFeedServer(port=0, ping_interval_s=None) as server:
        received: list[dict[str, Any]] = []
        with sync_connect(server.url) as ws:
            assert json.loads(ws.recv(timeout=5))["type"] == "hello"
            flow = Dataflow("riskfeed_test")
            op.output("feed", op.input("in", flow, TestingSource(items)), RiskFeedSink(server))
            run_main(flow)
            while len(received) < 3:
                received.append(json.loads(ws.recv(timeout=5)))
    assert [(m["type"], m["ts"]) for m in received] == [("snapshot", 1000), ("alert", 1000), ("snapshot", 2000)]
    assert (
        REGISTRY.get_sample_value("cascadewatch_asset_probability", {"asset": "BTC-USDT", "direction": "down"}) == 0.61
    )
    state = {"asset": "BTC-USDT", "direction": "down"}
    assert REGISTRY.get_sample_value("cascadewatch_asset_state", {**state, "state": "liquidation"}) == 1
    assert REGISTRY.get_sample_value("cascadewatch_asset_state", {**state, "state": "calm"}) == 0


def test_sink_can_own_its_server() -> None:
    sink = RiskFeedSink(RiskFeedConfig(port=0, ping_interval_s=1.0))
    part = sink.build_part("feed", "riskfeed", None)
    assert part.server.port != 0
    with sync_connect(part.server.url) as ws:
        assert json.loads(ws.recv(timeout=5))["type"] == "hello"
        part.write_batch([to_stream("snapshots", snapshot("ETH-USDT", 5))[1]])
        assert json.loads(ws.recv(timeout=5)) == snapshot("ETH-USDT", 5)
    part.close()


def test_port_in_use_is_a_clear_error() -> None:
    with RiskFeedServer(port=0, ping_interval_s=None) as first:
        with pytest.raises(OSError, match=f"risk feed cannot listen on 127.0.0.1:{first.port}"):
            RiskFeedServer(port=first.port).start()


def test_deeply_nested_json_is_an_error_answer_not_a_traceback(caplog: pytest.LogCaptureFixture) -> None:
    deep = "[" * 30_000 + "]" * 30_000  # within the 64 KiB message limit, far past Python's recursion limit

    async def scenario(server: RiskFeedServer) -> None:
        async with connect(server.url + "/") as ws:
            assert (await recv_json(ws))["type"] == "hello"
            await ws.send(deep)
            assert await recv_json(ws) == {"type": "error", "error": 'expected {"op": "subscribe", "assets": [...]}'}
            await ws.send(json.dumps({"op": "subscribe", "assets": ["BTC"]}))
            assert await recv_json(ws) == {"type": "subscribed", "assets": ["BTC"]}

    with RiskFeedServer(port=0, ping_interval_s=None) as server:
        asyncio.run(scenario(server))
    assert "RecursionError" not in caplog.text and "Traceback" not in caplog.text
