"""``cascadewatch record``: a recording of fake venues that replays, rotation where every file
replays on its own, and a recorder killed with SIGKILL leaves a readable file."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from live_fakes import FakeBinance, FakeOkx, SimBook
from live_support import FAST_BACKOFF, rebuild_books

from cascadewatch.connectors.frames import FrameDecoder
from cascadewatch.connectors.recorder import RotatingRecorder, insert_before_suffixes
from cascadewatch.connectors.recording import RecordingReader
from cascadewatch.pipelines.cli.live import main as live_main
from cascadewatch.pipelines.run.live import record
from cascadewatch.pipelines.run.replay import ReplayOptions, run_replay

ROOT = Path(__file__).parent.parent


def _config(path: Path, binance: FakeBinance, okx: FakeOkx) -> Path:
    b = FAST_BACKOFF
    path.write_text(f"""
[live]
venues = ["binance", "okx"]
symbols = ["BTC"]
rest_timeout_s = 2.0
[live.backoff]
initial_s = {b.initial_s}
max_s = {b.max_s}
[live.binance]
ws_url = "{binance.ws_url("/market/stream")}"
ws_book_url = "{binance.ws_url("/public/stream")}"
rest_url = "{binance.rest_url}"
poll_s = 0.5
[live.okx]
ws_url = "{okx.ws_url("/ws/v5/public")}"
rest_url = "{okx.rest_url}"
heartbeat_s = 0.3
""")
    return path


class Market:
    """Trades and book updates on both fakes, each on its own loop; remembers what it sent."""

    def __init__(self, binance: FakeBinance, okx: FakeOkx) -> None:
        self.binance, self.okx = binance, okx
        binance.books["BTCUSDT"] = SimBook(seed=41)
        okx.books["BTC-USDT-SWAP"] = SimBook(seed=42)
        self.sent: list[str] = []
        self.running = True

    async def _binance(self) -> None:
        while self.running:
            if any(c.topics for c in self.binance.clients if c.closed is None):
                if self.binance.live_clients("btcusdt@aggTrade"):
                    self.sent.append(await self.binance.agg_trade("BTCUSDT"))
                await self.binance.depth_diff("BTCUSDT")
            await asyncio.sleep(0.01)

    async def _okx(self) -> None:
        while self.running:
            if self.okx.live_clients("trades:BTC-USDT-SWAP"):
                self.sent.append(await self.okx.trade("BTC-USDT-SWAP"))
                await self.okx.book_update("BTC-USDT-SWAP")
            await asyncio.sleep(0.01)

    def start(self) -> Market:
        self.futures = [self.binance.spawn(self._binance()), self.okx.spawn(self._okx())]
        return self

    def stop(self) -> None:
        self.running = False
        for future in self.futures:
            future.result(5)


def _frames(path: Path) -> list[tuple[int, str, bytes]]:
    return [(f.recv, f.source, f.payload.rstrip(b"\n")) for f in RecordingReader(path)]


def test_record_command_writes_a_recording_that_replays(tmp_path: Path) -> None:
    with FakeBinance() as binance, FakeOkx() as okx:
        config = _config(tmp_path / "live.toml", binance, okx)
        market = Market(binance, okx).start()
        out = tmp_path / "capture.rec.zst"
        # the websockets close on the recorder's shutdown; trades after it are not expected
        code = live_main(
            [
                "record",
                "--venues",
                "binance,okx",
                "--symbols",
                "BTC",
                "--duration",
                "1.5",
                "--out",
                str(out),
                "--config",
                str(config),
                "--quiet",
            ]
        )
        market.running = False
        market.stop()
    assert code == 0
    frames = _frames(out)
    sources = {source for _, source, _ in frames}
    assert sources == {
        "binance-usdm",
        "binance-usdm!rest",
        "binance-usdm!conn",
        "okx-swap",
        "okx-swap!rest",
        "okx-swap!conn",
    }
    rest = [json.loads(p)["path"] for _, s, p in frames if s.endswith("!rest")]
    assert "/fapi/v1/exchangeInfo" in rest and "/fapi/v1/depth?symbol=BTCUSDT&limit=1000" in rest
    assert "/api/v5/public/instruments?instType=SWAP" in rest
    assert any(path.startswith("/fapi/v1/openInterest") for path in rest)  # the poll
    conn = [json.loads(p) for _, s, p in frames if s.endswith("!conn")]
    assert [e["event"] for e in conn if e["url"].endswith("/ws/v5/public")] == ["open", "close"]
    assert all(e["reason"] == "shutdown" for e in conn if e["event"] == "close")
    recorded = [p for _, s, p in frames if "!" not in s]
    delivered = [text.encode() for text in market.sent]
    assert delivered and all(recorded.count(frame) == 1 for frame in delivered[:-5])  # the last few may race the stop
    books, statuses = rebuild_books(frames)
    assert "gap" not in statuses and all(keeper.book.valid for keeper in books.values())
    assert set(books) == {"BTCUSDT", "BTC-USDT-SWAP"}
    summary = run_replay([out], options=ReplayOptions(alerts_out=tmp_path / "replay" / "alerts.jsonl"))
    decoder = FrameDecoder()
    for recv, source, payload in frames:
        try:
            decoder.decode(source, payload, recv)
        except Exception:
            pass
    expected = {k: v for k, v in decoder.frames.items() if k != ("okx-swap", "control")}
    assert {k: v for k, v in summary.frames.items() if k != ("okx-swap", "control")} == expected
    assert summary.frames[("binance-usdm", "trade")] >= 50


def test_rotated_files_each_replay_on_their_own(tmp_path: Path) -> None:
    """Every rotated file starts with the venue's instrument list and fresh book snapshots."""
    with FakeBinance() as binance, FakeOkx() as okx:
        _config(tmp_path / "live.toml", binance, okx)
        from cascadewatch.pipelines.run.live import load_live_config

        _, live = load_live_config(tmp_path / "live.toml")
        market = Market(binance, okx).start()
        summary = record(live, tmp_path / "rot.rec.zst", duration_s=2.7, rotate_hours=1.0 / 3600, serve_metrics=False)
        market.stop()
    names = [path.name for path in summary.paths]
    assert names[:3] == ["rot.0000.rec.zst", "rot.0001.rec.zst", "rot.0002.rec.zst"]
    for path in summary.paths[:-1]:  # the last one may be cut by the end of the run
        frames = _frames(path)
        rest = [json.loads(p)["path"] for _, s, p in frames if s.endswith("!rest")]
        assert "/fapi/v1/exchangeInfo" in rest and "/api/v5/public/instruments?instType=SWAP" in rest
        assert any(p.startswith("/fapi/v1/depth") for p in rest)
        books, statuses = rebuild_books(frames)
        assert "gap" not in statuses, path
        assert all(keeper.book.valid for keeper in books.values()), path
        assert set(books) == {"BTCUSDT", "BTC-USDT-SWAP"}, path


def test_a_recorder_killed_with_sigkill_leaves_a_file_readable_to_its_last_whole_line(tmp_path: Path) -> None:
    with FakeBinance() as binance, FakeOkx() as okx:
        config = _config(tmp_path / "live.toml", binance, okx)
        market = Market(binance, okx).start()
        out = tmp_path / "killed.rec.zst"
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "cascadewatch.pipelines.cli.live",
                "record",
                "--out",
                str(out),
                "--config",
                str(config),
                "--quiet",
            ],
            cwd=ROOT,
            env=env,
        )
        try:
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and not (out.exists() and out.stat().st_size > 2000):
                time.sleep(0.05)
            first_flush = out.stat().st_size if out.exists() else 0
            while time.monotonic() < deadline and out.stat().st_size <= first_flush:
                time.sleep(0.05)  # until a later flush lands, then kill at an arbitrary point
            assert out.stat().st_size > first_flush > 2000
        finally:
            process.send_signal(signal.SIGKILL)
            process.wait(10)
            market.stop()
    reader = RecordingReader(out)
    frames = list(reader)
    assert len(frames) > 10
    assert frames[0].source.endswith("!rest")
    decoder = FrameDecoder()
    for frame in frames:  # whole lines only: every frame parses (OKX pongs are control)
        decoder.decode(frame.source, frame.payload, frame.recv)


def test_rotating_recorder_rotates_by_age_and_size(tmp_path: Path) -> None:
    now = [0.0]
    rotations: list[int] = []
    by_age = RotatingRecorder(
        tmp_path / "a.rec", rotate_s=10, on_rotate=lambda: rotations.append(1), clock=lambda: now[0]
    )
    for second in range(25):
        now[0] = float(second)
        by_age.write(second, "okx-swap", b"{}")
        by_age.tick()
    by_age.close()
    assert [p.name for p in by_age.paths] == ["a.0000.rec", "a.0001.rec", "a.0002.rec"] and len(rotations) == 2
    by_size = RotatingRecorder(tmp_path / "s.rec.gz", rotate_bytes=200, flush_interval_s=0, clock=lambda: 0.0)
    for i in range(300):
        by_size.write(i, "okx-swap", b'{"n":%d,"pad":"%s"}' % (i, os.urandom(8).hex().encode()))
        by_size.tick()
    by_size.close()
    assert len(by_size.paths) > 3
    assert sum(len(list(RecordingReader(p))) for p in by_size.paths) == 300
    assert insert_before_suffixes(Path("d/x.rec.zst"), "okx-swap") == Path("d/x.okx-swap.rec.zst")
    plain = RotatingRecorder(tmp_path / "plain.rec")
    plain.close()
    assert plain.paths == [tmp_path / "plain.rec"]
