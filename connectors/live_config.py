"""Configuration of the live connectors: the ``[live]`` table of the TOML config.

Every key is optional; ``deploy/config.example.toml`` shows them all, documented line by line.
Per-venue tables (``[live.binance]``, ``[live.bybit]``, ``[live.okx]``: one per venue of the
registry, ``connectors/venues/registry.py``) override the venue defaults of
``connectors/venues/<venue>.py`` (``LIVE``): endpoints, limits, lifetimes. A key left out (or
``None`` in Python) keeps the venue default.

>>> import msgspec
>>> cfg = msgspec.toml.decode(b'venues = ["okx"]\\n[okx]\\nws_url = "ws://127.0.0.1:9000/ws"', type=LiveConfig)
>>> cfg.okx.ws_url, cfg.binance.ws_url is None
('ws://127.0.0.1:9000/ws', True)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Self
from urllib.parse import urlsplit

import msgspec

from cascadewatch.connectors.venues.registry import VENUE_NAMES


def endpoint_problem(url: str, schemes: tuple[str, ...]) -> str | None:
    """Why ``url`` cannot be an endpoint with one of ``schemes``, or None when it can.

    >>> endpoint_problem("wss://fstream.binance.com/market/stream", ("ws", "wss"))
    >>> endpoint_problem("https://fapi.binance.com", ("ws", "wss"))
    "must start with ws:// or wss:// (not 'https://')"
    >>> endpoint_problem("ws://", ("ws", "wss"))
    'has no host'
    """
    if any(char.isspace() or ord(char) < 32 or ord(char) == 127 for char in url):
        return "contains whitespace or control characters"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - a port that is not a number raises here
    except ValueError as exc:
        return f"is not a URL ({exc})"
    if parts.scheme.lower() not in schemes:
        wanted = " or ".join(f"{scheme}://" for scheme in schemes)
        return f"must start with {wanted} (not {parts.scheme + '://' if parts.scheme else url!r})"
    if not parts.hostname:
        return "has no host"
    return None


class FeedStartError(RuntimeError):
    """No venue of this process connected within ``[live] startup_timeout_s`` (raised by
    :func:`cascadewatch.pipelines.run.live.run_live`; defined here, with the setting, so the CLI
    names it without loading the feeds)."""


class BackoffConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Reconnect delays: ``min(max_s, initial_s * factor**attempt)`` times ``1 ± jitter``.

    The attempt count goes back to zero once a connection has stayed up ``reset_after_s``.
    """

    initial_s: float = 1.0
    max_s: float = 60.0
    factor: float = 2.0
    jitter: float = 0.25
    reset_after_s: float = 60.0


class VenueConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Overrides for one venue; ``None`` keeps the venue module's default."""

    ws_url: str | None = None
    """Websocket endpoint for market data (Binance: the ``/market`` path)."""
    ws_book_url: str | None = None
    """Websocket endpoint for order books (Binance: the ``/public`` path; elsewhere = ws_url)."""
    rest_url: str | None = None
    """REST base URL: instruments, book snapshots, polls."""
    symbols: list[str] | None = None
    """Venue-native symbols to use instead of mapping ``[live] symbols`` (e.g. ``["BTCUSDT"]``)."""
    staleness_s: float | None = None
    max_lifetime_s: float | None = None
    heartbeat_s: float | None = None
    rollover_overlap_s: float | None = None
    resync_timeout_s: float | None = None
    max_topics_per_connection: int | None = None
    max_topics_per_message: int | None = None
    subscribe_per_s: float | None = None
    subscribe_burst: int | None = None
    poll_s: float | None = None
    book_depth: int | None = None
    rest_weight_per_min: int | None = None
    """REST request weight to spend per minute at most (Binance: 2400, its per-IP limit)."""

    def check(self, venue: str) -> None:
        """Raise ValueError naming ``[live.<venue>] <key>`` for an endpoint that cannot work."""
        for key, schemes in (
            ("ws_url", ("ws", "wss")),
            ("ws_book_url", ("ws", "wss")),
            ("rest_url", ("http", "https")),
        ):
            url = getattr(self, key)
            if url is not None and (problem := endpoint_problem(url, schemes)):
                raise ValueError(f"[live.{venue}] {key} {problem}")


class LiveTable(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The ``[live]`` table but the per-venue tables (see :data:`LiveConfig`).

    Times are seconds; paths are relative to the working directory.
    """

    venues: list[str] = msgspec.field(default_factory=lambda: list(VENUE_NAMES))
    symbols: list[str] = msgspec.field(default_factory=lambda: ["BTC", "ETH", "SOL"])
    quote: str = "USDT"
    staleness_s: float = 30.0
    rollover_overlap_s: float = 5.0
    resync_timeout_s: float = 10.0
    rest_timeout_s: float = 10.0
    """Seconds a REST request may take (connect and answer)."""
    rest_permanent_retry_s: float = 60.0
    """How often to ask again after a permanent REST error (401, 403, 451, other 4xx)."""
    book_alert_s: float = 30.0
    """A book invalid (waiting for a snapshot) this long becomes a ``feed`` alert."""
    startup_timeout_s: float = 60.0
    """``run``/``record`` fail (exit 1, the reason per venue) when no venue connected this long
    after start; 0: wait forever."""
    connect_timeout_s: float = 10.0
    """Seconds a websocket connection may take to open (TCP, TLS and the handshake)."""
    max_frame_bytes: int = 1 << 24
    """Largest websocket frame handed to the dataflow; a larger one is an ``oversize`` dead letter."""
    queue_size: int = 100_000
    batch_max: int = 10_000
    poll_ms: float = 5.0
    metrics_port: int = 0
    metrics_addr: str = "127.0.0.1"
    alerts_out: str = "alerts.jsonl"
    snapshots_out: str = "snapshots.jsonl"
    dead_letters_out: str = "deadletters.jsonl"
    record: str = ""
    record_rotate_mb: float = 0.0
    record_rotate_hours: float = 0.0
    backoff: BackoffConfig = BackoffConfig()

    def __post_init__(self) -> None:
        unknown = [venue for venue in self.venues if venue not in VENUE_NAMES]
        if unknown:
            raise ValueError(f"unknown venue(s) {unknown}; known: {', '.join(VENUE_NAMES)}")
        if self.queue_size < 1 or self.batch_max < 1:
            raise ValueError("queue_size and batch_max must be >= 1")
        if self.staleness_s <= 0:
            raise ValueError("staleness_s must be > 0")
        if self.rest_permanent_retry_s <= 0 or self.book_alert_s <= 0:
            raise ValueError("rest_permanent_retry_s and book_alert_s must be > 0")
        if self.rest_timeout_s <= 0 or self.connect_timeout_s <= 0:
            raise ValueError("rest_timeout_s and connect_timeout_s must be > 0")
        if self.max_frame_bytes < 1024:
            raise ValueError("max_frame_bytes must be >= 1024")
        for venue in VENUE_NAMES:
            table = getattr(self, venue, None)  # the per-venue tables of LiveConfig
            if isinstance(table, VenueConfig):
                table.check(venue)

    def venue(self, name: str) -> VenueConfig:
        """The override table of venue ``name`` (``binance``, ``bybit``, ``okx``)."""
        table: VenueConfig = getattr(self, name)
        return table

    def with_venue(self, name: str, table: VenueConfig) -> Self:
        """A copy whose ``[live.<name>]`` overrides are ``table``."""
        return msgspec.structs.replace(self, **{name: table})


if TYPE_CHECKING:  # the type checker reads the venue tables through LiveTable.venue(name)
    LiveConfig = LiveTable
else:
    LiveConfig = msgspec.defstruct(
        "LiveConfig",
        [(name, VenueConfig, VenueConfig()) for name in VENUE_NAMES],
        bases=(LiveTable,),
        module=__name__,
        frozen=True,
        kw_only=True,
        forbid_unknown_fields=True,
    )
    LiveConfig.__doc__ = (
        """The ``[live]`` table: :class:`LiveTable` plus one :class:`VenueConfig` per registered venue."""
    )
