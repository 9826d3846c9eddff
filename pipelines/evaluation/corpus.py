"""A simulated training and evaluation corpus: many seeds of every scenario family, calm days.

A *family* is a scenario of :data:`cascadewatch.pipelines.simulate.SCENARIOS` (every one but
``calm``, whose seeds are the calm days). Each seed is its own market (the simulator draws the
market from the seed). :func:`simulate_runs` writes ``<family>-<seed>.rec.zst`` and
``<family>-<seed>.truth.jsonl`` into a directory, skipping runs already there (same arguments,
same bytes), in ``workers`` processes. :func:`collect_runs` replays them (no model: the features
do not depend on it) and labels every asset-second per direction from the truth, as
``cascadewatch train`` does, returning a feature matrix per run. The matrix is kept beside the
recording (``<family>-<seed>.samples.npz``) under a key that hashes the code that computes
features (:func:`samples_key`), the configuration and the feature list, so ``make quality``
after ``make model`` does not replay the training runs again, and any change of that code or
configuration replays them.
"""

from __future__ import annotations

import contextlib
import hashlib
import multiprocessing
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

import msgspec
import numpy as np

from cascadewatch.detectors.probability import CascadeProbability
from cascadewatch.pipelines.config import Config
from cascadewatch.pipelines.evaluation.evaluate import read_jsonl
from cascadewatch.pipelines.evaluation.train import collect_samples, label_samples
from cascadewatch.pipelines.simulate import SCENARIOS, simulate

SAMPLES_CODE = (
    ("cascadewatch.connectors", ""),
    ("cascadewatch.detectors", ""),
    ("cascadewatch.pipelines", "steps"),
    ("cascadewatch.pipelines", "run"),
    ("cascadewatch.pipelines", "flow.py"),
    ("cascadewatch.pipelines", "config.py"),
    ("cascadewatch.pipelines", "model_file.py"),
    ("cascadewatch.pipelines", "evaluation/train.py"),
)
"""The sources that compute and label the features (package, path in it: a folder or a file),
hashed into the samples key."""

__all__ = [
    "CALM",
    "Run",
    "RunSamples",
    "collect_runs",
    "event_families",
    "feature_order",
    "fit_runs",
    "make_runs",
    "simulate_runs",
]

CALM = "calm"


def event_families() -> tuple[str, ...]:
    """Every scenario but ``calm``, sorted."""
    return tuple(sorted(name for name in SCENARIOS if name != CALM))


@dataclass(frozen=True, slots=True)
class Run:
    """One simulated run: its family (scenario), seed, duration (``None``: the scenario's) and files."""

    family: str
    seed: int
    duration_s: float | None
    recording: Path
    truth: Path


def make_runs(
    directory: Path,
    families: Iterable[str],
    seeds: Iterable[int],
    calm_seeds: Iterable[int] = (),
    calm_s: float = 86_400.0,
) -> list[Run]:
    """Runs ``<family>-<seed>`` for every family and seed, then ``calm-<seed>`` of ``calm_s`` seconds."""
    directory = Path(directory)
    seeds = list(seeds)
    out = []
    for family in families:
        for seed in seeds:
            stem = directory / f"{family}-{seed}"
            out.append(Run(family, seed, None, stem.with_suffix(".rec.zst"), stem.with_suffix(".truth.jsonl")))
    for seed in calm_seeds:
        stem = directory / f"{CALM}-{seed}"
        out.append(Run(CALM, seed, calm_s, stem.with_suffix(".rec.zst"), stem.with_suffix(".truth.jsonl")))
    return out


def _simulate(run: Run) -> str:
    if not run.truth.exists():
        scratch = run.truth.with_name(run.truth.name + ".tmp")
        simulate(run.family, run.seed, run.duration_s, run.recording, scratch)
        scratch.replace(run.truth)  # the truth is written last: its presence marks a finished run
    return run.recording.name


def simulate_runs(runs: Sequence[Run], workers: int = 2, log=print) -> None:
    """Simulate the runs whose truth file is missing, in ``workers`` processes."""
    todo = sorted((r for r in runs if not r.truth.exists()), key=lambda r: -_duration(r))
    for r in todo:
        r.recording.parent.mkdir(parents=True, exist_ok=True)
    if workers <= 1:
        for name in map(_simulate, todo):
            log(f"simulated {name}")
        return
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        for name in pool.imap_unordered(_simulate, todo):
            log(f"simulated {name}")


@dataclass(frozen=True, slots=True)
class RunSamples:
    """The labelled samples of one run: ``X`` (rows in the order of ``features``), ``y``, its cascades."""

    run: Run
    X: np.ndarray
    y: np.ndarray
    cascades: int


def samples_key(features: Sequence[str], config_bytes: bytes) -> str:
    """SHA-256 (hex) of the sources that compute and label the features, the configuration
    (JSON) and the feature names: a kept samples file is used only under the same key."""
    digest = hashlib.sha256()
    for package, path in SAMPLES_CODE:
        entry = resources.files(package).joinpath(*[p for p in path.split("/") if p])
        for f in _sources(entry) if entry.is_dir() else [entry]:
            digest.update(f"{package}/{path}/{f.name}".encode() + b"\0" + f.read_bytes())
    digest.update(config_bytes + b"\0" + "\0".join(features).encode())
    return digest.hexdigest()


def _sources(folder: Traversable) -> list[Traversable]:
    out: list[Traversable] = []
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.is_dir() and entry.name != "__pycache__":
            out.extend(_sources(entry))
        elif entry.name.endswith(".py"):
            out.append(entry)
    return out


def _samples_path(run: Run) -> Path:
    return run.recording.with_name(run.recording.name.removesuffix(".rec.zst") + ".samples.npz")


def _collect(job: tuple[Run, tuple[str, ...], bytes, str]) -> RunSamples:
    run, features, config_bytes, key = job
    kept = _samples_path(run)
    if kept.exists():
        with np.load(kept) as z:
            if str(z["key"]) == key:
                return RunSamples(run, z["X"], z["y"], int(z["cascades"]))
    done = _replay_and_label(run, features, config_bytes)
    scratch = kept.with_name(kept.name + ".tmp.npz")
    np.savez(scratch, key=np.array(key), X=done.X, y=done.y, cascades=np.array(done.cascades))
    scratch.replace(kept)
    return done


def _replay_and_label(run: Run, features: tuple[str, ...], config_bytes: bytes) -> RunSamples:
    config = msgspec.json.decode(config_bytes, type=Config)
    samples, _ = collect_samples(run.recording, config, features)
    cascades = [c for c in read_jsonl(run.truth) if c.get("type") == "cascade"]
    labels = label_samples(samples, cascades, float(config.detectors.horizon_s))
    kept = [(sample, y) for sample, y in zip(samples, labels, strict=True) if y is not None]  # not after a bottom
    names = [n for n in features if n != "logit_struct"]
    X = np.array([s[3] for s, _ in kept], dtype=np.float64).reshape(len(kept), len(names))
    if "logit_struct" in features:  # the classifier's own input: logit of the structural estimate
        eps = 1e-6
        p = np.clip(np.array([s[4] for s, _ in kept], dtype=np.float64), eps, 1 - eps)
        X = np.column_stack([X, np.log(p / (1 - p))])
    return RunSamples(run, X, np.array([y for _, y in kept], dtype=bool), len(cascades))


def feature_order(features: Sequence[str]) -> tuple[str, ...]:
    """The column order of :class:`RunSamples` ``X``: ``features`` with ``logit_struct`` moved last."""
    names = tuple(n for n in features if n != "logit_struct")
    return names + (("logit_struct",) if "logit_struct" in features else ())


def collect_runs(
    runs: Sequence[Run], features: Sequence[str], config: Config, workers: int = 2, log=print
) -> list[RunSamples]:
    """Replay every run (with ``[detectors] model = "none"``) and label its samples from its truth."""
    detectors = msgspec.structs.replace(config.detectors, model="none")
    config_bytes = msgspec.json.encode(msgspec.structs.replace(config, detectors=detectors))
    # longest runs first, one at a time, so that the workers finish together; results in input order
    order = sorted(range(len(runs)), key=lambda i: (-_duration(runs[i]), i))
    key = samples_key(tuple(features), config_bytes)
    jobs = [(runs[i], tuple(features), config_bytes, key) for i in order]
    out: dict[int, RunSamples] = {}
    with contextlib.ExitStack() as stack:
        if workers <= 1:
            results: Iterable[RunSamples] = map(_collect, jobs)
        else:
            results = stack.enter_context(multiprocessing.get_context("fork").Pool(workers)).imap(_collect, jobs)
        for i, done in zip(order, results, strict=True):
            out[i] = done
            log(f"replayed {done.run.recording.name}: {done.y.size} samples, {int(done.y.sum())} positive")
    return [out[i] for i in range(len(runs))]


def _duration(run: Run) -> float:
    return run.duration_s if run.duration_s is not None else SCENARIOS[run.family].duration_s


def fit_runs(
    samples: Sequence[RunSamples], features: Sequence[str], horizon_s: float, *, l2: float, cap: float
) -> tuple[CascadeProbability, dict[str, float]]:
    """Fit one classifier (both directions pooled, as ``cascadewatch train``) on the runs' samples.

    The weights are fitted on every run; the calibration (:func:`cascadewatch.detectors.evidence.fit_evidence_model`,
    ``calibration``) on the calm days alone when there are any. A scenario run is drawn *because*
    it holds an event (a third of its seconds have a cascade ahead, against under 1 % of a real
    day's), so its rate is no prior for a market: like a case-control sample, it informs how much
    each mechanism matters, and the calm days, which hold their background of small cascades at
    their natural rate, set the level.
    """
    X = np.vstack([s.X for s in samples])
    y = np.concatenate([s.y for s in samples])
    if not y.any() or y.all():
        raise ValueError("training needs samples of both classes: runs with and without a cascade ahead")
    calm = [s for s in samples if s.run.family == CALM]
    calibration = None
    if calm:
        yc = np.concatenate([s.y for s in calm])
        if yc.any() and not yc.all():
            calibration = (np.vstack([s.X for s in calm]), yc)
    model = CascadeProbability(horizon_s=horizon_s, features=feature_order(features))
    stats = model.fit_matrix(X, y, feature_order(features), l2=l2, cap=cap, calibration=calibration)
    return model, stats
