"""``make bench``: replay throughput against a bare JSON decode, and memory against length.

1. Simulates multi-venue recordings of at least 1,000,000 and 4,000,000 frames (cached in
   ``.bench/``, keyed by size) with the market simulator, so the mix of trades, book
   deltas, liquidations and tickers is the venues' own.
2. Decodes every payload of the 1M recording with a bare ``msgspec.json.decode``
   (in memory, no I/O): the ceiling for any Python consumer of these frames.
3. Replays each recording end to end (``cascadewatch replay --speed max``: read,
   decompress, parse, books, per-second state, merge, snapshots, alerts, JSONL) in a fresh
   process, and reports frames/s and the child's peak RSS.

Figures are ratios measured in one run, since machines here are noisy. Targets: end to end
at least 0.25 of the bare decode on one worker; peak RSS flat in the recording's length.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import msgspec

from connectors.recording import RecordingReader

BENCH_DIR = Path(".bench")
SCENARIO = "multi-venue"
SEED = 7


def frames_in(path: Path) -> int:
    return sum(1 for _ in RecordingReader(path))


def bench_recording(min_frames: int, out_dir: Path = BENCH_DIR) -> tuple[Path, int]:
    """A cached simulated recording of at least ``min_frames`` frames, and its frame count."""
    from pipelines.simulate import simulate

    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"bench-{min_frames}.rec.zst"
    meta = path.with_suffix(".json")
    if path.exists() and meta.exists():
        return path, json.loads(meta.read_text())["frames"]
    duration = 600.0
    while True:
        print(f"simulating {SCENARIO} for {duration:,.0f} s to reach {min_frames:,} frames ...", file=sys.stderr)
        simulate(SCENARIO, SEED, duration, path, None)
        count = frames_in(path)
        if count >= min_frames:
            meta.write_text(json.dumps({"frames": count, "duration_s": duration}))
            return path, count
        duration *= min_frames / max(count, 1) * 1.05


def bare_decode_rate(path: Path) -> float:
    """Frames per second of ``msgspec.json.decode`` over the payloads, in memory."""
    payloads = [frame.payload for frame in RecordingReader(path)]
    decode = msgspec.json.decode
    started = time.perf_counter()
    for payload in payloads:
        decode(payload)
    return len(payloads) / (time.perf_counter() - started)


_MEASURED_REPLAY = (
    "import resource, sys\n"
    "from pipelines.cli import main\n"
    "code = main(sys.argv[1:])\n"
    "print('peak_rss_kib', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\n"
    "sys.exit(code)\n"
)


def replay_rate(path: Path, frames: int, extra: list[str] | None = None) -> tuple[float, float]:
    """End-to-end frames/s and peak RSS (MiB) of ``cascadewatch replay`` in a fresh process."""
    with tempfile.TemporaryDirectory(prefix="cascadewatch-bench-") as scratch:
        command = [
            sys.executable, "-c", _MEASURED_REPLAY, "replay", str(path), "--quiet",
            "--alerts-out", f"{scratch}/alerts.jsonl", "--snapshots-out", f"{scratch}/snapshots.jsonl",
            *(extra or []),
        ]
        started = time.perf_counter()
        result = subprocess.run(command, check=True, stderr=subprocess.PIPE, text=True)
        elapsed = time.perf_counter() - started
    peak_kib = int(result.stderr.rsplit("peak_rss_kib", 1)[1].split()[0])
    return frames / elapsed, peak_kib / 1024.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipelines.bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=1_000_000, help="size of the throughput recording")
    parser.add_argument("--memory-frames", type=int, default=4_000_000, help="size of the long recording (RSS)")
    args = parser.parse_args(argv)

    small, small_frames = bench_recording(args.frames)
    large, large_frames = bench_recording(args.memory_frames)
    bare = bare_decode_rate(small)
    e2e, rss_small = replay_rate(small, small_frames)
    _, rss_large = replay_rate(large, large_frames)

    print(f"recording: {small} ({small_frames:,} frames, {SCENARIO}, seed {SEED})")
    print(f"bare msgspec.json.decode : {bare:12,.0f} frames/s")
    print(f"replay end to end (1 wkr): {e2e:12,.0f} frames/s")
    print(f"ratio end-to-end / bare  : {e2e / bare:12.3f}   (target >= 0.25)")
    print(f"peak RSS {small_frames:>10,} frames: {rss_small:8.1f} MiB")
    print(f"peak RSS {large_frames:>10,} frames: {rss_large:8.1f} MiB   (ratio {rss_large / rss_small:.2f}, flat is 1.0)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
