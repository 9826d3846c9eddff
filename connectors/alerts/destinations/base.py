"""What every destination shares: the outcome of a send, its secrets, formatting."""

from __future__ import annotations

import email.utils
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, overload

from cascadewatch.connectors.alerts.config import DestinationConfig
from cascadewatch.connectors.alerts.secrets import SECRETS, redact, secret_fragments
from cascadewatch.connectors.outputs import ALERT_HEADER

USER_AGENT = "cascadewatch/0.1 (+alert delivery)"


@dataclass(frozen=True)
class Outcome:
    """The result of one send: delivered, retry later, or failed for good."""

    kind: Literal["delivered", "retry", "failed"]
    reason: str = ""
    retry_after: float | None = None
    """Seconds the destination asked us to wait (Retry-After), if it did."""
    status: int | None = None

    @classmethod
    def delivered(cls, status: int | None = None) -> Outcome:
        """The alerts were accepted (``status``: the HTTP status, if any)."""
        return cls("delivered", status=status)

    @classmethod
    def retry(cls, reason: str, retry_after: float | None = None, status: int | None = None) -> Outcome:
        """A temporary failure: try again, after ``retry_after`` seconds when the destination said so."""
        return cls("retry", reason, retry_after, status)

    @classmethod
    def failed(cls, reason: str, status: int | None = None) -> Outcome:
        """A permanent failure: the alerts are not sent again."""
        return cls("failed", reason, status=status)


class Destination:
    """Base class: ``send(alerts)`` delivers one message built from one or more alerts.

    Subclasses set :attr:`batch_size` > 1 to coalesce (Slack). ``send`` never raises for
    a destination's answer or a network error: it returns an :class:`Outcome` whose
    reason has every secret of the destination replaced by ``***``.
    """

    batch_size = 1
    resend_s: float | None = None
    """Seconds between sends of every alert still open here (:meth:`Outbox.live_triggers`),
    for a destination that forgets an alert that is not sent again (Alertmanager); None: never."""

    def __init__(self, config: DestinationConfig) -> None:
        self.config = config
        self.name = config.name
        self._secrets: list[str] = []

    @property
    def rate_key(self) -> str:
        """Destinations with the same key share one rate limit (Slack: the webhook)."""
        return f"{self.config.type}:{self.name}"

    @overload
    def add_secret(self, value: str, url: bool = False) -> str: ...
    @overload
    def add_secret(self, value: None, url: bool = False) -> None: ...
    def add_secret(self, value: str | None, url: bool = False) -> str | None:
        """Remember a secret (``url``: a secret URL) so its fragments are redacted from outcomes and logs.

        Returns ``value``.
        """
        if value:
            self._secrets.extend(secret_fragments(value, url))
            SECRETS.add(value, url)
        return value

    def redact(self, text: str) -> str:
        """``text`` without any fragment of this destination's (or the process's) secrets."""
        return SECRETS.redact(redact(text, self._secrets))

    def describe(self) -> str:
        """Where this destination sends, without secrets."""
        return self.config.type

    def send(self, alerts: list[dict[str, Any]]) -> Outcome:
        """Send ``alerts``; any exception becomes a retry, and the outcome's reason is redacted."""
        try:
            outcome = self._send(alerts)
        except Exception as exc:
            outcome = Outcome.retry(f"{type(exc).__name__}: {exc}")
        return Outcome(outcome.kind, self.redact(outcome.reason), outcome.retry_after, outcome.status)

    def _send(self, alerts: list[dict[str, Any]]) -> Outcome:
        raise NotImplementedError

    def close(self) -> None:
        """Release the destination's resources (its HTTP client); nothing by default."""
        pass


def evidence(alert: dict[str, Any]) -> dict[str, Any]:
    """Every key of the alert that is not part of its identity, in the alert's order."""
    return {key: value for key, value in alert.items() if key not in ALERT_HEADER}


def iso_utc(ts_ms: int | float | None) -> str:
    """``1700000000000`` -> ``2023-11-14T22:13:20.000Z`` (now if ``None``)."""
    moment = datetime.now(UTC) if ts_ms is None else datetime.fromtimestamp(ts_ms / 1000, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """Parse a Retry-After header: delta seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def http_outcome(status: int, body: str, retry_after: str | None, what: str) -> Outcome:
    """Classify an HTTP answer: 2xx delivered; 408/429/5xx retry; any other 4xx failed."""
    if 200 <= status < 300:
        return Outcome.delivered(status)
    detail = f"{what} answered {status}: {body.strip()[:500]}" if body.strip() else f"{what} answered {status}"
    if status in (408, 429) or status >= 500:
        return Outcome.retry(detail, retry_after_seconds(retry_after), status)
    return Outcome.failed(detail, status)


def human(value: Any) -> str:
    """Compact rendering of an evidence value for people."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:,.6g}"
    if isinstance(value, list):
        return ", ".join(human(v) for v in value) or "-"
    if isinstance(value, dict):
        return ", ".join(f"{k}: {human(v)}" for k, v in value.items()) or "-"
    return str(value)


def usd(value: Any) -> str:
    """A USD amount for people: ``$1.50M``, ``$250.00k`` (non-numbers as :func:`human`)."""
    if not isinstance(value, (int, float)):
        return human(value)
    for scale, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"${value / scale:,.2f}{suffix}"
    return f"${value:,.0f}"


def label(key: str) -> str:
    """``liquidated_usd_60s`` -> ``Liquidated USD 60s``."""
    words = [w.upper() if w in ("usd", "bps", "oi") else w for w in key.split("_")]
    text = " ".join(words)
    return text[:1].upper() + text[1:]


def render_value(key: str, value: Any) -> str:
    """An alert field's value for people: USD amounts, probabilities as percent, else :func:`human`."""
    if "usd" in key.split("_") or key.endswith("_usd"):
        return usd(value)
    if key.startswith("prob") and isinstance(value, (int, float)):
        return f"{value:.0%}"
    return human(value)
