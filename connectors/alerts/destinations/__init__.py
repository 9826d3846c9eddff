"""Destinations: build one from its config."""

from __future__ import annotations

from cascadewatch.connectors.alerts.config import DestinationConfig
from cascadewatch.connectors.alerts.destinations.base import Destination, Outcome


def build_destination(config: DestinationConfig) -> Destination:
    """The destination for ``config``; raises ``SecretMissing`` when its env var is unset."""
    if config.type == "pagerduty":
        from cascadewatch.connectors.alerts.destinations.pagerduty import (
            PagerDutyDestination,
        )

        return PagerDutyDestination(config)
    if config.type == "slack":
        from cascadewatch.connectors.alerts.destinations.slack import SlackDestination

        return SlackDestination(config)
    if config.type == "webhook":
        from cascadewatch.connectors.alerts.destinations.webhook import (
            WebhookDestination,
        )

        return WebhookDestination(config)
    if config.type == "alertmanager":
        from cascadewatch.connectors.alerts.destinations.alertmanager import (
            AlertmanagerDestination,
        )

        return AlertmanagerDestination(config)
    if config.type == "telegram":
        from cascadewatch.connectors.alerts.destinations.telegram import (
            TelegramDestination,
        )

        return TelegramDestination(config)
    if config.type == "discord":
        from cascadewatch.connectors.alerts.destinations.discord import (
            DiscordDestination,
        )

        return DiscordDestination(config)
    if config.type == "console":
        from cascadewatch.connectors.alerts.destinations.console import (
            ConsoleDestination,
        )

        return ConsoleDestination(config)
    if config.type == "jsonl":
        from cascadewatch.connectors.alerts.destinations.jsonl import JsonlDestination

        return JsonlDestination(config)
    raise ValueError(f"unknown destination type {config.type!r}")


__all__ = ["Destination", "Outcome", "build_destination"]
