"""A pre-trained cascade classifier on disk: what ``cascadewatch train`` writes and the flow loads.

The file is a pickle of one dict::

    {"format": "cascadewatch-cascade-model", "version": 1, "horizon_s": H,
     "features": [...], "models": {"down": CascadeProbability, "up": CascadeProbability},
     "info": {...}}            # how it was trained: recordings, labels, fit scores

``[detectors] model = "path"`` makes every asset start from a copy of these classifiers
(:class:`cascadewatch.detectors.probability.CascadeProbability`, which then keep learning online from
the delayed labels of the live stream). A pickle runs code when loaded: load only model
files you made or trust.

Model files written before the package moved under ``cascadewatch`` (release 0.1.0 pickled
``detectors.probability.CascadeProbability``) still load: :class:`_ModelUnpickler` maps the
old top-level module paths onto ``cascadewatch.*``.
"""

from __future__ import annotations

import functools
import io
import os
import pickle
from pathlib import Path
from typing import Any

from cascadewatch.detectors.probability import CascadeProbability

__all__ = ["FORMAT", "VERSION", "load_model", "model_classifiers", "save_model"]

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


def load_model(path: str | Path) -> dict[str, Any]:
    """Read and check a model file; a fresh copy of its objects at every call."""
    path = Path(path)
    try:
        stat = path.stat()
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: model file not found (cascadewatch train writes one)") from None
    payload = _ModelUnpickler(io.BytesIO(_read(str(path), stat.st_mtime_ns, stat.st_size))).load()
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"{path}: not a cascadewatch model file")
    if payload.get("version") != VERSION:
        raise ValueError(f"{path}: model format version {payload.get('version')}, this cascadewatch reads {VERSION}")
    models = payload.get("models", {})
    if set(models) != set(DIRECTIONS) or not all(isinstance(m, CascadeProbability) for m in models.values()):
        raise ValueError(f"{path}: a model file needs one CascadeProbability per direction (down, up)")
    return payload


def model_classifiers(path: str | Path, horizon_s: float) -> dict[str, CascadeProbability]:
    """The per-direction classifiers of the model file at ``path``, checked against ``horizon_s``."""
    payload = load_model(path)
    if float(payload["horizon_s"]) != float(horizon_s):
        raise ValueError(
            f"{path}: model trained for a {payload['horizon_s']:g} s horizon, the config says {horizon_s:g} s"
        )
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
