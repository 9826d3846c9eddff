"""``make quality``: detection quality on families, seeds and calm days the model was not trained on.

    python -m cascadewatch.pipelines.evaluation.quality [--dir .corpus] [--workers 2] [--json F]

Three measurements, every one with the shipped defaults (no config file) except the model:

- *leave one family out*: for each scenario family ``F``, a model trained exactly as ``make
  model`` trains the shipped one (same seeds, calm days, features, penalty, cap) but **without**
  ``F``, evaluated on every seed of ``F`` (training seeds :data:`default_model.TRAIN_SEEDS` and
  held-out seeds :data:`HELD_OUT_SEEDS`: none of them was seen by that model);
- *held-out seeds*: the shipped model on seeds :data:`HELD_OUT_SEEDS` of every family;
- *held-out calm days*: the shipped model on calm days :data:`HELD_OUT_CALM_SEEDS`.

Scores are those of ``cascadewatch evaluate`` (:mod:`cascadewatch.pipelines.evaluation.scoring`).
Prints two Markdown tables, detection quality (README, "Detection quality") and the liquidation
map's error per family on the held-out seeds (README, "Liquidation map"), and, with ``--json``,
writes every result.
"""

from __future__ import annotations

import argparse
import copy
import json
import multiprocessing
import sys
import tempfile
from pathlib import Path
from typing import Any

import msgspec

from cascadewatch.detectors.probability import DEFAULT_FEATURES
from cascadewatch.pipelines.config import Config, check_model
from cascadewatch.pipelines.evaluation.corpus import (
    CALM,
    Run,
    collect_runs,
    event_families,
    fit_runs,
    make_runs,
    simulate_runs,
)
from cascadewatch.pipelines.evaluation.default_model import CALM_S, TRAIN_CALM_SEEDS, TRAIN_SEEDS
from cascadewatch.pipelines.evaluation.evaluate import evaluate
from cascadewatch.pipelines.evaluation.train import DEFAULT_CAP, DEFAULT_L2
from cascadewatch.pipelines.model_file import save_model

__all__ = ["HELD_OUT_CALM_SEEDS", "HELD_OUT_SEEDS", "map_table", "markdown_table", "measure"]

HELD_OUT_SEEDS: tuple[int, ...] = (101, 102, 103)
HELD_OUT_CALM_SEEDS: tuple[int, ...] = (101, 102)
HELD_OUT_ROW = "held-out seeds, all families"
CALM_ROW = "held-out calm days"
HELD_OUT_LABEL = "seeds " + ", ".join(map(str, HELD_OUT_SEEDS))


def _evaluate(job: tuple[str, list[Run], str | None]) -> tuple[str, dict[str, Any]]:
    """Evaluate one row's runs; the shipped model's rows (no model given) also per family."""
    name, runs, model = job
    config = Config()
    if model is not None:
        config = msgspec.structs.replace(config, detectors=msgspec.structs.replace(config.detectors, model=model))
    result = evaluate([r.recording for r in runs], [r.truth for r in runs], config, by_family=model is None)
    result.pop("map", None)
    for scored in (result, *result.get("families", {}).values()):
        for d in ("overall", "down", "up"):
            scored[d].pop("reliability", None)
    return name, result


def measure(corpus_dir: Path, workers: int = 2, log=print) -> dict[str, dict[str, Any]]:
    """Simulate what is missing, train the leave-one-family-out models, evaluate; results by row name."""
    check_model(Config(), "default configuration")
    families = event_families()
    train = make_runs(corpus_dir, families, TRAIN_SEEDS, TRAIN_CALM_SEEDS, CALM_S)
    held = make_runs(corpus_dir, families, HELD_OUT_SEEDS, HELD_OUT_CALM_SEEDS, CALM_S)
    simulate_runs(train + held, workers, log=log)
    samples = collect_runs(train, DEFAULT_FEATURES, Config(), workers, log=log)
    horizon = float(Config().detectors.horizon_s)
    jobs: list[tuple[str, list[Run], str | None]] = []
    with tempfile.TemporaryDirectory(prefix="cascadewatch-quality-") as scratch:
        for family in families:
            model, _ = fit_runs(
                [s for s in samples if s.run.family != family],
                DEFAULT_FEATURES,
                horizon,
                l2=DEFAULT_L2,
                cap=DEFAULT_CAP,
            )
            path = Path(scratch) / f"without-{family}.json"
            save_model(path, {"down": model, "up": copy.deepcopy(model)}, horizon, {"without": family})
            unseen = [r for r in train + held if r.family == family]
            jobs.append((f"{family} (left out)", unseen, str(path)))
        jobs.append((HELD_OUT_ROW, [r for r in held if r.family != CALM], None))
        jobs.append((CALM_ROW, [r for r in held if r.family == CALM], None))
        with multiprocessing.get_context("fork").Pool(workers) as pool:  # the calm days, longest, first
            results = dict(pool.imap_unordered(_evaluate, jobs[::-1]))
    for name, _, _ in jobs:
        log(f"{name}: {json.dumps(_row(results[name]))}")
    return {name: results[name] for name, _, _ in jobs}


def _fmt(x: Any, spec: str) -> str:
    return "–" if x is None else format(x, spec)


def _row(result: dict[str, Any]) -> dict[str, Any]:
    o, down, up = result["overall"], result["down"], result["up"]
    return {
        "cascades": o["cascades"],
        "caught": o["caught"],
        "recall": o["recall"],
        "lead_median_s": o["lead_s"]["median"],
        "lead_p10_s": o["lead_s"]["p10"],
        "false_alarms": o["false_alarms"],
        "days": o["days"],
        "false_alarms_per_day": o["false_alarms_per_day"],
        "page_lead_median_s": o["pages"]["lead_s"]["median"],
        "false_pages_per_day": o["pages"]["false_per_day"],
        "brier": [o["brier"], down["brier"], up["brier"]],
        "brier_base_rate": [o["brier_base_rate"], down["brier_base_rate"], up["brier_base_rate"]],
    }


def markdown_table(results: dict[str, dict[str, Any]]) -> str:
    """One row per measurement: cascades, caught, recall, lead median and p10, false alarms (per
    day), the pages' (critical alerts') lead median and false pages per day, Brier against the
    base rate overall / down / up."""
    lines = [
        "| evaluated on | cascades | caught | recall | lead median (s) | lead p10 (s) | false alarms | days "
        "| false / day | page lead (s) | false pages / day | Brier (base rate): all · down · up |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|",
    ]
    for name, result in results.items():
        r = _row(result)
        brier = " · ".join(
            f"{_fmt(b, '.4f')} ({_fmt(base, '.4f')})" for b, base in zip(r["brier"], r["brier_base_rate"], strict=True)
        )
        lead = f"{_fmt(r['lead_median_s'], '.0f')} | {_fmt(r['lead_p10_s'], '.0f')}"
        lines.append(
            f"| {name} | {r['cascades']} | {r['caught']} | {_fmt(r['recall'], '.2f')} | {lead} "
            f"| {r['false_alarms']} | {_fmt(r['days'], '.2f')} | {_fmt(r['false_alarms_per_day'], '.1f')} "
            f"| {_fmt(r['page_lead_median_s'], '.0f')} | {_fmt(r['false_pages_per_day'], '.1f')} | {brier} |"
        )
    return "\n".join(lines)


def map_table(results: dict[str, dict[str, Any]]) -> str:
    """The liquidation map's error with the shipped defaults (README, "Liquidation map"): per
    family on the held-out seeds, on the held-out calm days, and all held-out seeds pooled; both
    directions pooled (:func:`cascadewatch.pipelines.evaluation.scoring.map_summary_error_runs`):
    truth lines compared, median |log2(estimated / true at-risk notional)|, median and mean error
    of the nearest dense cluster (bps), and the lines where only the estimate (spurious) or only
    the truth (missed) has one."""
    held, calm = results[HELD_OUT_ROW], results[CALM_ROW]
    rows = [(f"{name} ({HELD_OUT_LABEL})", family["map_pooled"]) for name, family in held.get("families", {}).items()]
    rows += [(f"all families ({HELD_OUT_LABEL})", held["map_pooled"]), (CALM_ROW, calm["map_pooled"])]
    lines = [
        "| evaluated on | lines | \\|log2 at-risk\\| median | cluster error median (bps) | mean (bps) "
        "| spurious | missed |",
        "|---|--:|--:|--:|--:|--:|--:|",
    ]
    for name, pooled in rows:
        o = pooled["overall"]
        lines.append(
            f"| {name} | {o['n']} | {_fmt(o['at_risk_abs_log2_ratio_median'], '.2f')} "
            f"| {_fmt(o['cluster_error_bps_median'], '.0f')} | {_fmt(o['cluster_error_bps_mean'], '.0f')} "
            f"| {o['cluster_spurious']} | {o['cluster_missed']} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """``make quality`` (module docstring)."""
    parser = argparse.ArgumentParser(prog="python -m cascadewatch.pipelines.evaluation.quality")
    parser.add_argument("--dir", type=Path, default=Path(".corpus"), help="recordings of the corpus (kept)")
    parser.add_argument("--workers", type=int, default=2, help="processes (default 2)")
    parser.add_argument("--json", type=Path, help="write every result here")
    args = parser.parse_args(argv)
    results = measure(args.dir, args.workers, log=lambda line: print(line, file=sys.stderr))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")
    print(markdown_table(results))
    print()
    print(map_table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
