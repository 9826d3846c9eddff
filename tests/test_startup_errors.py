"""Start-up failures through the CLI in a subprocess: one line naming the setting or file, exit 2.

Read-only and full disks are real: a tmpfs mounted read-only, or one of a few kilobytes
filled to the last byte, when this process may mount (root); otherwise a read-only
directory by its mode, and a full disk by SQLite's own error injected into the child.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from cascadewatch.pipelines.cli.main import bundled_demo_recording

CLI = [sys.executable, "-m", "cascadewatch.pipelines.cli.main"]
FULL_DISK = """
import sqlite3, sys
def full(*args, **kwargs):
    raise sqlite3.OperationalError("database or disk is full")
sqlite3.connect = full
from cascadewatch.pipelines.cli.main import main
sys.exit(main(sys.argv[1:]))
"""


def cascadewatch(*args: str, env: dict[str, str] | None = None, prelude: str | None = None) -> tuple[int, list[str]]:
    """Exit status and the lines of stdout + stderr (stderr must be empty)."""
    command = [sys.executable, "-c", prelude, *args] if prelude else [*CLI, *args]
    environment = {**os.environ, "COLUMNS": "80", **(env or {})}
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, env=environment)
    assert done.stderr == "", done.stderr
    return done.returncode, done.stdout.strip().splitlines()


def write_config(tmp_path: Path, outbox: Path, port: int = 0, token_env: str = "CW_TEST_NO_SUCH_TOKEN") -> Path:
    path = tmp_path / "config.toml"
    path.write_text(f'[alerts]\noutbox = "{outbox}"\n\n[riskfeed]\nport = {port}\ntoken_env = "{token_env}"\n')
    return path


def replay(config: Path, *flags: str, prelude: str | None = None) -> tuple[int, list[str]]:
    return cascadewatch(
        "replay", str(bundled_demo_recording()), "--quiet", "--config", str(config), *flags, prelude=prelude
    )


def mount_tmpfs(target: Path, options: str) -> bool:
    if os.geteuid() != 0:
        return False
    target.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(target)], capture_output=True)
    return done.returncode == 0


@pytest.fixture
def read_only_dir(tmp_path: Path) -> Iterator[Path]:
    target = tmp_path / "ro"
    if mount_tmpfs(target, "ro,size=64k"):
        try:
            yield target
        finally:
            subprocess.run(["umount", str(target)], check=True)
    elif os.geteuid() != 0:
        target.mkdir()
        target.chmod(0o555)
        yield target
        target.chmod(0o755)
    else:
        pytest.skip("root without the right to mount: a mode cannot make a directory read-only for root")


@pytest.fixture
def full_dir(tmp_path: Path) -> Iterator[tuple[Path, str | None]]:
    """A directory on a full disk, and the child prelude that injects it if it is not real."""
    target = tmp_path / "full"
    if mount_tmpfs(target, "size=16k"):
        filler = os.open(target / "filler", os.O_WRONLY | os.O_CREAT)
        try:
            while os.write(filler, b"\0" * 4096):
                pass
        except OSError:
            pass
        os.close(filler)
        try:
            yield target, None
        finally:
            subprocess.run(["umount", str(target)], check=True)
    else:
        target.mkdir()
        yield target, FULL_DISK


def test_unset_risk_feed_token(tmp_path: Path) -> None:
    code, lines = replay(write_config(tmp_path, tmp_path / "o.sqlite"), "--riskfeed")
    assert (code, lines) == (
        2,
        ["error: [riskfeed] token_env: environment variable CW_TEST_NO_SUCH_TOKEN (the token) is not set"],
    )


def test_risk_feed_port_in_use(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = write_config(tmp_path, tmp_path / "o.sqlite", port=port, token_env="CW_TEST_TOKEN")
        code, lines = cascadewatch(
            "replay", str(bundled_demo_recording()), "--quiet", "--config", str(config), "--riskfeed",
            env={"CW_TEST_TOKEN": "feed-token-123456"},
        )  # fmt: skip
    assert (code, lines) == (
        2,
        [f"error: [riskfeed] port: cannot listen on 127.0.0.1:{port}: in use by another program"],
    )


def _garbage(path: Path) -> None:
    path.write_bytes(b"\x00\x17not sqlite at all" * 64)


def _truncated(path: Path) -> None:
    db = sqlite3.connect(path)
    db.executescript("CREATE TABLE alerts (id TEXT PRIMARY KEY, dedup_key TEXT NOT NULL, action TEXT NOT NULL,"
                     " body TEXT NOT NULL, enqueued_at REAL NOT NULL);")  # fmt: skip
    db.executemany("INSERT INTO alerts VALUES (?, 'k', 'trigger', ?, 0)", [(str(i), "x" * 500) for i in range(500)])
    db.commit()
    db.close()
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])


def _foreign(path: Path) -> None:
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE users (id INTEGER, name TEXT)")
    db.commit()
    db.close()


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (_garbage, "not a readable outbox (file is not a database): corrupt, truncated or another program's file"),
        (_truncated, "not a readable outbox (database disk image is malformed): corrupt, truncated or another"),
        (_foreign, "an SQLite file of another program (tables users), not a cascadewatch outbox"),
    ],
    ids=["corrupt", "truncated", "foreign"],
)
def test_unusable_outbox_file(tmp_path: Path, make, reason: str) -> None:
    outbox = tmp_path / "outbox.sqlite"
    make(outbox)
    before = outbox.read_bytes()
    config = write_config(tmp_path, outbox)
    code, lines = replay(config, "--deliver")
    assert code == 2 and len(lines) == 1
    assert lines[0].startswith(f"error: [alerts] outbox: outbox {outbox}: {reason}")
    code, lines = cascadewatch("alerts", "deliver", "--config", str(config), "--until-empty")
    assert code == 2 and len(lines) == 1 and lines[0].startswith(f"error: outbox {outbox}: {reason}")
    assert outbox.read_bytes() == before  # nothing written to a file that is not ours


def test_read_only_outbox_directory(tmp_path: Path, read_only_dir: Path) -> None:
    outbox = read_only_dir / "outbox.sqlite"
    code, lines = replay(write_config(tmp_path, outbox), "--deliver")
    assert code == 2 and len(lines) == 1
    assert lines[0].startswith(f"error: [alerts] outbox: outbox {outbox}: cannot write it or its directory")
    nested = read_only_dir / "sub" / "outbox.sqlite"
    code, lines = replay(write_config(tmp_path, nested), "--deliver")
    assert code == 2 and lines[0].startswith(f"error: [alerts] outbox: outbox {nested}: cannot create its directory")


def test_full_disk_at_start(tmp_path: Path, full_dir: tuple[Path, str | None]) -> None:
    directory, prelude = full_dir
    outbox = directory / "outbox.sqlite"
    code, lines = replay(write_config(tmp_path, outbox), "--deliver", prelude=prelude)
    assert (code, lines) == (
        2,
        [f"error: [alerts] outbox: outbox {outbox}: the disk is full (database or disk is full)"],
    )


def test_output_in_a_read_only_directory(tmp_path: Path, read_only_dir: Path) -> None:
    out = read_only_dir / "alerts" / "alerts.jsonl"
    code, lines = replay(write_config(tmp_path, tmp_path / "o.sqlite"), "--alerts-out", str(out))
    assert code == 2 and len(lines) == 1
    assert lines[0].startswith(f"error: output {out}: cannot create its directory")


@pytest.mark.parametrize(
    "command", [["replay", str(bundled_demo_recording()), "--config"], ["run"], ["alerts", "status", "--config"]]
)
def test_config_path_that_is_a_directory(tmp_path: Path, command: list[str]) -> None:
    code, lines = cascadewatch(*command, str(tmp_path))
    assert (code, lines) == (2, [f"error: {tmp_path}: cannot read the config file: Is a directory"])


OUTPUT_FILLS_UP = """
import errno, sys
import cascadewatch.connectors.sinks as sinks
class Full:
    def __init__(self, handle):
        self.handle, self.written = handle, 0
    def write(self, data):
        self.written += len(data)
        if self.written > 64 * 1024:
            raise OSError(errno.ENOSPC, "No space left on device")
        return self.handle.write(data)
    def __getattr__(self, name):
        return getattr(self.handle, name)
real_open = open
sinks.open = lambda *args, **kwargs: Full(real_open(*args, **kwargs))
from cascadewatch.pipelines.cli.main import main
sys.exit(main(sys.argv[1:]))
"""


def test_an_output_on_a_disk_that_fills_up_during_replay(tmp_path: Path) -> None:
    """A real 64 KiB tmpfs where this process may mount one, else ENOSPC injected past 64 KiB.

    stdout carries one line naming the file, exit 1, no Python traceback; Bytewax's own
    panic note (three lines, more with RUST_BACKTRACE=1) still goes to stderr before it.
    """
    disk = tmp_path / "disk"
    mounted = mount_tmpfs(disk, "size=64k")
    if not mounted:
        disk.mkdir()
    snapshots = disk / "snapshots.jsonl"
    try:
        command = [
            "replay", str(bundled_demo_recording()), "--quiet", "--snapshots-out", str(snapshots),
            "--alerts-out", str(tmp_path / "alerts.jsonl"),
        ]  # fmt: skip
        prelude = [sys.executable, "-c", OUTPUT_FILLS_UP] if not mounted else CLI
        env = {**os.environ, "RUST_BACKTRACE": "0"}
        done = subprocess.run([*prelude, *command], capture_output=True, text=True, timeout=120, env=env)
    finally:
        if mounted:
            subprocess.run(["umount", str(disk)], check=True)
    assert done.returncode == 1
    assert done.stdout.strip().splitlines() == [f"error: {snapshots}: cannot write (No space left on device)"]
    assert "Traceback" not in done.stderr
