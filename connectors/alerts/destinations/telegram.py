"""Telegram Bot API: ``sendMessage`` with MarkdownV2 text, one message per alert.

Request: ``POST {url}/bot<token>/sendMessage`` (default ``https://api.telegram.org``)::

    {"chat_id": "<chat_id>", "text": "<MarkdownV2>", "parse_mode": "MarkdownV2",
     "disable_web_page_preview": true}

The text: the headline in bold, the summary, one ``*Label:* value`` line per field (as
Slack's, :func:`alert_fields`), and a last line with the dedup key in code, the alert id and
the time. Every character MarkdownV2 reserves (``_*[]()~`>#+-=|{}.!`` and ``\\``) is escaped
with a backslash outside code; inside code only ``\\`` and ````` are.

Telegram answers 200 ``{"ok": true, ...}``; 429 ``{"ok": false, "parameters": {"retry_after":
N}}`` is retried after N seconds (the worker also pauses the chat); 5xx and network errors are
retried; any other answer (400 ``can't parse entities``, 401 ``Unauthorized``, 403 ``bot was
blocked``, 404 ``Not Found``) is failed with Telegram's ``description``.

The bot token comes from the environment variable named by ``secret_env``. It is part of the
request path, so it is registered as a secret: every fragment of it is ``***`` in every
outcome, log record (httpx's request lines too) and error.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any
from urllib.parse import urlsplit

from cascadewatch.connectors.alerts.config import DestinationConfig
from cascadewatch.connectors.alerts.destinations.base import Destination, Outcome, iso_utc
from cascadewatch.connectors.alerts.destinations.fields import alert_fields, headline
from cascadewatch.connectors.alerts.destinations.http import make_client, post_json

RESERVED = set("_*[]()~`>#+-=|{}.!\\")
"""Characters MarkdownV2 reserves: each is written ``\\<char>`` in plain text."""
SUMMARY_MAX = 1000
MAX_FIELDS = 16
"""With the summary cut to SUMMARY_MAX, a text stays well under Telegram's 4096 characters."""


def escape(text: str) -> str:
    """``text`` as MarkdownV2 plain text: every reserved character backslash-escaped.

    >>> escape("BTC-USDT: 72% (-156 bps) at 63,000.5!")
    'BTC\\\\-USDT: 72% \\\\(\\\\-156 bps\\\\) at 63,000\\\\.5\\\\!'
    """
    return "".join("\\" + char if char in RESERVED else char for char in text)


def escape_code(text: str) -> str:
    """``text`` inside a MarkdownV2 code entity: only ``\\`` and ````` are escaped."""
    return text.replace("\\", "\\\\").replace("`", "\\`")


def telegram_text(alert: dict[str, Any]) -> str:
    """The MarkdownV2 text of one alert: headline, summary, fields, dedup key, id and time."""
    summary = str(alert.get("summary", ""))
    if len(summary) > SUMMARY_MAX:
        summary = summary[: SUMMARY_MAX - 1] + "…"
    lines = [f"*{escape(headline(alert))}*", escape(summary), ""]
    lines += [f"*{escape(name)}:* {escape(value)}" for name, value in alert_fields(alert)[:MAX_FIELDS]]
    key = escape_code(str(alert.get("dedup_key", "")))
    lines += ["", f"`{key}` · " + escape(f"alert {alert.get('id', '')} · {iso_utc(alert.get('ts'))}")]
    return "\n".join(lines)


def telegram_reason(text: str) -> tuple[str, float | None]:
    """Telegram's ``description`` and ``parameters.retry_after`` (seconds) from an error body."""
    try:
        body = json.loads(text)
    except ValueError:
        return text.strip()[:300], None
    if not isinstance(body, dict):
        return text.strip()[:300], None
    parameters = body.get("parameters") if isinstance(body.get("parameters"), dict) else {}
    retry_after = parameters.get("retry_after") if parameters else None
    seconds = float(retry_after) if isinstance(retry_after, (int, float)) else None
    return str(body.get("description", "")).strip()[:300], seconds


class TelegramDestination(Destination):
    """Send each alert to a Telegram chat through a bot (``sendMessage``, MarkdownV2)."""

    def __init__(self, config: DestinationConfig) -> None:
        super().__init__(config)
        self.token = self.add_secret(config.resolve_secret()) or ""
        self.base = (config.resolve_url() or "").rstrip("/")
        self.chat_id = config.chat_id or ""
        self._client = make_client(config.timeout_s)

    @property
    def rate_key(self) -> str:
        """One rate limit per bot and chat (a hash: the token is a secret)."""
        return "telegram:" + hashlib.sha256(f"{self.token}|{self.chat_id}".encode()).hexdigest()[:16]

    def describe(self) -> str:
        """``telegram``, the host and the chat, and where the token comes from (never the token)."""
        return f"telegram {urlsplit(self.base).netloc} chat {self.chat_id} (bot token from ${self.config.secret_env})"

    def _send(self, alerts: list[dict[str, Any]]) -> Outcome:
        (alert,) = alerts
        body = {
            "chat_id": self.chat_id,
            "text": telegram_text(alert),
            "parse_mode": "MarkdownV2",
            "disable_web_page_preview": True,
        }
        url = f"{self.base}/bot{self.token}/sendMessage"
        outcome, response = post_json(self._client, url, json.dumps(body).encode(), {}, "Telegram")
        if response is None or outcome.kind == "delivered":
            return outcome
        description, retry_after = telegram_reason(response.text)
        reason = f"Telegram answered {response.status_code}: {description}" if description else outcome.reason
        if outcome.kind == "retry":
            return Outcome.retry(
                reason, retry_after if retry_after is not None else outcome.retry_after, outcome.status
            )
        return Outcome.failed(reason, outcome.status)

    def close(self) -> None:
        """Close the HTTP client."""
        self._client.close()
