"""The output contract: what cascadewatch emits, one :class:`RiskSnapshot` per asset per
event-time second and one :class:`Alert` per trigger, escalation or resolve.

These structs are the only definition of the two outputs; README.md ("Snapshot fields",
"Alert fields") documents exactly their fields (``tests/test_output_contract.py`` checks).
Each is built in one place: the snapshot by
:class:`~cascadewatch.pipelines.steps.asset_aggregator.AssetAggregator` (venue merge) with the
:class:`DetectorFields` of
:class:`~cascadewatch.pipelines.steps.asset_detectors.AssetDetectors`; alerts by the cascade
policy (:class:`cascadewatch.detectors.policy.AlertPolicy`), the feed policy
(:class:`~cascadewatch.pipelines.steps.feed_policy.FeedPolicy`) and ``cascadewatch alerts
test``, each through :class:`Alert`.

Downstream (JSONL sinks, alert outbox, risk feed, metrics) items travel as the structs'
builtins (:meth:`RiskSnapshot.to_dict`, :meth:`Alert.to_dict`): plain dicts whose keys keep
the field order below, with ``type`` first. A field left :data:`msgspec.UNSET` is absent from
the output (a snapshot without a price carries no detector fields; a feed alert carries no
cascade evidence); ``None`` is written as ``null``. Floats are rounded by their builders
(byte-stable output); times are UTC epoch milliseconds; notional is in quote currency (USD).

>>> alert = Alert(
...     id=alert_id("BTC-USDT:feed:okx-swap", 1000, "trigger", "warning"),
...     dedup_key="BTC-USDT:feed:okx-swap", action="trigger", severity="warning", kind="feed",
...     asset="BTC-USDT", direction=None, ts=1000, summary="okx-swap BTC-USDT-SWAP: feed problem, gap",
...     opened_ts=1000, venue="okx-swap", instrument="BTC-USDT-SWAP", problem="gap")
>>> item = alert.to_dict()
>>> list(item)  # doctest: +NORMALIZE_WHITESPACE
['type', 'id', 'dedup_key', 'action', 'severity', 'kind', 'asset', 'direction', 'ts', 'summary',
 'opened_ts', 'venue', 'instrument', 'problem']
>>> item["type"], item["id"], item["direction"]
('alert', '00c12dd90ca20019a632', None)
"""

from __future__ import annotations

import hashlib
from typing import Any

import msgspec
from msgspec import UNSET, UnsetType

__all__ = ["ALERT_HEADER", "Alert", "DetectorFields", "DirectionRisk", "RiskSnapshot", "alert_id"]


class DirectionRisk(msgspec.Struct, frozen=True, kw_only=True):
    """The ``down`` / ``up`` object of a snapshot: the detectors' view of one direction.

    Probabilities in 0..1 (4 decimals), distances in bps (1 decimal), notional in quote
    currency (cents), ``cluster_price`` to 8 decimals; ``None`` where unknown. ``levels``
    (only with ``[detectors] snapshot_levels`` or the risk feed on, else absent): the estimated
    map's non-empty buckets on this side within its range, ``[[price, usd], ...]`` by ascending
    price, price to 10 significant digits, notional to whole quote units. The mitigation
    readouts (:mod:`cascadewatch.detectors.mitigation`) come last, each with a default, so
    lines written before them still decode: ``margin_mmr`` to 6 decimals, ``leverage_cap`` to
    2, ``breaker_since`` in ms.
    """

    prob: float | None
    p_struct: float | None
    p_touch: float | None
    cascade: str | None
    cluster_price: float | None
    cluster_bps: float | None
    cluster_usd: float | None
    at_risk_usd: float | None
    depth_ratio: float | None
    reach_usd: float | None
    reach_bps: float | None
    levels: list[tuple[float, float]] | UnsetType = UNSET
    defence_usd: float | None = None
    margin_mmr: float | None = None
    leverage_cap: float | None = None
    margin_pushed_usd: float | None = None
    breaker: bool | None = None
    breaker_since: int | None = None


class DetectorFields(msgspec.Struct, frozen=True, kw_only=True):
    """The detectors' part of a snapshot (present when the asset has a price)."""

    prob_down: float | None
    prob_up: float | None
    model: str | None
    sigma_bps_1s: float | None
    branching: float | None
    hawkes_intensity: float | None
    observed_long_usd: float | None
    observed_short_usd: float | None
    down: DirectionRisk
    up: DirectionRisk


class RiskSnapshot(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", tag="snapshot"):
    """One asset at the end of one event-time second: venues merged, then the detectors.

    The venue part (``ts`` .. ``feed``) is always present; ``prob_down`` / ``prob_up`` are
    ``null`` until the detectors fill them, and the other detector fields are absent when the
    asset has no price yet (see :meth:`with_detectors`).
    """

    ts: int
    asset: str
    price: float | None
    venues: list[str]
    mark: float | None
    funding: float | None
    oi_usd: float | None
    liq_long_usd_1s: float
    liq_short_usd_1s: float
    liq_long_usd_60s: float
    liq_short_usd_60s: float
    trade_usd_60s: float
    depth_bid_usd: dict[str, float]
    depth_ask_usd: dict[str, float]
    depth_partial: list[str] = msgspec.field(default_factory=list)
    """Venues whose valid book reaches less than the widest band (100 bps) on a side: their
    band figures are lower bounds."""
    books_valid: str
    feed: list[str]
    coarse: list[str] | UnsetType = UNSET
    """Venues whose price this second comes from 1-minute bins (BitMEX ``tradeBin1m`` /
    ``quoteBin1m``), not trades: absent when there are none."""
    prob_down: float | None = None
    prob_up: float | None = None
    model: str | None | UnsetType = UNSET
    sigma_bps_1s: float | None | UnsetType = UNSET
    branching: float | None | UnsetType = UNSET
    hawkes_intensity: float | None | UnsetType = UNSET
    observed_long_usd: float | None | UnsetType = UNSET
    observed_short_usd: float | None | UnsetType = UNSET
    down: DirectionRisk | UnsetType = UNSET
    up: DirectionRisk | UnsetType = UNSET
    exposure: dict[str, list[dict[str, Any]]] | UnsetType = UNSET
    """With ``[desk] exposure``: the desk's items inside each direction's predicted reach
    (:mod:`cascadewatch.pipelines.steps.exposure`), added by the output step."""

    def with_detectors(self, fields: DetectorFields) -> RiskSnapshot:
        """This snapshot with the detectors' fields filled in."""
        return msgspec.structs.replace(self, **msgspec.structs.asdict(fields))

    def to_dict(self) -> dict[str, Any]:
        """The output item: ``{"type": "snapshot", "ts": ..., ...}`` in field order."""
        out: dict[str, Any] = msgspec.to_builtins(self)
        return out


class Alert(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", tag="alert"):
    """One alert message: the identity (``id`` .. ``summary``, always present), then the
    evidence of its kind (absent fields are left out of the output).

    - cascade alerts (:mod:`cascadewatch.detectors.policy`): ``opened_ts`` .. ``venues``;
      probabilities to 4 decimals, prices to 10 significant digits, bps to 1 decimal,
      notional to whole quote units, ratios to 3 decimals;
    - feed alerts (:mod:`cascadewatch.pipelines.steps.feed_policy`): ``opened_ts``,
      ``venue``, ``instrument``, ``problem``;
    - test alerts (``cascadewatch alerts test``): ``price``, ``liq_usd_60s``, ``venues``;
    - cascade alerts again (added later, so earlier lines keep their shape): the
      mitigation readouts ``defence_usd`` .. ``breaker_since``;
    - ``provisional``: ``true`` on a provisional cascade alert (its trigger and, when the
      per-second check does not confirm it, its resolve; :mod:`cascadewatch.pipelines.steps.provisional`),
      absent otherwise;
    - contagion alerts (:mod:`cascadewatch.detectors.contagion`): ``opened_ts``, ``assets``;
    - added by the pipeline's output steps, after everything else: ``exposure`` (cascade
      triggers, with ``[desk] exposure``), then ``audit`` (every alert of a replay or live
      run), last.
    """

    id: str
    dedup_key: str
    action: str
    severity: str
    kind: str
    asset: str
    direction: str | None
    ts: int
    summary: str
    opened_ts: int | UnsetType = UNSET
    probability: float | None | UnsetType = UNSET
    model: str | None | UnsetType = UNSET
    drivers: list[dict[str, Any]] | UnsetType = UNSET
    price: float | None | UnsetType = UNSET
    level: float | None | UnsetType = UNSET
    distance_bps: float | None | UnsetType = UNSET
    cluster_usd: float | None | UnsetType = UNSET
    notional_at_risk_usd: float | None | UnsetType = UNSET
    depth_usd: float | None | UnsetType = UNSET
    depth_ratio: float | None | UnsetType = UNSET
    reach_usd: float | None | UnsetType = UNSET
    reach_bps: float | None | UnsetType = UNSET
    branching: float | None | UnsetType = UNSET
    liq_usd_60s: float | None | UnsetType = UNSET
    cascade: str | None | UnsetType = UNSET
    venues: list[str] | UnsetType = UNSET
    venue: str | UnsetType = UNSET
    instrument: str | UnsetType = UNSET
    problem: str | UnsetType = UNSET
    defence_usd: float | None | UnsetType = UNSET
    margin_mmr: float | None | UnsetType = UNSET
    leverage_cap: float | None | UnsetType = UNSET
    margin_pushed_usd: float | None | UnsetType = UNSET
    breaker_since: int | None | UnsetType = UNSET
    provisional: bool | UnsetType = UNSET
    """``True`` on a provisional cascade alert: evaluated at a receive-time checkpoint on one venue
    instrument's frames so far (:mod:`cascadewatch.pipelines.steps.provisional`)."""
    assets: list[dict[str, Any]] | UnsetType = UNSET
    """Contagion alerts (:mod:`cascadewatch.detectors.contagion`): the group's assets in onset order."""
    exposure: list[dict[str, Any]] | UnsetType = UNSET
    """Cascade triggers with ``[desk] exposure``: the desk's items inside the predicted reach."""
    audit: dict[str, Any] | UnsetType = UNSET
    """The audit manifest, appended by the pipeline's output step to every alert it emits
    (:mod:`cascadewatch.pipelines.steps.audit`); absent from a bare ``Alert``."""

    def to_dict(self) -> dict[str, Any]:
        """The output item: ``{"type": "alert", "id": ..., ...}`` in field order."""
        out: dict[str, Any] = msgspec.to_builtins(self)
        return out


ALERT_HEADER: tuple[str, ...] = ("type",) + tuple(f.encode_name for f in msgspec.structs.fields(Alert) if f.required)
"""The keys that identify an alert (``type`` .. ``summary``); every other key is evidence."""


def alert_id(dedup_key: str, opened_ts: int, action: str, severity: str) -> str:
    """Content-derived id: the first 20 hex digits of ``sha1(f"{dedup_key}|{opened_ts}|{action}|{severity}")``,
    so a replay gives the same ids and a restart cannot page twice for one message."""
    return hashlib.sha1(f"{dedup_key}|{opened_ts}|{action}|{severity}".encode()).hexdigest()[:20]
