"""``cascadewatch explain``: re-make an alert from its audit manifest and show why it fired.

    cascadewatch explain ALERT_ID --from alerts.jsonl [--recording R...] [--config F]
    cascadewatch explain ALERT_ID --recording R... [--config F]

With ``--from``, the alert's manifest names the recordings (found with ``--recording``, in
the working directory or beside the alerts file) and the lines of each that led to it; they
are replayed with ``--config`` and this code, and the re-made alert is compared with the
original byte for byte. Exit 0: reproduced byte for byte; 1: not (each difference named:
code, config, model, an input, then the fields); 2: the alert or a recording is missing.
With only ``--recording``, the recordings are replayed whole and the alert is shown.
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from cascadewatch.connectors.outputs import ALERT_HEADER

if TYPE_CHECKING:  # the replay (Bytewax, river) loads when the command runs, not for --help
    from cascadewatch.pipelines.run.explain import Explanation

FEATURE_KEYS = (
    "price",
    "prob_down",
    "prob_up",
    "sigma_bps_1s",
    "branching",
    "hawkes_intensity",
    "oi_usd",
    "funding",
    "liq_long_usd_60s",
    "liq_short_usd_60s",
    "trade_usd_60s",
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``explain`` options to ``parser``."""
    parser.add_argument("alert_id", metavar="ALERT_ID", help="the alert's id")
    parser.add_argument("--from", dest="alerts_file", type=Path, metavar="F", help="alerts JSONL holding the alert")
    parser.add_argument(
        "--recording",
        nargs="+",
        type=Path,
        default=[],
        metavar="R",
        help="the recordings (default: those the alert's audit names, in . or beside --from)",
    )
    parser.add_argument("--config", type=Path, metavar="F", help="TOML config the alert was made with")


def _when(ts_ms: int) -> str:
    return datetime.fromtimestamp(ts_ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _evidence_table(alert: dict[str, Any]) -> Table:
    table = Table(title="evidence", title_justify="left")
    table.add_column("field")
    table.add_column("value")
    for key, value in alert.items():
        if key not in ALERT_HEADER and key not in ("drivers", "audit"):
            table.add_row(key, escape(json.dumps(value, ensure_ascii=False)))
    return table


def _drivers_table(alert: dict[str, Any]) -> Table:
    table = Table(title="contributions (log-odds against an average second)", title_justify="left")
    table.add_column("family")
    table.add_column("logit", justify="right")
    table.add_column("why")
    for driver in alert.get("drivers") or []:
        table.add_row(str(driver.get("family")), f"{driver.get('logit'):+.3f}", escape(str(driver.get("text"))))
    return table


def _features_table(snapshot: dict[str, Any], direction: str | None) -> Table:
    table = Table(title=f"features: the {snapshot['asset']} snapshot of that second", title_justify="left")
    table.add_column("feature")
    table.add_column("value")
    for key in FEATURE_KEYS:
        if key in snapshot:
            table.add_row(key, json.dumps(snapshot[key]))
    side = snapshot.get(direction or "")
    if isinstance(side, dict):
        for key, value in side.items():
            table.add_row(f"{direction}.{key}", json.dumps(value))
    return table


def show(result: Explanation, console: Console) -> None:
    """Print what ``explain`` found: the verdict, every difference, the evidence and contributions."""
    alert = result.alert
    replayed = ", ".join(
        f"{name} ({'whole' if lines < 0 else f'first {lines} lines'})" for name, lines in result.replayed
    )
    if alert is not None:
        console.print(
            f"alert {result.alert_id}: {escape(alert['asset'])} {alert['kind']} {alert.get('direction') or ''} "
            f"{alert['action']} {alert['severity']} at {_when(alert['ts'])}"
        )
    console.print(f"replayed {escape(replayed)}")
    if result.original is None:
        console.print("no alerts file given: nothing to compare with")
    elif result.identical:
        console.print(f"[green]reproduced byte for byte[/] ({len(result.original)} bytes, audit included)")
    elif result.evidence_identical:
        console.print("[yellow]evidence reproduced byte for byte, but the audit manifest differs:[/]")
    else:
        console.print("[red]NOT reproduced:[/]")
    for difference in result.differences:
        console.print(f"  - {escape(difference)}", soft_wrap=True)
    if alert is None:
        return
    console.print(_evidence_table(alert))
    if alert.get("drivers"):
        console.print(_drivers_table(alert))
    if result.snapshot is not None:
        console.print(_features_table(result.snapshot, alert.get("direction")))


def run(args: argparse.Namespace, console: Console) -> int:
    """``cascadewatch explain``: exit 0 reproduced, 1 not, 2 missing alert or recording."""
    from cascadewatch.pipelines.config import load_config  # numpy and the detectors: not for --help
    from cascadewatch.pipelines.run.explain import ExplainError, explain

    config = load_config(args.config)
    try:
        result = explain(args.alert_id, config, list(args.recording), args.alerts_file)
    except ExplainError as exc:
        console.print(f"[red]error:[/] {escape(str(exc))}", soft_wrap=True)
        return 2
    show(result, console)
    if result.original is None:
        return 0 if result.reproduced is not None else 1
    return 0 if result.identical else 1
