"""A JSON POST with httpx, classified into an :class:`Outcome` (PagerDuty and webhooks)."""

from __future__ import annotations

import httpx

from cascadewatch.connectors.alerts.destinations.base import (
    USER_AGENT,
    Outcome,
    http_outcome,
)


def make_client(timeout_s: float) -> httpx.Client:
    """One pooled client per destination; no redirects (a redirect would be a misconfiguration)."""
    return httpx.Client(timeout=httpx.Timeout(timeout_s), follow_redirects=False, headers={"User-Agent": USER_AGENT})


def post_json(
    client: httpx.Client, url: str, body: bytes, headers: dict[str, str], what: str
) -> tuple[Outcome, httpx.Response | None]:
    """POST ``body``; network errors and timeouts are retryable outcomes."""
    try:
        response = client.post(url, content=body, headers={"Content-Type": "application/json", **headers})
    except httpx.TimeoutException as exc:
        return Outcome.retry(f"{what} timed out ({type(exc).__name__})"), None
    except httpx.TransportError as exc:
        return Outcome.retry(f"{what} unreachable: {type(exc).__name__}: {exc}"), None
    return http_outcome(response.status_code, response.text, response.headers.get("Retry-After"), what), response
