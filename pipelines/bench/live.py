"""Benchmark of one live source partition against a local websocket server in another process.

- throughput: the server sends ``frames`` Binance aggTrade frames as fast as it can; frames per
  second through socket thread -> queue -> ``LivePartition.next_batch`` (parse, group, mark);
- latency at a paced rate (default 10,000 frames/s): receive time -> the batch holding the
  frame's event returned by ``next_batch`` (what the dataflow adds after that is the
  watermark wait: a second closes ``allowed_lag_s`` after it ends, by design).

``python -m cascadewatch.pipelines.bench.live`` prints JSON; :func:`bench_live` returns the same dict.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

EXCHANGE_INFO = (
    b'{"symbols":[{"symbol":"BTCUSDT","pair":"BTCUSDT","contractType":"PERPETUAL","status":"TRADING",'
    b'"baseAsset":"BTC","quoteAsset":"USDT","filters":[{"filterType":"PRICE_FILTER","tickSize":"0.10"}]}]}'
)


async def _serve(port: int, frames: int, rate: float) -> None:
    """The server process: wait for a SUBSCRIBE, then send ``frames`` aggTrade frames."""
    from websockets.asyncio.server import serve

    done = asyncio.Event()

    async def handler(ws: Any) -> None:
        async for message in ws:
            request = json.loads(message)
            await ws.send(json.dumps({"result": None, "id": request.get("id")}))
            if not any("aggTrade" in p for p in request.get("params", [])):
                continue
            start = time.perf_counter()
            for i in range(frames):
                now_ms = time.time_ns() // 1_000_000
                await ws.send(
                    '{"stream":"btcusdt@aggTrade","data":{"e":"aggTrade","E":%d,"a":%d,"s":"BTCUSDT","p":"30000.%d",'
                    '"q":"0.010","f":%d,"l":%d,"T":%d,"m":false}}' % (now_ms, i, i % 10, i, i, now_ms)
                )
                if rate > 0:
                    delay = start + (i + 1) / rate - time.perf_counter()
                    if delay > 0:
                        await asyncio.sleep(delay)
                elif i % 256 == 0:
                    await asyncio.sleep(0)
            done.set()

    async with serve(handler, "127.0.0.1", port, compression=None):
        await asyncio.wait_for(done.wait(), timeout=600)
        await asyncio.sleep(1.0)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(frames: int, rate: float) -> dict[str, Any]:
    from cascadewatch.connectors.live import LivePartition
    from cascadewatch.connectors.live_config import LiveConfig, VenueConfig
    from cascadewatch.connectors.rest import Reply

    port = _free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cascadewatch.pipelines.bench.live",
            "--serve",
            str(port),
            "--frames",
            str(frames),
            "--rate",
            str(rate),
        ],
        cwd=Path(__file__).parent.parent,
    )
    try:
        time.sleep(0.5)
        url = f"ws://127.0.0.1:{port}/market/stream"
        live = LiveConfig(venues=["binance"], queue_size=1_000_000, staleness_s=60.0).with_venue(
            "binance",
            VenueConfig(ws_url=url, ws_book_url=url, rest_url="http://127.0.0.1:9", symbols=["BTCUSDT"], poll_s=0.0),
        )
        options = {"rest_get": lambda url, timeout: Reply(200, EXCHANGE_INFO)}
        partition = LivePartition(0, "binance", live, 2_000_000_000, None, None, options)
        seen = 0
        first = last = 0.0
        latencies: list[int] = []
        deadline = time.monotonic() + 120
        try:
            while seen < frames and time.monotonic() < deadline:
                items = partition.next_batch()
                done_ns = time.time_ns()
                got = 0
                for key, values in items:
                    if key == "binance-usdm|BTC-USDT-PERP":
                        for value in values:
                            if value.__class__.__name__ == "Trade":
                                got += 1
                                if rate > 0:
                                    latencies.append(done_ns - value.recv)
                if got:
                    if not seen:
                        first = time.perf_counter()
                    seen += got
                    last = time.perf_counter()
                else:
                    time.sleep(0.001)
        finally:
            partition.close()
    finally:
        server.wait(30)
    result: dict[str, Any] = {"frames": seen, "seconds": round(last - first, 3)}
    if rate > 0 and latencies:
        latencies.sort()
        result["rate"] = rate
        result["latency_ms_p50"] = round(latencies[len(latencies) // 2] / 1e6, 3)
        result["latency_ms_p99"] = round(latencies[int(len(latencies) * 0.99)] / 1e6, 3)
    else:
        result["frames_per_s"] = round(seen / max(last - first, 1e-9))
    return result


def bench_live(frames: int = 200_000, rate: float = 10_000.0, paced_seconds: float = 5.0) -> dict[str, Any]:
    """Throughput (as fast as the server sends) and latency at ``rate`` frames/s."""
    return {
        "throughput": _run(frames, 0.0),
        "paced": _run(int(rate * paced_seconds), rate),
    }


def main(argv: list[str] | None = None) -> int:
    """Run the live benchmark (``python -m cascadewatch.pipelines.bench.live``); returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--serve", type=int, metavar="PORT", help=argparse.SUPPRESS)
    parser.add_argument("--frames", type=int, default=200_000)
    parser.add_argument("--rate", type=float, default=10_000.0)
    parser.add_argument("--seconds", type=float, default=5.0, help="length of the paced run")
    args = parser.parse_args(argv)
    if args.serve:
        asyncio.run(_serve(args.serve, args.frames, args.rate))
        return 0
    print(json.dumps(bench_live(args.frames, args.rate, args.seconds), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
