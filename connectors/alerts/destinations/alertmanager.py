"""Prometheus Alertmanager, API v2: ``POST {url}/api/v2/alerts``.

One cascadewatch alert is one Alertmanager alert::

    [{"labels": {"alertname": "cascadewatch_cascade", "dedup_key": "BTC-USDT:cascade:down",
                 "asset": "BTC-USDT", "direction": "down", "kind": "cascade",
                 "severity": "critical", "venues": "binance-usdm,okx-swap"},
      "annotations": {"summary": "...", "evidence": "{...JSON...}", "alert_id": "...",
                      "runbook_url": "..."},
      "startsAt": "<opened_ts>", "endsAt": "<see below>"}]

Alertmanager identifies an alert by its label set. ``endsAt``:

- a trigger: send time + 4 x ``resend_s``. The worker sends every alert still open again
  every ``resend_s`` (:meth:`DeliveryWorker._resend`), each time moving ``endsAt`` on, so a
  live alert never lapses, whatever Alertmanager's ``resolve_timeout``; an alert of a
  cascadewatch that died ends by itself 4 x ``resend_s`` later (as Prometheus does);
- a resolve: the alert's own time, in the past, so Alertmanager marks it resolved at once.

An escalation (warning -> critical) or a change of venues is a new label set: the label set
sent before for the same dedup key is ended in the same request (``endsAt`` = the new
alert's time), so one incident is one active alert. That memory lives in this process; after
a restart the worker's first resend of the open alerts rebuilds it, and a label set it never
saw again ends by itself at its ``endsAt``.

Alertmanager answers 200 with an empty body; a 400 (its validation message) is failed for
good; 429, 5xx and network errors are retried.
"""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import urlsplit

from cascadewatch.connectors.alerts.config import DestinationConfig
from cascadewatch.connectors.alerts.destinations.base import (
    Destination,
    Outcome,
    evidence,
    iso_utc,
)
from cascadewatch.connectors.alerts.destinations.http import make_client, post_json

LIVE_FACTOR = 4
"""A trigger's ``endsAt`` is this many ``resend_s`` after it is sent."""


def alertmanager_labels(alert: dict[str, Any]) -> dict[str, str]:
    """The label set of an alert (its identity in Alertmanager); absent values are left out.

    ``venues`` is the sorted venue list joined by commas (a feed alert: its ``venue``).
    """
    venues = alert.get("venues") or ([alert["venue"]] if alert.get("venue") else [])
    labels = {
        "alertname": f"cascadewatch_{alert.get('kind', 'alert')}",
        "dedup_key": str(alert.get("dedup_key", "")),
        "asset": str(alert.get("asset", "")),
        "direction": str(alert.get("direction") or ""),
        "kind": str(alert.get("kind", "")),
        "severity": str(alert.get("severity", "")),
        "venues": ",".join(sorted(str(v) for v in venues)),
    }
    return {key: value for key, value in labels.items() if value}


def alertmanager_alert(alert: dict[str, Any], runbook_url: str | None, live_until_ms: int) -> dict[str, Any]:
    """The Alertmanager alert for one of ours; a trigger lives until ``live_until_ms`` (epoch ms)."""
    annotations = {
        "summary": str(alert.get("summary", "")),
        "evidence": json.dumps(evidence(alert), separators=(",", ":"), ensure_ascii=False),
        "alert_id": str(alert.get("id", "")),
    }
    if runbook_url:
        annotations["runbook_url"] = runbook_url
    resolve = alert.get("action") == "resolve"
    return {
        "labels": alertmanager_labels(alert),
        "annotations": annotations,
        "startsAt": iso_utc(alert.get("opened_ts", alert.get("ts"))),
        "endsAt": iso_utc(alert.get("ts") if resolve else live_until_ms),
    }


def ended(previous: dict[str, Any], alert: dict[str, Any]) -> dict[str, Any]:
    """``previous`` (an Alertmanager alert sent before) ended at ``alert``'s time."""
    return {**previous, "endsAt": iso_utc(alert.get("ts"))}


class AlertmanagerDestination(Destination):
    """Post alerts to Alertmanager's API v2, keeping open ones alive (see the module doc)."""

    def __init__(self, config: DestinationConfig) -> None:
        super().__init__(config)
        url = config.resolve_url() or ""
        base = self.add_secret(url, url=True) if config.url_env else url
        self.url = base.rstrip("/") + "/api/v2/alerts"
        self.resend_s = config.resend_s
        self._client = make_client(config.timeout_s)
        self._sent: dict[str, dict[str, Any]] = {}
        """dedup key -> the Alertmanager alert last sent for it (to end it when its labels change)."""

    def describe(self) -> str:
        """``alertmanager`` and its host (or where the URL comes from)."""
        where = f"URL from ${self.config.url_env}" if self.config.url_env else urlsplit(self.url).netloc
        return f"alertmanager {where}"

    def _send(self, alerts: list[dict[str, Any]]) -> Outcome:
        (alert,) = alerts
        live_until_ms = int((time.time() + LIVE_FACTOR * self.config.resend_s) * 1000)
        current = alertmanager_alert(alert, self.config.runbook_url, live_until_ms)
        key = str(alert.get("dedup_key", ""))
        body = [current]
        previous = self._sent.get(key)
        if previous is not None and previous["labels"] != current["labels"]:
            body.append(ended(previous, alert))
        outcome, _ = post_json(self._client, self.url, json.dumps(body).encode(), {}, "Alertmanager")
        if outcome.kind == "delivered":
            if alert.get("action") == "resolve":
                self._sent.pop(key, None)
            else:
                self._sent[key] = current
        return outcome

    def close(self) -> None:
        """Close the HTTP client."""
        self._client.close()
