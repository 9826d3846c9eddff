"""Rich rendering of a replay: the summary, the alert log and the per-asset risk table."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Any

from rich.console import Console
from rich.table import Table

from pipelines.replay import ReplaySummary

SEVERITY_STYLE = {"critical": "bold red", "warning": "yellow", "info": "cyan"}


def utc(ts_ms: int) -> str:
    """``1700000000000`` -> ``2023-11-14 22:13:20``."""
    return datetime.fromtimestamp(ts_ms / 1000, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def usd(value: float | None) -> str:
    """Compact dollars: ``$1.25M``, ``$830k``, ``$12``."""
    if value is None:
        return "-"
    for scale, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"${value / scale:,.2f}{suffix}"
    return f"${value:,.0f}"


def summary_table(summary: ReplaySummary) -> Table:
    table = Table(title="Frames by venue and kind", title_justify="left")
    table.add_column("venue")
    table.add_column("kind")
    table.add_column("frames", justify="right")
    for (venue, kind), count in sorted(summary.frames.items()):
        table.add_row(venue, kind, f"{count:,}")
    return table


def dead_letter_table(summary: ReplaySummary) -> Table:
    table = Table(title="Dead letters by venue and reason", title_justify="left")
    table.add_column("venue")
    table.add_column("reason")
    table.add_column("count", justify="right")
    for (venue, reason), count in sorted(summary.dead_letters.items()):
        table.add_row(venue, reason, f"{count:,}")
    return table


def alert_table(alerts: Iterable[dict[str, Any]]) -> Table:
    table = Table(title="Alerts", title_justify="left")
    for column in ("time (UTC)", "action", "severity", "asset", "dir", "summary"):
        table.add_column(column)
    for alert in alerts:
        style = SEVERITY_STYLE.get(alert["severity"], "")
        table.add_row(
            utc(alert["ts"]),
            alert["action"],
            f"[{style}]{alert['severity']}[/]" if style else alert["severity"],
            alert["asset"],
            alert["direction"],
            alert["summary"],
        )
    return table


def risk_table(snapshots: Iterable[dict[str, Any]]) -> Table:
    """The latest snapshot of each asset."""
    latest: dict[str, dict[str, Any]] = {}
    for snapshot in snapshots:
        latest[snapshot["asset"]] = snapshot
    table = Table(title="Risk (latest second per asset)", title_justify="left")
    for column in ("asset", "time (UTC)", "price", "venues", "liq longs 60s", "liq shorts 60s",
                   "bid depth 50bps", "ask depth 50bps", "books", "P(down)", "P(up)"):
        table.add_column(column, justify="right" if column not in ("asset", "venues") else "left")
    for asset in sorted(latest):
        snap = latest[asset]
        table.add_row(
            asset,
            utc(snap["ts"]),
            "-" if snap["price"] is None else f"{snap['price']:,.6g}",
            ",".join(snap["venues"]),
            usd(snap["liq_long_usd_60s"]),
            usd(snap["liq_short_usd_60s"]),
            usd(snap["depth_bid_usd"]["50"]),
            usd(snap["depth_ask_usd"]["50"]),
            snap["books_valid"],
            _probability(snap.get("prob_down")),
            _probability(snap.get("prob_up")),
        )
    return table


def _probability(value: float | None) -> str:
    if value is None:
        return "-"
    style = "bold red" if value >= 0.5 else "yellow" if value >= 0.2 else "green"
    return f"[{style}]{value:.0%}[/]"


def print_summary(console: Console, summary: ReplaySummary) -> None:
    console.print(summary_table(summary))
    if summary.dead_letters:
        console.print(dead_letter_table(summary))
    else:
        console.print("dead letters: none")
    if summary.truncated:
        console.print(f"[yellow]truncated recordings (read up to the last whole line): {', '.join(summary.truncated)}[/]")
    console.print(f"snapshots: {summary.snapshots:,}   alerts: {len(summary.alerts):,}")
