"""Routing: which destinations an alert goes to, from each destination's rules.

A destination takes an alert when all hold:

- ``severity`` is in its ``severities`` (default: all);
- ``kind`` is in its ``kinds`` (empty: any);
- ``asset`` matches one of its ``assets`` (empty: any). ``"BTC"`` matches ``"BTC-USDT"``
  (the base asset), ``"BTC-USDT"`` matches only itself;
- ``action`` is in its ``actions`` (empty: any);
- with ``exposure_only``, the alert carries a non-empty ``exposure`` (the desk's own
  positions or orders inside the predicted reach, ``[desk] exposure``).

Resolves additionally follow their triggers (see :meth:`Outbox.enqueue`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cascadewatch.connectors.alerts.config import DestinationConfig


def asset_matches(asset: str, patterns: Sequence[str]) -> bool:
    """Empty ``patterns`` match everything; ``"BTC"`` matches ``"BTC-USDT"`` and ``"BTC"``."""
    if not patterns:
        return True
    asset = asset.upper()
    return any(asset == p.upper() or asset.startswith(p.upper() + "-") for p in patterns)


def accepts(destination: DestinationConfig, alert: dict[str, Any]) -> bool:
    """Whether ``destination`` takes ``alert``: its severity, kind and action are all selected."""
    if alert.get("severity") not in destination.severities:
        return False
    if destination.kinds and alert.get("kind") not in destination.kinds:
        return False
    if destination.actions and alert.get("action") not in destination.actions:
        return False
    if destination.exposure_only and not alert.get("exposure"):
        return False
    return asset_matches(str(alert.get("asset", "")), destination.assets)


class Router:
    """``router(alert)`` -> the names of the destinations that take it, in config order."""

    def __init__(self, destinations: Sequence[DestinationConfig]) -> None:
        self.destinations = list(destinations)

    def __call__(self, alert: dict[str, Any]) -> list[str]:
        """The names of the destinations that take ``alert``, in config order."""
        return [d.name for d in self.destinations if accepts(d, alert)]
