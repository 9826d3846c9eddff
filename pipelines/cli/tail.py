"""``cascadewatch tail``: a live terminal view of the risk feed.

A table with the latest snapshot of each asset (price, cascade probability down/up
coloured by level, nearest liquidation clusters, notional at risk, depth within 50 bps,
cascade reach, Hawkes branching ratio, state: ``calm`` or the cascade in progress; ``-``
for what the snapshot does not carry; the least important columns are left out when
the terminal is too narrow)
and a scrolling log of the latest alerts. Live from the risk feed websocket (reconnecting
by itself with backoff), or from a snapshots/alerts JSONL file with ``--from FILE``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from collections import deque
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from cascadewatch.connectors.alerts.routing import asset_matches

DEFAULT_URL = "ws://127.0.0.1:8765"
TOKEN_ENV = "CASCADEWATCH_RISKFEED_TOKEN"
SEVERITY_STYLE = {"critical": "bold red", "warning": "yellow", "info": "cyan"}


# -- reading fields that detectors may or may not publish yet ---------------------------


def pick(snapshot: dict[str, Any], *paths: str) -> Any:
    """The first present, non-null value among dotted ``paths`` (``"reach.down.bps"``)."""
    for path in paths:
        value: Any = snapshot
        for part in path.split("."):
            if isinstance(value, dict) and part in value:
                value = value[part]
            else:
                value = None
                break
        if value is not None:
            return value
    return None


def fmt_usd(value: Any) -> str:
    """A USD amount, short: ``$1.50M``, ``$250.00k``; ``-`` when not a number."""
    if not isinstance(value, (int, float)):
        return "-"
    for scale, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"${value / scale:,.2f}{suffix}"
    return f"${value:,.0f}"


def fmt_price(value: Any) -> str:
    """A price with 6 significant digits; ``-`` when not a number."""
    return f"{value:,.6g}" if isinstance(value, (int, float)) else "-"


def fmt_prob(value: Any) -> Text:
    """A probability as percent, red from 50 %, yellow from 20 %, else green; ``-`` when not a number."""
    if not isinstance(value, (int, float)):
        return Text("-")
    style = "bold red" if value >= 0.5 else "yellow" if value >= 0.2 else "green"
    return Text(f"{value:.0%}", style=style)


def fmt_cluster(side: dict[str, Any]) -> str:
    """``63,000 (-156bp) $48.00M`` from a direction's ``cluster_price/_bps/_usd``."""
    level = side.get("cluster_price")
    if not isinstance(level, (int, float)):
        return "-"
    text = fmt_price(level)
    if isinstance(side.get("cluster_bps"), (int, float)):
        text += f" ({side['cluster_bps']:+.0f}bp)"
    if isinstance(side.get("cluster_usd"), (int, float)):
        text += f" {fmt_usd(side['cluster_usd'])}"
    return text


def fmt_reach(side: dict[str, Any]) -> str:
    """``310bp $91.00M`` from a direction's ``reach_bps`` and ``reach_usd``."""
    parts = []
    if isinstance(side.get("reach_bps"), (int, float)):
        parts.append(f"{side['reach_bps']:.0f}bp")
    if isinstance(side.get("reach_usd"), (int, float)):
        parts.append(fmt_usd(side["reach_usd"]))
    return " ".join(parts) or "-"


def fmt_state(snap: dict[str, Any]) -> Text | str:
    """``calm``, or the cascade in progress per direction (``down: liquidation``)."""
    down, up = snap.get("down"), snap.get("up")
    if not isinstance(down, dict) and not isinstance(up, dict):
        return "-"
    active = [
        f"{d}: {side['cascade']}"
        for d, side in (("down", down), ("up", up))
        if isinstance(side, dict) and side.get("cascade")
    ]
    return Text(", ".join(active), style="bold red") if active else Text("calm", style="green")


def pair(down: str, up: str) -> str:
    """A down/up pair as ``↓down ↑up``; ``-`` when both are missing."""
    return "-" if down == "-" and up == "-" else f"↓{down} ↑{up}"


def utc(ts_ms: Any) -> str:
    """A time in ms since the epoch as ``HH:MM:SS`` UTC; ``-`` when not a number."""
    if not isinstance(ts_ms, (int, float)):
        return "-"
    return datetime.fromtimestamp(ts_ms / 1000, tz=UTC).strftime("%H:%M:%S")


COLUMNS = (
    "asset",
    "time",
    "price",
    "P(down)",
    "P(up)",
    "cluster ↓",
    "cluster ↑",
    "at risk",
    "depth 50bp bid/ask",
    "reach",
    "branching",
    "state",
)


DROP_ORDER = ("branching", "reach", "cluster ↑", "at risk", "time", "depth 50bp bid/ask", "cluster ↓", "state")
"""Columns left out first when the terminal is too narrow (asset, price, P(down), P(up) stay)."""


def _cell_len(cell: Any) -> int:
    return cell.cell_len if isinstance(cell, Text) else len(str(cell))


def fit_columns(rows: list[list[Any]], width: int | None) -> list[int]:
    """Indexes of the columns to show so that the table fits ``width`` (all if ``None``)."""
    shown = list(range(len(COLUMNS)))
    if width is None:
        return shown
    need = {i: max([len(COLUMNS[i])] + [_cell_len(row[i]) for row in rows]) + 3 for i in shown}
    dropped = []
    for name in DROP_ORDER:
        if sum(need[i] for i in shown) + 1 <= width:
            break
        shown.remove(COLUMNS.index(name))
        dropped.append(COLUMNS.index(name))
    for i in reversed(dropped):  # put back what still fits
        if sum(need[j] for j in shown) + need[i] + 1 <= width:
            shown.append(i)
    return sorted(shown)


def snapshot_row(snap: dict[str, Any]) -> list[RenderableType]:
    """The table row of an asset's snapshot: price, probabilities, distances, depth, branching."""
    raw_down, raw_up = snap.get("down"), snap.get("up")
    down: dict[str, Any] = raw_down if isinstance(raw_down, dict) else {}
    up: dict[str, Any] = raw_up if isinstance(raw_up, dict) else {}
    branching = snap.get("branching")
    bid, ask = pick(snap, "depth_bid_usd.50"), pick(snap, "depth_ask_usd.50")
    return [
        str(snap.get("asset", "?")),
        utc(snap.get("ts")),
        fmt_price(snap.get("price")),
        fmt_prob(snap.get("prob_down")),
        fmt_prob(snap.get("prob_up")),
        fmt_cluster(down),
        fmt_cluster(up),
        pair(fmt_usd(down.get("at_risk_usd")), fmt_usd(up.get("at_risk_usd"))),
        f"{fmt_usd(bid)}/{fmt_usd(ask)}" if bid is not None or ask is not None else "-",
        pair(fmt_reach(down), fmt_reach(up)),
        f"{branching:.2f}" if isinstance(branching, (int, float)) else "-",
        fmt_state(snap),
    ]


def alert_line(alert: dict[str, Any]) -> Text:
    """One alert as a styled line: time, severity (or RESOLVE), asset, direction, summary."""
    resolve = alert.get("action") == "resolve"
    style = "green" if resolve else SEVERITY_STYLE.get(str(alert.get("severity")), "")
    text = Text(f"{utc(alert.get('ts'))} ")
    text.append(f"{'RESOLVE' if resolve else str(alert.get('severity', '')).upper():8}", style=style)
    text.append(f" {alert.get('asset', '')} {alert.get('direction', '')}  {alert.get('summary', '')}")
    return text


class TailView:
    """The state of the screen: latest snapshot per asset, the last alerts, a status line."""

    def __init__(self, assets: Iterable[str] = (), max_alerts: int = 12) -> None:
        self.assets = list(assets)
        self.snapshots: dict[str, dict[str, Any]] = {}
        self.alerts: deque[dict[str, Any]] = deque(maxlen=max_alerts)
        self.status = ""
        self.last_message = 0.0

    def apply(self, item: Any) -> bool:
        """Take one feed message; True if the screen changed."""
        if not isinstance(item, dict):
            return False
        kind = item.get("type")
        if kind not in ("snapshot", "alert"):
            return False
        asset = str(item.get("asset", ""))
        if not asset_matches(asset, self.assets):
            return False
        if kind == "snapshot":
            previous = self.snapshots.get(asset)
            if previous is None or item.get("ts", 0) >= previous.get("ts", 0):
                self.snapshots[asset] = item
        else:
            self.alerts.append(item)
        return True

    def render(self, width: int | None = None) -> RenderableType:
        """The screen; at ``width`` columns, the least important columns are left out."""
        rows = [snapshot_row(self.snapshots[asset]) for asset in sorted(self.snapshots)]
        shown = fit_columns(rows, width)
        hidden = len(COLUMNS) - len(shown)
        title = "cascadewatch risk" + (f" ({hidden} columns hidden: widen the terminal)" if hidden else "")
        table = Table(title=title, title_justify="left", expand=False)
        for i in shown:
            column = COLUMNS[i]
            table.add_column(column, justify="left" if column in ("asset", "state") else "right", no_wrap=True)
        for row in rows:
            table.add_row(*(row[i] for i in shown))
        if not rows:
            table.add_row("(waiting for snapshots)", *[""] * (len(shown) - 1))
        log = Table(title="alerts", title_justify="left", show_header=False, box=None, expand=False)
        log.add_column("alert", overflow="fold")
        for alert in reversed(self.alerts):
            log.add_row(alert_line(alert))
        if not self.alerts:
            log.add_row(Text("(no alerts)", style="dim"))
        parts: list[RenderableType] = [table, log]
        if self.status:
            parts.append(Text(self.status, style="dim"))
        return Group(*parts)


def read_file(path: Path, view: TailView) -> int:
    """Apply every JSON line of ``path``; return how many were bad."""
    bad = 0
    with open(path, encoding="utf-8") as lines:
        for line in lines:
            if not line.strip():
                continue
            try:
                view.apply(json.loads(line))
            except (ValueError, RecursionError):  # RecursionError: nested deeper than Python's stack
                bad += 1
    return bad


async def follow(
    url: str,
    view: TailView,
    on_change: Callable[[], None],
    token: str | None = None,
    stop: asyncio.Event | None = None,
    backoff_min: float = 0.5,
    backoff_max: float = 5.0,
    token_env: str = TOKEN_ENV,
) -> None:
    """Read the feed into ``view`` until ``stop`` is set, reconnecting with backoff.

    A 401 says to set ``token_env``, the variable the token is read from.
    """
    from websockets.asyncio.client import connect
    from websockets.exceptions import InvalidStatus, WebSocketException

    stop = stop or asyncio.Event()
    headers = {"Authorization": f"Bearer {token}"} if token else None
    delay = backoff_min
    query = f"?assets={','.join(view.assets)}" if view.assets else ""
    while not stop.is_set():
        try:
            async with connect(
                url.rstrip("/") + "/" + query, additional_headers=headers, open_timeout=5, max_size=2**22
            ) as ws:
                delay = backoff_min
                view.status = f"connected to {url}"
                on_change()
                reader = asyncio.ensure_future(_read(ws, view, on_change))
                stopper = asyncio.ensure_future(stop.wait())
                await asyncio.wait({reader, stopper}, return_when=asyncio.FIRST_COMPLETED)
                stopper.cancel()
                if not reader.done():
                    reader.cancel()
                    break
                reader.result()
                view.status = f"{url}: connection closed ({ws.close_code} {ws.close_reason}); reconnecting"
        except InvalidStatus as exc:
            status = exc.response.status_code
            hint = f" (set ${token_env})" if status == 401 else ""
            view.status = f"{url}: refused with HTTP {status}{hint}; retrying in {delay:.1f}s"
        except (TimeoutError, OSError, WebSocketException) as exc:
            view.status = f"{url}: {type(exc).__name__}: {exc}; retrying in {delay:.1f}s"
        on_change()
        try:
            await asyncio.wait_for(stop.wait(), timeout=delay)
        except TimeoutError:
            pass
        delay = min(backoff_max, delay * 2)


async def _read(ws: Any, view: TailView, on_change: Callable[[], None]) -> None:
    from websockets.exceptions import ConnectionClosed

    try:
        async for message in ws:
            view.last_message = time.monotonic()
            try:
                item = json.loads(message)
            except (ValueError, RecursionError):
                continue
            if view.apply(item):
                on_change()
    except ConnectionClosed:
        pass


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``tail`` options to ``parser``."""
    parser.add_argument("--url", default=DEFAULT_URL, help=f"risk feed websocket (default {DEFAULT_URL})")
    parser.add_argument(
        "--asset",
        action="append",
        default=[],
        metavar="ASSET",
        help="show only this asset (BTC matches BTC-USDT); repeatable",
    )
    parser.add_argument(
        "--from",
        dest="from_file",
        type=Path,
        metavar="FILE",
        help="render a snapshots/alerts JSONL file instead of the live feed",
    )
    parser.add_argument(
        "--token-env",
        default=TOKEN_ENV,
        metavar="NAME",
        help=f"environment variable holding the feed's bearer token (default {TOKEN_ENV})",
    )
    parser.add_argument("--duration", type=float, metavar="S", help="stop after S seconds (default: until Ctrl-C)")


def run(args: argparse.Namespace, console: Console | None = None) -> int:
    """Show a snapshots file once (``--from-file``), or the risk feed until it closes or ``--duration`` passes.

    Returns the exit status.
    """
    console = console or Console()
    view = TailView(args.asset)
    if args.from_file is not None:
        bad = read_file(args.from_file, view)
        view.status = f"{args.from_file}: {len(view.snapshots)} assets, {len(view.alerts)} latest alerts" + (
            f", {bad} unreadable lines" if bad else ""
        )
        console.print(view.render(console.width))
        return 0
    token = os.environ.get(args.token_env) or None
    try:
        asyncio.run(_live(args.url, view, console, (token, args.token_env), args.duration))
    except KeyboardInterrupt:
        pass
    return 0


async def _live(
    url: str, view: TailView, console: Console, token: tuple[str | None, str], duration: float | None
) -> None:
    """Follow the feed at ``url`` in a live view; ``token``: the token and the variable it came from."""
    stop = asyncio.Event()
    if duration is not None:
        asyncio.get_running_loop().call_later(duration, stop.set)
    with Live(view.render(console.width), console=console, refresh_per_second=4, transient=False) as live:
        dirty = True

        def changed() -> None:
            nonlocal dirty
            dirty = True

        async def refresh() -> None:
            nonlocal dirty
            while not stop.is_set():
                if dirty:
                    dirty = False
                    live.update(view.render(console.width))
                await asyncio.sleep(0.25)

        painter = asyncio.ensure_future(refresh())
        await follow(url, view, changed, token=token[0], stop=stop, token_env=token[1])
        painter.cancel()
        live.update(view.render(console.width))


def main(argv: list[str] | None = None) -> int:
    """Run ``cascadewatch tail`` from ``argv``; returns the exit status."""
    parser = argparse.ArgumentParser(prog="cascadewatch tail", description=__doc__)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
