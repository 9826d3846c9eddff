"""The mitigation lab: every scenario and seed with and without each lever, side by side.

One run per (scenario, seed, lever) with ``lever`` in ``none`` and the :data:`.mitigation.LEVERS`
asked for, no recording (the market's facts only). Per run (:func:`run_metrics`):

- ``forced_usd``: true forced notional of all venues over the run (engine fills and ADL), USD;
- ``move_bps``: the largest move of the per-second price in the episode's direction
  (peak-to-trough for ``down``, trough-to-peak for ``up``; the larger of the two for a calm
  day), bps;
- ``cascade_s``: seconds inside labelled cascades (:mod:`cascadewatch.detectors.labels`, from
  the true forced notional), summed; ``cascades``: how many;
- procyclicality: ``margin_liquidated_usd``, notional of positions a margin *raise* put behind
  the mark (taken over at once); ``injector_loss_usd``, what the injecting agents lost, marked
  at the last mid (0 when they made money); ``tripped_s``, seconds the breaker was tripped
  (halted or banded).

:func:`summarize` gives, per scenario and lever, the mean and the standard deviation over
seeds (``sd`` with ``n - 1``; 0 for one seed). Deterministic: the same arguments give the same
numbers (each run is the seeded simulator).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence

from cascadewatch.pipelines.simulate import SCENARIOS, Mitigation, simulate
from cascadewatch.pipelines.simulate.runner import SimulationResult

__all__ = ["METRICS", "run_lab", "run_metrics", "summarize"]

METRICS = (
    "forced_usd",
    "move_bps",
    "cascade_s",
    "cascades",
    "margin_liquidated_usd",
    "injector_loss_usd",
    "tripped_s",
)
"""The per-run numbers, in table order."""


def run_metrics(result: SimulationResult) -> dict[str, float]:
    """The lab's numbers of one run (module docstring)."""
    direction = result.plan.get("direction")
    moves = result.moves_bps
    mit = result.mitigation
    return {
        "forced_usd": round(sum(a + b for a, b in result.hourly), 2),
        "move_bps": moves[direction] if direction in moves else max(moves.values(), default=0.0),
        "cascade_s": sum((c["end"] - c["start"]) / 1000 for c in result.cascades),
        "cascades": len(result.cascades),
        "margin_liquidated_usd": mit.get("margin_liquidated_usd", 0.0),
        "injector_loss_usd": round(max(-mit.get("injector_pnl_usd", 0.0), 0.0), 2),
        "tripped_s": mit.get("tripped_s", 0),
    }


def run_lab(
    scenarios: Sequence[str],
    seeds: Sequence[int],
    levers: Sequence[Mitigation],
    duration_s: float | None = None,
    progress: Callable[[str], None] | None = None,
) -> list[dict]:
    """Run every scenario and seed without a lever and with each of ``levers``; one dict per run
    ``{"scenario", "seed", "lever", **metrics}`` (lever ``"none"`` first), in that order.
    ``progress`` gets one line per run."""
    plan = [(name, seed, m) for name in scenarios for seed in seeds for m in (None, *levers)]
    rows = []
    for i, (name, seed, m) in enumerate(plan, 1):
        sc = SCENARIOS[name].with_mitigation(m)
        wall = time.perf_counter()
        result = simulate(sc, seed, duration_s, None)
        lever = m.label if m is not None else "none"
        metrics = run_metrics(result)
        rows.append({"scenario": name, "seed": seed, "lever": lever, **metrics})
        if progress is not None:
            progress(
                f"mitigate {i}/{len(plan)}: {name} seed={seed} {lever}: forced "
                f"{metrics['forced_usd'] / 1e6:.1f} M$ ({time.perf_counter() - wall:.1f} s)"
            )
    return rows


def summarize(rows: list[dict]) -> list[dict]:
    """Per (scenario, lever), in the rows' order: ``{"scenario", "lever", "seeds", metric:
    {"mean", "sd"}, ..., "forced_vs_none": mean over seeds of forced / forced without a lever - 1}``
    (``None`` when a seed had no forced notional without it)."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for row in rows:
        groups.setdefault((row["scenario"], row["lever"]), []).append(row)
    base = {(r["scenario"], r["seed"]): r["forced_usd"] for r in rows if r["lever"] == "none"}
    out = []
    for (name, lever), runs in groups.items():
        entry: dict = {"scenario": name, "lever": lever, "seeds": len(runs)}
        for metric in METRICS:
            values = [float(r[metric]) for r in runs]
            sd = statistics.stdev(values) if len(values) > 1 else 0.0
            entry[metric] = {"mean": round(statistics.fmean(values), 2), "sd": round(sd, 2)}
        ratios = [r["forced_usd"] / base[(name, r["seed"])] - 1.0 for r in runs if base.get((name, r["seed"]))]
        entry["forced_vs_none"] = round(statistics.fmean(ratios), 4) if len(ratios) == len(runs) else None
        out.append(entry)
    return out
