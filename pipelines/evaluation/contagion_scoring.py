"""Scoring the grouped contagion alert against the truth's groups: the multi-asset part of ``evaluate``.

Pure functions over plain dicts (the replay's alerts and the truth JSONL of
:mod:`cascadewatch.pipelines.simulate.cross_margin`); times are UTC epoch ms, ``H = horizon_s``.

- *groups*: the truth's ``{"type": "contagion", "direction", "start", "end", "assets"}`` lines
  (cascades of at least two assets starting within the window of the first);
- *openings*: contagion alerts (``kind == "contagion"``) with ``action == "trigger"`` that open
  an incident (``ts == opened_ts``; a join or an escalation updates it);
- *caught*: a group is caught when an opening of its direction has ``start - H <= ts <= end``;
- *lead* of a caught group = ``(spread - ts_first) / 1000`` seconds, ``spread`` the start of
  its second asset's cascade (the moment the cascade has spread), ``ts_first`` the first such
  opening: positive when the grouped alert came before the second cascade began;
- *false grouping*: an opening with no group of its direction with ``start - H <= ts <= end``;
- *days*: per run, the span of its ``span`` lines (first start to last end), summed.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Sequence
from typing import Any

from cascadewatch.pipelines.evaluation.scoring import percentile

__all__ = ["score_contagion", "has_contagion"]

DAY_MS = 86_400_000


def has_contagion(alerts: Sequence[dict[str, Any]], truth: Sequence[dict[str, Any]]) -> bool:
    """Whether a run holds a contagion alert or a truth group (else ``evaluate`` leaves the score out)."""
    return any(a.get("kind") == "contagion" for a in alerts) or any(t.get("type") == "contagion" for t in truth)


def _span_days(truth: Sequence[dict[str, Any]]) -> float:
    spans = [(int(t["start"]), int(t["end"])) for t in truth if t.get("type") == "span"]
    return (max(e for _, e in spans) - min(s for s, _ in spans)) / DAY_MS if spans else 0.0


def score_contagion(
    runs: Iterable[tuple[Sequence[dict[str, Any]], Sequence[dict[str, Any]]]], horizon_s: float = 300
) -> dict[str, Any]:
    """Score runs ``(alerts, truth)`` pooled: ``{"groups", "caught", "recall", "lead_s": {"median",
    "p10"}, "openings", "false_groupings", "days", "false_groupings_per_day"}`` (module doc).

    >>> truth = [{"type": "contagion", "direction": "down", "start": 600_000, "end": 900_000,
    ...           "assets": [{"asset": "A", "start": 600_000}, {"asset": "B", "start": 650_000}]},
    ...          {"type": "span", "asset": "A", "start": 0, "end": 43_200_000}]
    >>> opening = {"kind": "contagion", "action": "trigger", "direction": "down", "ts": 640_000, "opened_ts": 640_000}
    >>> false = {**opening, "ts": 5_000_000, "opened_ts": 5_000_000}
    >>> r = score_contagion([([opening, false], truth)])
    >>> r["caught"], r["lead_s"]["median"], r["false_groupings"], r["false_groupings_per_day"]
    (1, 10.0, 1, 2.0)
    """
    h = int(round(horizon_s * 1000))
    n_groups = caught = openings = false = 0
    leads: list[float] = []
    days = 0.0
    for alerts, truth in runs:
        days += _span_days(truth)
        groups = [t for t in truth if t.get("type") == "contagion"]
        n_groups += len(groups)
        opened: dict[str, list[int]] = {}
        for a in alerts:
            if a.get("kind") == "contagion" and a.get("action") == "trigger" and a.get("ts") == a.get("opened_ts"):
                opened.setdefault(str(a.get("direction")), []).append(int(a["ts"]))
        for ts in opened.values():
            ts.sort()
        for g in groups:
            ts = opened.get(g["direction"], [])
            i = bisect_left(ts, int(g["start"]) - h)
            if i < len(ts) and ts[i] <= int(g["end"]):
                caught += 1
                leads.append((int(g["assets"][1]["start"]) - ts[i]) / 1000.0)
        for direction, ts in opened.items():
            openings += len(ts)
            windows = [(int(g["start"]) - h, int(g["end"])) for g in groups if g["direction"] == direction]
            false += sum(not any(lo <= t <= hi for lo, hi in windows) for t in ts)
    return {
        "groups": n_groups,
        "caught": caught,
        "recall": round(caught / n_groups, 4) if n_groups else None,
        "lead_s": {"median": percentile(leads, 50), "p10": percentile(leads, 10)},
        "openings": openings,
        "false_groupings": false,
        "days": round(days, 4),
        "false_groupings_per_day": round(false / days, 3) if days > 0 else None,
    }
