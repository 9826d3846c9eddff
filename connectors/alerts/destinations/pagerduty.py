"""PagerDuty Events API v2: trigger and resolve on the alert's dedup key.

Request (``POST {url}``, default ``https://events.pagerduty.com/v2/enqueue``)::

    {"routing_key": "...", "event_action": "trigger", "dedup_key": "BTC-USDT:cascade:down",
     "payload": {"summary": "... (<= 1024 chars)", "source": "cascadewatch",
                 "severity": "critical|error|warning|info", "timestamp": "2024-...Z",
                 "component": "BTC-USDT", "group": "cascade", "class": "cascade down",
                 "custom_details": {evidence...}},
     "client": "cascadewatch"}

A resolve sends ``{"routing_key", "event_action": "resolve", "dedup_key"}``. PagerDuty
answers 202 ``{"status": "success", ...}``; a 400 (``invalid event``) is never retried and
is kept as failed with PagerDuty's message and errors; 429, 5xx and network errors are
retried. The routing key comes from the environment variable named by ``secret_env``.
"""

from __future__ import annotations

import json
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

SUMMARY_MAX = 1024


def pagerduty_event(
    alert: dict[str, Any], routing_key: str, severity_map: dict[str, str], source: str
) -> dict[str, Any]:
    """The Events API v2 body for one alert."""
    action = "resolve" if alert.get("action") == "resolve" else "trigger"
    event: dict[str, Any] = {"routing_key": routing_key, "event_action": action, "dedup_key": alert["dedup_key"]}
    if action == "resolve":
        return event
    severity = str(alert.get("severity", "warning"))
    summary = str(alert.get("summary") or f"{alert.get('asset')} {alert.get('kind')} {alert.get('direction')}")
    if len(summary) > SUMMARY_MAX:
        summary = summary[: SUMMARY_MAX - 1] + "…"
    details = {"alert_id": alert.get("id"), "ts": iso_utc(alert.get("ts")), **evidence(alert)}
    event["payload"] = {
        "summary": summary,
        "source": source,
        "severity": severity_map.get(
            severity, severity if severity in ("critical", "error", "warning", "info") else "warning"
        ),
        "timestamp": iso_utc(alert.get("ts")),
        "component": alert.get("asset"),
        "group": alert.get("kind"),
        "class": f"{alert.get('kind')} {alert.get('direction')}",
        "custom_details": details,
    }
    event["client"] = "cascadewatch"
    return event


class PagerDutyDestination(Destination):
    """Trigger and resolve PagerDuty incidents through the Events API v2."""

    def __init__(self, config: DestinationConfig) -> None:
        super().__init__(config)
        self.url = config.resolve_url() or ""
        self.routing_key = self.add_secret(config.resolve_secret()) or ""
        self._client = make_client(config.timeout_s)

    def describe(self) -> str:
        """The endpoint's host and where the routing key comes from (never the key itself)."""
        return f"pagerduty {urlsplit(self.url).netloc} (routing key from ${self.config.secret_env})"

    def _send(self, alerts: list[dict[str, Any]]) -> Outcome:
        (alert,) = alerts
        event = pagerduty_event(alert, self.routing_key, self.config.severity_map, self.config.source)
        outcome, response = post_json(self._client, self.url, json.dumps(event).encode(), {}, "PagerDuty")
        if response is not None and response.status_code == 400:
            return Outcome.failed(f"PagerDuty rejected the event (400): {_pagerduty_reason(response.text)}", 400)
        return outcome

    def close(self) -> None:
        """Close the HTTP client."""
        self._client.close()


def _pagerduty_reason(text: str) -> str:
    """``invalid event: Event object is invalid: <errors>`` from PagerDuty's 400 body."""
    try:
        body = json.loads(text)
    except ValueError:
        return text.strip()[:500] or "no body"
    if not isinstance(body, dict):
        return text.strip()[:500]
    parts = [str(body.get("status", "")), str(body.get("message", ""))]
    errors = body.get("errors")
    if errors:
        parts.append("; ".join(str(e) for e in errors))
    return ": ".join(p for p in parts if p)
