"""Alert policy: per asset and direction, when to page, escalate and resolve.

Input: one :class:`AssetReadout` per asset per event-time second. Output:
:class:`~cascadewatch.connectors.outputs.Alert` messages of the output contract
(``type``, ``id``, ``dedup_key``, ``action``, ``severity``, ``kind``, ``asset``,
``direction``, ``ts``, ``summary``, then the cascade evidence).

Per direction, with ``p`` the cascade probability (``None`` counts as 0) and
``cascade`` the type of a cascade in progress if it is one of ``page_kinds`` (``None``
otherwise: by default a stop run, one-sided aggression with no liquidations behind it,
is not a liquidation cascade and pages only through ``p``):

- wanted severity: ``critical`` if ``cascade`` or ``p >= crit_enter``;
  ``warning`` if ``p >= warn_enter``; else none.
- trigger: no open incident and a wanted severity; suppressed while cooling
  down (``cooldown_s`` after the last resolve), except a ``critical`` when
  ``critical_bypasses_cooldown``.
- escalate: an open ``warning`` incident that wants ``critical`` emits another
  ``trigger`` on the same ``dedup_key`` with severity ``critical``. There is no
  de-escalation: an incident stays critical until resolved.
- hysteresis and resolve: the incident is *hot* while ``cascade`` or
  ``p >= warn_exit`` (``warn_exit < warn_enter``). It resolves at the first
  second when it has been calm (not hot) for ``calm_s`` seconds (the first calm
  second counts as 0) and was opened at least ``min_hold_s`` seconds ago; the
  resolve carries the incident's severity and starts the cooldown.

``dedup_key = f"{asset}:{kind}:{direction}"``; an alert ``id`` is derived from
content, ``sha1(f"{dedup_key}|{opened_ts}|{action}|{severity}")[:20]`` (hex),
so a replay gives the same ids and a restart cannot page twice for the same
message. Times are event-time ms. Floats in alerts are rounded (byte-stable).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import msgspec

from cascadewatch.connectors.outputs import Alert, alert_id
from cascadewatch.detectors.drivers import Driver, usd

__all__ = ["PAGE_KINDS", "AlertPolicy", "AssetReadout", "DirectionReadout"]

DIRECTIONS = ("down", "up")
PAGE_KINDS = ("deleveraging", "liquidity", "liquidation")
"""Types of cascade in progress that page by themselves (``stop_run`` does not: no liquidations)."""


class DirectionReadout(msgspec.Struct, frozen=True, kw_only=True):
    """What the detectors say about one direction of one asset at one second.

    - ``prob``: probability of a cascade starting within the horizon (0..1), ``None`` if unknown;
    - ``cascade``: type of the cascade in progress (:data:`cascadewatch.detectors.regime.KINDS`), ``None`` if none;
    - ``cluster_price``: nearest dense liquidation cluster in this direction (quote per base);
    - ``cluster_bps``: its distance from the price, bps; ``cluster_usd``: its notional (quote);
    - ``at_risk_usd``: estimated liquidation notional within the map range in this direction (quote);
    - ``depth_usd``: resting notional in front within 100 bps (bids for down, asks for up), quote;
    - ``depth_ratio``: that depth over its trailing median (thinning), ``None`` if unknown;
    - ``reach_usd``: forced notional of the reach walk from the cluster (quote);
    - ``reach_bps``: price travel of that walk from the current price, bps;
    - ``liq_usd_60s``: realized liquidations of this direction's side over the last 60 s (quote);
    - ``drivers``: the feature families that raised ``prob`` most, largest first
      (:class:`cascadewatch.detectors.drivers.Driver`; empty without a fitted model);
    - the mitigation readouts (:mod:`cascadewatch.detectors.mitigation`): ``defence_usd``, the
      wall at the trigger that would stop the walk before the next dense cluster (quote);
      ``margin_mmr`` / ``leverage_cap``, the suggested maintenance margin rate and the leverage
      cap it implies; ``margin_pushed_usd``, at-risk notional that cap pushes out of reach
      (quote); ``breaker_since``, when the breaker rule tripped (ms), ``None`` when not tripped.
    """

    prob: float | None = None
    cascade: str | None = None
    cluster_price: float | None = None
    cluster_bps: float | None = None
    cluster_usd: float = 0.0
    at_risk_usd: float = 0.0
    depth_usd: float | None = None
    depth_ratio: float | None = None
    reach_usd: float | None = None
    reach_bps: float | None = None
    liq_usd_60s: float = 0.0
    drivers: tuple[Driver, ...] = ()
    defence_usd: float | None = None
    margin_mmr: float | None = None
    leverage_cap: float | None = None
    margin_pushed_usd: float | None = None
    breaker_since: int | None = None


class AssetReadout(msgspec.Struct, frozen=True, kw_only=True):
    """The per-second, per-asset input of the policy.

    - ``asset``: canonical asset (``BTC-USDT``);
    - ``ts``: the event-time second, UTC epoch **milliseconds**, second-aligned;
    - ``price``: last trade price (or mark), quote per base;
    - ``venues``: venues contributing to this second, sorted;
    - ``branching``: Hawkes branching ratio of liquidations (0..1), ``None`` if unknown;
    - ``horizon_s``: horizon of ``prob``, seconds;
    - ``model``: version of the pre-trained model behind ``prob`` (12 hex), ``None`` without one;
    - ``down``/``up``: :class:`DirectionReadout` per direction.
    """

    asset: str
    ts: int
    price: float
    venues: tuple[str, ...] = ()
    branching: float | None = None
    horizon_s: int = 300
    model: str | None = None
    down: DirectionReadout = msgspec.field(default_factory=DirectionReadout)
    up: DirectionReadout = msgspec.field(default_factory=DirectionReadout)


@dataclass(slots=True)
class _Incident:
    severity: str
    opened_ts: int
    calm_since: int | None = None


def _finite(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None


def _sig(x: float | None, digits: int = 8) -> float | None:
    x = _finite(x)
    return None if x is None else float(f"{x:.{digits}g}")


def _rnd(x: float | None, nd: int) -> float | None:
    x = _finite(x)
    return None if x is None else round(x, nd)


def _dur(ms: int) -> str:
    s = max(ms // 1000, 0)
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"


def _price(x: float | None) -> str:
    """About five significant digits with thousands separators: 64,120 / 3.4512 / 0.00012345."""
    x = _finite(x)
    if x is None:
        return "?"
    decimals = max(0, 4 - math.floor(math.log10(abs(x)))) if x else 2
    return f"{x:,.{decimals}f}"


class AlertPolicy:
    """Hysteresis, hold, cooldown, escalation and resolve of cascade alerts, all assets.

    Parameters
    ----------
    kind
        Alert kind in the dedup key (``cascade``).
    warn_enter, crit_enter
        Probability at which a warning / critical incident is triggered.
    warn_exit
        Probability under which an incident is calm (``< warn_enter``).
    min_hold_s
        An incident stays open at least this long, seconds.
    calm_s
        Consecutive calm seconds before a resolve.
    cooldown_s
        After a resolve, no new trigger for this long, seconds (see ``critical_bypasses_cooldown``).
    critical_bypasses_cooldown
        Whether a critical trigger may open an incident during the cooldown.
    page_kinds
        Types of cascade in progress (:data:`cascadewatch.detectors.regime.KINDS`) that page by
        themselves; the others still show in the evidence of an incident ``p`` opened.

    Examples
    --------
    >>> pol = AlertPolicy(warn_enter=0.3, warn_exit=0.2, crit_enter=0.6, min_hold_s=0, calm_s=0, cooldown_s=0)
    >>> def r(s, p):
    ...     return AssetReadout(asset="BTC-USDT", ts=s * 1000, price=100.0, down=DirectionReadout(prob=p))
    >>> [(a.action, a.severity, a.ts) for s, p in enumerate([0.1, 0.35, 0.7, 0.25, 0.1])
    ...  for a in pol.update(r(s, p))]
    [('trigger', 'warning', 1000), ('trigger', 'critical', 2000), ('resolve', 'critical', 4000)]
    """

    page_kinds: tuple[str, ...] = PAGE_KINDS  # also for a policy pickled before it existed

    def __init__(  # noqa: PLR0913 - river-style estimator: each hyperparameter is a constructor keyword with a default
        self,
        kind: str = "cascade",
        warn_enter: float = 0.035,
        warn_exit: float = 0.0175,
        crit_enter: float = 0.6,
        min_hold_s: float = 120.0,
        calm_s: float = 60.0,
        cooldown_s: float = 600.0,
        critical_bypasses_cooldown: bool = True,
        page_kinds: tuple[str, ...] = PAGE_KINDS,
    ) -> None:
        if not 0.0 <= warn_exit < warn_enter <= crit_enter:
            raise ValueError("need 0 <= warn_exit < warn_enter <= crit_enter")
        self.kind = kind
        self.warn_enter = float(warn_enter)
        self.warn_exit = float(warn_exit)
        self.crit_enter = float(crit_enter)
        self.min_hold_ms = int(round(min_hold_s * 1000))
        self.calm_ms = int(round(calm_s * 1000))
        self.cooldown_ms = int(round(cooldown_s * 1000))
        self.critical_bypasses_cooldown = bool(critical_bypasses_cooldown)
        self.page_kinds = tuple(page_kinds)
        self._open: dict[str, _Incident] = {}
        self._cool_until: dict[str, int] = {}

    def dedup_key(self, asset: str, direction: str) -> str:
        """``f"{asset}:{kind}:{direction}"``."""
        return f"{asset}:{self.kind}:{direction}"

    def open_incidents(self) -> dict[str, str]:
        """``{dedup_key: severity}`` of the open incidents."""
        return {k: v.severity for k, v in self._open.items()}

    def update(self, r: AssetReadout) -> list[Alert]:
        """Feed one asset-second; returns the alerts it causes (``down`` before ``up``)."""
        out: list[Alert] = []
        for direction in DIRECTIONS:
            d: DirectionReadout = getattr(r, direction)
            key = self.dedup_key(r.asset, direction)
            p = _finite(d.prob) or 0.0
            in_cascade = d.cascade is not None and d.cascade in self.page_kinds
            if in_cascade or p >= self.crit_enter:
                want = "critical"
            elif p >= self.warn_enter:
                want = "warning"
            else:
                want = None
            hot = in_cascade or p >= self.warn_exit
            inc = self._open.get(key)
            if inc is None:
                if want is None:
                    continue
                cooling = r.ts < self._cool_until.get(key, r.ts)
                if cooling and not (want == "critical" and self.critical_bypasses_cooldown):
                    continue
                inc = self._open[key] = _Incident(severity=want, opened_ts=r.ts)
                out.append(self._alert(r, direction, d, key, "trigger", inc))
                continue
            if want == "critical" and inc.severity == "warning":
                inc.severity = "critical"
                out.append(self._alert(r, direction, d, key, "trigger", inc))
            if hot:
                inc.calm_since = None
                continue
            if inc.calm_since is None:
                inc.calm_since = r.ts
            if r.ts - inc.calm_since >= self.calm_ms and r.ts - inc.opened_ts >= self.min_hold_ms:
                out.append(self._alert(r, direction, d, key, "resolve", inc))
                del self._open[key]
                self._cool_until[key] = r.ts + self.cooldown_ms
        return out

    # ---------------------------------------------------------------- output
    def _alert(
        self, r: AssetReadout, direction: str, d: DirectionReadout, key: str, action: str, inc: _Incident
    ) -> Alert:
        return Alert(
            id=alert_id(key, inc.opened_ts, action, inc.severity),
            dedup_key=key,
            action=action,
            severity=inc.severity,
            kind=self.kind,
            asset=r.asset,
            direction=direction,
            ts=r.ts,
            summary=self._summary(r, direction, d, action, inc),
            opened_ts=inc.opened_ts,
            probability=_rnd(d.prob, 4),
            model=r.model,
            drivers=[{"family": x.family, "logit": _rnd(x.logit, 3), "text": x.text} for x in d.drivers],
            price=_sig(r.price),
            level=_sig(d.cluster_price),
            distance_bps=_rnd(d.cluster_bps, 1),
            cluster_usd=_rnd(d.cluster_usd, 0),
            notional_at_risk_usd=_rnd(d.at_risk_usd, 0),
            depth_usd=_rnd(d.depth_usd, 0),
            depth_ratio=_rnd(d.depth_ratio, 3),
            reach_usd=_rnd(d.reach_usd, 0),
            reach_bps=_rnd(d.reach_bps, 1),
            branching=_rnd(r.branching, 3),
            liq_usd_60s=_rnd(d.liq_usd_60s, 0),
            cascade=d.cascade,
            venues=list(r.venues),
            defence_usd=_rnd(d.defence_usd, 0),
            margin_mmr=_rnd(d.margin_mmr, 6),
            leverage_cap=_rnd(d.leverage_cap, 2),
            margin_pushed_usd=_rnd(d.margin_pushed_usd, 0),
            breaker_since=d.breaker_since,
        )

    def _summary(self, r: AssetReadout, direction: str, d: DirectionReadout, action: str, inc: _Incident) -> str:
        head = f"{r.asset} {direction.upper()}"
        p = _finite(d.prob)
        pct = "?" if p is None else f"{100 * p:.0f}%"
        if action == "resolve":
            return f"{head}: resolved, cascade risk {pct} (was {inc.severity} for {_dur(r.ts - inc.opened_ts)})"
        side = "longs" if direction == "down" else "shorts"
        book = "bids" if direction == "down" else "asks"
        parts = []
        if d.cascade is not None:
            parts.append(
                f"{head}: {d.cascade.replace('_', '-')} cascade IN PROGRESS, "
                f"{usd(d.liq_usd_60s)} {side} liquidated in 60s"
            )
        else:
            why = "; ".join(x.text for x in d.drivers)
            parts.append(f"{head}: {pct} cascade risk in {max(r.horizon_s // 60, 1)}m" + (f": {why}" if why else ""))
        shown = d.cascade is None and any(x.family == "levels" for x in d.drivers)
        if d.cluster_price is not None and d.cluster_bps is not None and not shown:
            where = "below" if direction == "down" else "above"
            parts.append(f"{usd(d.cluster_usd)} {side} at {_price(d.cluster_price)} ({d.cluster_bps:.0f} bps {where})")
        if d.depth_usd is not None:
            parts.append(f"{book} {usd(d.depth_usd)} within 1%")
        if d.reach_bps is not None:
            parts.append(f"reach {d.reach_bps:.0f} bps")
        if r.branching is not None:
            parts.append(f"n={r.branching:.2f}")
        return " · ".join(parts)
