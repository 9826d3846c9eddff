"""A pre-trained cascade classifier on disk: what ``cascadewatch train`` writes and the flow loads.

The file is JSON, numbers and names only (loading it runs no code and imports neither river nor
scipy)::

    {"format": "cascadewatch-cascade-model", "version": 2, "horizon_s": H, "features": [...],
     "models": {"down": CLASSIFIER, "up": CLASSIFIER},
     "info": {...}}            # how it was trained: recordings, labels, fit scores

    CLASSIFIER = {"settings": {...},              # CascadeProbability's constructor keywords
                  "labels": N, "positives": N,    # the labels it was fitted on
                  "fitted": {"names": [...], "families": [...], "mean": [...], "sd": [...],
                             "weights": [...], "cap": C, "scale": A, "intercept": C0, "z_max": Z}}

``fitted`` is the frozen :class:`cascadewatch.detectors.evidence.EvidenceModel` (``cap`` ``null``
when unbounded); floats are written as Python's shortest repr, which reads back to the same
bits, so a loaded classifier predicts exactly as the one that was saved. Only fitted classifiers
are saved (their progressive scores and pending samples are not).

``[detectors] model = "path"`` makes every asset start from a copy of these classifiers
(:class:`cascadewatch.detectors.probability.CascadeProbability`; a fitted one is frozen). Without
``[detectors] model`` the model shipped in the package is loaded (:func:`bundled_model_path`,
``pipelines/data/model/cascade-model.json``, made by ``make model``, described by the
``manifest.json`` beside it); ``model = "none"`` runs without one (the structural estimate, then
an online classifier learning from the stream's own labels). A model's *version*
(:func:`model_version`) is the first 12 hex digits of the SHA-256 of its file; alerts and
snapshots carry it.

Model files of version 1 (a pickle of the same dict with ``CascadeProbability`` objects as
``models``, written up to this format) still load; a pickle runs code when loaded (load only files
you made or trust) and loading one imports river. Those of release 0.1.0 pickled
``detectors.probability.CascadeProbability``: :class:`_ModelUnpickler` maps the old top-level
module paths onto ``cascadewatch.*``.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import io
import json
import math
import os
import pickle
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # numpy (and the detectors) load only when a model is loaded or checked (CLI start-up)
    from cascadewatch.detectors.evidence import EvidenceModel
    from cascadewatch.detectors.probability import CascadeProbability

__all__ = [
    "FORMAT",
    "NO_MODEL",
    "VERSION",
    "bundled_model_path",
    "load_model",
    "model_classifiers",
    "model_version",
    "resolve_model",
    "save_model",
]

NO_MODEL = "none"
"""``[detectors] model = "none"``: no pre-trained model."""

FORMAT = "cascadewatch-cascade-model"
VERSION = 2
PICKLE_VERSION = 1
"""The version of the pickled model files this cascadewatch still reads."""
DIRECTIONS = ("down", "up")


def save_model(path: str | Path, models: dict[str, CascadeProbability], horizon_s: float, info: dict[str, Any]) -> None:
    """Write ``models`` (one fitted classifier per direction) to ``path`` as JSON, atomically.

    ``info`` must be JSON (finite numbers). Raises ``ValueError`` for a classifier that is not fitted.
    """
    path = Path(path)
    features = sorted({name for m in models.values() for name in (m.features or ())})
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "horizon_s": float(horizon_s),
        "features": features,
        "models": {d: _classifier_json(d, models[d]) for d in DIRECTIONS},
        "info": info,
    }
    text = json.dumps(payload, indent=1, allow_nan=False) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = path.with_name(path.name + ".tmp")
    scratch.write_text(text)
    os.replace(scratch, path)


def _classifier_json(direction: str, model: CascadeProbability) -> dict[str, Any]:
    if model.fitted is None:
        raise ValueError(f"the {direction} classifier is not fitted: a model file holds fitted classifiers only")
    fitted = {f.name: getattr(model.fitted, f.name) for f in dataclasses.fields(model.fitted)}
    fitted = {k: list(v) if isinstance(v, tuple) else v for k, v in fitted.items()}
    fitted["cap"] = fitted["cap"] if math.isfinite(fitted["cap"]) else None
    return {"settings": model.settings(), "labels": model.labels, "positives": model.positives, "fitted": fitted}


def bundled_model_path() -> Path:
    """The model shipped in the package: ``pipelines/data/model/cascade-model.json``."""
    return Path(str(resources.files("cascadewatch.pipelines") / "data" / "model" / "cascade-model.json"))


def resolve_model(model: str | None) -> Path | None:
    """The model file ``[detectors] model`` names: ``None`` the bundled one, ``"none"`` no model."""
    if model is None:
        return bundled_model_path()
    if model == NO_MODEL:
        return None
    return Path(model)


def model_version(path: str | Path) -> str:
    """First 12 hex digits of the SHA-256 of the model file's bytes."""
    path = Path(path)
    stat = path.stat()
    return hashlib.sha256(_read(str(path), stat.st_mtime_ns, stat.st_size)).hexdigest()[:12]


def _check_manifest(path: Path, data: bytes) -> None:
    """A ``manifest.json`` beside the file must name its SHA-256 (a corrupt or swapped file fails)."""
    manifest = path.with_name("manifest.json")
    if not manifest.exists():
        return
    try:
        want = json.loads(manifest.read_text())["sha256"]
    except (ValueError, KeyError, TypeError):
        raise ValueError(f"{manifest}: not a model manifest (no sha256)") from None
    if hashlib.sha256(data).hexdigest() != want:
        raise ValueError(f"{path}: content does not match the sha256 of {manifest.name} (corrupt or replaced)")


def load_model(path: str | Path) -> dict[str, Any]:
    """Read and check a model file; a fresh copy of its classifiers at every call."""
    path = Path(path)
    try:
        stat = path.stat()
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: model file not found (cascadewatch train writes one)") from None
    data = _read(str(path), stat.st_mtime_ns, stat.st_size)
    _check_manifest(path, data)
    pickled = data[:1] == b"\x80"  # every pickle protocol since 2 starts with PROTO
    try:
        payload = _ModelUnpickler(io.BytesIO(data)).load() if pickled else json.loads(data)
    except (pickle.UnpicklingError, EOFError, AttributeError, ImportError, IndexError, TypeError, ValueError) as exc:
        raise ValueError(f"{path}: not a readable cascadewatch model file ({type(exc).__name__})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"{path}: not a cascadewatch model file")
    if payload.get("version") != (PICKLE_VERSION if pickled else VERSION):
        raise ValueError(
            f"{path}: model format version {payload.get('version')}, this cascadewatch reads "
            f"{VERSION} (JSON) and {PICKLE_VERSION} (pickle)"
        )
    if pickled:
        return _check_pickled(path, payload)
    try:
        models = {d: _classifier(payload["models"][d]) for d in DIRECTIONS}
        horizon_s = float(payload["horizon_s"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(
            f"{path}: a model file needs one fitted classifier per direction (down, up): {exc!r}"
        ) from None
    return {**payload, "horizon_s": horizon_s, "models": models}


def _check_pickled(path: Path, payload: dict[str, Any]) -> dict[str, Any]:
    from cascadewatch.detectors.probability import CascadeProbability

    models = payload.get("models", {})
    if set(models) != set(DIRECTIONS) or not all(isinstance(m, CascadeProbability) for m in models.values()):
        raise ValueError(f"{path}: a model file needs one CascadeProbability per direction (down, up)")
    return payload


def _classifier(raw: dict[str, Any]) -> CascadeProbability:
    """A fitted classifier from its JSON form (:func:`save_model`); ``KeyError``, ``TypeError`` or
    ``ValueError`` for anything else."""
    from cascadewatch.detectors.probability import CascadeProbability

    if set(raw) != {"settings", "labels", "positives", "fitted"}:
        raise ValueError(f"classifier keys {sorted(raw)}")
    settings = raw["settings"]
    features = settings["features"]
    if features is not None and not _all_str(features):
        raise TypeError("features must be names")
    model = CascadeProbability(**settings)
    model.fitted = _evidence_model(raw["fitted"])
    model.labels = _count(raw["labels"])
    model.positives = _count(raw["positives"])
    return model


def _evidence_model(raw: dict[str, Any]) -> EvidenceModel:
    from cascadewatch.detectors.evidence import EvidenceModel

    if set(raw) != {f.name for f in dataclasses.fields(EvidenceModel)}:
        raise ValueError(f"fitted keys {sorted(raw)}")
    k = len(raw["names"])
    if not (_all_str(raw["names"]) and _all_str(raw["families"]) and len(raw["families"]) == k):
        raise TypeError("names and families must be as many names")
    vectors = [raw["mean"], raw["sd"], raw["weights"]]
    if not all(isinstance(v, list) and len(v) == k and all(map(_is_number, v)) for v in vectors):
        raise TypeError("mean, sd and weights must be one number per feature")
    cap = raw["cap"]
    if not (all(_is_number(raw[n]) for n in ("scale", "intercept", "z_max")) and (cap is None or _is_number(cap))):
        raise TypeError("cap, scale, intercept and z_max must be numbers")
    mean, sd, weights = (tuple(float(x) for x in v) for v in vectors)
    return EvidenceModel(
        tuple(raw["names"]),
        tuple(raw["families"]),
        mean,
        sd,
        weights,
        cap=math.inf if cap is None else float(cap),
        scale=float(raw["scale"]),
        intercept=float(raw["intercept"]),
        z_max=float(raw["z_max"]),
    )


def _all_str(values: Any) -> bool:
    return isinstance(values, list) and all(isinstance(v, str) for v in values)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _count(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise TypeError("labels and positives must be counts")
    return value


def model_classifiers(
    path: str | Path,
    horizon_s: float,
    crowding_windows_s: tuple[int, ...] = (60, 300, 900),
    precursor_windows_s: tuple[int, ...] = (60, 300),
) -> dict[str, CascadeProbability]:
    """The per-direction classifiers of the model file at ``path``, checked against ``horizon_s``
    and against the features the detectors give (crowding windows ``crowding_windows_s``,
    precursor windows ``precursor_windows_s``)."""
    from cascadewatch.detectors.probability import feature_names

    payload = load_model(path)
    if float(payload["horizon_s"]) != float(horizon_s):
        raise ValueError(
            f"{path}: model trained for a {payload['horizon_s']:g} s horizon, the config says {horizon_s:g} s"
        )
    known = feature_names(crowding_windows_s, precursor_windows_s)
    unknown = sorted({n for m in payload["models"].values() for n in (m.features or ()) if n not in known})
    if unknown:
        raise ValueError(f"{path}: model uses features these detectors do not give: {', '.join(unknown)}")
    return dict(payload["models"])


LEGACY_PACKAGES = ("connectors", "detectors", "pipelines")
"""Top-level packages of release 0.1.0, now ``cascadewatch.<name>``."""


class _ModelUnpickler(pickle.Unpickler):
    """Unpickler that maps 0.1.0's top-level ``detectors.*`` (and siblings) to ``cascadewatch.*``."""

    def find_class(self, module: str, name: str) -> Any:
        if module.split(".", 1)[0] in LEGACY_PACKAGES:
            module = "cascadewatch." + module
        return super().find_class(module, name)


@functools.lru_cache(maxsize=8)
def _read(path: str, mtime_ns: int, size: int) -> bytes:
    """The file's bytes, read once per version of the file (every asset loads its own copy)."""
    return Path(path).read_bytes()
