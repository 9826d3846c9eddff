"""``cascadewatch train``: pre-train the cascade classifier from recordings.

Each recording is replayed through the same dataflow as ``replay`` (one worker, in this
process). Every asset-second the detectors hand over, per direction, the classifier's
feature vector and the structural estimate (:class:`cascadewatch.pipelines.steps.asset_detectors.AssetDetectors`,
``on_sample``); nothing of the truth enters the replay. Labels, per sample at second ``t``:
a cascade of that asset and direction is ahead or still falling, ``start - horizon_s <= t <
peak`` (:func:`label_samples`), with the cascades

- of the truth file given for that recording (``--truth``, the simulator's: the label
  definition of :mod:`cascadewatch.detectors.labels` applied to every liquidation, published or not), or
- without ``--truth``, of the online labeller (the same definition applied to the
  liquidations the venues published), as the live flow labels its own samples.

Seconds after a cascade's bottom (``peak`` to ``end``) are left out (see :func:`label_samples`).
Both directions are fitted as one model (the features are defined relative to the
direction: the crowd a move in that direction liquidates, the book in front of it), by
:meth:`cascadewatch.detectors.probability.CascadeProbability.fit`, and each direction gets a copy. The
file (:mod:`cascadewatch.pipelines.model_file`) is loaded by ``[detectors] model = "path"``.
"""

from __future__ import annotations

import copy
import math
import sys
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import msgspec

from cascadewatch.detectors.evidence import DEFAULT_CAP, DEFAULT_L2
from cascadewatch.detectors.probability import DEFAULT_FEATURES, CascadeProbability
from cascadewatch.pipelines.config import Config
from cascadewatch.pipelines.evaluation.evaluate import read_jsonl
from cascadewatch.pipelines.model_file import NO_MODEL, save_model
from cascadewatch.pipelines.run.replay import ReplayOptions, run_replay

__all__ = ["DEFAULT_CAP", "DEFAULT_FEATURES", "DEFAULT_L2", "collect_samples", "label_samples", "train"]

Sample = tuple[str, str, float, tuple[float, ...], float]
"""``(asset, direction, t, feature values in the order of the feature list, p_struct)``."""


def collect_samples(
    recording: Path, config: Config, features: Sequence[str]
) -> tuple[list[Sample], list[dict[str, Any]]]:
    """Replay ``recording`` (without a model: the features do not depend on one); its classifier
    samples (time order) and the online labeller's cascades."""
    config = msgspec.structs.replace(config, detectors=msgspec.structs.replace(config.detectors, model=NO_MODEL))
    samples: list[Sample] = []
    cascades: list[dict[str, Any]] = []
    names = tuple(features)

    def on_sample(item: dict[str, Any]) -> None:
        if item.get("type") == "sample":
            x = item["x"]
            samples.append(
                (
                    item["asset"],
                    item["direction"],
                    float(item["t"]),
                    tuple(float(x.get(n, 0.0)) for n in names if n != "logit_struct"),
                    float(item["p_struct"]),
                )
            )
        elif item.get("type") == "cascade":
            cascades.append(item)

    run_replay([recording], config, ReplayOptions(on_sample=on_sample))
    return samples, cascades


def label_samples(samples: Sequence[Sample], cascades: Sequence[dict[str, Any]], horizon_s: float) -> list[bool | None]:
    """The training label of each sample at second ``t``, from the cascades of its asset and direction.

    ``True`` when a cascade is ahead or still falling: ``start - horizon_s <= t < peak`` for one
    of them (the window in which ``evaluate`` counts a trigger as a catch, so the first seconds
    of a cascade, before its bottom, teach the model as much as the minutes before it);
    ``None`` after the bottom, ``peak <= t <= end`` (a trigger there is neither a catch nor a
    false alarm: the sample is left out of the fit); ``False`` otherwise.

    >>> c = {"asset": "A", "direction": "down", "start": 400_000, "peak": 410_000, "end": 430_000}
    >>> [label_samples([("A", "down", t, (), 0.0)], [c], 300.0)[0] for t in (99.0, 100.0, 409.0, 410.0, 431.0)]
    [False, True, True, None, False]
    """
    spans: dict[tuple[str, str], list[tuple[float, float, float]]] = defaultdict(list)
    for c in cascades:
        if c.get("type", "cascade") == "cascade":
            spans[(c["asset"], c["direction"])].append(
                (int(c["start"]) / 1000.0, int(c["peak"]) / 1000.0, int(c["end"]) / 1000.0)
            )
    out: list[bool | None] = []
    for asset, direction, t, _, _ in samples:
        label: bool | None = False
        for start, peak, end in spans.get((asset, direction), ()):
            if start - horizon_s <= t < peak:
                label = True
                break
            if peak <= t <= end:
                label = None
        out.append(label)
    return out


def train(
    recordings: Sequence[Path],
    truths: Sequence[Path] | None,
    config: Config,
    out: Path,
    features: Sequence[str] = DEFAULT_FEATURES,
    l2: float = DEFAULT_L2,
    cap: float = DEFAULT_CAP,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Replay, label, fit (penalty ``l2``, family evidence capped at ``cap`` log-odds: see
    :mod:`cascadewatch.detectors.evidence`) and write the model file ``out``; returns its ``info``."""
    if truths is not None and len(truths) != len(recordings):
        raise ValueError(f"{len(recordings)} recordings but {len(truths)} truth files: give one --truth per recording")
    log = log or (lambda line: print(line, file=sys.stderr))
    horizon = float(config.detectors.horizon_s)
    names = tuple(features)
    value_names = tuple(n for n in names if n != "logit_struct")
    xs: list[dict[str, float]] = []
    ys: list[bool] = []
    structural: list[float] = []
    per_recording = []
    for i, recording in enumerate(recordings):
        samples, online = collect_samples(Path(recording), config, names)
        cascades = (
            [c for c in read_jsonl(Path(truths[i])) if c.get("type") == "cascade"] if truths is not None else online
        )
        labels = label_samples(samples, cascades, horizon)
        kept = [(sample, y) for sample, y in zip(samples, labels, strict=True) if y is not None]
        for (_, _, _, values, p_struct), y in kept:
            xs.append(dict(zip(value_names, values, strict=True)))
            ys.append(bool(y))
            structural.append(p_struct)
        positives = sum(1 for _, y in kept if y)
        per_recording.append(
            {"recording": str(recording), "samples": len(kept), "positives": positives, "cascades": len(cascades)}
        )
        log(f"{recording}: {len(kept)} samples, {positives} positive, {len(cascades)} cascades")
    if not xs or not any(ys) or all(ys):
        raise ValueError("training needs samples of both classes: recordings with and without a cascade ahead")
    model = CascadeProbability(horizon_s=horizon, features=names)
    fit = model.fit(xs, ys, structural, l2=l2, cap=cap)
    info = {
        "recordings": per_recording,
        "labels": "truth" if truths is not None else "online",
        "features": list(names),
        "l2": l2,
        "cap": cap if math.isfinite(cap) else None,
        "fit": fit,
    }
    save_model(out, {"down": model, "up": copy.deepcopy(model)}, horizon, info)
    log(
        f"fitted on {int(fit['n'])} samples (base rate {fit['base_rate']:.4f}): log loss {fit['logloss']:.4f}, "
        f"Brier {fit['brier']:.4f} in sample -> {out}"
    )
    return info
