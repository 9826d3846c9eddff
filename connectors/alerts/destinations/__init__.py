"""Destinations: build one from its config."""

from __future__ import annotations

from connectors.alerts.config import DestinationConfig
from connectors.alerts.destinations.base import Destination, Outcome


def build_destination(config: DestinationConfig) -> Destination:
    """The destination for ``config``; raises ``SecretMissing`` when its env var is unset."""
    if config.type == "pagerduty":
        from connectors.alerts.destinations.pagerduty import PagerDutyDestination

        return PagerDutyDestination(config)
    if config.type == "slack":
        from connectors.alerts.destinations.slack import SlackDestination

        return SlackDestination(config)
    if config.type == "webhook":
        from connectors.alerts.destinations.webhook import WebhookDestination

        return WebhookDestination(config)
    if config.type == "console":
        from connectors.alerts.destinations.console import ConsoleDestination

        return ConsoleDestination(config)
    if config.type == "jsonl":
        from connectors.alerts.destinations.jsonl import JsonlDestination

        return JsonlDestination(config)
    raise ValueError(f"unknown destination type {config.type!r}")


__all__ = ["Destination", "Outcome", "build_destination"]
