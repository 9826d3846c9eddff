"""``make model``: the model shipped in the package, trained on a randomized simulated corpus.

    python -m cascadewatch.pipelines.evaluation.default_model [--dir .corpus] [--workers 2]

Simulates seeds :data:`TRAIN_SEEDS` of every scenario family
(:func:`cascadewatch.pipelines.evaluation.corpus.event_families`, each seed its own market) and
calm days :data:`TRAIN_CALM_SEEDS`, replays them, labels every asset-second per direction from
the truth (a cascade starts within the horizon) and fits the classifier
(:mod:`cascadewatch.detectors.evidence`: L2 :data:`~cascadewatch.pipelines.evaluation.train.DEFAULT_L2`,
family cap :data:`~cascadewatch.pipelines.evaluation.train.DEFAULT_CAP`) on the default features.
Writes ``pipelines/data/model/cascade-model.json`` and ``manifest.json`` (simulator version,
families, seeds, features, training metrics, the file's SHA-256). Recordings are kept in
``--dir`` and not simulated again. Deterministic: the same code gives the same bytes.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import math
import sys
import time
from importlib import metadata, resources
from pathlib import Path
from typing import Any

from cascadewatch.detectors.probability import DEFAULT_FEATURES
from cascadewatch.pipelines.config import Config
from cascadewatch.pipelines.evaluation.corpus import (
    collect_runs,
    event_families,
    feature_order,
    fit_runs,
    make_runs,
    simulate_runs,
)
from cascadewatch.pipelines.evaluation.train import DEFAULT_CAP, DEFAULT_L2
from cascadewatch.pipelines.model_file import save_model

__all__ = ["TRAIN_CALM_SEEDS", "TRAIN_SEEDS", "build_default_model", "simulator_version"]

TRAIN_SEEDS: tuple[int, ...] = tuple(range(1, 9))
"""Seeds of every event family in the training corpus (held-out evaluation uses 101 and up)."""
TRAIN_CALM_SEEDS: tuple[int, ...] = (1, 2, 3, 4)
"""Calm days in the training corpus."""
CALM_S = 86_400.0


def simulator_version() -> str:
    """``<package version>+<first 12 hex of the SHA-256 of the simulator's sources>``."""
    digest = hashlib.sha256()
    root = resources.files("cascadewatch.pipelines") / "simulate"
    for name in sorted(p.name for p in root.iterdir() if p.name.endswith(".py")):
        digest.update(name.encode() + b"\0" + (root / name).read_bytes())
    return f"{metadata.version('cascadewatch')}+{digest.hexdigest()[:12]}"


def build_default_model(
    corpus_dir: Path, out_dir: Path, *, workers: int = 2, seeds=TRAIN_SEEDS, calm_seeds=TRAIN_CALM_SEEDS, log=print
) -> dict:
    """Simulate, collect, fit and write the model and its manifest into ``out_dir``; returns the manifest."""
    started = time.monotonic()
    config = Config()
    horizon = float(config.detectors.horizon_s)
    families = event_families()
    runs = make_runs(corpus_dir, families, seeds, calm_seeds, CALM_S)
    simulate_runs(runs, workers, log=log)
    samples = collect_runs(runs, DEFAULT_FEATURES, config, workers, log=log)
    model, stats = fit_runs(samples, DEFAULT_FEATURES, horizon, l2=DEFAULT_L2, cap=DEFAULT_CAP)
    info: dict[str, Any] = {
        "recordings": [
            {
                "recording": s.run.recording.name,
                "samples": int(s.y.size),
                "positives": int(s.y.sum()),
                "cascades": s.cascades,
            }
            for s in samples
        ],
        "labels": "truth",
        "features": list(feature_order(DEFAULT_FEATURES)),
        "l2": DEFAULT_L2,
        "cap": DEFAULT_CAP if math.isfinite(DEFAULT_CAP) else None,
        "fit": stats,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "cascade-model.json"
    save_model(path, {"down": model, "up": copy.deepcopy(model)}, horizon, info)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    manifest: dict[str, Any] = {
        "file": path.name,
        "sha256": digest,
        "version": digest[:12],
        "simulator": simulator_version(),
        "families": list(families),
        "seeds": list(seeds),
        "calm_seeds": list(calm_seeds),
        "calm_day_s": CALM_S,
        "horizon_s": horizon,
        "features": info["features"],
        "l2": DEFAULT_L2,
        "cap": info["cap"],
        "training": {
            "samples": int(stats["n"]),
            "positives": sum(r["positives"] for r in info["recordings"]),
            "cascades": sum(r["cascades"] for r in info["recordings"]),
            "base_rate": round(stats["base_rate"], 6),
            "logloss": round(stats["logloss"], 6),
            "brier": round(stats["brier"], 6),
        },
        "command": "make model",
    }
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    log(
        f"model {digest[:12]}: {manifest['training']['samples']} samples, {manifest['training']['cascades']} cascades, "
        f"Brier {stats['brier']:.5f} (base rate {stats['base_rate']:.5f}) in sample, "
        f"{time.monotonic() - started:.0f} s -> {path}"
    )
    return manifest


def main(argv: list[str] | None = None) -> int:
    """``make model`` (module docstring)."""
    parser = argparse.ArgumentParser(prog="python -m cascadewatch.pipelines.evaluation.default_model")
    parser.add_argument("--dir", type=Path, default=Path(".corpus"), help="recordings of the corpus (kept)")
    parser.add_argument(
        "--out",
        type=Path,
        default=Path(str(resources.files("cascadewatch.pipelines") / "data" / "model")),
        help="where the model and manifest go (default: the package's data/model)",
    )
    parser.add_argument("--workers", type=int, default=2, help="processes (default 2)")
    args = parser.parse_args(argv)
    build_default_model(args.dir, args.out, workers=args.workers, log=lambda line: print(line, file=sys.stderr))
    return 0


if __name__ == "__main__":
    sys.exit(main())
