"""The audit manifest every alert carries: what made it, so it can be made again.

``audit`` is the last key of an alert (``cascadewatch explain`` reads it)::

    {"code": "0.1.0+3f9a12c4be07", "config": "9c1e0d2a7b44", "model": "b0931c84a9eb",
     "second": 1768435524000,
     "inputs": [{"recording": "demo.rec.zst", "lines": 1234, "sha256": "5d41402abc4b2a76"}]}

- ``code``: the package version and the first 12 hex of the SHA-256 of its source files
  (every ``.py`` of ``connectors/``, ``detectors/``, ``pipelines/``, by path);
- ``config``: the first 12 hex of the SHA-256 of the settings that shape the outputs,
  ``[replay]`` and ``[detectors]`` (the model as its version, not its path), and
  ``[provisional]`` and ``[contagion]`` each when it is not the default; alert
  delivery, the risk feed and the live feeds do not change an alert;
- ``model``: the model version (as in snapshots), ``null`` without one;
- ``second``: the event-time second that fired the alert (ms, the alert's ``ts``);
- ``inputs``, replays: per recording, its file name and the prefix that can have led to
  that second (:mod:`cascadewatch.connectors.recording_index`): line count and SHA-256.
  Live runs: per venue, ``{"live": venue, "recording": file or null}`` (the file that
  ``[live] record`` writes, when it does);
- ``exposure``, only with ``[desk] exposure``: the first 16 hex of the SHA-256 of the book
  in force (it changes the summary of a trigger).

Everything in it is a function of the code, the config and the input bytes, so outputs stay
identical for any batch size, worker or process count.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import msgspec

import cascadewatch.connectors
import cascadewatch.detectors
from cascadewatch.connectors.exposure import ExposureFile
from cascadewatch.connectors.recording_index import RecordingIndex
from cascadewatch.detectors.contagion import ContagionConfig
from cascadewatch.pipelines.config import Config, ProvisionalConfig
from cascadewatch.pipelines.model_file import model_version, resolve_model

SOURCE_DIRS = (
    Path(cascadewatch.connectors.__file__ or "").parent,
    Path(cascadewatch.detectors.__file__ or "").parent,
    Path(__file__).parents[1],  # pipelines/
)


def code_version() -> str:
    """``<package version>+<12 hex>``: the SHA-256 over the package's ``.py`` files (path and bytes)."""
    digest = hashlib.sha256()
    for root in SOURCE_DIRS:
        for path in sorted(root.rglob("*.py")):
            if "__pycache__" in path.parts:
                continue
            digest.update(f"{root.name}/{path.relative_to(root).as_posix()}\0".encode())
            digest.update(path.read_bytes())
            digest.update(b"\0")
    try:
        version = metadata.version("cascadewatch")
    except metadata.PackageNotFoundError:
        version = "unknown"
    return f"{version}+{digest.hexdigest()[:12]}"


def config_model(config: Config) -> str | None:
    """The version of the model ``config`` uses (``None``: no model)."""
    path = resolve_model(config.detectors.model)
    return model_version(path) if path is not None else None


def config_hash(config: Config) -> str:
    """First 12 hex of the SHA-256 of ``[replay]`` and ``[detectors]`` (the model by version), and
    ``[provisional]`` and ``[contagion]`` each when it is not the default."""
    detectors = msgspec.structs.replace(config.detectors, model=config_model(config) or "none")
    shaping: dict[str, Any] = {"replay": config.replay, "detectors": detectors}
    if config.provisional != ProvisionalConfig():  # the defaults keep the hashes from before [provisional]
        shaping["provisional"] = config.provisional
    if config.contagion != ContagionConfig():  # the default leaves the hashes of earlier configs as they were
        shaping["contagion"] = config.contagion
    return hashlib.sha256(msgspec.json.encode(shaping)).hexdigest()[:12]


class AuditStamp:
    """Appends the ``audit`` manifest to every alert of a list of output items."""

    def __init__(
        self,
        config: Config,
        recordings: Sequence[RecordingIndex] = (),
        live: Sequence[dict[str, Any]] = (),
        exposure: ExposureFile | None = None,
    ) -> None:
        """``recordings``: a replay's inputs; ``live``: a live run's (``{"live": venue, "recording": ...}``);
        ``exposure``: the desk's book (``[desk] exposure``), named by the digest of the text in force."""
        self.code = code_version()
        self.config = config_hash(config)
        self.model = config_model(config)
        self.recordings = list(recordings)
        self.live = [dict(item) for item in live]
        self.exposure = exposure

    def manifest(self, second_ms: int) -> dict[str, Any]:
        """The manifest of an alert of second ``second_ms``."""
        inputs: list[dict[str, Any]] = []
        for index in self.recordings:
            prefix = index.prefix(second_ms)
            inputs.append({"recording": index.name, "lines": prefix.lines, "sha256": prefix.sha256})
        inputs.extend(self.live)
        manifest = {
            "code": self.code,
            "config": self.config,
            "model": self.model,
            "second": second_ms,
            "inputs": inputs,
        }
        if self.exposure is not None:
            manifest["exposure"] = self.exposure.digest
        return manifest

    def __call__(self, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """``items`` with ``audit`` appended to each alert (snapshots unchanged)."""
        return [{**item, "audit": self.manifest(item["ts"])} if item.get("type") == "alert" else item for item in items]
