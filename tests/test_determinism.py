"""The same recordings give byte-identical alerts and snapshots whatever the batch size,
the number of workers, or the number of processes."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines.replay import run_replay


def _recordings(okx_session: Path, binance_session: Path) -> list[Path]:
    return [okx_session, binance_session]


def _replay(tmp_path: Path, name: str, recordings: list[Path], **kwargs) -> tuple[bytes, bytes]:
    out = tmp_path / name
    run_replay(recordings, alerts_out=out / "alerts.jsonl", snapshots_out=out / "snapshots.jsonl", **kwargs)
    return (out / "alerts.jsonl").read_bytes(), (out / "snapshots.jsonl").read_bytes()


@pytest.fixture
def reference(tmp_path: Path, okx_session: Path, binance_session: Path) -> tuple[bytes, bytes]:
    alerts, snapshots = _replay(tmp_path, "reference", _recordings(okx_session, binance_session), batch_size=1000)
    assert snapshots.count(b"\n") > 20  # the real sessions give per-second snapshots
    return alerts, snapshots


@pytest.mark.parametrize("batch_size", [1, 7])
def test_batch_size_does_not_change_output(tmp_path, okx_session, binance_session, reference, batch_size) -> None:
    assert _replay(tmp_path, f"b{batch_size}", _recordings(okx_session, binance_session), batch_size=batch_size) == reference


def test_two_workers_give_the_same_output(tmp_path, okx_session, binance_session, reference) -> None:
    assert _replay(tmp_path, "w2", _recordings(okx_session, binance_session), workers=2, batch_size=13) == reference


def _free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def test_two_process_cluster_on_loopback_gives_the_same_output(tmp_path, okx_session, binance_session, reference) -> None:
    addresses = ",".join(f"127.0.0.1:{port}" for port in _free_ports(2))
    out = tmp_path / "cluster"
    command = [
        sys.executable, "-m", "pipelines.cli", "replay", str(okx_session), str(binance_session),
        "--alerts-out", str(out / "alerts.jsonl"), "--snapshots-out", str(out / "snapshots.jsonl"),
        "--addresses", addresses, "--quiet",
    ]
    processes = [subprocess.Popen([*command, "--process-id", str(i)]) for i in range(2)]
    try:
        codes = [p.wait(timeout=120) for p in processes]
    finally:
        for p in processes:
            p.kill()
    assert codes == [0, 0]
    assert ((out / "alerts.jsonl").read_bytes(), (out / "snapshots.jsonl").read_bytes()) == reference
