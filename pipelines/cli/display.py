"""Rich rendering of a replay: the summary, the alert log and the per-asset risk table."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.table import Table

from cascadewatch.pipelines.run.replay import ReplaySummary

SEVERITY_STYLE = {"critical": "bold red", "warning": "yellow", "info": "cyan"}


def utc(ts_ms: int) -> str:
    """``1700000000000`` -> ``2023-11-14 22:13:20``."""
    return datetime.fromtimestamp(ts_ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


def usd(value: float | None) -> str:
    """Compact dollars: ``$1.25M``, ``$830k``, ``$12``."""
    if value is None:
        return "-"
    for scale, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"${value / scale:,.2f}{suffix}"
    return f"${value:,.0f}"


def _counts_table(title: str, detail: str, count: str, counts: dict[tuple[str, str], int]) -> Table:
    """Counts by ``(venue, detail)``, sorted, one row each."""
    table = Table(title=title, title_justify="left")
    table.add_column("venue")
    table.add_column(detail)
    table.add_column(count, justify="right")
    for (venue, what), n in sorted(counts.items()):
        table.add_row(venue, what, f"{n:,}")
    return table


def summary_table(summary: ReplaySummary) -> Table:
    """Frames by venue and kind, as a table."""
    return _counts_table("Frames by venue and kind", "kind", "frames", summary.frames)


def dead_letter_table(summary: ReplaySummary) -> Table:
    """Dead letters by venue and reason, as a table."""
    return _counts_table("Dead letters by venue and reason", "reason", "count", summary.dead_letters)


def alert_table(alerts: Iterable[dict[str, Any]]) -> Table:
    """Alerts as a table: time (UTC), action, severity, summary."""
    table = Table(title="Alerts", title_justify="left", expand=True)
    table.add_column("time (UTC)", no_wrap=True)
    table.add_column("action")
    table.add_column("severity")
    table.add_column("summary", ratio=1)
    for alert in alerts:
        style = SEVERITY_STYLE.get(alert["severity"], "")
        table.add_row(
            utc(alert["ts"]),
            alert["action"],
            f"[{style}]{alert['severity']}[/]" if style else alert["severity"],
            alert["summary"],
        )
    return table


def _cluster(side: dict[str, Any] | None) -> str:
    if not side or side.get("cluster_price") is None:
        return "-"
    return f"{usd(side['cluster_usd'])} at {side['cluster_price']:,.6g} ({side['cluster_bps']:.0f} bps)"


def _side(snapshot: dict[str, Any], direction: str, field: str) -> Any:
    return (snapshot.get(direction) or {}).get(field)


RISK_ROWS: list[tuple[str, Any]] = [
    ("time (UTC)", lambda s: utc(s["ts"])),
    ("price", lambda s: "-" if s["price"] is None else f"{s['price']:,.6g}"),
    ("venues", lambda s: ", ".join(s["venues"])),
    ("P(cascade down)", lambda s: _probability(s.get("prob_down"))),
    ("P(cascade up)", lambda s: _probability(s.get("prob_up"))),
    ("cascade in progress", lambda s: _side(s, "down", "cascade") or _side(s, "up", "cascade") or "-"),
    ("nearest longs below", lambda s: _cluster(s.get("down"))),
    ("nearest shorts above", lambda s: _cluster(s.get("up"))),
    ("longs at risk", lambda s: usd(_side(s, "down", "at_risk_usd"))),
    ("shorts at risk", lambda s: usd(_side(s, "up", "at_risk_usd"))),
    ("reach down / up", lambda s: f"{_bps(_side(s, 'down', 'reach_bps'))} / {_bps(_side(s, 'up', 'reach_bps'))}"),
    ("bids / asks within 50 bps", lambda s: f"{usd(s['depth_bid_usd']['50'])} / {usd(s['depth_ask_usd']['50'])}"),
    ("liquidated 60 s longs / shorts", lambda s: f"{usd(s['liq_long_usd_60s'])} / {usd(s['liq_short_usd_60s'])}"),
    ("Hawkes branching", lambda s: "-" if s.get("branching") is None else f"{s['branching']:.2f}"),
    ("books valid", lambda s: s["books_valid"]),
]


def _bps(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f} bps"


def risk_table(snapshots: Iterable[dict[str, Any]]) -> Table:
    """The latest snapshot of each asset, one column per asset."""
    latest: dict[str, dict[str, Any]] = {}
    for snapshot in snapshots:
        latest[snapshot["asset"]] = snapshot
    table = Table(title="Risk (latest second per asset)", title_justify="left")
    table.add_column("")
    for asset in sorted(latest):
        table.add_column(asset, justify="right")
    for label, render in RISK_ROWS:
        table.add_row(label, *(render(latest[asset]) for asset in sorted(latest)))
    return table


def _probability(value: float | None) -> str:
    if value is None:
        return "-"
    style = "bold red" if value >= 0.5 else "yellow" if value >= 0.2 else "green"
    return f"[{style}]{value:.0%}[/]"


def print_summary(console: Console, summary: ReplaySummary) -> None:
    """Print a replay's frames, dead letters (or "none") and the recordings read only up to a truncated line."""
    console.print(summary_table(summary))
    if summary.dead_letters:
        console.print(dead_letter_table(summary))
    else:
        console.print("dead letters: none")
    if summary.truncated:
        console.print(
            f"[yellow]truncated recordings (read up to the last whole line): {', '.join(summary.truncated)}[/]"
        )
    console.print(f"snapshots: {summary.snapshots:,}   alerts: {len(summary.alerts):,}")
