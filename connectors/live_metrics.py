"""Prometheus metrics of the live feeds (prometheus-client, default registry).

Per venue (``binance-usdm``...) and connection (``market``, ``public``...):

- ``cascadewatch_feed_messages_total`` / ``cascadewatch_feed_bytes_total``: frames and bytes received;
- ``cascadewatch_feed_connected``: 1 while the connection is open (gauge);
- ``cascadewatch_feed_reconnects_total``: connections opened after the first one;
- ``cascadewatch_feed_stale_total``: stale alarms (no data for ``staleness_s`` while subscribed);
- ``cascadewatch_feed_rollovers_total`` and ``cascadewatch_feed_rollover_duplicates_total``:
  planned connection switches and the repeated frames they dropped.

Per venue:

- ``cascadewatch_feed_gaps_total`` / ``cascadewatch_feed_resyncs_total``: book sequence gaps seen
  live, and book resyncs started (gap, reconnect, rotation);
- ``cascadewatch_feed_dead_letters_total{venue,reason}``: frames that became dead letters,
  including ``queue_full`` (frames dropped because the dataflow fell behind);
- ``cascadewatch_feed_queue_depth``: frames waiting between the socket thread and the dataflow;
- ``cascadewatch_feed_rest_requests_total{venue,outcome}``: REST calls (``ok``, ``http_<code>``, ``error``);
- ``cascadewatch_feed_rest_throttles_total{venue,reason}``: REST requests held back, by the
  weight budget (``budget``) or a venue's ``Retry-After`` after a 418/429 (``retry_after``);
- ``cascadewatch_feed_books_invalid``: books not in sync (waiting for a snapshot) (gauge);
- ``cascadewatch_feed_lag_seconds``: receive time minus exchange event time (histogram).

The pipeline exposes them with :func:`serve` on ``[live] metrics_port``.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, start_http_server

MESSAGES = Counter("cascadewatch_feed_messages", "Websocket frames received", ["venue", "connection"])
BYTES = Counter("cascadewatch_feed_bytes", "Websocket bytes received", ["venue", "connection"])
CONNECTED = Gauge("cascadewatch_feed_connected", "1 while the connection is open", ["venue", "connection"])
RECONNECTS = Counter("cascadewatch_feed_reconnects", "Connections opened after the first", ["venue", "connection"])
STALE = Counter("cascadewatch_feed_stale", "Stale alarms: no data while subscribed", ["venue", "connection"])
ROLLOVERS = Counter("cascadewatch_feed_rollovers", "Planned connection switches", ["venue", "connection"])
DUPLICATES = Counter(
    "cascadewatch_feed_rollover_duplicates", "Repeated frames dropped at a rollover", ["venue", "connection"]
)
GAPS = Counter("cascadewatch_feed_gaps", "Book sequence gaps seen live", ["venue"])
RESYNCS = Counter("cascadewatch_feed_resyncs", "Book resyncs started", ["venue"])
DEAD_LETTERS = Counter("cascadewatch_feed_dead_letters", "Frames that became dead letters", ["venue", "reason"])
QUEUE_DEPTH = Gauge("cascadewatch_feed_queue_depth", "Frames waiting for the dataflow", ["venue"])
REST = Counter("cascadewatch_feed_rest_requests", "REST requests by outcome", ["venue", "outcome"])
REST_THROTTLES = Counter("cascadewatch_feed_rest_throttles", "REST requests held back", ["venue", "reason"])
BOOKS_INVALID = Gauge("cascadewatch_feed_books_invalid", "Books waiting for a snapshot", ["venue"])
LAG = Histogram(
    "cascadewatch_feed_lag_seconds",
    "Receive time minus exchange event time",
    ["venue"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)


def serve(port: int, addr: str = "127.0.0.1") -> None:
    """Expose the default registry over HTTP (``/metrics``); ``port == 0`` does nothing."""
    if port:
        start_http_server(port, addr=addr)
