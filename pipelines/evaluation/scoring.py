"""Scoring alerts and probabilities against the truth: the part of ``evaluate`` after the replay.

Pure functions over plain dicts (the JSONL lines of the replay outputs and of the simulator's
truth file); no I/O. All times are UTC epoch milliseconds; ``H = horizon_s``.

Definitions, per asset and direction ``d`` (``down`` / ``up``):

- *triggers*: alerts with ``action == "trigger"``, ``kind == "cascade"`` and ``direction == d``
  that the outbox sends: a trigger on a ``dedup_key`` already open at the same or a higher
  severity (a per-second alert confirming a provisional one, or another venue's provisional
  alert for the same episode) is no new alert and is not counted; an escalation is. A
  ``resolve`` closes its key. Alerts are taken in the order given (the output's order); one
  without a ``dedup_key`` always counts.
- *caught*: a truth cascade ``c`` is caught when a trigger of its asset and direction has
  ``c.start - H <= ts <= c.peak`` (an early warning, or a warning while it is still falling).
- *lead* of a caught cascade = ``(c.start - ts_first) / 1000`` seconds, ``ts_first`` the first
  such trigger (negative when the first warning came after the start). Summarised by the median
  and the 10th percentile (linear interpolation between order statistics): 90 % of caught
  cascades had at least ``p10`` seconds of warning.
- *false alarm*: a trigger with no cascade of its asset and direction within the horizon, i.e.
  no cascade overlapping ``[ts, ts + H]``: none with ``start - H <= ts <= end``. (A trigger
  before a start counts as a warning for it; one during a cascade is not a false alarm.)
- *pages*: the same measures over the ``critical`` triggers alone (a first trigger at
  ``critical`` or an escalation to it), under ``pages``: ``caught``, ``recall``, ``lead_s``,
  ``triggers``, ``false`` and ``false_per_day``. A desk routes warnings to a chat channel and
  pages to whoever is on call (``[alerts]`` ``severities``): a warning's false alarm costs a
  glance, a page's a person woken up, so both are reported.
- *days*: the time covered by the evaluation, in days of 86400 s: the ``days`` argument when
  given, else the union of the truth's ``span`` lines (``{"type": "span", "asset", "start",
  "end"}``, written by the simulator), else the number of distinct snapshot seconds / 86400.
- *Brier*: over snapshots whose ``prob_<d>`` is not null, ``mean((p - y)^2)`` with ``y = 1``
  when a cascade of that asset and direction starts within the horizon after the snapshot,
  ``ts < start <= ts + H``. ``brier_base_rate`` is the Brier score of always forecasting the
  observed base rate ``ybar`` of the same snapshots, ``ybar * (1 - ybar)``; a useful forecast
  scores below it (``brier_skill = 1 - brier / brier_base_rate`` > 0).
- *reliability*: ``bins`` equal-width probability bins; per bin the number of forecasts, their
  mean probability and the observed frequency of ``y`` (``null`` for an empty bin).

``overall`` pools both directions (cascades, catches, leads, false alarms and forecasts).
Undefined ratios are ``None`` (JSON ``null``): recall without cascades, lead times without
catches, rates without days, Brier without forecasts.

:func:`map_error` scores a full estimated liquidation map against the truth's ``levels`` lines;
:func:`map_summary_error` scores what the snapshots carry of it (the notional at risk and the
nearest dense cluster, per direction).
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["score", "score_runs", "map_error", "map_summary_error", "percentile", "DIRECTIONS"]

DIRECTIONS = ("down", "up")
DAY_MS = 86_400_000


def percentile(values: Sequence[float], q: float) -> float | None:
    """``q``-th percentile (0..100) with linear interpolation between order statistics."""
    if not values:
        return None
    xs = sorted(values)
    pos = (len(xs) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


@dataclass
class _Matches:
    """Triggers matched against cascades (module docstring: *caught*, *lead*, *false alarm*)."""

    caught: int = 0
    leads: list[float] = field(default_factory=list)
    false: int = 0
    triggers: int = 0

    def add(self, other: _Matches) -> None:
        self.caught += other.caught
        self.leads.extend(other.leads)
        self.false += other.false
        self.triggers += other.triggers

    def match(self, cascades: Sequence[dict], ts: Sequence[int], h: int) -> None:
        """Add the triggers ``ts`` (sorted, ms) of one asset and direction against its ``cascades``."""
        self.triggers += len(ts)
        for c in cascades:
            start, peak = int(c["start"]), int(c["peak"])
            i = bisect_left(ts, start - h)
            if i < len(ts) and ts[i] <= peak:
                self.caught += 1
                self.leads.append((start - ts[i]) / 1000.0)
        windows = [(int(c["start"]) - h, int(c["end"])) for c in cascades]
        self.false += sum(1 for t in ts if not any(lo <= t <= hi for lo, hi in windows))


@dataclass
class _Tally:
    """Counts of one direction (or both pooled), additive across runs: every trigger
    (``alarms``) and the critical ones (``pages``)."""

    cascades: int = 0
    alarms: _Matches = field(default_factory=_Matches)
    pages: _Matches = field(default_factory=_Matches)
    forecasts: list[tuple[float, int]] = field(default_factory=list)

    def add(self, other: _Tally) -> None:
        self.cascades += other.cascades
        self.alarms.add(other.alarms)
        self.pages.add(other.pages)
        self.forecasts.extend(other.forecasts)


def _r(x: float | None, nd: int) -> float | None:
    return None if x is None else round(x, nd)


def _leads(m: _Matches) -> dict[str, float | None]:
    return {"median": _r(percentile(m.leads, 50), 3), "p10": _r(percentile(m.leads, 10), 3)}


def _finish(t: _Tally, days: float, bins: int) -> dict:
    n = len(t.forecasts)
    brier = base = ybar = None
    if n:
        brier = sum((p - y) ** 2 for p, y in t.forecasts) / n
        ybar = sum(y for _, y in t.forecasts) / n
        base = ybar * (1.0 - ybar)
    table = []
    for b in range(bins):
        lo, hi = b / bins, (b + 1) / bins
        members = [(p, y) for p, y in t.forecasts if min(int(p * bins), bins - 1) == b]
        table.append(
            {
                "lo": round(lo, 6),
                "hi": round(hi, 6),
                "n": len(members),
                "mean_prob": _r(sum(p for p, _ in members) / len(members), 6) if members else None,
                "observed": _r(sum(y for _, y in members) / len(members), 6) if members else None,
            }
        )
    a, pg = t.alarms, t.pages
    return {
        "cascades": t.cascades,
        "caught": a.caught,
        "recall": _r(a.caught / t.cascades, 6) if t.cascades else None,
        "lead_s": _leads(a),
        "false_alarms": a.false,
        "triggers": a.triggers,
        "days": round(days, 6),
        "false_alarms_per_day": _r(a.false / days, 6) if days > 0 else None,
        "pages": {
            "caught": pg.caught,
            "recall": _r(pg.caught / t.cascades, 6) if t.cascades else None,
            "lead_s": _leads(pg),
            "triggers": pg.triggers,
            "false": pg.false,
            "false_per_day": _r(pg.false / days, 6) if days > 0 else None,
        },
        "brier": _r(brier, 6),
        "brier_base_rate": _r(base, 6),
        "brier_skill": _r(1.0 - brier / base, 6) if brier is not None and base else None,
        "forecasts": n,
        "base_rate": _r(ybar, 6),
        "reliability": table,
    }


def _days(snapshots: Iterable[dict], truth: Sequence[dict]) -> float:
    spans = sorted((int(s["start"]), int(s["end"])) for s in truth if s.get("type") == "span")
    if spans:
        covered = 0
        cur_lo, cur_hi = spans[0]
        for lo, hi in spans[1:]:
            if lo > cur_hi:
                covered += cur_hi - cur_lo
                cur_lo, cur_hi = lo, hi
            else:
                cur_hi = max(cur_hi, hi)
        covered += cur_hi - cur_lo
        return covered / DAY_MS
    seconds = {int(s["ts"]) // 1000 for s in snapshots if s.get("type", "snapshot") == "snapshot"}
    return len(seconds) / 86_400.0


_SEVERITY = {"warning": 1, "critical": 2}


def _sent_triggers(alerts: Iterable[dict]) -> list[dict]:
    """The triggers the outbox sends (module docstring: *triggers*; *pages* are the critical
    ones), in the order of ``alerts``."""
    open_at: dict[str, int] = {}
    out = []
    for a in alerts:
        key = a.get("dedup_key")
        if a.get("action") == "resolve" and key is not None:
            open_at.pop(key, None)
        elif a.get("action") == "trigger":
            rank = _SEVERITY.get(a.get("severity", ""), 0)
            if key is None:
                out.append(a)
            elif rank > open_at.get(key, 0):
                open_at[key] = rank
                out.append(a)
    return out


def _tally(
    alerts: Sequence[dict], snapshots: Sequence[dict], truth: Sequence[dict], horizon_s: float
) -> dict[str, _Tally]:
    h = int(round(horizon_s * 1000))
    cascades: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for c in truth:
        if c.get("type") == "cascade" and c.get("direction") in DIRECTIONS:
            cascades[(c["asset"], c["direction"])].append(c)
    triggers: dict[tuple[str, str], list[int]] = defaultdict(list)
    critical: dict[tuple[str, str], list[int]] = defaultdict(list)
    for a in _sent_triggers(alerts):
        if a.get("kind") == "cascade" and a.get("direction") in DIRECTIONS:
            triggers[(a["asset"], a["direction"])].append(int(a["ts"]))
            if a.get("severity") == "critical":
                critical[(a["asset"], a["direction"])].append(int(a["ts"]))
    out = {d: _Tally() for d in DIRECTIONS}
    for key in set(cascades) | set(triggers):
        tally = out[key[1]]
        cs = sorted(cascades.get(key, []), key=lambda c: int(c["start"]))
        tally.cascades += len(cs)
        tally.alarms.match(cs, sorted(triggers.get(key, [])), h)
        tally.pages.match(cs, sorted(critical.get(key, [])), h)
    starts: dict[tuple[str, str], list[int]] = {k: sorted(int(c["start"]) for c in v) for k, v in cascades.items()}
    for s in snapshots:
        if s.get("type", "snapshot") != "snapshot":
            continue
        ts0 = int(s["ts"])
        for d in DIRECTIONS:
            p = s.get(f"prob_{d}")
            if p is None or not math.isfinite(p):
                continue
            st = starts.get((s["asset"], d), [])
            y = 1 if bisect_right(st, ts0 + h) > bisect_right(st, ts0) else 0
            out[d].forecasts.append((min(max(float(p), 0.0), 1.0), y))
    return out


def score_runs(
    runs: Iterable[tuple[Sequence[dict], Sequence[dict], Sequence[dict]]],
    horizon_s: float = 300,
    *,
    days: float | None = None,
    bins: int = 10,
) -> dict:
    """Score several independent runs ``(alerts, snapshots, truth)`` pooled together.

    Each run is matched on its own (recordings may share timestamps, e.g. two seeds of one
    scenario), then counts, lead times, forecasts and days are pooled. ``days`` overrides the
    total covered time.
    """
    totals = {d: _Tally() for d in DIRECTIONS}
    covered = 0.0
    for alerts, snapshots, truth in runs:
        for d, t in _tally(alerts, snapshots, truth, horizon_s).items():
            totals[d].add(t)
        covered += _days(snapshots, truth)
    if days is not None:
        covered = float(days)
    overall = _Tally()
    for d in DIRECTIONS:
        overall.add(totals[d])
    result: dict[str, Any] = {"overall": _finish(overall, covered, bins)}
    for d in DIRECTIONS:
        result[d] = _finish(totals[d], covered, bins)
    result["horizon_s"] = horizon_s
    return result


def score(
    alerts: Sequence[dict],
    snapshots: Sequence[dict],
    truth: Sequence[dict],
    horizon_s: float = 300,
    *,
    days: float | None = None,
    bins: int = 10,
) -> dict:
    """Score one run: ``{"overall": M, "down": M, "up": M, "horizon_s": H}`` (module docstring).

    Each ``M`` holds ``cascades``, ``caught``, ``recall``, ``lead_s`` (``median``, ``p10``),
    ``false_alarms``, ``triggers``, ``days``, ``false_alarms_per_day``, ``pages`` (the critical
    triggers alone: ``caught``, ``recall``, ``lead_s``, ``triggers``, ``false``, ``false_per_day``), ``brier``,
    ``brier_base_rate``, ``brier_skill``, ``forecasts``, ``base_rate`` and ``reliability``.
    """
    return score_runs([(alerts, snapshots, truth)], horizon_s, days=days, bins=bins)


# ---------------------------------------------------------------------------- map error
def _profile(
    levels: Iterable[Sequence[float]], price: float, side: str, range_bps: float, bin_bps: float
) -> list[float]:
    """Notional per distance bin from ``price`` (long levels below it, short levels above)."""
    n = int(math.ceil(range_bps / bin_bps))
    out = [0.0] * n
    for lvl in levels:
        p, usd = float(lvl[0]), float(lvl[1])
        dist = (price - p) / price * 1e4 if side == "long" else (p - price) / price * 1e4
        if 0.0 <= dist < range_bps and usd > 0:
            out[min(int(dist / bin_bps), n - 1)] += usd
    return out


def _levels_with_latest(
    timed: Iterable[tuple[str, int, dict]], truth: Iterable[dict], max_age_s: float
) -> Iterable[tuple[dict, float, dict]]:
    """For each truth ``levels`` line: ``(line, its price, the latest estimate of its asset)``,
    skipping lines with no estimate at most ``max_age_s`` older. ``timed``: ``(asset, ts_ms, estimate)``."""
    by_asset: dict[str, list[tuple[int, dict]]] = defaultdict(list)
    for asset, ts, estimate in timed:
        by_asset[asset].append((ts, estimate))
    for rows in by_asset.values():
        rows.sort(key=lambda row: row[0])
    stamps = {asset: [t for t, _ in rows] for asset, rows in by_asset.items()}
    max_age = int(max_age_s * 1000)
    for line in truth:
        if line.get("type") != "levels" or "price" not in line:
            continue
        asset, ts = line["asset"], int(line["ts"])
        i = bisect_right(stamps.get(asset, []), ts) - 1
        if i < 0 or ts - stamps[asset][i] > max_age:
            continue
        yield line, float(line["price"]), by_asset[asset][i][1]


def map_error(
    estimates: Sequence[dict],
    truth: Sequence[dict],
    *,
    key: str = "liq_map",
    range_bps: float = 500.0,
    bin_bps: float = 10.0,
    max_age_s: float = 60.0,
) -> dict:
    """Error of an estimated liquidation map against the truth's ``levels`` lines.

    ``estimates``: dicts with ``ts``, ``asset`` and the levels either at top level
    (``"long": [[price, usd], ...], "short": [...]``, the truth's own shape) or under ``key``
    (e.g. a snapshot carrying ``{"liq_map": {"long": ..., "short": ...}}``). Each truth line
    (``{"type": "levels", "ts", "asset", "price", "long", "short"}``) is compared with the
    latest estimate of its asset at most ``max_age_s`` older. Per side, both maps become
    notional profiles over the distance from the truth's ``price`` (bins of ``bin_bps`` up to
    ``range_bps``; long levels below the price, short levels above), and:

    - ``emd_bps``: earth mover's distance between the two normalised profiles, in bps of
      distance: how far, on average, estimated notional must move to match the true shape;
    - ``log2_ratio``: ``log2(estimated total / true total)`` within the range: the scale error.

    Returns ``{"long": S, "short": S, "overall": S}`` with ``S = {"n", "emd_bps_mean",
    "emd_bps_median", "abs_log2_ratio_median"}`` (``None`` where nothing was comparable:
    a side is comparable when both totals are positive).
    """
    timed: list[tuple[str, int, dict]] = []
    for e in estimates:
        levels = e.get(key) if key in e else e
        if isinstance(levels, dict):
            timed.append((e["asset"], int(e["ts"]), levels))
    emd: dict[str, list[float]] = {"long": [], "short": []}
    ratio: dict[str, list[float]] = {"long": [], "short": []}
    for line, price, est in _levels_with_latest(timed, truth, max_age_s):
        for side in ("long", "short"):
            tp = _profile(line.get(side, []), price, side, range_bps, bin_bps)
            ep = _profile(est.get(side, []) or [], price, side, range_bps, bin_bps)
            tt, et = sum(tp), sum(ep)
            if tt <= 0 or et <= 0:
                continue
            cum_t = cum_e = 0.0
            dist = 0.0
            for a, b in zip(tp, ep, strict=True):
                cum_t += a / tt
                cum_e += b / et
                dist += abs(cum_t - cum_e) * bin_bps
            emd[side].append(dist)
            ratio[side].append(math.log2(et / tt))

    def summary(e: list[float], r: list[float]) -> dict:
        return {
            "n": len(e),
            "emd_bps_mean": _r(sum(e) / len(e), 3) if e else None,
            "emd_bps_median": _r(percentile(e, 50), 3),
            "abs_log2_ratio_median": _r(percentile([abs(x) for x in r], 50), 4),
        }

    return {
        "long": summary(emd["long"], ratio["long"]),
        "short": summary(emd["short"], ratio["short"]),
        "overall": summary(emd["long"] + emd["short"], ratio["long"] + ratio["short"]),
    }


def map_summary_error(
    snapshots: Sequence[dict],
    truth: Sequence[dict],
    *,
    window: int = 5,
    dense_multiple: float = 3.0,
    max_age_s: float = 5.0,
) -> dict:
    """Error of the snapshots' liquidation-map summary against the truth's ``levels`` lines.

    Per direction ``d`` a snapshot carries ``d: {"at_risk_usd", "cluster_bps", ...}``: the
    estimated liquidation notional on that side of the price (long levels below it for
    ``down``, short levels above for ``up``, within the map's range) and the distance of the
    nearest dense cluster. For each truth line (``{"type": "levels", "ts", "asset", "price",
    "long", "short"}``, levels within 10 % of the price) and the latest snapshot of its asset at
    most ``max_age_s`` older:

    - ``at_risk_log2_ratio`` = ``log2(estimated / true notional on that side)``;
    - the true nearest dense cluster is found on the true levels with the detectors' own rule
      (:func:`cascadewatch.detectors.liqmap_estimated.nearest_dense_cluster`, ``window`` buckets,
      ``dense_multiple``); ``cluster_error_bps`` = ``|estimated - true distance|`` when both
      exist, else it counts as ``cluster_missed`` (true only) or ``cluster_spurious``
      (estimated only).

    Returns ``{"down": S, "up": S, "overall": S}``, ``S = {"n", "at_risk_abs_log2_ratio_median",
    "cluster_error_bps_median", "cluster_error_bps_mean", "cluster_found", "cluster_missed",
    "cluster_spurious"}`` (``None`` where nothing was comparable).
    """
    return map_summary_error_runs(
        [(snapshots, truth)], window=window, dense_multiple=dense_multiple, max_age_s=max_age_s
    )


def map_summary_error_runs(
    runs: Iterable[tuple[Sequence[dict], Sequence[dict]]],
    *,
    window: int = 5,
    dense_multiple: float = 3.0,
    max_age_s: float = 5.0,
) -> dict:
    """:func:`map_summary_error` of several independent runs ``(snapshots, truth)`` pooled: each
    run's truth lines are paired with its own snapshots, then the ratios, errors and counts of
    all runs are summarized together (the medians are over all lines, not medians of medians)."""
    import numpy as np

    from cascadewatch.detectors.liqmap_estimated import nearest_dense_cluster

    ratios: dict[str, list[float]] = {"down": [], "up": []}
    errors: dict[str, list[float]] = {"down": [], "up": []}
    counts: dict[str, Counter[str]] = {d: Counter() for d in DIRECTIONS}
    pairs = (
        pair
        for snapshots, truth in runs
        for pair in _levels_with_latest(
            [
                (snap["asset"], int(snap["ts"]), snap)
                for snap in snapshots
                if snap.get("type", "snapshot") == "snapshot"
            ],
            truth,
            max_age_s,
        )
    )
    for line, price, snap in pairs:
        for d, side in (("down", "long"), ("up", "short")):
            est = snap.get(d)
            if not isinstance(est, dict):
                continue
            levels = sorted((float(p), float(u)) for p, u in line.get(side, []))
            on_side = [(p, u) for p, u in levels if (p < price if d == "down" else p > price)]
            true_total = sum(u for _, u in on_side)
            est_total = est.get("at_risk_usd")
            counts[d]["n"] += 1
            if est_total and est_total > 0 and true_total > 0:
                ratios[d].append(math.log2(est_total / true_total))
            true_cluster = None
            if levels:
                c = nearest_dense_cluster(
                    np.array([p for p, _ in levels]),
                    np.array([u for _, u in levels]),
                    price,
                    d,
                    window=window,
                    dense_multiple=dense_multiple,
                )
                true_cluster = c.distance_bps if c is not None else None
            est_cluster = est.get("cluster_bps")
            if true_cluster is not None and est_cluster is not None:
                counts[d]["cluster_found"] += 1
                errors[d].append(abs(float(est_cluster) - true_cluster))
            elif true_cluster is not None:
                counts[d]["cluster_missed"] += 1
            elif est_cluster is not None:
                counts[d]["cluster_spurious"] += 1

    def summary(r: list[float], e: list[float], c: Counter) -> dict:
        return {
            "n": c["n"],
            "at_risk_abs_log2_ratio_median": _r(percentile([abs(x) for x in r], 50), 4),
            "cluster_error_bps_median": _r(percentile(e, 50), 3),
            "cluster_error_bps_mean": _r(sum(e) / len(e), 3) if e else None,
            "cluster_found": c["cluster_found"],
            "cluster_missed": c["cluster_missed"],
            "cluster_spurious": c["cluster_spurious"],
        }

    return {
        "down": summary(ratios["down"], errors["down"], counts["down"]),
        "up": summary(ratios["up"], errors["up"], counts["up"]),
        "overall": summary(ratios["down"] + ratios["up"], errors["down"] + errors["up"], counts["down"] + counts["up"]),
    }
