"""An alert as (label, text) fields for people, shared by the chat destinations.

Slack, Telegram and Discord show the same fields in the same order: asset, direction,
severity (``resolved`` for a resolve), probability, then the evidence, the policy's key
figures first (price, nearest cluster, notional at risk, depth in front, cascade reach,
Hawkes branching) and any other evidence after those.
"""

from __future__ import annotations

from typing import Any

from cascadewatch.connectors.alerts.destinations.base import evidence, label, render_value, usd

DIRECTION = {"down": "down (longs liquidated)", "up": "up (shorts liquidated)"}
ICON = {"critical": "\N{LARGE RED CIRCLE}", "warning": "\N{LARGE ORANGE CIRCLE}", "info": "\N{LARGE BLUE CIRCLE}"}
RESOLVED_ICON = "\N{WHITE HEAVY CHECK MARK}"


def headline(alert: dict[str, Any]) -> str:
    """``🔴 CRITICAL: BTC-USDT cascade risk down``, or ``✅ Resolved: BTC-USDT cascade down``."""
    asset, kind, direction = alert.get("asset", "?"), alert.get("kind", "alert"), alert.get("direction") or ""
    if alert.get("action") == "resolve":
        return f"{RESOLVED_ICON} Resolved: {asset} {kind} {direction}".strip()
    severity = str(alert.get("severity", "warning"))
    return f"{ICON.get(severity, '')} {severity.upper()}: {asset} {kind} risk {direction}".strip()


def alert_fields(alert: dict[str, Any]) -> list[tuple[str, str]]:
    """Asset, direction, severity, probability, then :func:`evidence_fields`."""
    resolve = alert.get("action") == "resolve"
    return [
        ("Asset", str(alert.get("asset", "-"))),
        ("Direction", DIRECTION.get(str(alert.get("direction")), str(alert.get("direction", "-")))),
        ("Severity", "resolved" if resolve else str(alert.get("severity", "warning"))),
        ("Probability", probability_text(alert)),
        *evidence_fields(alert),
    ]


def probability_text(alert: dict[str, Any]) -> str:
    """The direction's probability in percent (``72%``), ``-`` when the alert has none."""
    for key in ("probability", "prob", f"prob_{alert.get('direction')}"):
        value = alert.get(key)
        if isinstance(value, (int, float)):
            return f"{value:.0%}"
    return "-"


def _num(alert: dict[str, Any], key: str) -> float | None:
    value = alert.get(key)
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def evidence_fields(alert: dict[str, Any]) -> list[tuple[str, str]]:
    """The key evidence as (label, text), the policy's fields first, then any others."""
    fields: list[tuple[str, str]] = []
    used = {"probability", "prob", "opened_ts", "venues", "cascade", "audit"}
    if (price := _num(alert, "price")) is not None:
        fields.append(("Price", f"{price:,.6g}"))
    used.add("price")
    if (level := _num(alert, "level")) is not None:
        text = f"{level:,.6g}"
        if (bps := _num(alert, "distance_bps")) is not None:
            text += f" ({bps:+.0f} bps)"
        if (cluster := _num(alert, "cluster_usd")) is not None:
            text += f" · {usd(cluster)}"
        fields.append(("Nearest cluster", text))
    used.update(("level", "distance_bps", "cluster_usd"))
    if (at_risk := _num(alert, "notional_at_risk_usd")) is not None:
        fields.append(("Notional at risk", usd(at_risk)))
    used.add("notional_at_risk_usd")
    if (depth := _num(alert, "depth_usd")) is not None:
        ratio = _num(alert, "depth_ratio")
        fields.append(("Depth in front", usd(depth) + (f" (×{ratio:.2f} of usual)" if ratio is not None else "")))
    used.update(("depth_usd", "depth_ratio"))
    if (reach := _num(alert, "reach_bps")) is not None:
        forced = _num(alert, "reach_usd")
        fields.append(
            ("Cascade reach", f"{reach:.0f} bps" + (f" · {usd(forced)} forced" if forced is not None else ""))
        )
    used.update(("reach_bps", "reach_usd"))
    if (branching := _num(alert, "branching")) is not None:
        fields.append(("Hawkes branching", f"{branching:.2f}"))
    used.add("branching")
    for key, value in evidence(alert).items():
        if key not in used:
            fields.append((label(key), render_value(key, value)))
    return fields
