"""Configuration of alert delivery and of the risk feed (msgspec Structs).

The integrator embeds :class:`AlertsConfig` under ``[alerts]`` and :class:`RiskFeedConfig`
under ``[riskfeed]`` of the main TOML config; ``docs/alerts.md`` documents every key.
Secrets never appear here: a destination names the *environment variable* that holds
its secret (``secret_env``) or its secret URL (``url_env``, for Slack webhook URLs).
"""

from __future__ import annotations

import os
from typing import Literal
from urllib.parse import urlsplit

import msgspec

from cascadewatch.connectors.alerts.secrets import SECRETS

SEVERITIES = ("info", "warning", "critical")
DESTINATION_TYPES = ("slack", "pagerduty", "webhook", "alertmanager", "telegram", "discord", "console", "jsonl")
PAGERDUTY_URL = "https://events.pagerduty.com/v2/enqueue"
TELEGRAM_URL = "https://api.telegram.org"
DEFAULT_RATE_PER_S = {
    "slack": 1.0,
    "pagerduty": 2.0,
    "webhook": 10.0,
    "alertmanager": 10.0,
    "telegram": 1.0,
    "discord": 0.5,
    "console": 100.0,
    "jsonl": 1000.0,
}


def url_problem(url: str) -> str | None:
    """Why ``url`` cannot be a destination URL, or None when it can.

    It must be ``http://`` or ``https://`` with a host, and hold no whitespace or control
    characters. The answer never quotes the URL (it may be a secret).

    >>> url_problem("https://hooks.slack.com/services/T0/B0/x")
    >>> url_problem("ftp://example.com/x")
    "must be an http:// or https:// URL (scheme 'ftp')"
    >>> url_problem("not a url")
    'contains whitespace or control characters'
    """
    if any(char.isspace() or ord(char) < 32 or ord(char) == 127 for char in url):
        return "contains whitespace or control characters"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - a port that is not a number raises here
    except ValueError:
        return "is not a URL"
    if parts.scheme.lower() not in ("http", "https"):
        return f"must be an http:// or https:// URL (scheme {parts.scheme!r})" if parts.scheme else "is not a URL"
    if not parts.hostname:
        return "has no host"
    return None


class DestinationConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One place alerts go to, and which alerts go there.

    Routing: an alert goes to this destination when its severity is in ``severities``,
    its kind in ``kinds`` (empty: any), its asset matches ``assets`` (empty: any; ``"BTC"``
    matches ``"BTC-USDT"``) and its action in ``actions`` (empty: any). A resolve goes to
    every destination that received a trigger of the same dedup key.
    """

    name: str
    type: Literal["slack", "pagerduty", "webhook", "alertmanager", "telegram", "discord", "console", "jsonl"]
    url: str | None = None
    """Endpoint (pagerduty default: the Events API v2 enqueue URL; alertmanager: its base URL,
    ``http://127.0.0.1:9093``; telegram default: ``https://api.telegram.org``)."""
    url_env: str | None = None
    """Environment variable holding the URL, for URLs that are secrets (Slack webhooks)."""
    secret_env: str | None = None
    """Environment variable holding the PagerDuty routing key, the webhook HMAC secret or the Telegram bot token."""
    path: str | None = None
    """jsonl: the file alerts are appended to."""
    severities: list[str] = msgspec.field(default_factory=lambda: list(SEVERITIES))
    kinds: list[str] = msgspec.field(default_factory=list)
    assets: list[str] = msgspec.field(default_factory=list)
    actions: list[str] = msgspec.field(default_factory=list)
    exposure_only: bool = False
    """Only cascade alerts with the desk's own exposure inside the predicted reach (``[desk]``)."""
    rate_per_s: float | None = None
    """Messages per second at most (default: slack 1, pagerduty 2 (its limit is 120/min per key), webhook 10)."""
    timeout_s: float = 10.0
    max_attempts: int = 30
    """Attempts before a retryable delivery is given up and marked failed."""
    backoff_base_s: float = 1.0
    backoff_max_s: float = 300.0
    coalesce: int = 10
    """slack, discord (at most 5 there): at most this many pending alerts are sent together as one message."""
    severity_map: dict[str, str] = msgspec.field(default_factory=dict)
    """pagerduty: our severity -> PagerDuty's (critical/error/warning/info); default identity."""
    source: str = "cascadewatch"
    """pagerduty: ``payload.source``."""
    runbook_url: str | None = None
    """alertmanager: the ``runbook_url`` annotation of every alert."""
    resend_s: float = 60.0
    """alertmanager: a live alert is sent again this often, seconds; it carries ``endsAt`` =
    send time + 4 x ``resend_s``, so Alertmanager keeps it active between sends."""
    chat_id: str | None = None
    """telegram: the chat (``-100...`` for a group or channel, or ``@channelname``)."""

    def __post_init__(self) -> None:
        for severity in self.severities:
            if severity not in SEVERITIES:
                raise ValueError(
                    f"destination {self.name!r}: unknown severity {severity!r} (use {', '.join(SEVERITIES)})"
                )
        for action in self.actions:
            if action not in ("trigger", "resolve"):
                raise ValueError(f"destination {self.name!r}: unknown action {action!r} (use trigger, resolve)")
        if missing := self._missing_setting():
            raise ValueError(f"destination {self.name!r}: {self.type} needs {missing}")
        if self.resend_s <= 0:
            raise ValueError(f"destination {self.name!r}: resend_s must be > 0")
        if self.runbook_url is not None and (problem := url_problem(self.runbook_url)):
            raise ValueError(f"destination {self.name!r}: runbook_url {problem}")
        for theirs in self.severity_map.values():
            if theirs not in ("critical", "error", "warning", "info"):
                raise ValueError(
                    f"destination {self.name!r}: severity_map value {theirs!r} is not a PagerDuty severity"
                )
        if self.rate_per_s is not None and self.rate_per_s <= 0:
            raise ValueError(f"destination {self.name!r}: rate_per_s must be > 0")
        if self.max_attempts < 1 or self.coalesce < 1 or self.timeout_s <= 0:
            raise ValueError(f"destination {self.name!r}: max_attempts, coalesce and timeout_s must be positive")
        if self.backoff_base_s <= 0 or self.backoff_max_s < self.backoff_base_s:
            raise ValueError(
                f"destination {self.name!r}: backoff_base_s must be > 0 and backoff_max_s >= backoff_base_s"
            )
        if self.url is not None and (problem := url_problem(self.url)):
            raise ValueError(f"destination {self.name!r}: url {problem}")

    def _missing_setting(self) -> str | None:
        """The settings this destination's type needs and it lacks, in words; None when complete."""
        if self.type == "slack" and not (self.url or self.url_env):
            return "url_env (the env var holding the webhook URL)"
        if self.type == "pagerduty" and not self.secret_env:
            return "secret_env (the env var holding the routing key)"
        if self.type in ("webhook", "alertmanager", "discord") and not (self.url or self.url_env):
            return "url or url_env"
        if self.type == "telegram" and not (self.secret_env and self.chat_id):
            return "secret_env (the env var holding the bot token) and chat_id"
        if self.type == "jsonl" and not self.path:
            return "path"
        return None

    @property
    def rate(self) -> float:
        """Deliveries per second allowed to this destination (``rate_per_s`` or the type's default)."""
        return self.rate_per_s if self.rate_per_s is not None else DEFAULT_RATE_PER_S[self.type]

    def resolve_url(self) -> str | None:
        """The URL: from ``url_env`` if set (an error if that variable is unset), else ``url``."""
        if self.url_env:
            value = os.environ.get(self.url_env)
            if not value:
                raise SecretMissing(
                    f"destination {self.name!r}: environment variable {self.url_env} (its URL) is not set"
                )
            if problem := url_problem(value):
                raise ValueError(f"destination {self.name!r}: environment variable {self.url_env} (its URL) {problem}")
            return value
        if self.type == "pagerduty":
            return self.url or PAGERDUTY_URL
        if self.type == "telegram":
            return self.url or TELEGRAM_URL
        return self.url

    def resolve_secret(self) -> str | None:
        """The secret from ``secret_env`` (an error if that variable is unset)."""
        if not self.secret_env:
            return None
        value = os.environ.get(self.secret_env)
        if not value:
            raise SecretMissing(f"destination {self.name!r}: environment variable {self.secret_env} is not set")
        return value


class SecretMissing(RuntimeError):
    """A destination's secret (or secret URL) environment variable is not set."""


class AlertsConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[alerts]``: the outbox and the destinations."""

    outbox: str = "cascadewatch-outbox.sqlite"
    """SQLite file of the durable outbox (created if absent; WAL mode)."""
    destinations: list[DestinationConfig] = msgspec.field(default_factory=list)
    poll_s: float = 0.25
    """How often the delivery worker looks for due deliveries (it is also woken on enqueue)."""

    def __post_init__(self) -> None:
        names = [d.name for d in self.destinations]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"duplicate destination name(s): {', '.join(duplicates)}")
        if self.poll_s <= 0:
            raise ValueError("poll_s must be > 0")

    def destination(self, name: str) -> DestinationConfig:
        """The destination called ``name``; ``KeyError`` naming the known ones if there is none."""
        for dest in self.destinations:
            if dest.name == name:
                return dest
        known = ", ".join(d.name for d in self.destinations) or "none configured"
        raise KeyError(f"no destination named {name!r} (known: {known})")


class RiskFeedConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[riskfeed]``: the websocket server that broadcasts snapshots and alerts."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 8765
    token_env: str | None = None
    """Environment variable holding the bearer token clients must send (unset: no token)."""
    queue_size: int = 256
    """Messages buffered per client; a client that falls further behind is disconnected."""
    send_buffer_bytes: int = 262144
    """Kernel send buffer per client socket (bounds what a stalled client can hold)."""
    ping_interval_s: float = 20.0
    ping_timeout_s: float = 20.0

    def __post_init__(self) -> None:
        if self.queue_size < 1 or not (0 <= self.port <= 65535):
            raise ValueError("riskfeed: queue_size must be >= 1 and port within 0..65535")

    def resolve_token(self) -> str | None:
        """The bearer token from the variable ``token_env`` (``None`` when no variable is configured).

        Registered as a secret, so it is redacted from every log and error. Raises
        ``SecretMissing`` when the variable is unset or empty.
        """
        if not self.token_env:
            return None
        value = os.environ.get(self.token_env)
        if not value:
            raise SecretMissing(f"riskfeed: environment variable {self.token_env} (the token) is not set")
        return SECRETS.add(value)


def load_alerts_config(path: str | None) -> tuple[AlertsConfig, RiskFeedConfig]:
    """Read ``[alerts]`` and ``[riskfeed]`` from a TOML file (other sections are ignored).

    For the ``alerts`` commands; the pipeline reads them through ``cascadewatch.pipelines.config``.
    """
    if path is None:
        return AlertsConfig(), RiskFeedConfig()

    class _Sections(msgspec.Struct, kw_only=True):
        alerts: AlertsConfig = msgspec.field(default_factory=AlertsConfig)
        riskfeed: RiskFeedConfig = msgspec.field(default_factory=RiskFeedConfig)

    try:
        with open(path, "rb") as handle:
            raw = handle.read()
    except OSError as exc:
        raise ValueError(f"{path}: cannot read the config file: {exc.strerror or exc}") from None
    try:
        sections = msgspec.toml.decode(raw, type=_Sections)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise ValueError(f"{path}: {exc}") from None
    return sections.alerts, sections.riskfeed
