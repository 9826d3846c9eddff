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

import msgspec

from cascadewatch.connectors.venues.registry import VENUE_NAMES


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
