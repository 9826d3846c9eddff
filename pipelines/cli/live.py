"""``cascadewatch record`` and ``cascadewatch run``: the live commands.

Wiring into ``pipelines/cli/main.py``: call :func:`add_commands` with the subparsers object, and
dispatch ``args.command in COMMANDS`` to :func:`handle`. Standalone: ``python -m
cascadewatch.pipelines.cli.live record ...``.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from cascadewatch.connectors.live_config import FeedStartError, LiveConfig
from cascadewatch.connectors.venues.registry import VENUE_NAMES
from cascadewatch.pipelines.run.cluster import add_cluster_arguments

COMMANDS = ("record", "run")


def _names(text: str) -> list[str]:
    names = [part.strip() for part in text.split(",") if part.strip()]
    if not names:
        raise argparse.ArgumentTypeError("expected a comma-separated list")
    return names


def _venues(text: str) -> list[str]:
    names = _names(text)
    unknown = [name for name in names if name not in VENUE_NAMES]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown venue(s) {', '.join(unknown)}; known: {', '.join(VENUE_NAMES)}")
    return names


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, not {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError("must be > 0")
    return value


def add_commands(subparsers: Any) -> None:
    """Add ``record`` and ``run`` to the ``cascadewatch`` subparsers."""
    rec = subparsers.add_parser(
        "record",
        help="record live venue feeds (websocket frames, REST bootstraps, connection events)",
        description="Connect to the venues' public feeds and write a recording (see README, 'Recording "
        "format'): websocket frames as received, REST bootstraps (instruments, book snapshots) and "
        "connection events, so a replay sees gaps as gaps. Safe to kill at any time: the file reads up "
        "to its last whole line. Endpoints, limits and timeouts come from --config ([live] table).",
    )
    rec.add_argument(
        "--venues", type=_venues, metavar="V,...", help=f"venues ({','.join(VENUE_NAMES)}; default: config or all)"
    )
    rec.add_argument("--symbols", type=_names, metavar="S,...", help="base assets, e.g. BTC,ETH,SOL (default: config)")
    rec.add_argument(
        "--duration", type=_positive, metavar="S", help="stop after S seconds (default: until interrupted)"
    )
    rec.add_argument("--out", type=Path, required=True, metavar="REC", help="output file (.zst/.gz compress)")
    rotate = rec.add_mutually_exclusive_group()
    rotate.add_argument("--rotate-mb", type=_positive, metavar="N", help="start a new file after N MB on disk")
    rotate.add_argument("--rotate-hours", type=_positive, metavar="H", help="start a new file every H hours")
    rec.add_argument("--config", type=Path, metavar="F", help="TOML config (its [live] table: endpoints, limits)")
    rec.add_argument("--quiet", action="store_true", help="print nothing (exit status only)")

    run = subparsers.add_parser(
        "run",
        help="run the pipeline on live feeds: alerts and snapshots as JSONL, Prometheus metrics",
        description="Run the dataflow on the venues' live feeds, as configured in CONFIG (see "
        "deploy/config.example.toml and docs/live.md). Writes alerts, per-second snapshots and dead "
        "letters as JSONL to the paths of the [live] table, and serves Prometheus metrics on "
        "[live] metrics_port.",
    )
    run.add_argument("config", type=Path, metavar="CONFIG", help="TOML config")
    run.add_argument(
        "--duration", type=_positive, metavar="S", help="stop after S seconds (default: until interrupted)"
    )
    add_cluster_arguments(run)
    run.add_argument("--quiet", action="store_true", help="print nothing (exit status only)")


def handle(args: argparse.Namespace, console: Console | None = None) -> int:
    """Run the parsed ``record`` / ``run`` command; 2 on a config error, 1 on an I/O error while
    running or when no venue connected within ``[live] startup_timeout_s``."""
    console = console or Console()
    try:
        if args.command == "record":
            return _record(args, console)
        if args.command == "run":
            return _run(args, console)
    except (FileNotFoundError, ValueError) as exc:  # ValueError includes the config's ConfigError
        console.print(f"[red]error:[/] {escape(str(exc))}", soft_wrap=True)
        return 2
    except (FeedStartError, OSError) as exc:  # no venue reachable; an I/O error (a full disk): one line
        console.print(f"[red]error:[/] {escape(str(exc))}", soft_wrap=True)
        return 1
    raise ValueError(f"not a live command: {args.command}")


def _with_overrides(live: LiveConfig, args: argparse.Namespace) -> LiveConfig:
    import msgspec

    changes: dict[str, Any] = {}
    if getattr(args, "venues", None):
        changes["venues"] = args.venues
    if getattr(args, "symbols", None):
        changes["symbols"] = [symbol.upper() for symbol in args.symbols]
    return msgspec.structs.replace(live, **changes) if changes else live


def _stop_on_signals() -> tuple[threading.Event, Callable[[], None]]:
    """An event set by SIGTERM/SIGINT, and a function that restores the previous handlers."""
    stop = threading.Event()
    previous: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, lambda *_: stop.set())

    def restore() -> None:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    return stop, restore


def _record(args: argparse.Namespace, console: Console) -> int:
    from cascadewatch.pipelines.run.live import load_live_config, record

    _, live = load_live_config(args.config)
    live = _with_overrides(live, args)
    if not args.quiet:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
        console.print(f"recording {', '.join(live.venues)} ({', '.join(live.symbols)}) to [bold]{args.out}[/] ...")
    stop, restore = _stop_on_signals()
    try:
        summary = record(
            live,
            args.out,
            duration_s=args.duration,
            rotate_mb=args.rotate_mb or 0.0,
            rotate_hours=args.rotate_hours or 0.0,
            stop=stop,
        )
    finally:
        restore()
    if not args.quiet:
        for source, count in sorted(summary.frames.items()):
            console.print(f"  {source:24} {count:>10} frames")
        if summary.dropped:
            console.print(f"[yellow]  {summary.dropped} frames dropped (queue full)[/]")
        console.print("wrote " + ", ".join(str(path) for path in summary.paths))
    return 0


def _run(args: argparse.Namespace, console: Console) -> int:
    from cascadewatch.pipelines.cli.display import alert_table, print_summary
    from cascadewatch.pipelines.run.live import LiveOptions, load_live_config, run_live

    config, live = load_live_config(args.config)
    if not args.quiet:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
        console.print(f"live: {', '.join(live.venues)} ({', '.join(live.symbols)}); alerts -> {live.alerts_out}")
    stop, restore = _stop_on_signals()  # SIGTERM/SIGINT end the run as --duration does
    try:
        summary = run_live(
            config,
            live,
            LiveOptions(
                duration_s=args.duration,
                workers=args.workers,
                addresses=args.addresses.split(",") if args.addresses else None,
                process_id=args.process_id,
                recovery_dir=args.recovery_dir,
                stop=stop,
            ),
        )
    finally:
        restore()
    if not args.quiet:
        print_summary(console, summary)
        if summary.alerts:
            console.print(alert_table(summary.alerts))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run ``record`` or ``run`` from ``argv`` (``python -m cascadewatch.pipelines.cli.live``).

    Returns the exit status.
    """
    parser = argparse.ArgumentParser(prog="cascadewatch")
    add_commands(parser.add_subparsers(dest="command", required=True, metavar="COMMAND"))
    return handle(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
