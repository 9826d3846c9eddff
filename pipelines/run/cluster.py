"""Running a dataflow: one worker, several workers, one process of a cluster, with recovery.

The same flags serve ``replay`` and ``run``: ``--workers N`` (Bytewax workers in this
process), ``--addresses host:port,...`` with ``--process-id I`` (this process in a cluster of
one process per address: start them all with the same arguments but ``--process-id``), and
``--recovery-dir DIR`` (Bytewax recovery store, created when absent: a killed run resumes
from its last snapshot, one per epoch).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # Bytewax loads when a flow runs, not when the CLI parses its arguments
    from bytewax.dataflow import Dataflow
    from bytewax.recovery import RecoveryConfig


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, not {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be >= 1")
    return value


def add_cluster_arguments(parser: argparse.ArgumentParser) -> None:
    """``--workers``, ``--addresses``, ``--process-id``, ``--recovery-dir``."""
    parser.add_argument(
        "--workers", type=positive_int, default=1, metavar="N", help="Bytewax workers in this process (default 1)"
    )
    parser.add_argument(
        "--addresses",
        metavar="HOST:PORT,...",
        help="run as one process of a Bytewax cluster: every process's address, in process-id order",
    )
    parser.add_argument("--process-id", type=int, default=0, metavar="I", help="this process's index in --addresses")
    parser.add_argument(
        "--recovery-dir",
        type=Path,
        metavar="DIR",
        help="Bytewax recovery store (created when absent): a killed run resumes from its last snapshot",
    )


def loopback_addresses(processes: int) -> str:
    """``--addresses`` for a cluster of ``processes`` on 127.0.0.1, on ports free right now."""
    sockets = [socket.socket() for _ in range(processes)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return ",".join(f"127.0.0.1:{sock.getsockname()[1]}" for sock in sockets)
    finally:
        for sock in sockets:
            sock.close()


RECOVERY_LAYOUT = 4
"""Version of the state that recovery snapshots pickle: 4 since the estimated liquidation map
keeps one grid per leverage tier, 3 when ``InstrumentSecond`` became ``InstrumentState``, 2 when
the modules moved under ``cascadewatch`` (release 0.1.0 wrote layout 1, with no marker file)."""
RECOVERY_MARKER = "cascadewatch-recovery.json"


class RecoveryDirError(ValueError):
    """A recovery directory this version cannot resume; the message says how to start fresh."""


def check_recovery_layout(directory: Path) -> None:
    """Refuse ``directory`` if it holds snapshots of another state layout; mark a new one.

    The marker ``cascadewatch-recovery.json`` (``{"layout": 4}``) is written before any
    partition file, so a cluster process that sees a partition also sees the marker.
    """
    marker = directory / RECOVERY_MARKER
    partitions = sorted(directory.glob("part-*.sqlite3"))
    try:
        layout = json.loads(marker.read_text()).get("layout")
    except FileNotFoundError:
        layout = 1 if partitions else None
    except (ValueError, AttributeError):
        raise RecoveryDirError(f"{marker}: not a cascadewatch recovery marker") from None
    if layout is None:
        scratch = marker.with_name(marker.name + f".{os.getpid()}.tmp")
        scratch.write_text(json.dumps({"layout": RECOVERY_LAYOUT}) + "\n")
        os.replace(scratch, marker)
    elif layout != RECOVERY_LAYOUT:
        raise RecoveryDirError(
            f"{directory}: recovery snapshots of state layout {layout}, written by an older cascadewatch; "
            f"this version ({RECOVERY_LAYOUT}) cannot resume them. Start fresh: remove the directory or "
            "pass a new --recovery-dir (docs/deploy.md, 'Recovery')"
        )


def recovery_store(directory: Path, processes: int = 1, process_id: int = 0) -> RecoveryConfig:
    """The Bytewax recovery config for ``directory``, initialised when it holds no partition.

    A cluster of ``processes`` has one recovery partition per process; process ``i`` creates
    only ``part-i`` in its own directory (its own volume, or a directory shared by all).
    A directory of another state layout is refused (:func:`check_recovery_layout`).
    """
    from bytewax.recovery import RecoveryConfig, init_db_dir

    directory.mkdir(parents=True, exist_ok=True)
    check_recovery_layout(directory)
    mine = directory / f"part-{process_id}.sqlite3"
    if not mine.exists() and (processes > 1 or not any(directory.glob("part-*.sqlite3"))):
        with tempfile.TemporaryDirectory(dir=directory, prefix=".init-") as scratch:
            init_db_dir(Path(scratch), processes)
            shutil.move(str(Path(scratch) / mine.name), mine)
    return RecoveryConfig(directory)


def execute(
    flow: Dataflow,
    *,
    workers: int = 1,
    addresses: list[str] | None = None,
    process_id: int = 0,
    epoch_interval: timedelta | None = None,
    recovery_dir: str | Path | None = None,
) -> None:
    """Run ``flow`` to completion in this process (see the module docstring).

    With a recovery directory the epoch is at most 1 s, so a resume repeats at most about a
    second of work. A step that fails on an I/O error (an output on a full disk) ends the run
    with :class:`RunFailed` carrying that error's one-line message.
    """
    try:
        _execute(flow, workers, addresses, process_id, epoch_interval, recovery_dir)
    except Exception as exc:
        cause = _io_cause(exc)
        if cause is None:
            raise
        raise RunFailed(str(cause)) from None


class RunFailed(OSError):
    """The dataflow stopped on an I/O error (a full disk); the message is that error's, one line."""


def _io_cause(exc: BaseException) -> OSError | None:
    """The OSError a dataflow error was caused by (Bytewax wraps a step's exception), if any."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, OSError):
            return current
        seen.add(id(current))
        current = current.__cause__
    return None


def _execute(
    flow: Dataflow,
    workers: int,
    addresses: list[str] | None,
    process_id: int,
    epoch_interval: timedelta | None,
    recovery_dir: str | Path | None,
) -> None:
    from bytewax.testing import cluster_main, run_main

    processes = len(addresses) if addresses else 1
    recovery = recovery_store(Path(recovery_dir), processes, process_id) if recovery_dir else None
    if recovery is not None and (epoch_interval is None or epoch_interval > timedelta(seconds=1)):
        epoch_interval = timedelta(seconds=1)
    if addresses:
        cluster_main(
            flow,
            addresses,
            process_id,
            epoch_interval=epoch_interval,
            recovery_config=recovery,
            worker_count_per_proc=workers,
        )
    elif workers > 1:
        cluster_main(
            flow, [], 0, epoch_interval=epoch_interval, recovery_config=recovery, worker_count_per_proc=workers
        )
    else:
        run_main(flow, epoch_interval=epoch_interval, recovery_config=recovery)
