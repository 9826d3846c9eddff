"""A pre-trained cascade classifier on disk: what ``cascadewatch train`` writes and the flow loads.

The file is a pickle of one dict::

    {"format": "cascadewatch-cascade-model", "version": 1, "horizon_s": H,
     "features": [...], "models": {"down": CascadeProbability, "up": CascadeProbability},
     "info": {...}}            # how it was trained: recordings, labels, fit scores

``[detectors] model = "path"`` makes every asset start from a copy of these classifiers
(:class:`cascadewatch.detectors.probability.CascadeProbability`; a fitted one is frozen). Without
``[detectors] model`` the model shipped in the package is loaded (:func:`bundled_model_path`,
``pipelines/data/model/cascade-model.pkl``, made by ``make model``, described by the
``manifest.json`` beside it); ``model = "none"`` runs without one (the structural estimate, then
an online classifier learning from the stream's own labels). A model's *version*
(:func:`model_version`) is the first 12 hex digits of the SHA-256 of its file; alerts and
snapshots carry it. A pickle runs code when loaded: load only model files you made or trust.

Model files written before the package moved under ``cascadewatch`` (release 0.1.0 pickled
``detectors.probability.CascadeProbability``) still load: :class:`_ModelUnpickler` maps the
old top-level module paths onto ``cascadewatch.*``.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import os
import pickle
from importlib import resources
from pathlib import Path
from typing import Any

from cascadewatch.detectors.probability import CascadeProbability, feature_names

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
VERSION = 1
DIRECTIONS = ("down", "up")


def save_model(path: str | Path, models: dict[str, CascadeProbability], horizon_s: float, info: dict[str, Any]) -> None:
    """Write ``models`` (one classifier per direction) to ``path``, atomically."""
    path = Path(path)
    features = sorted({name for m in models.values() for name in (m.features or ())})
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "horizon_s": float(horizon_s),
        "features": features,
        "models": {d: models[d] for d in DIRECTIONS},
        "info": info,
    }
    buffer = io.BytesIO()
    pickle.dump(payload, buffer, protocol=pickle.HIGHEST_PROTOCOL)
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = path.with_name(path.name + ".tmp")
    scratch.write_bytes(buffer.getvalue())
    os.replace(scratch, path)


def bundled_model_path() -> Path:
    """The model shipped in the package: ``pipelines/data/model/cascade-model.pkl``."""
    return Path(str(resources.files("cascadewatch.pipelines") / "data" / "model" / "cascade-model.pkl"))


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
    """Read and check a model file; a fresh copy of its objects at every call."""
    path = Path(path)
    try:
        stat = path.stat()
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: model file not found (cascadewatch train writes one)") from None
    data = _read(str(path), stat.st_mtime_ns, stat.st_size)
    _check_manifest(path, data)
    try:
        payload = _ModelUnpickler(io.BytesIO(data)).load()
    except (pickle.UnpicklingError, EOFError, AttributeError, ImportError, IndexError, TypeError) as exc:
        raise ValueError(f"{path}: not a readable cascadewatch model file ({type(exc).__name__})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"{path}: not a cascadewatch model file")
    if payload.get("version") != VERSION:
        raise ValueError(f"{path}: model format version {payload.get('version')}, this cascadewatch reads {VERSION}")
    models = payload.get("models", {})
    if set(models) != set(DIRECTIONS) or not all(isinstance(m, CascadeProbability) for m in models.values()):
        raise ValueError(f"{path}: a model file needs one CascadeProbability per direction (down, up)")
    return payload


def model_classifiers(
    path: str | Path,
    horizon_s: float,
    crowding_windows_s: tuple[int, ...] = (60, 300, 900),
    precursor_windows_s: tuple[int, ...] = (60, 300),
) -> dict[str, CascadeProbability]:
    """The per-direction classifiers of the model file at ``path``, checked against ``horizon_s``
    and against the features the detectors give (crowding windows ``crowding_windows_s``,
    precursor windows ``precursor_windows_s``)."""
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
    """The file's bytes, read once per version of the file (every asset unpickles its own copy)."""
    return Path(path).read_bytes()
