"""Stylized facts of the simulator beside the real figures (issue 14).

    python -m cascadewatch.pipelines.simulate.facts [--calm-seeds 1-8] [--calm-hours 24]
        [--family-seeds 1-4] [--venues N] [--json]

simulates calm days (``--calm-seeds``, each ``--calm-hours`` long) and every scenario family
(``--family-seeds``, at their default durations), without recordings, and prints a table of
what the truth labels say (the label of :mod:`cascadewatch.detectors.labels`, default
thresholds) next to what real markets showed:

- labelled cascades per calm day; start-to-end duration (median, p10, p90, max) of every
  labelled cascade; forced notional and move (median, p90);
- hourly liquidations over the calm days: largest hour and 99th percentile over the median
  hour, one-sidedness of the top hours (``max(long, short) / total``), and the chance that an
  hour above the 99th percentile is followed by one above the 90th;
- clustering: share of calm-day cascades followed by another within an hour of their end,
  against the base rate (share of the calm time from which an hour ahead holds a cascade start);
- auto-deleveraging: seconds from a cascade's start to the first ADL in it;
- the trickle: liquidation orders per minute in the five minutes before each calm-day cascade's
  start (median, and the share of cascades with at least one), against 5-minute windows of the
  calm days at least an hour from any cascade (median, and the share with at least one).

``--venues N`` runs every seed on its first ``N`` drawn venues (faster; the label sums all
venues anyway). :func:`measure` returns the figures as a dict (the test uses it).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from bisect import bisect_left
from collections.abc import Iterable
from dataclasses import dataclass, field

from cascadewatch.pipelines.simulate import SCENARIOS, simulate
from cascadewatch.pipelines.simulate.market import draw_market
from cascadewatch.pipelines.simulate.runner import SimulationResult

_T0 = 1_768_435_200_000  # every scenario's start, 2026-01-15T00:00:00Z
_TRICKLE_MS = 300_000

__all__ = ["REAL", "Corpus", "run_corpus", "measure", "table", "main"]

REAL: dict[str, str] = {
    "calm_cascades_per_day": "2.05 (39 in 456 h, BitMEX XBTUSD 2020-04/05)",
    "duration_median_s": "59",
    "duration_p10_s": "26",
    "duration_p90_s": "132",
    "duration_max_s": "310",
    "forced_median_usd": "4.7M",
    "forced_p90_usd": "17.5M",
    "move_median_bps": "90",
    "move_p90_bps": "186",
    "hourly_max_over_median": "273 (BTC, Binance+Bybit+OKX, 6 months)",
    "hourly_p99_over_median": "51",
    "top_hour_one_sided": "0.94-0.99",
    "after_p99_hour_next_above_p90": "0.30",
    "cascade_followed_within_1h": "6 within 84 min, 5 within 100 min (2 days of 19)",
    "base_rate_cascade_within_1h": "~0.08 (2 a day, Poisson)",
    "adl_after_start_s": "62 (Hyperliquid 2025-10-10)",
    "trickle_before_per_min": "0.24 (BitMEX XBTUSD 2020-04/05, median of 39 cascades)",
    "trickle_calm_per_min": "0.01 (BitMEX, random calm times)",
}


@dataclass
class Corpus:
    """The runs of one measurement: calm days and family runs."""

    calm: list[SimulationResult] = field(default_factory=list)
    families: list[SimulationResult] = field(default_factory=list)


def _venues(seed: int, name: str, n: int | None) -> tuple[str, ...] | None:
    if n is None:
        return None
    sc = SCENARIOS[name]
    drawn = draw_market(seed, sc.venues, sc.min_venues).venues
    return tuple(v.name for v in drawn[: max(n, sc.min_venues)])


def run_corpus(
    calm_seeds: Iterable[int],
    calm_hours: float,
    family_seeds: Iterable[int],
    families: Iterable[str] | None = None,
    venues: int | None = None,
) -> Corpus:
    """Simulate the calm days and the family runs (no recordings)."""
    corpus = Corpus()
    for seed in calm_seeds:
        sc = SCENARIOS["calm"].with_duration(calm_hours * 3600.0)
        vs = _venues(seed, "calm", venues)
        corpus.calm.append(simulate(sc.with_venues(vs) if vs else sc, seed, None, None))
    names = [n for n in (families or SCENARIOS) if n != "calm"]
    for seed in family_seeds:
        for name in names:
            sc = SCENARIOS[name]
            vs = _venues(seed, name, venues)
            corpus.families.append(simulate(sc.with_venues(vs) if vs else sc, seed, None, None))
    return corpus


def _q(values: list[float], q: float) -> float:
    """The ``q`` quantile (linear interpolation); NaN when empty."""
    if not values:
        return math.nan
    v = sorted(values)
    pos = q * (len(v) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (pos - lo)


def _clustering(calm: list[SimulationResult]) -> tuple[float, float, int]:
    """(share of cascades followed by another start within 1 h of their end, base rate, n)."""
    followed = n = 0
    covered = total = 0.0
    for r in calm:
        starts = sorted(c["start"] for c in r.cascades)
        span_s = r.duration_s
        # base rate: share of the run's seconds t for which a cascade starts in (t, t + 1 h]
        # (an hour ahead fits in the run: only t <= span - 1 h counts)
        marks = sorted({(s - _T0) / 1000.0 for s in starts})
        usable = max(span_s - 3600.0, 0.0)
        cover = 0.0
        for a, b in _merge([(max(s - 3600.0, 0.0), min(s, usable)) for s in marks]):
            cover += max(b - a, 0.0)
        covered += cover
        total += usable
        for c in r.cascades:
            if (c["end"] - _T0) / 1000.0 + 3600.0 > span_s:
                continue
            n += 1
            if any(c["end"] < s <= c["end"] + 3_600_000 for s in starts):
                followed += 1
    return (followed / n if n else math.nan), (covered / total if total > 0 else math.nan), n


def _merge(spans: list[tuple[float, float]]) -> list[tuple[float, float]]:
    out: list[tuple[float, float]] = []
    for a, b in sorted(spans):
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        elif b > a:
            out.append((a, b))
    return out


def _hourly(calm: list[SimulationResult]) -> dict[str, float]:
    hours = [(a, b) for r in calm for a, b in r.hourly if len(r.hourly)]
    totals = [a + b for a, b in hours]
    med = _q(totals, 0.5)
    p99, p90 = _q(totals, 0.99), _q(totals, 0.9)
    top = sorted(hours, key=lambda h: -(h[0] + h[1]))[: max(3, len(hours) // 100)]
    one_sided = [max(a, b) / (a + b) for a, b in top if a + b > 0]
    nxt = []
    for r in calm:
        tot = [a + b for a, b in r.hourly]
        nxt += [tot[i + 1] > p90 for i in range(len(tot) - 1) if tot[i] > p99]
    return {
        "hours": float(len(hours)),
        "hourly_median_usd": med,
        "hourly_max_over_median": max(totals) / med if med > 0 else math.inf,
        "hourly_p99_over_median": p99 / med if med > 0 else math.inf,
        "top_hour_one_sided": _q(one_sided, 0.5),
        "after_p99_hour_next_above_p90": sum(nxt) / len(nxt) if nxt else math.nan,
    }


def _adl_delays(runs: list[SimulationResult]) -> list[float]:
    out = []
    for r in runs:
        for c in r.cascades:
            ts = [a["ts"] for a in r.adl if c["start"] <= a["ts"] <= c["end"] + 60_000]
            if ts:
                out.append((min(ts) - c["start"]) / 1000.0)
    return out


def _trickle(calm: list[SimulationResult]) -> dict[str, float]:
    """Liquidation orders per minute before calm-day cascades and in calm windows (module docstring)."""
    before: list[float] = []
    quiet: list[float] = []
    for r in calm:
        ms = r.liquidation_ms
        starts = [c["start"] for c in r.cascades]

        def per_min(a: int, b: int, ms: list[int] = ms) -> float:
            return (bisect_left(ms, b) - bisect_left(ms, a)) / ((b - a) / 60_000.0)

        before += [per_min(s - _TRICKLE_MS, s) for s in starts]
        for a in range(_T0, _T0 + int(r.duration_s * 1000) - _TRICKLE_MS + 1, _TRICKLE_MS):
            if all(abs(a - s) >= 3_600_000 and abs(a + _TRICKLE_MS - s) >= 3_600_000 for s in starts):
                quiet.append(per_min(a, a + _TRICKLE_MS))
    return {
        "trickle_before_per_min": _q(before, 0.5),
        "trickle_before_share": sum(x > 0 for x in before) / len(before) if before else math.nan,
        "trickle_calm_per_min": _q(quiet, 0.5),
        "trickle_calm_share": sum(x > 0 for x in quiet) / len(quiet) if quiet else math.nan,
    }


def measure(corpus: Corpus) -> dict[str, float]:
    """The simulated figures of :data:`REAL`'s keys (and a few counts) from ``corpus``."""
    calm_days = sum(r.duration_s for r in corpus.calm) / 86_400.0
    calm_n = sum(len(r.cascades) for r in corpus.calm)
    every = [c for r in corpus.calm + corpus.families for c in r.cascades]
    dur = [(c["end"] - c["start"]) / 1000.0 for c in every]
    forced = [c["forced_notional"] for c in every]
    move = [c["move_bps"] for c in every]
    followed, base, n_follow = _clustering(corpus.calm)
    adl = _adl_delays(corpus.calm + corpus.families)
    facts = {
        "calm_days": calm_days,
        "calm_cascades": float(calm_n),
        "calm_cascades_per_day": calm_n / calm_days if calm_days else math.nan,
        "cascades": float(len(every)),
        "duration_median_s": _q(dur, 0.5),
        "duration_p10_s": _q(dur, 0.1),
        "duration_p90_s": _q(dur, 0.9),
        "duration_max_s": max(dur) if dur else math.nan,
        "forced_median_usd": _q(forced, 0.5),
        "forced_p90_usd": _q(forced, 0.9),
        "move_median_bps": _q(move, 0.5),
        "move_p90_bps": _q(move, 0.9),
        "cascade_followed_within_1h": followed,
        "base_rate_cascade_within_1h": base,
        "followed_n": float(n_follow),
        "adl_after_start_s": _q(adl, 0.5),
        "adl_cascades": float(len(adl)),
    }
    facts.update(_hourly(corpus.calm))
    facts.update(_trickle(corpus.calm))
    return facts


def _fmt(key: str, v: float) -> str:
    if isinstance(v, float) and math.isnan(v):
        return "n/a"
    if key.endswith("_usd"):
        return f"{v / 1e6:.1f}M"
    if "one_sided" in key or "within_1h" in key or "next_above" in key:
        return f"{v:.2f}"
    return f"{v:.2f}" if abs(v) < 10 else f"{v:.0f}"


def table(facts: dict[str, float]) -> str:
    """The simulated figures beside :data:`REAL`, one row each (Markdown)."""
    rows = ["| figure | simulated | real |", "|---|---|---|"]
    for key, real in REAL.items():
        rows.append(f"| {key} | {_fmt(key, facts[key])} | {real} |")
    rows.append(
        f"\n{facts['calm_days']:.1f} calm days ({facts['calm_cascades']:.0f} cascades), "
        f"{facts['cascades']:.0f} labelled cascades in all, {facts['hours']:.0f} calm hours, "
        f"{facts['followed_n']:.0f} calm cascades with an hour after them, "
        f"{facts['adl_cascades']:.0f} cascades with ADL."
    )
    return "\n".join(rows)


def _seeds(text: str) -> list[int]:
    """``"1-8"`` or ``"1,3,5"`` -> seeds."""
    out: list[int] = []
    for part in text.split(","):
        if "-" in part:
            a, b = part.split("-")
            out.extend(range(int(a), int(b) + 1))
        elif part:
            out.append(int(part))
    return out


def main(argv: list[str] | None = None) -> int:
    """The command line (module docstring)."""
    ap = argparse.ArgumentParser(prog="python -m cascadewatch.pipelines.simulate.facts", description=__doc__)
    ap.add_argument("--calm-seeds", default="1-8", help="calm-day seeds, e.g. 1-8 (default)")
    ap.add_argument("--calm-hours", type=float, default=24.0, help="hours per calm run (default 24)")
    ap.add_argument("--family-seeds", default="1-4", help="seeds of every scenario family (default 1-4)")
    ap.add_argument("--venues", type=int, default=None, help="run every seed on its first N drawn venues")
    ap.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    args = ap.parse_args(argv)
    corpus = run_corpus(_seeds(args.calm_seeds), args.calm_hours, _seeds(args.family_seeds), venues=args.venues)
    facts = measure(corpus)
    if args.json:
        print(json.dumps(facts))
    else:
        print(table(facts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
