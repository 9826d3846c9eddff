"""Slack incoming webhook (slack-sdk ``WebhookClient``) with Block Kit messages.

One alert is one attachment coloured by severity (resolves are green) holding Block Kit
blocks: a header (title), the summary, up to ten fields (asset, direction, severity,
probability, price, nearest cluster, notional at risk, depth in front, cascade reach,
Hawkes branching; any other evidence after those) and a context line (dedup key, alert
id, time, cascade in progress, venues). When several
alerts are due at once (a burst), they are coalesced into one message, one attachment
each, rather than dropped or sent one per second. The worker holds the rate limit (one
message per second per webhook by default) and retries 429 after Retry-After, 5xx and
network errors; any other answer (400 ``invalid_payload``, 403 ``invalid_token``, 404
``no_service``, 410 ``channel_is_archived``...) is kept as failed with Slack's reason.

The webhook URL is a secret: it comes from the environment variable named by ``url_env``
and never appears in logs or errors.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

from slack_sdk.webhook import WebhookClient

from cascadewatch.connectors.alerts.config import DestinationConfig
from cascadewatch.connectors.alerts.destinations.base import (
    Destination,
    Outcome,
    http_outcome,
    iso_utc,
)
from cascadewatch.connectors.alerts.destinations.fields import alert_fields

COLOUR = {"critical": "#D00000", "warning": "#F2A900", "info": "#2F80ED"}
RESOLVED_COLOUR = "#2EB67D"
ICON = {"critical": ":red_circle:", "warning": ":large_orange_circle:", "info": ":large_blue_circle:"}
MAX_FIELDS = 10  # Slack's limit per section block

_quiet = logging.getLogger("cascadewatch.alerts.slack_sdk")
_quiet.setLevel(logging.CRITICAL)  # slack-sdk logs errors itself; we report redacted outcomes instead


def slack_title(alert: dict[str, Any]) -> str:
    """The alert's Slack headline: severity icon, asset, kind and direction (or "Resolved")."""
    asset, kind, direction = alert.get("asset", "?"), alert.get("kind", "alert"), alert.get("direction", "")
    if alert.get("action") == "resolve":
        return f":white_check_mark: Resolved: {asset} {kind} {direction}"
    severity = str(alert.get("severity", "warning"))
    return f"{ICON.get(severity, '')} {severity.upper()}: {asset} {kind} risk {direction}".strip()


def slack_attachment(alert: dict[str, Any]) -> dict[str, Any]:
    """One alert as a coloured attachment with Block Kit blocks."""
    resolve = alert.get("action") == "resolve"
    severity = str(alert.get("severity", "warning"))
    fields = alert_fields(alert)[:MAX_FIELDS]
    context = [f"`{alert.get('dedup_key', '')}`", f"alert {alert.get('id', '')}", iso_utc(alert.get("ts"))]
    if alert.get("cascade"):
        context.append(f"cascade in progress: {alert['cascade']}")
    if alert.get("venues"):
        context.append("venues: " + ", ".join(str(v) for v in alert["venues"]))
    return {
        "color": RESOLVED_COLOUR if resolve else COLOUR.get(severity, COLOUR["warning"]),
        "fallback": str(alert.get("summary", "")),
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": slack_title(alert)[:150], "emoji": True}},
            {"type": "section", "text": {"type": "mrkdwn", "text": str(alert.get("summary", "")) or " "}},
            {"type": "section", "fields": [{"type": "mrkdwn", "text": f"*{name}*\n{value}"} for name, value in fields]},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": " · ".join(context)}]},
        ],
    }


def slack_message(alerts: list[dict[str, Any]]) -> dict[str, Any]:
    """The webhook body: ``text`` (notification fallback) and one attachment per alert."""
    if len(alerts) == 1:
        text = str(alerts[0].get("summary", "")) or slack_title(alerts[0])
    else:
        text = f"{len(alerts)} cascadewatch alerts: " + "; ".join(
            f"{a.get('asset')} {a.get('direction')} {'resolved' if a.get('action') == 'resolve' else a.get('severity')}"
            for a in alerts
        )
    return {"text": text, "attachments": [slack_attachment(a) for a in alerts]}


class SlackDestination(Destination):
    """Post alerts to a Slack incoming webhook as Block Kit messages."""

    def __init__(self, config: DestinationConfig) -> None:
        super().__init__(config)
        url = config.resolve_url() or ""
        self.url = self.add_secret(url, url=True) if config.url_env else url
        self.batch_size = config.coalesce
        self._client = WebhookClient(
            self.url,
            timeout=config.timeout_s,  # type: ignore[arg-type]  # slack_sdk annotates int; urllib takes float seconds
            retry_handlers=[],
            logger=_quiet,
        )

    @property
    def rate_key(self) -> str:
        """The rate-limit key: one per webhook URL (a hash, not the URL, which is a secret)."""
        return "slack:" + hashlib.sha256(self.url.encode()).hexdigest()[:16]

    def describe(self) -> str:
        """``slack webhook`` and where the URL comes from (never the URL itself)."""
        return f"slack webhook (URL from ${self.config.url_env})" if self.config.url_env else "slack webhook"

    def _send(self, alerts: list[dict[str, Any]]) -> Outcome:
        message = slack_message(alerts)
        try:
            response = self._client.send(text=message["text"], attachments=message["attachments"])
        except TimeoutError:
            return Outcome.retry("Slack timed out")
        except OSError as exc:  # urllib.error.URLError and socket errors
            reason = getattr(exc, "reason", exc)
            return Outcome.retry(f"Slack unreachable: {type(exc).__name__}: {reason}")
        headers = {k.lower(): v for k, v in (response.headers or {}).items()}
        outcome = http_outcome(response.status_code, response.body or "", headers.get("retry-after"), "Slack")
        if outcome.kind == "delivered" and (response.body or "").strip() not in ("ok", ""):
            return Outcome.failed(
                f"Slack answered {response.status_code}: {response.body.strip()[:200]}", response.status_code
            )
        return outcome
