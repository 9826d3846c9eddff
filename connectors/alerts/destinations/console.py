"""Print alerts to the terminal (rich), one line each."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape

from cascadewatch.connectors.alerts.config import DestinationConfig
from cascadewatch.connectors.alerts.destinations.base import (
    Destination,
    Outcome,
    iso_utc,
)

STYLE = {"critical": "bold red", "warning": "yellow", "info": "cyan"}


def console_line(alert: dict[str, Any]) -> str:
    """Rich markup: ``2024-..Z TRIGGER critical BTC-USDT down  <summary>``."""
    resolve = alert.get("action") == "resolve"
    style = "green" if resolve else STYLE.get(str(alert.get("severity")), "")
    head = f"{str(alert.get('action', '')).upper()} {alert.get('severity', '')}"
    return (
        f"{iso_utc(alert.get('ts'))} [{style}]{escape(head)}[/] {escape(str(alert.get('asset', '')))} "
        f"{escape(str(alert.get('direction', '')))}  {escape(str(alert.get('summary', '')))}"
    )


class ConsoleDestination(Destination):
    """Print alerts to the terminal (stderr by default) as rich panels."""

    def __init__(self, config: DestinationConfig, console: Console | None = None) -> None:
        super().__init__(config)
        self.console = console or Console(stderr=True)

    def _send(self, alerts: list[dict[str, Any]]) -> Outcome:
        for alert in alerts:
            self.console.print(console_line(alert), highlight=False, soft_wrap=True)
        return Outcome.delivered()
