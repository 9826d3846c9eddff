"""The same recordings give byte-identical alerts and snapshots whatever the batch size,
the number of workers, or the number of processes. The recordings hold every registered venue
but Bybit: three real sessions (OKX, Binance, BitMEX), a BitMEX bins-only cascade, the bundled
demo (Binance, OKX) and a simulated long squeeze on Deribit and Hyperliquid with faults (its
sources are not the demo's, which covers the same simulated hours). The demo's cascade also
makes a provisional alert (made at receive-time checkpoints, tests/test_provisional.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from cascadewatch.connectors.venues.registry import VENUES
from cascadewatch.pipelines.run.cluster import loopback_addresses
from cascadewatch.pipelines.run.replay import ReplayOptions, run_replay
from cascadewatch.pipelines.simulate import SCENARIOS, simulate

DEMO = Path(__file__).parents[1] / "pipelines" / "data" / "demo.rec.zst"
BITMEX = Path(__file__).parent / "fixtures" / "bitmex"


@pytest.fixture(scope="module")
def new_venues_session(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A long squeeze (15 min) on Deribit and Hyperliquid, with a disconnect and a lost book
    frame per venue."""
    out = tmp_path_factory.mktemp("new_venues") / "deribit-hyperliquid.rec.zst"
    simulate(SCENARIOS["long-squeeze"].with_venues(("deribit", "hyperliquid")), 1, None, out, faults=True)
    return out


@pytest.fixture
def recordings(okx_session: Path, binance_session: Path, new_venues_session: Path) -> list[Path]:
    """Three real sessions (OKX, Binance, BitMEX; one partition each), the BitMEX bins-only
    cascade, the simulated multi-venue cascade, and the simulated Deribit and Hyperliquid squeeze."""
    return [
        okx_session,
        binance_session,
        BITMEX / "bitmex-2021-07-22-head.rec.zst",
        BITMEX / "bins-cascade.rec",
        DEMO,
        new_venues_session,
    ]


def _replay(tmp_path: Path, name: str, recordings: list[Path], **kwargs) -> tuple[bytes, bytes]:
    out = tmp_path / name
    run_replay(
        recordings,
        options=ReplayOptions(alerts_out=out / "alerts.jsonl", snapshots_out=out / "snapshots.jsonl", **kwargs),
    )
    return (out / "alerts.jsonl").read_bytes(), (out / "snapshots.jsonl").read_bytes()


@pytest.fixture
def reference(tmp_path: Path, recordings: list[Path]) -> tuple[bytes, bytes]:
    alerts, snapshots = _replay(tmp_path, "reference", recordings, batch_size=1000)
    assert snapshots.count(b"\n") > 700  # per-second snapshots of the real sessions and the demo
    assert alerts.count(b'"kind":"cascade"') >= 2  # the demo's cascade pages and resolves
    # a provisional alert (OKX's frames at a receive-time checkpoint): the same whatever the batch
    assert alerts.count(b'"provisional":true') >= 1
    seen = {source for line in snapshots.splitlines() for source in json.loads(line)["venues"]}
    # the venues the demo does not hold (BitMEX's bins and the Deribit squeeze share BTC-USD)
    assert {VENUES[venue].SOURCE for venue in ("bitmex", "deribit", "hyperliquid")} <= seen
    return alerts, snapshots


@pytest.mark.parametrize("batch_size", [1, 7])
def test_batch_size_does_not_change_output(tmp_path, recordings, reference, batch_size) -> None:
    assert _replay(tmp_path, f"b{batch_size}", recordings, batch_size=batch_size) == reference


def test_two_workers_give_the_same_output(tmp_path, recordings, reference) -> None:
    assert _replay(tmp_path, "w2", recordings, workers=2, batch_size=13) == reference


@pytest.mark.parametrize("processes", [2, 3])
def test_cluster_on_loopback_gives_the_same_output(tmp_path, recordings, reference, processes) -> None:
    addresses = loopback_addresses(processes)
    out = tmp_path / "cluster"
    command = [
        sys.executable,
        "-m",
        "cascadewatch.pipelines.cli.main",
        "replay",
        *map(str, recordings),
        "--alerts-out",
        str(out / "alerts.jsonl"),
        "--snapshots-out",
        str(out / "snapshots.jsonl"),
        "--addresses",
        addresses,
        "--quiet",
    ]
    children = [subprocess.Popen([*command, "--process-id", str(i)]) for i in range(processes)]
    try:
        codes = [p.wait(timeout=120) for p in children]
    finally:
        for p in children:
            p.kill()
    assert codes == [0] * processes
    assert ((out / "alerts.jsonl").read_bytes(), (out / "snapshots.jsonl").read_bytes()) == reference
