"""``cascadewatch alerts ...`` and ``cascadewatch tail``: registered by :func:`add_commands`.

::

    cascadewatch alerts test --destination NAME [--config F] [--severity S] [--no-resolve]
    cascadewatch alerts status [--config F] [--limit N]
    cascadewatch alerts deliver [--config F] [--until-empty] [--timeout S]
    cascadewatch alerts retry-failed [--config F] [--destination NAME]
    cascadewatch tail [--url ws://127.0.0.1:8765] [--asset BTC] [--from FILE]

``cascadewatch.pipelines.cli.main`` calls ``add_commands(subparsers)`` and, for these commands, ``run(args)``.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from cascadewatch.connectors.alerts.config import (
    AlertsConfig,
    SecretMissing,
    load_alerts_config,
)
from cascadewatch.connectors.outputs import Alert
from cascadewatch.pipelines.cli import tail

COMMANDS = ("alerts", "tail")


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Register ``alerts`` (test, status, deliver, retry-failed) and ``tail``."""
    alerts = subparsers.add_parser(
        "alerts",
        help="alert delivery: send a test alert, show the outbox, deliver pending alerts",
        description="Alert delivery through the durable outbox (see docs/alerts.md).",
    )
    sub = alerts.add_subparsers(dest="alerts_command", required=True, metavar="ACTION")

    test = sub.add_parser(
        "test",
        help="send a test alert to one destination and say what went wrong, if anything",
        description="Send a test alert (kind 'test', asset TEST) straight to one configured "
        "destination, bypassing the outbox, and report the result: delivered, or the reason "
        "(missing secret, the destination's 4xx body, unreachable, timeout). For PagerDuty a "
        "resolve follows so no incident stays open.",
    )
    test.add_argument("--destination", required=True, metavar="NAME", help="a destination name from [alerts]")
    test.add_argument("--config", type=Path, metavar="F", help="TOML config with [alerts] destinations")
    test.add_argument(
        "--severity",
        default="info",
        choices=("info", "warning", "critical"),
        help="severity of the test alert (default info)",
    )
    test.add_argument(
        "--no-resolve", action="store_true", help="pagerduty, alertmanager: do not resolve the test alert"
    )
    test.set_defaults(_alerts_handler=_test)

    status = sub.add_parser("status", help="deliveries per destination and status, and the failed ones with reasons")
    status.add_argument("--config", type=Path, metavar="F", help="TOML config (for the outbox path)")
    status.add_argument("--limit", type=int, default=20, metavar="N", help="failed deliveries to list (default 20)")
    status.set_defaults(_alerts_handler=_status)

    deliver = sub.add_parser(
        "deliver",
        help="run the delivery worker on the outbox (without the pipeline)",
        description="Deliver what the outbox holds. Refuses to start while another worker "
        "(a running pipeline) holds the outbox.",
    )
    deliver.add_argument("--config", type=Path, metavar="F", help="TOML config with [alerts]")
    deliver.add_argument(
        "--until-empty",
        action="store_true",
        help="exit once nothing is pending (exit 1 if deliveries are left pending, e.g. for a disabled destination)",
    )
    deliver.add_argument("--timeout", type=float, metavar="S", help="exit after S seconds at most")
    deliver.set_defaults(_alerts_handler=_deliver)

    retry = sub.add_parser("retry-failed", help="make failed deliveries pending again (after fixing a key or URL)")
    retry.add_argument("--config", type=Path, metavar="F", help="TOML config (for the outbox path)")
    retry.add_argument("--destination", metavar="NAME", help="only this destination")
    retry.set_defaults(_alerts_handler=_retry_failed)

    tail_parser = subparsers.add_parser(
        "tail",
        help="live terminal view of the risk feed: per-asset risk table and alert log",
        description=tail.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    tail.add_arguments(tail_parser)
    tail_parser.set_defaults(_alerts_handler=lambda args, console: tail.run(args, console))


def run(args: argparse.Namespace, console: Console | None = None) -> int:
    """Run a command registered by :func:`add_commands`; returns the exit status."""
    console = console or Console()
    try:
        return int(args._alerts_handler(args, console))
    except (ValueError, KeyError, OSError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        console.print(f"[red]error:[/] {escape(str(message))}", soft_wrap=True)
        return 2


def _config(args: argparse.Namespace) -> AlertsConfig:
    path = getattr(args, "config", None)
    if path is not None and not Path(path).exists():
        raise ValueError(f"{path}: config file not found")
    return load_alerts_config(str(path) if path else None)[0]


def test_alert(
    destination: str, severity: str = "info", action: str = "trigger", ts_ms: int | None = None
) -> dict[str, Any]:
    """The alert ``alerts test`` sends: kind ``test``, asset ``TEST``."""
    ts = int(time.time() * 1000) if ts_ms is None else ts_ms
    return Alert(
        id=f"test-{ts}-{action}",
        dedup_key=f"TEST:test:{destination}",
        action=action,
        severity=severity,
        kind="test",
        asset="TEST",
        direction="down",
        ts=ts,
        summary=f"cascadewatch test alert for destination {destination}: no action needed"
        if action == "trigger"
        else f"cascadewatch test alert for destination {destination}: resolved",
        price=100.0,
        liq_usd_60s=0.0,
        venues=[],
    ).to_dict()


HINTS = {
    400: "the destination rejected the message (for PagerDuty: check the routing key and the event)",
    401: "not authorized: check the secret",
    403: "forbidden: check the secret or the webhook",
    404: "not found: the URL is wrong or the webhook was removed",
    410: "gone: the Slack channel is archived or the webhook revoked",
}


def _test(args: argparse.Namespace, console: Console) -> int:
    from cascadewatch.connectors.alerts.destinations import build_destination

    config = _config(args)
    dest_config = config.destination(args.destination)
    try:
        dest = build_destination(dest_config)
    except SecretMissing as exc:
        console.print(f"[red]✗ {escape(args.destination)}: missing secret:[/] {escape(str(exc))}")
        return 1
    try:
        ts = int(time.time() * 1000)
        sends = [test_alert(dest.name, args.severity, "trigger", ts)]
        if dest_config.type in ("pagerduty", "alertmanager") and not args.no_resolve:
            sends.append(test_alert(dest.name, args.severity, "resolve", ts))
        for alert in sends:
            outcome = dest.send([alert])
            what = f"{alert['action']} to {escape(dest.name)} ({escape(dest.describe())})"
            if outcome.kind != "delivered":
                verdict = "will be retried in normal operation" if outcome.kind == "retry" else "not retryable"
                console.print(f"[red]✗ {what} failed:[/] {escape(outcome.reason)} [dim]({verdict})[/]")
                hint = HINTS.get(outcome.status or 0)
                if hint is None and outcome.status is None:
                    hint = "check the URL and that the destination is reachable from here"
                if hint:
                    console.print(f"  hint: {hint}")
                return 1
            status = f" (HTTP {outcome.status})" if outcome.status else ""
            console.print(f"[green]✓ {what} delivered{status}[/]")
    finally:
        dest.close()
    return 0


def _status(args: argparse.Namespace, console: Console) -> int:
    from cascadewatch.connectors.alerts.outbox import STATUSES, Outbox

    config = _config(args)
    if not Path(config.outbox).exists():
        console.print(f"outbox {config.outbox}: not created yet (no alert enqueued)")
        return 0
    with Outbox(config.outbox) as outbox:
        counts = outbox.counts()
        table = Table(title=f"outbox {config.outbox}", title_justify="left")
        table.add_column("destination")
        for status in STATUSES:
            table.add_column(status, justify="right")
        for name in sorted(counts):
            table.add_row(name, *(str(counts[name][s]) for s in STATUSES))
        console.print(table)
        failed = outbox.rows("failed", limit=args.limit)
        if failed:
            rows = Table(title="failed deliveries (newest first)", title_justify="left")
            for column in ("destination", "alert", "dedup key", "action", "attempts", "reason"):
                rows.add_column(column, overflow="fold")
            for row in failed:
                rows.add_row(
                    row.destination,
                    row.alert_id,
                    row.dedup_key,
                    row.action,
                    str(row.attempts),
                    escape(row.last_error or ""),
                )
            console.print(rows)
    return 0


def _deliver(args: argparse.Namespace, console: Console) -> int:
    from cascadewatch.connectors.alerts.worker import DeliveryWorker, WorkerLocked

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = _config(args)
    worker = DeliveryWorker(config)
    for name, reason in worker.errors.items():
        console.print(f"[red]destination {escape(name)} disabled:[/] {escape(reason)}")
    try:
        worker.start()
    except WorkerLocked as exc:
        console.print(f"[red]error:[/] {escape(str(exc))}")
        return 1
    deadline = None if args.timeout is None else time.monotonic() + args.timeout
    try:
        while deadline is None or time.monotonic() < deadline:
            if args.until_empty and worker.unfinished() == 0:
                break
            time.sleep(0.1)
    except KeyboardInterrupt:
        pass
    finally:
        left = {
            name: counts["pending"] + counts["inflight"]
            for name, counts in worker.outbox.counts().items()
            if counts["pending"] + counts["inflight"]
        }
        worker.stop()
    if args.until_empty and left:
        for name, n in sorted(left.items()):
            why = worker.errors.get(name, "not delivered in time" if name in worker.destinations else "not configured")
            console.print(f"[red]{n} deliveries to {escape(name)} still pending:[/] {escape(why)}", soft_wrap=True)
        return 1
    return 0


def _retry_failed(args: argparse.Namespace, console: Console) -> int:
    from cascadewatch.connectors.alerts.outbox import Outbox

    config = _config(args)
    with Outbox(config.outbox) as outbox:
        done = outbox.requeue_failed(args.destination)
    console.print(f"{done.pending} failed deliveries are pending again")
    if done.superseded:
        console.print(
            f"{done.superseded} failed deliveries are superseded by a later alert of their dedup key"
            " and are not resent (see alerts status)"
        )
    return 0


def main(argv: list[str] | None = None) -> int:
    """Standalone entry (``python -m cascadewatch.pipelines.cli.alerts alerts test ...``)."""
    parser = argparse.ArgumentParser(prog="cascadewatch")
    add_commands(parser.add_subparsers(dest="command", required=True, metavar="COMMAND"))
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
