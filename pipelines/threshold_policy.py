"""The spine's placeholder alert policy: a threshold on liquidation notional per minute.

Per asset and direction (``down`` = longs liquidated, ``up`` = shorts liquidated), with
``L`` the liquidated notional over the last 60 s (USD):

- trigger ``warning`` when ``L >= enter_usd``, escalate to ``critical`` when
  ``L >= critical_usd`` (a second trigger on the same dedup key);
- resolve when ``L < exit_usd`` (``exit_usd < enter_usd``: hysteresis).

Alert ids and dedup keys come from content, never from counters, so replays are stable.
The detectors' policy replaces this one.
"""

from __future__ import annotations

import hashlib
from typing import Any

import msgspec

SEVERITY_RANK = {"info": 0, "warning": 1, "critical": 2}


class ThresholdConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Thresholds in USD of liquidated notional over 60 s."""

    enter_usd: float = 1_000_000.0
    critical_usd: float = 5_000_000.0
    exit_usd: float = 250_000.0


def dedup_key(asset: str, kind: str, direction: str) -> str:
    """The stable key of one alert stream: ``"BTC-USDT:cascade:down"``."""
    return f"{asset}:{kind}:{direction}"


def alert_id(key: str, ts_ms: int, action: str, severity: str) -> str:
    """Content-derived id: the first 16 hex digits of ``sha1(key|ts|action|severity)``."""
    return hashlib.sha1(f"{key}|{ts_ms}|{action}|{severity}".encode()).hexdigest()[:16]


class ThresholdPolicy:
    """Stateful per asset; :meth:`update` takes the asset snapshot and returns alert dicts."""

    DIRECTIONS = (("down", "liq_long_usd_60s", "longs"), ("up", "liq_short_usd_60s", "shorts"))

    def __init__(self, asset: str, config: ThresholdConfig) -> None:
        self.asset = asset
        self.config = config
        self.active: dict[str, str] = {}
        """direction -> current severity of an open alert."""

    def update(self, snapshot: dict[str, Any]) -> list[dict[str, Any]]:
        alerts = []
        for direction, field, who in self.DIRECTIONS:
            liquidated = snapshot[field]
            current = self.active.get(direction)
            if liquidated >= self.config.enter_usd:
                severity = "critical" if liquidated >= self.config.critical_usd else "warning"
                if current is None or SEVERITY_RANK[severity] > SEVERITY_RANK[current]:
                    self.active[direction] = severity
                    alerts.append(self._alert(snapshot, direction, "trigger", severity, liquidated, who))
            elif current is not None and liquidated < self.config.exit_usd:
                del self.active[direction]
                alerts.append(self._alert(snapshot, direction, "resolve", current, liquidated, who))
        return alerts

    def _alert(
        self, snapshot: dict[str, Any], direction: str, action: str, severity: str, liquidated: float, who: str
    ) -> dict[str, Any]:
        key = dedup_key(self.asset, "cascade", direction)
        ts = snapshot["ts"]
        if action == "trigger":
            summary = (
                f"{self.asset} {direction}: ${liquidated / 1e6:,.2f}M of {who} liquidated in 60 s "
                f"on {', '.join(snapshot['venues'])} at {snapshot['price']}"
            )
        else:
            summary = f"{self.asset} {direction}: resolved, ${liquidated / 1e6:,.2f}M of {who} liquidated in 60 s"
        return {
            "type": "alert",
            "id": alert_id(key, ts, action, severity),
            "dedup_key": key,
            "action": action,
            "severity": severity,
            "kind": "cascade",
            "asset": self.asset,
            "direction": direction,
            "ts": ts,
            "summary": summary,
            "price": snapshot["price"],
            "liquidated_usd_60s": liquidated,
            "venues": snapshot["venues"],
        }
