"""SIGTERM and SIGINT end ``run`` and ``record`` cleanly, in a subprocess against the fake venue;
bad endpoints, a full disk and a mute venue fail fast and clearly.

Clean: exit 0, every output line whole, the recording closed with the shutdown of each
connection, the outbox an intact outbox with nothing left in flight. Bad endpoints fail at
start with exit 2 and one line.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import msgspec
import pytest
from live_fakes import FakeBinance, SimBook
from live_support import FAST_BACKOFF, capture, conn_events, make_live

from cascadewatch.connectors.alerts.outbox import Outbox
from cascadewatch.connectors.recording import RecordingReader

ROOT = Path(__file__).parent.parent


def write_config(tmp_path: Path, binance: FakeBinance) -> Path:
    out = tmp_path / "out"
    path = tmp_path / "live.toml"
    path.write_text(f"""
[replay]
allowed_lag_s = 0.5
[riskfeed]
enabled = false
[alerts]
outbox = "{out / "outbox.sqlite"}"
[[alerts.destinations]]
name = "log"
type = "jsonl"
path = "{out / "delivered.jsonl"}"
[live]
venues = ["binance"]
symbols = ["BTC"]
rest_timeout_s = 2.0
connect_timeout_s = 2.0
alerts_out = "{out / "alerts.jsonl"}"
snapshots_out = "{out / "snapshots.jsonl"}"
dead_letters_out = "{out / "dead.jsonl"}"
[live.backoff]
initial_s = {FAST_BACKOFF.initial_s}
max_s = {FAST_BACKOFF.max_s}
[live.binance]
ws_url = "{binance.ws_url("/market/stream")}"
ws_book_url = "{binance.ws_url("/public/stream")}"
rest_url = "{binance.rest_url}"
""")
    return path


async def market(binance: FakeBinance, running: list[bool]) -> None:
    binance.books["BTCUSDT"] = SimBook(seed=61)
    while running:
        if binance.live_clients("btcusdt@aggTrade"):
            await binance.agg_trade("BTCUSDT")
            await binance.depth_diff("BTCUSDT")
        await asyncio.sleep(0.01)


def start(*args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "cascadewatch.pipelines.cli.live", *args]
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(predicate, process: subprocess.Popen[str], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the process did not get going in time"
        time.sleep(0.05)


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]  # every line whole


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_ends_run_cleanly(tmp_path: Path, sig: signal.Signals) -> None:
    with FakeBinance() as binance:
        running = [True]
        traffic = binance.spawn(market(binance, running))
        config = write_config(tmp_path, binance)
        snapshots = tmp_path / "out" / "snapshots.jsonl"
        process = start("run", str(config), "--quiet")
        try:
            wait_for(lambda: snapshots.exists() and snapshots.stat().st_size > 0, process)
            process.send_signal(sig)
            out, err = process.communicate(timeout=30)
        finally:
            if process.poll() is None:
                process.kill()
            running.clear()
            traffic.result(5)
    assert process.returncode == 0, err
    assert "Traceback" not in err and "panicked" not in err
    assert {s["asset"] for s in lines(snapshots)} == {"BTC-USDT"}
    with Outbox(tmp_path / "out" / "outbox.sqlite") as outbox:  # opens as an outbox: intact
        assert outbox.pending() == 0


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_ends_record_cleanly(tmp_path: Path, sig: signal.Signals) -> None:
    out = tmp_path / "capture.rec"
    with FakeBinance() as binance:
        running = [True]
        traffic = binance.spawn(market(binance, running))
        config = write_config(tmp_path, binance)
        process = start("record", "--out", str(out), "--config", str(config), "--quiet")
        try:
            wait_for(lambda: out.exists() and out.stat().st_size > 5000, process)
            process.send_signal(sig)
            _, err = process.communicate(timeout=30)
        finally:
            if process.poll() is None:
                process.kill()
            running.clear()
            traffic.result(5)
    assert process.returncode == 0, err
    frames = list(RecordingReader(out))
    closes = [json.loads(f.payload) for f in frames if f.source.endswith("!conn") and b'"close"' in f.payload]
    assert sorted((c["conn"], c["reason"]) for c in closes) == [("market", "shutdown"), ("public", "shutdown")]
    assert frames[-1].source.endswith("!conn")  # the shutdown is the last thing written


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("ws_url", "https://127.0.0.1:9/market/stream", "[live.binance] ws_url must start with ws:// or wss://"),
        ("ws_book_url", "ws//127.0.0.1:9/public", "[live.binance] ws_book_url must start with ws:// or wss://"),
        ("rest_url", "wss://127.0.0.1:9", "[live.binance] rest_url must start with http:// or https:// (not 'wss://')"),
    ],
)
def test_a_bad_endpoint_fails_at_start_with_exit_2(tmp_path: Path, key: str, value: str, message: str) -> None:
    config = tmp_path / "live.toml"
    config.write_text(f'[live]\nvenues = ["binance"]\n[live.binance]\n{key} = "{value}"\n')
    for args in (["run", str(config)], ["record", "--out", str(tmp_path / "x.rec"), "--config", str(config)]):
        process = start(*args)
        out, err = process.communicate(timeout=30)
        assert (process.returncode, err) == (2, "")
        [line] = out.strip().splitlines()
        assert line.startswith(f"error: {config}: {message}"), line


FULL_AFTER_TWO_FLUSHES = """
import errno, sys
from cascadewatch.connectors.recording import RecordingWriter
flush, calls = RecordingWriter.flush, []
def full(self):
    calls.append(1)
    if len(calls) > 2:
        raise OSError(errno.ENOSPC, "No space left on device")
    flush(self)
RecordingWriter.flush = full
from cascadewatch.pipelines.cli.live import main
sys.exit(main(sys.argv[1:]))
"""


def test_record_on_a_disk_that_fills_up_stops_with_one_line_and_a_readable_file(tmp_path: Path) -> None:
    """A real 256 KiB tmpfs where this process may mount one, else ENOSPC injected at the third flush."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = (
        os.geteuid() == 0
        and subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(disk)]).returncode == 0
    )
    out = disk / "capture.rec"
    try:
        with FakeBinance() as binance:
            running = [True]
            traffic = binance.spawn(market(binance, running))
            config = write_config(tmp_path, binance)
            args = ["record", "--out", str(out), "--config", str(config), "--quiet", "--duration", "60"]
            env = {**os.environ, "PYTHONPATH": str(ROOT)}
            command = [sys.executable, "-m", "cascadewatch.pipelines.cli.live", *args]
            if not mounted:
                command = [sys.executable, "-c", FULL_AFTER_TWO_FLUSHES, *args]
            done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=90)
            running.clear()
            traffic.result(5)
        assert done.returncode == 1, done.stderr
        [line] = done.stdout.strip().splitlines()
        assert line == (
            f"error: {out}: cannot write the recording (No space left on device); "
            "the file reads up to its last whole line"
        )
        assert "Traceback" not in done.stderr
        frames = list(RecordingReader(out))
        assert frames and frames[0].source == "binance-usdm!rest"
    finally:
        if mounted:
            subprocess.run(["umount", str(disk)], check=True)


def test_connect_timeout_bounds_a_handshake_that_never_completes() -> None:
    """A venue that accepts TCP and never answers the upgrade: an error event after connect_timeout_s."""
    with socket.socket() as mute, FakeBinance() as binance:
        mute.bind(("127.0.0.1", 0))
        mute.listen(16)  # the kernel completes TCP; nothing ever reads or answers
        url = f"ws://127.0.0.1:{mute.getsockname()[1]}/market/stream"
        live = make_live("binance", binance, ["BTCUSDT"], "/market/stream", connect_timeout_s=0.3)
        live = msgspec.structs.replace(live, binance=msgspec.structs.replace(live.binance, ws_url=url, ws_book_url=url))
        started = time.monotonic()
        frames = capture("binance", live, lambda f: sum(e["event"] == "error" for e in conn_events(f)) >= 2)
        elapsed = time.monotonic() - started
    errors = [e for e in conn_events(frames) if e["event"] == "error"]
    assert errors[0]["reason"].startswith("connect failed: TimeoutError")
    assert elapsed < 3.0  # two attempts of 0.3 s and a backoff of at most 0.2 s, not 2 x 10 s
