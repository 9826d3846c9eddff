"""A generic webhook: the alert as a JSON body, signed with HMAC-SHA256.

``POST {url}`` with ``Content-Type: application/json`` and
``X-Signature: <hex HMAC-SHA256 of the exact body bytes, keyed by the shared secret>``
(the secret comes from the environment variable named by ``secret_env``; without one the
header is omitted). A receiver verifies with
``hmac.compare_digest(hmac.new(secret, body, sha256).hexdigest(), header)``.
2xx is success; 408, 429 (honouring Retry-After), 5xx and network errors are retried;
any other 4xx is kept as failed.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any
from urllib.parse import urlsplit

from cascadewatch.connectors.alerts.config import DestinationConfig
from cascadewatch.connectors.alerts.destinations.base import Destination, Outcome
from cascadewatch.connectors.alerts.destinations.http import make_client, post_json


def signature(secret: str, body: bytes) -> str:
    """The HMAC-SHA256 of ``body`` with ``secret``, as hex."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def webhook_body(alert: dict[str, Any]) -> bytes:
    """The alert as compact UTF-8 JSON: the exact bytes that are signed and posted."""
    return json.dumps(alert, separators=(",", ":"), ensure_ascii=False).encode()


class WebhookDestination(Destination):
    """POST each alert as JSON to a URL, signed with HMAC-SHA256 when a secret is configured."""

    def __init__(self, config: DestinationConfig) -> None:
        super().__init__(config)
        url = config.resolve_url() or ""
        self.url = self.add_secret(url, url=True) if config.url_env else url
        self.secret = self.add_secret(config.resolve_secret())
        self._client = make_client(config.timeout_s)

    def describe(self) -> str:
        """``webhook`` and the host, or where the URL comes from when it is a secret."""
        where = f"URL from ${self.config.url_env}" if self.config.url_env else urlsplit(self.url).netloc
        return f"webhook {where}"

    def _send(self, alerts: list[dict[str, Any]]) -> Outcome:
        (alert,) = alerts
        body = webhook_body(alert)
        headers = {"X-Alert-Id": str(alert.get("id", ""))}
        if self.secret:
            headers["X-Signature"] = signature(self.secret, body)
        outcome, _ = post_json(self._client, self.url, body, headers, "webhook")
        return outcome

    def close(self) -> None:
        """Close the HTTP client."""
        self._client.close()
