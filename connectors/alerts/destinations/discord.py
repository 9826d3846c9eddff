"""Discord webhook: one embed per alert, coloured by severity, a burst coalesced.

Request: ``POST {webhook URL}``::

    {"username": "cascadewatch", "allowed_mentions": {"parse": []},
     "embeds": [{"title": "🔴 CRITICAL: BTC-USDT cascade risk down", "description": "<summary>",
                 "color": 13631488, "fields": [{"name": "Asset", "value": "BTC-USDT", "inline": true}, ...],
                 "footer": {"text": "BTC-USDT:cascade:down · alert <id>"}, "timestamp": "2024-...Z"}]}

Colours as Slack's: critical red ``#D00000``, warning amber ``#F2A900``, info blue ``#2F80ED``,
a resolve green ``#2EB67D``. Fields as Slack's (:func:`alert_fields`, at most 12). At most
:data:`MAX_EMBEDS` alerts share a message, and each embed's text is cut to a fifth of
Discord's 6000 characters (:func:`discord_embed`), so a message is never too long. No
mention is ever parsed (``allowed_mentions``), so a summary cannot ping anyone.

Discord answers 204. A 429 carries ``{"retry_after": seconds, "global": bool}`` (and a
``Retry-After`` header): it is retried after ``retry_after``, and the worker pauses the
webhook meanwhile. 5xx and network errors are retried; any other answer (400 ``Invalid Form
Body``, 401 ``Invalid Webhook Token``, 404 ``Unknown Webhook``) is failed with Discord's
message. The webhook URL holds its token: it comes from ``url_env`` and is a secret.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from cascadewatch.connectors.alerts.config import DestinationConfig
from cascadewatch.connectors.alerts.destinations.base import Destination, Outcome, iso_utc
from cascadewatch.connectors.alerts.destinations.fields import alert_fields, headline
from cascadewatch.connectors.alerts.destinations.http import make_client, post_json

COLOUR = {"critical": 0xD00000, "warning": 0xF2A900, "info": 0x2F80ED}
RESOLVED_COLOUR = 0x2EB67D
MAX_EMBEDS = 5
"""Alerts per message at most (Discord allows 10 embeds, but 6000 characters in all)."""
MAX_FIELDS = 12
EMBED_BUDGET = 6000 // MAX_EMBEDS
"""Characters of text per embed at most, so a full message stays within Discord's 6000."""


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def discord_embed(alert: dict[str, Any]) -> dict[str, Any]:
    """One alert as an embed: headline, summary, fields, footer (dedup key and id), time.

    Its text stays within :data:`EMBED_BUDGET` characters: the title is cut to 200, the
    footer to 150, the summary to 600, then fields are added (names cut to 64, values to
    128) while they fit.
    """
    resolve = alert.get("action") == "resolve"
    colour = RESOLVED_COLOUR if resolve else COLOUR.get(str(alert.get("severity")), COLOUR["warning"])
    title = _cut(headline(alert), 200)
    footer = _cut(f"{alert.get('dedup_key', '')} · alert {alert.get('id', '')}", 150)
    description = _cut(str(alert.get("summary", "")), 600)
    left = EMBED_BUDGET - len(title) - len(footer) - len(description)
    fields: list[dict[str, Any]] = []
    for name, value in alert_fields(alert)[:MAX_FIELDS]:
        name, value = _cut(name, 64), _cut(value or "-", 128)
        if len(name) + len(value) > left:
            break
        fields.append({"name": name, "value": value, "inline": True})
        left -= len(name) + len(value)
    return {
        "title": title,
        "description": description,
        "color": colour,
        "fields": fields,
        "footer": {"text": footer},
        "timestamp": iso_utc(alert.get("ts")),
    }


def discord_message(alerts: list[dict[str, Any]]) -> dict[str, Any]:
    """The webhook body for up to :data:`MAX_EMBEDS` alerts."""
    return {
        "username": "cascadewatch",
        "allowed_mentions": {"parse": []},
        "embeds": [discord_embed(alert) for alert in alerts],
    }


def discord_reason(text: str) -> tuple[str, float | None]:
    """Discord's ``message`` (and ``code``) and ``retry_after`` (seconds) from an error body."""
    try:
        body = json.loads(text)
    except ValueError:
        return text.strip()[:300], None
    if not isinstance(body, dict):
        return text.strip()[:300], None
    message = str(body.get("message", "")).strip()[:300]
    if "code" in body:
        message = f"{message} (code {body['code']})"
    retry_after = body.get("retry_after")
    return message, float(retry_after) if isinstance(retry_after, (int, float)) else None


class DiscordDestination(Destination):
    """Post alerts to a Discord webhook as embeds."""

    def __init__(self, config: DestinationConfig) -> None:
        super().__init__(config)
        url = config.resolve_url() or ""
        self.url = self.add_secret(url, url=True) if config.url_env else url
        self.batch_size = min(config.coalesce, MAX_EMBEDS)
        self._client = make_client(config.timeout_s)

    @property
    def rate_key(self) -> str:
        """One rate limit per webhook (a hash: the URL is a secret)."""
        return "discord:" + hashlib.sha256(self.url.encode()).hexdigest()[:16]

    def describe(self) -> str:
        """``discord webhook`` and where the URL comes from (never the URL itself)."""
        return f"discord webhook (URL from ${self.config.url_env})" if self.config.url_env else "discord webhook"

    def _send(self, alerts: list[dict[str, Any]]) -> Outcome:
        body = json.dumps(discord_message(alerts), ensure_ascii=False).encode()
        outcome, response = post_json(self._client, self.url, body, {}, "Discord")
        if response is None or outcome.kind == "delivered":
            return outcome
        message, retry_after = discord_reason(response.text)
        reason = f"Discord answered {response.status_code}: {message}" if message else outcome.reason
        if outcome.kind == "retry":
            return Outcome.retry(
                reason, retry_after if retry_after is not None else outcome.retry_after, outcome.status
            )
        return Outcome.failed(reason, outcome.status)

    def close(self) -> None:
        """Close the HTTP client."""
        self._client.close()
