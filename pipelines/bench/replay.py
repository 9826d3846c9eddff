"""``make bench``: replay throughput against a bare JSON decode, memory against length, scale-out.

1. Simulates a multi-venue market (cached in ``.bench/``): the ``multi-venue`` scenario made
   busier than its default, 10x the untracked order flow and books published every 100 ms
   (Binance ``depth@100ms``), about 126 frames/s over the three venues: the order of a calm
   BTCUSDT. Recordings of at least 1,000,000 and 4,000,000 frames.
2. Decodes every payload of the 1M recording with a bare ``msgspec.json.decode`` (in memory,
   no I/O): the ceiling for any Python consumer of these frames.
3. Runs the replay source alone (read, decompress, parse, batch by instrument) in process:
   the per-frame path without the per-second work (books, detectors, snapshots).
4. Replays each recording end to end (``cascadewatch replay --speed max``: read, decompress,
   parse, books, per-second state, merge, detectors, snapshots, alerts, JSONL) in a fresh
   process; reports frames/s over the whole run and while processing (see :class:`ReplayRun`)
   and the process's peak RSS.
5. Scale-out, each replayed by one process and by a 2-process Bytewax cluster on loopback:
   a desk's market, four assets (BTC, ETH, SOL, XRP) on the three venues, one recording
   per venue (three source partitions, as the live connectors run), about 1M frames in
   all; and the single-asset 1M recording split by venue.

The other assets of the desk's market are simulations of the same busy market (other seeds)
with the symbols renamed, prices included: a throughput bench, not a market model. Figures
are ratios measured in one run, since machines here are noisy. Targets: end to end at least
0.25 of the bare decode on one worker; peak RSS flat in the recording's length; 2 processes
at least 1.6x one.
"""

from __future__ import annotations

import argparse
import heapq
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import msgspec

from cascadewatch.connectors.recording import RecordingReader, RecordingWriter
from cascadewatch.pipelines.run.cluster import loopback_addresses

BENCH_DIR = Path(".bench")
SEED = 7
FRAMES_PER_S = 126  # of the bench market, to size the simulated duration
DESK_ASSETS = ("BTC", "ETH", "SOL", "XRP")
"""The desk's market of the scale-out bench; the first is the simulated asset itself."""


def bench_recording(
    min_frames: int, out_dir: Path = BENCH_DIR, seed: int = SEED, name: str = "bench"
) -> tuple[Path, int]:
    """A cached simulated recording of at least ``min_frames`` frames, and its frame count."""
    from cascadewatch.pipelines.simulate.runner import run_scenario
    from cascadewatch.pipelines.simulate.scenarios import SCENARIOS

    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}-{min_frames}.rec.zst"
    meta = path.with_suffix(".json")
    if path.exists() and meta.exists():
        return path, json.loads(meta.read_text())["frames"]
    duration = min_frames / FRAMES_PER_S * 1.05
    while True:
        print(f"simulating a busy multi-venue market for {duration:,.0f} s ...", file=sys.stderr)
        scenario = replace(SCENARIOS["multi-venue"], activity=10.0, step_s=0.1, duration_s=duration)
        run_scenario(scenario, seed, path)
        count = sum(1 for _ in RecordingReader(path))
        if count >= min_frames:
            meta.write_text(json.dumps({"frames": count, "duration_s": duration}))
            return path, count
        duration *= min_frames / max(count, 1) * 1.05


def write_by_venue(frames: Iterable[tuple[int, str, bytes]], stem: Path, of: str) -> tuple[list[Path], int]:
    """Write ``(recv, source, payload)`` frames to one recording per venue, ``<stem>.<venue>.rec.zst``
    (comment: ``<venue> frames of <of>``); return the paths, sorted by venue, and the frame count."""
    outputs: dict[str, Path] = {}
    writers: dict[str, RecordingWriter] = {}
    count = 0
    try:
        for recv, source, payload in frames:
            venue = source.partition("!")[0]
            if venue not in writers:
                outputs[venue] = stem.with_name(f"{stem.name}.{venue}.rec.zst")
                writers[venue] = RecordingWriter(outputs[venue], comment=f"{venue} frames of {of}")
            writers[venue].write(recv, source, payload)
            count += 1
    finally:
        for writer in writers.values():
            writer.close()
    return [outputs[venue] for venue in sorted(outputs)], count


def split_by_venue(path: Path) -> list[Path]:
    """Write one recording per venue next to ``path`` (three source partitions); return them."""
    frames = ((frame.recv, frame.source, frame.payload) for frame in RecordingReader(path))
    return write_by_venue(frames, path.with_name(path.name.split(".")[0]), path.name)[0]


def desk_recordings(
    min_frames: int, assets: tuple[str, ...] = DESK_ASSETS, out_dir: Path = BENCH_DIR
) -> tuple[list[Path], int]:
    """One recording per venue of a market of ``assets``, at least ``min_frames`` in all (cached).

    Asset ``i`` is the busy bench market simulated with seed ``SEED + i``, its symbols renamed
    from BTC (``BTCUSDT``, ``btcusdt@depth``, ``BTC-USDT-SWAP``...); all start at the same time.
    """
    meta = out_dir / f"desk-{min_frames}.json"
    if meta.exists():
        recorded = json.loads(meta.read_text())
        return [Path(p) for p in recorded["paths"]], recorded["frames"]
    per_asset = [
        bench_recording(-(-min_frames // len(assets)), out_dir, SEED + i, f"asset{i}")[0] for i in range(len(assets))
    ]
    merged = heapq.merge(
        *(renamed(RecordingReader(path), asset) for path, asset in zip(per_asset, assets, strict=True)),
        key=lambda f: f[0],
    )
    paths, frames = write_by_venue(merged, out_dir / f"desk-{min_frames}", f"the desk market {assets}")
    meta.write_text(json.dumps({"frames": frames, "paths": [str(p) for p in paths]}))
    return paths, frames


def renamed(reader: RecordingReader, asset: str) -> Iterator[tuple[int, str, bytes]]:
    """``reader``'s frames as ``(recv, source, payload)`` with BTC renamed to ``asset``."""
    upper, lower = asset.encode(), asset.lower().encode()
    for frame in reader:
        yield frame.recv, frame.source, frame.payload.replace(b"BTC", upper).replace(b"btc", lower)


def bare_decode_rate(path: Path) -> float:
    """Frames per second of ``msgspec.json.decode`` over the payloads, in memory."""
    payloads = [frame.payload for frame in RecordingReader(path)]
    decode = msgspec.json.decode
    started = time.perf_counter()
    for payload in payloads:
        decode(payload)
    return len(payloads) / (time.perf_counter() - started)


def source_rate(path: Path) -> float:
    """Frames per second of the replay source alone: read, decompress, parse, batch by instrument."""
    from cascadewatch.connectors.sources import ReplayPartition

    partition = ReplayPartition(path, 0, 1000, 2_000_000_000, None, None)
    frames = sum(1 for _ in RecordingReader(path))
    started = time.perf_counter()
    try:
        while True:
            partition.next_batch()
    except StopIteration:
        pass
    return frames / (time.perf_counter() - started)


_MEASURED_REPLAY = (
    "import resource, sys, time\n"
    "import cascadewatch.connectors.sources as sources\n"
    "first_batch = []\n"
    "read = sources.ReplayPartition.next_batch\n"
    "def timed(self):\n"
    "    first_batch or first_batch.append(time.time())\n"
    "    return read(self)\n"
    "sources.ReplayPartition.next_batch = timed\n"
    "from cascadewatch.pipelines.cli.main import main\n"
    "code = main(sys.argv[1:])\n"
    "usage = resource.getrusage(resource.RUSAGE_SELF)\n"
    "print('measured', first_batch[0] if first_batch else 'inf', time.time(),\n"
    "      usage.ru_maxrss, usage.ru_utime + usage.ru_stime, file=sys.stderr)\n"
    "sys.exit(code)\n"
)
"""``cascadewatch replay`` in a child that reports when it read its first batch, when it ended
(wall clock, comparable across the processes of one host), its peak RSS (KiB) and the CPU
seconds it used (user + system, start-up included)."""


@dataclass(frozen=True)
class ReplayRun:
    """One measured ``cascadewatch replay``: frames/s over the whole run (process start to
    exit, startup included), frames/s while processing (from the first batch read by any
    process to the last exit: no interpreter start, imports or cluster connection, which a
    long-running process pays once), the peak RSS of the largest process (MiB), and frames
    per CPU second of all the processes (user + system, start-up included: steadier than the
    wall clock on a loaded machine)."""

    rate: float
    processing_rate: float
    peak_rss_mib: float
    cpu_rate: float


def _replay_command(paths: list[Path], scratch: str, extra: list[str]) -> list[str]:
    return [
        sys.executable,
        "-c",
        _MEASURED_REPLAY,
        "replay",
        *map(str, paths),
        "--quiet",
        "--alerts-out",
        f"{scratch}/alerts.jsonl",
        "--snapshots-out",
        f"{scratch}/snapshots.jsonl",
        *extra,
    ]


def measure_replay(paths: list[Path], frames: int, processes: int = 1) -> ReplayRun:
    """Run ``cascadewatch replay`` on ``paths`` as ``processes`` processes on loopback."""
    with tempfile.TemporaryDirectory(prefix="cascadewatch-bench-") as scratch:
        if processes == 1:
            commands = [_replay_command(paths, scratch, [])]
        else:
            addresses = loopback_addresses(processes)
            commands = [
                _replay_command(paths, scratch, ["--addresses", addresses, "--process-id", str(i)])
                for i in range(processes)
            ]
        started = time.perf_counter()
        children = [subprocess.Popen(command, stderr=subprocess.PIPE, text=True) for command in commands]
        outputs = [child.communicate()[1] for child in children]
        elapsed = time.perf_counter() - started
    if any(child.returncode for child in children):
        raise RuntimeError(f"replay failed: {outputs}")
    reports = [err.rsplit("measured", 1)[1].split()[:4] for err in outputs]
    first_batch = min(float(report[0]) for report in reports)
    ended = max(float(report[1]) for report in reports)
    peak_kib = max(int(report[2]) for report in reports)
    cpu_s = sum(float(report[3]) for report in reports)
    return ReplayRun(frames / elapsed, frames / (ended - first_batch), peak_kib / 1024.0, frames / cpu_s)


def main(argv: list[str] | None = None) -> int:
    """Run the replay benchmark (``python -m cascadewatch.pipelines.bench.replay``); returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m cascadewatch.pipelines.bench.replay",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--frames", type=int, default=1_000_000, help="size of the throughput recording")
    parser.add_argument("--memory-frames", type=int, default=4_000_000, help="size of the long recording (RSS)")
    args = parser.parse_args(argv)

    small, small_frames = bench_recording(args.frames)
    large, large_frames = bench_recording(args.memory_frames)
    bare = bare_decode_rate(small)
    source = source_rate(small)
    e2e = measure_replay([small], small_frames)
    long_run = measure_replay([large], large_frames)
    parts = split_by_venue(small)
    one, two = measure_replay(parts, small_frames, 1), measure_replay(parts, small_frames, 2)
    desk, desk_frames = desk_recordings(args.frames)
    desk_one, desk_two = measure_replay(desk, desk_frames, 1), measure_replay(desk, desk_frames, 2)

    print(f"recording: {small} ({small_frames:,} frames, busy multi-venue market, seed {SEED})")
    print(f"bare msgspec.json.decode     : {bare:12,.0f} frames/s")
    print(f"replay end to end (1 worker) : {e2e.rate:12,.0f} frames/s   (processing {e2e.processing_rate:,.0f})")
    print(
        f"ratio end-to-end / bare      : {e2e.rate / bare:12.3f}   "
        f"(target >= 0.25; processing {e2e.processing_rate / bare:.3f})"
    )
    print(f"source alone (read+parse)    : {source:12,.0f} frames/s   (ratio to bare {source / bare:.3f})")
    print(f"peak RSS {small_frames:>10,} frames : {e2e.peak_rss_mib:8.1f} MiB")
    print(
        f"peak RSS {large_frames:>10,} frames : {long_run.peak_rss_mib:8.1f} MiB   "
        f"(ratio {long_run.peak_rss_mib / e2e.peak_rss_mib:.2f}, flat is 1.0)"
    )
    print("scale-out: frames/s over the whole run | while processing (startup excluded)")
    for label, runs in (
        (f"desk market, {len(DESK_ASSETS)} assets x 3 venues, {desk_frames:,} frames", (desk_one, desk_two)),
        ("one asset, split by venue", (one, two)),
    ):
        single, pair = runs
        print(f"{label}")
        print(f"  1 process                  : {single.rate:12,.0f} | {single.processing_rate:,.0f}")
        print(
            f"  2 processes                : {pair.rate:12,.0f} | {pair.processing_rate:,.0f}   "
            f"(speed-up {pair.rate / single.rate:.2f}x | {pair.processing_rate / single.processing_rate:.2f}x, "
            "target >= 1.6x)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
