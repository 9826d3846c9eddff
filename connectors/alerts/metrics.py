"""Prometheus metrics of alert delivery and of the per-asset risk readouts.

Alert delivery, per destination:

- ``cascadewatch_alerts_enqueued_total{destination}``: deliveries written to the outbox;
- ``cascadewatch_alerts_sent_total{destination}``: deliveries accepted by the destination;
- ``cascadewatch_alerts_failed_total{destination}``: deliveries given up (4xx, too many attempts);
- ``cascadewatch_alerts_retried_total{destination}``: attempts that will be retried;
- ``cascadewatch_alerts_resent_total{destination}``: open alerts sent again (Alertmanager's ``resend_s``);
- ``cascadewatch_alerts_pending{destination}``: deliveries not yet finished (gauge);
- ``cascadewatch_alert_send_seconds{destination}``: time of one send (histogram).

Per asset, from the snapshots (:func:`observe_snapshot`):

- ``cascadewatch_asset_probability{asset,direction}``: cascade probability, when known;
- ``cascadewatch_asset_state{asset,direction,state}``: 1 for the current state of each
  direction (``calm`` or the cascade in progress: ``liquidation``, ``stop_run``,
  ``liquidity``, ``deleveraging``), 0 for the states it left;
- ``cascadewatch_asset_price{asset}`` and ``cascadewatch_asset_snapshot_ts_seconds{asset}``;
- per direction ``{asset,direction}``: ``cascadewatch_asset_at_risk_usd``,
  ``cascadewatch_asset_cluster_usd``, ``cascadewatch_asset_cluster_distance_bps``,
  ``cascadewatch_asset_reach_bps``, ``cascadewatch_asset_depth_ratio``,
  ``cascadewatch_asset_liquidated_usd_60s`` (longs for ``down``, shorts for ``up``);
- ``cascadewatch_asset_depth_usd{asset,side,band_bps}`` and
  ``cascadewatch_asset_branching_ratio{asset}``.

Risk feed: ``cascadewatch_riskfeed_clients`` (gauge), ``cascadewatch_riskfeed_dropped_total``.

Everything is registered on ``prometheus_client``'s default registry; the pipeline
exposes it with ``prometheus_client.start_http_server``.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import Counter, Gauge, Histogram

ENQUEUED = Counter("cascadewatch_alerts_enqueued", "Alert deliveries written to the outbox", ["destination"])
SENT = Counter("cascadewatch_alerts_sent", "Alert deliveries accepted by the destination", ["destination"])
FAILED = Counter("cascadewatch_alerts_failed", "Alert deliveries given up for good", ["destination"])
RETRIED = Counter("cascadewatch_alerts_retried", "Alert delivery attempts that will be retried", ["destination"])
RESENT = Counter("cascadewatch_alerts_resent", "Open alerts sent again to keep them active", ["destination"])
PENDING = Gauge("cascadewatch_alerts_pending", "Alert deliveries not yet finished", ["destination"])
SEND_SECONDS = Histogram(
    "cascadewatch_alert_send_seconds",
    "Duration of one send to a destination",
    ["destination"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)

PROBABILITY = Gauge("cascadewatch_asset_probability", "Cascade probability within the horizon", ["asset", "direction"])
STATE = Gauge("cascadewatch_asset_state", "1 for the current state of a direction", ["asset", "direction", "state"])
PRICE = Gauge("cascadewatch_asset_price", "Last price of the asset", ["asset"])
FEED_CLIENTS = Gauge("cascadewatch_riskfeed_clients", "Connected risk feed clients")
FEED_DROPPED = Counter("cascadewatch_riskfeed_dropped", "Risk feed clients disconnected as too slow")
SNAPSHOT_TS = Gauge("cascadewatch_asset_snapshot_ts_seconds", "Event time of the asset's latest snapshot", ["asset"])

AT_RISK = Gauge(
    "cascadewatch_asset_at_risk_usd", "Estimated liquidation notional on the side (USD)", ["asset", "direction"]
)
CLUSTER_USD = Gauge(
    "cascadewatch_asset_cluster_usd", "Notional of the nearest dense cluster (USD)", ["asset", "direction"]
)
CLUSTER_BPS = Gauge(
    "cascadewatch_asset_cluster_distance_bps", "Distance of the nearest dense cluster (bps)", ["asset", "direction"]
)
REACH_BPS = Gauge("cascadewatch_asset_reach_bps", "Price travel of the cascade walk (bps)", ["asset", "direction"])
DEPTH_RATIO = Gauge("cascadewatch_asset_depth_ratio", "Depth in front over its trailing median", ["asset", "direction"])
LIQUIDATED_60S = Gauge(
    "cascadewatch_asset_liquidated_usd_60s", "Realized liquidations over 60 s (USD)", ["asset", "direction"]
)
DEPTH_USD = Gauge(
    "cascadewatch_asset_depth_usd", "Resting notional within a band of the mid (USD)", ["asset", "side", "band_bps"]
)
BRANCHING = Gauge("cascadewatch_asset_branching_ratio", "Hawkes branching ratio of liquidations", ["asset"])

_DIRECTION_GAUGES = (
    (AT_RISK, "at_risk_usd"),
    (CLUSTER_USD, "cluster_usd"),
    (CLUSTER_BPS, "cluster_bps"),
    (REACH_BPS, "reach_bps"),
    (DEPTH_RATIO, "depth_ratio"),
)

_states: dict[tuple[str, str], str] = {}


def _set(gauge: Gauge, labels: tuple[str, ...], value: Any) -> None:
    if isinstance(value, (int, float)):
        gauge.labels(*labels).set(value)


def observe_snapshot(snapshot: dict[str, Any]) -> None:
    """Update the per-asset gauges from one snapshot dict (missing fields are skipped)."""
    asset = snapshot.get("asset")
    if not asset:
        return
    for direction in ("down", "up"):
        value = snapshot.get(f"prob_{direction}")
        if isinstance(value, (int, float)):
            PROBABILITY.labels(asset, direction).set(value)
    price = snapshot.get("price")
    if isinstance(price, (int, float)):
        PRICE.labels(asset).set(price)
    ts = snapshot.get("ts")
    if isinstance(ts, (int, float)):
        SNAPSHOT_TS.labels(asset).set(ts / 1000)
    _set(BRANCHING, (asset,), snapshot.get("branching"))
    _set(LIQUIDATED_60S, (asset, "down"), snapshot.get("liq_long_usd_60s"))
    _set(LIQUIDATED_60S, (asset, "up"), snapshot.get("liq_short_usd_60s"))
    for side_name, field in (("bid", "depth_bid_usd"), ("ask", "depth_ask_usd")):
        for band, value in (snapshot.get(field) or {}).items():
            _set(DEPTH_USD, (asset, side_name, band), value)
    for direction in ("down", "up"):
        side = snapshot.get(direction)
        if not isinstance(side, dict):
            continue
        for gauge, field in _DIRECTION_GAUGES:
            _set(gauge, (asset, direction), side.get(field))
        state = side.get("cascade") or "calm"
        previous = _states.get((asset, direction))
        if previous is not None and previous != state:
            STATE.labels(asset, direction, previous).set(0)
        STATE.labels(asset, direction, state).set(1)
        _states[(asset, direction)] = state
