"""``make bench``: cascadewatch end to end against the peer, cryptofeed 2.4.1, on the same frames.

1. Simulates Binance USD-M alone, three perpetuals (BTCUSDT, ETHUSDT, SOLUSDT: the
   ``multi-venue`` market on Binance only, :data:`ACTIVITY` times its untracked order flow,
   other seeds, symbols renamed), books every 100 ms: depth diffs, aggTrades, markPrice, some
   forceOrder, the REST depth snapshots that bootstrap the books; about 460 frames per second
   of market time over the three (issue 15's market). One recording of at least 1,000,000
   frames (cached in ``.bench/``).
2. Bare decode: reads the recording and ``msgspec.json.decode``s every payload (file read and
   decompression included): the ceiling for any Python consumer of these frames.
3. The peer: cryptofeed's ``BinanceFutures.message_handler`` (the ``[bench]`` extra) fed every
   websocket frame of the recording, read from the same file, as its connection would hand
   them over; its L2 books kept from the recorded REST depth snapshots (its REST client answers
   from the recording: no network). It normalizes (``Trade``, ``Liquidation``, ``Funding``,
   the ``OrderBook`` with its delta) and nothing else: no callbacks, no analytics.
4. cascadewatch end to end on the same file (``cascadewatch replay --speed max`` in a fresh
   process: books, per-second state, detectors, snapshots, alerts, JSONL), timed as in
   :func:`~cascadewatch.pipelines.bench.replay.measure_replay`.

Prints the rates, cascadewatch's ratio to the peer and to the bare decode, and a desk-day
figure: how many times faster than real time a desk's day replays, 20 perpetuals on three
venues at :data:`DESK_DAY_FRAMES` frames a day. Targets (issue 15): end to end at least 1.5x
the peer (moonshot 3x) and at least 0.25 of the bare decode.
"""

from __future__ import annotations

import argparse
import asyncio
import heapq
import json
import math
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import msgspec

from cascadewatch.connectors.recording import RecordingReader
from cascadewatch.pipelines.bench.replay import BENCH_DIR, measure_replay, renamed, write_by_venue

SYMBOLS = ("BTC", "ETH", "SOL")
"""The perpetuals of the peer bench (``<asset>USDT``); BTC is the simulated market itself."""
SEED = 11
ACTIVITY = 35.0
"""Untracked order flow, a multiple of the scenario's: about 155 frames/s per symbol."""
DESK_DAY_FRAMES = 100_000_000
"""Frames a busy desk day brings: three venues x 20 perpetuals (issue 15), about 1,157 frames/s."""
PEER_VERSION = "2.4.1"


def binance_recording(min_frames: int, out_dir: Path = BENCH_DIR) -> tuple[Path, int, float]:
    """A cached Binance USD-M recording of :data:`SYMBOLS`, at least ``min_frames`` frames: its path,
    frame count and length in market seconds.

    Each symbol is ``multi-venue`` on Binance alone (:data:`ACTIVITY` x the untracked order
    flow, books every 100 ms) simulated with seed ``SEED + i`` and renamed from BTC.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = out_dir / f"binance-busy-{min_frames}"
    meta = stem.with_suffix(".json")
    if meta.exists():
        recorded = json.loads(meta.read_text())
        return Path(recorded["path"]), recorded["frames"], recorded["market_s"]
    per_symbol_s = min_frames / len(SYMBOLS) / 150.0 * 1.05  # about 155 frames/s per symbol
    while True:
        paths, frames = _simulate(per_symbol_s, stem, out_dir)
        if frames >= min_frames:
            break
        per_symbol_s *= min_frames / max(frames, 1) * 1.05
    meta.write_text(json.dumps({"frames": frames, "path": str(paths[0]), "market_s": per_symbol_s}))
    return paths[0], frames, per_symbol_s


def _simulate(per_symbol_s: float, stem: Path, out_dir: Path) -> tuple[list[Path], int]:
    """Simulate each of :data:`SYMBOLS` for ``per_symbol_s`` seconds and merge them into ``stem``."""
    from cascadewatch.pipelines.simulate.runner import run_scenario
    from cascadewatch.pipelines.simulate.scenarios import SCENARIOS

    scenario = replace(
        SCENARIOS["multi-venue"].with_venues(("binance-usdm",)), activity=ACTIVITY, step_s=0.1, duration_s=per_symbol_s
    )
    parts = []
    for i in range(len(SYMBOLS)):
        part = out_dir / f"{stem.name}-part{i}.rec.zst"
        print(f"simulating Binance USD-M for {per_symbol_s:,.0f} s (seed {SEED + i}) ...", file=sys.stderr)
        run_scenario(scenario, SEED + i, part)
        parts.append(part)
    merged = heapq.merge(
        *(renamed(RecordingReader(path), asset) for path, asset in zip(parts, SYMBOLS, strict=True)),
        key=lambda f: f[0],
    )
    paths, frames = write_by_venue(merged, stem, f"Binance USD-M {'/'.join(SYMBOLS)}")
    for part in parts:
        part.unlink()
    return paths, frames


def bare_decode_rate(path: Path) -> tuple[float, float]:
    """Frames per second of reading ``path`` and ``msgspec.json.decode`` of every payload, by the
    wall clock and by this process's CPU time."""
    decode = msgspec.json.decode
    started, cpu_started = time.perf_counter(), time.process_time()
    count = 0
    for frame in RecordingReader(path):
        decode(frame.payload)
        count += 1
    return count / (time.perf_counter() - started), count / (time.process_time() - cpu_started)


@dataclass(frozen=True)
class PeerRun:
    """One run of the peer over a recording: frames read, seconds taken (wall clock and this
    process's CPU), and its L2 books at the end, ``{symbol: (bids, asks)}`` as ``{price: qty}``
    floats (to check it kept the same books)."""

    frames: int
    seconds: float
    books: dict[str, tuple[dict[float, float], dict[float, float]]]
    cpu_seconds: float = math.nan

    @property
    def rate(self) -> float:
        """Frames per second."""
        return self.frames / self.seconds

    @property
    def cpu_rate(self) -> float:
        """Frames per CPU second."""
        return self.frames / self.cpu_seconds


def run_peer(path: Path, symbols: tuple[str, ...] = SYMBOLS) -> PeerRun | None:
    """cryptofeed's ``BinanceFutures`` normalizing ``path`` (perpetuals ``<symbol>USDT``); ``None``
    without cryptofeed (the ``[bench]`` extra).

    Every frame of the file is read (the rate counts them all, as the other figures do); the
    combined-stream websocket frames go to ``message_handler`` as its connection would hand
    them over; the recorded REST depth snapshots are served to the feed's REST client when it
    asks for a book (on a symbol's first diff and after a gap: no network). A symbol's diffs
    that come before its first recorded snapshot wait for it, as they would queue on the socket
    while the feed fetched it.
    """
    try:
        from cryptofeed.defines import BINANCE_FUTURES
        from cryptofeed.exchanges.binance_futures import BinanceFutures
        from cryptofeed.symbols import Symbols
    except ImportError:
        return None
    Symbols.set(BINANCE_FUTURES, {f"{s}-USDT-PERP": f"{s}USDT" for s in symbols}, {})
    snapshots: dict[str, str] = {}

    async def read_snapshot(address: str, **_kwargs: object) -> str:
        return snapshots[address.split("symbol=", 1)[1].split("&", 1)[0]]

    feed = BinanceFutures(symbols=[f"{s}-USDT-PERP" for s in symbols], channels=["l2_book", "trades"])
    feed.http_conn.read = read_snapshot  # its REST client answers from the recording

    async def run() -> int:
        handler = feed.message_handler
        waiting: dict[str, list[tuple[str, float]]] = {}  # symbol -> diffs before its first snapshot
        count = 0
        for frame in RecordingReader(path):
            count += 1
            if frame.source == "binance-usdm":
                text = frame.payload.decode()
                if not text.startswith('{"stream"'):
                    continue  # subscription replies: the feed subscribes by URL and never sees one
                stream = text[11 : text.index('"', 11)]
                symbol = stream.partition("@")[0].upper()
                if "@depth" in stream and symbol not in snapshots:
                    waiting.setdefault(symbol, []).append((text, frame.recv / 1e9))
                    continue
                await handler(text, None, frame.recv / 1e9)
            elif frame.source == "binance-usdm!rest":
                rest = msgspec.json.decode(frame.payload)
                if rest["path"].startswith("/fapi/v1/depth"):
                    body = rest["body"]
                    symbol = rest["path"].split("symbol=", 1)[1].split("&", 1)[0]
                    snapshots[symbol] = body if isinstance(body, str) else msgspec.json.encode(body).decode()
                    for text, recv in waiting.pop(symbol, []):
                        await handler(text, None, recv)
        return count

    started, cpu_started = time.perf_counter(), time.process_time()
    count = asyncio.run(run())
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    books = {
        f"{std.split('-')[0]}{std.split('-')[1]}": (
            {float(p): float(q) for p, q in book.book.bids.to_dict().items()},
            {float(p): float(q) for p, q in book.book.asks.to_dict().items()},
        )
        for std, book in feed._l2_book.items()
    }
    return PeerRun(count, seconds, books, cpu_seconds)


def main(argv: list[str] | None = None) -> int:
    """Run the peer benchmark (``python -m cascadewatch.pipelines.bench.peer``); returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m cascadewatch.pipelines.bench.peer",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--frames", type=int, default=1_000_000, help="size of the recording")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each measure; the best is kept")
    args = parser.parse_args(argv)

    path, frames, market_s = binance_recording(args.frames)
    bares = [bare_decode_rate(path) for _ in range(args.repeat)]
    bare, bare_cpu = max(wall for wall, _ in bares), max(cpu for _, cpu in bares)
    peers = [run_peer(path) for _ in range(args.repeat)]
    runs = [measure_replay([path], frames) for _ in range(args.repeat)]
    e2e = max(run.rate for run in runs)
    processing = max(run.processing_rate for run in runs)
    e2e_cpu = max(run.cpu_rate for run in runs)

    print(
        f"recording: {path} ({frames:,} frames, Binance USD-M {'/'.join(SYMBOLS)}, seeds {SEED}-{SEED + 2}, "
        f"{frames / market_s:,.0f} frames per market second)"
    )
    print(f"bare read + msgspec decode   : {bare:12,.0f} frames/s")
    if peers[0] is None:
        print(f"cryptofeed {PEER_VERSION}             :  not installed (pip install -e '.[bench]')")
    else:
        peer = max(p.rate for p in peers if p is not None)
        print(f"cryptofeed {PEER_VERSION} normalize   : {peer:12,.0f} frames/s   (ratio to bare {peer / bare:.3f})")
    print(f"cascadewatch end to end      : {e2e:12,.0f} frames/s   (processing {processing:,.0f})")
    if peers[0] is not None:
        print(
            f"ratio cascadewatch / peer    : {e2e / peer:12.2f}x  (target >= 1.5x, moonshot 3x; "
            f"processing {processing / peer:.2f}x)"
        )
    print(f"ratio cascadewatch / bare    : {e2e / bare:12.3f}   (target >= 0.25; processing {processing / bare:.3f})")
    cpu = f"by CPU time (frames per CPU second, start-up included): bare {bare_cpu:,.0f}, cascadewatch {e2e_cpu:,.0f}"
    if peers[0] is not None:
        peer_cpu = max(p.cpu_rate for p in peers if p is not None)
        cpu += f", peer {peer_cpu:,.0f}: {e2e_cpu / peer_cpu:.2f}x the peer"
    print(f"{cpu}, {e2e_cpu / bare_cpu:.3f} of bare")
    day_s = 86_400.0
    print(
        f"desk day (3 venues x 20 perpetuals, {DESK_DAY_FRAMES / day_s:,.0f} frames/s): "
        f"{e2e / (DESK_DAY_FRAMES / day_s):.0f}x real time, a day in {DESK_DAY_FRAMES / e2e / 60:.1f} min"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
