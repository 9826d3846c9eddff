"""Re-make an alert from its audit manifest and compare it byte for byte (``cascadewatch explain``).

Given the alert (a line of an alerts JSONL file) and the recordings it names, the replay is
run again on exactly the prefix of each recording that its manifest names (the lines that
can have led to its second, :mod:`cascadewatch.connectors.recording_index`), with the given
config and this code. The alert with the same id in that replay is compared with the
original, byte for byte. Before that, the manifest's code version, config hash and model
version are compared with this code's and config's, and each recording prefix's SHA-256
with the manifest's, so a difference is named plainly rather than found as a different
number.
"""

from __future__ import annotations

import gzip
import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import zstandard

from cascadewatch.connectors.exposure import text_digest
from cascadewatch.connectors.recording_index import prefix_of
from cascadewatch.pipelines.config import Config
from cascadewatch.pipelines.run.replay import ReplayOptions, run_replay
from cascadewatch.pipelines.steps.audit import code_version, config_hash, config_model


class ExplainError(ValueError):
    """The alert or a recording it needs cannot be found; the message says which."""


@dataclass
class Explanation:
    """What ``explain`` found: the alert as it was and as re-made, and every difference."""

    alert_id: str
    original: bytes | None
    """The alert's JSON line as given (``--from``); ``None`` when only recordings were given."""
    reproduced: bytes | None
    """The alert's JSON line in the re-run; ``None`` when the re-run did not make it."""
    snapshot: dict[str, Any] | None = None
    """The asset's snapshot of the alert's second in the re-run (the detectors' readout)."""
    differences: list[str] = field(default_factory=list)
    """Plain sentences: code, config, model or an input differ; fields that differ."""
    replayed: list[tuple[str, int]] = field(default_factory=list)
    """(recording, lines) replayed."""

    @property
    def identical(self) -> bool:
        """The re-made alert is byte for byte the original (a live alert: up to its audit
        manifest, which names the live feeds where the re-run names the recordings)."""
        if self.live:
            return self.evidence_identical and not self.differences
        return self.original is not None and self.reproduced == self.original

    @property
    def live(self) -> bool:
        """The alert came from a live run (its manifest names live feeds)."""
        audit = json.loads(self.original).get("audit") if self.original else None
        return isinstance(audit, dict) and any(item.get("live") for item in audit.get("inputs", []))

    @property
    def evidence_identical(self) -> bool:
        """The re-made alert is byte for byte the original up to its audit manifest (the last key)."""
        if self.original is None or self.reproduced is None:
            return False
        return _without_audit(self.original) == _without_audit(self.reproduced)

    @property
    def alert(self) -> dict[str, Any] | None:
        """The alert (re-made if it was, else as given)."""
        line = self.reproduced or self.original
        return json.loads(line) if line else None


def _without_audit(line: bytes) -> bytes:
    """The alert's JSON bytes before its ``audit`` key (JSON escapes quotes in values, so the
    raw ``,"audit":`` can only be the key)."""
    cut = line.rfind(b',"audit":')
    return line if cut < 0 else line[:cut]


def find_alert(path: str | Path, alert_id: str) -> bytes:
    """The JSON line (without its newline) of alert ``alert_id`` in an alerts JSONL file."""
    try:
        handle = open(path, "rb")
    except OSError as exc:
        raise ExplainError(f"{path}: cannot read ({exc.strerror or exc})") from None
    with handle:
        for line in handle:
            try:
                item = json.loads(line)
            except ValueError:
                continue
            if isinstance(item, dict) and item.get("type") == "alert" and item.get("id") == alert_id:
                return line.rstrip(b"\r\n")
    raise ExplainError(f"{path}: no alert with id {alert_id}")


def _compare_manifest(audit: dict[str, Any], config: Config, differences: list[str]) -> None:
    code, config_now, model = code_version(), config_hash(config), config_model(config)
    if audit.get("code") != code:
        differences.append(f"the code differs: the alert was made by {audit.get('code')}, this is {code}")
    if audit.get("config") != config_now:
        differences.append(
            f"the config differs: the alert was made with config {audit.get('config')}, this one is {config_now}"
            " ([replay] and [detectors])"
        )
    book = text_digest(Path(config.desk.exposure).read_text(encoding="utf-8")) if config.desk.exposure else None
    if audit.get("exposure") != book:
        differences.append(
            f"the exposure book differs: the alert was made with book {audit.get('exposure')}, this one is {book}"
        )
    if audit.get("model") != model:
        differences.append(f"the model differs: the alert was made by model {audit.get('model')}, this is {model}")


def _locate(name: str, given: list[Path], near: Path | None) -> Path:
    for path in given:
        if path.name == name:
            return path
    for folder in (Path.cwd(), near):
        if folder is not None and (folder / name).is_file():
            return folder / name
    raise ExplainError(f"recording {name} (named in the alert's audit) not found: pass it with --recording")


def _live_input(item: dict[str, Any], given: list[Path], near: Path | None, alert_id: str) -> Path:
    """The recording tap of a live venue (replayed whole: the live run read all of it)."""
    name = item.get("recording")
    if not name:
        raise ExplainError(
            f"alert {alert_id} came from a live run of {item['live']} that recorded nothing ([live] record): "
            "nothing to replay"
        )
    return _locate(str(name), given, near)


def _write_prefix(data: bytes, path: Path) -> None:
    """``data`` to ``path``, compressed as its suffix says (the replay reads by suffix)."""
    if path.suffix == ".zst":
        data = zstandard.ZstdCompressor(level=1).compress(data)
    elif path.suffix == ".gz":
        data = gzip.compress(data, compresslevel=1, mtime=0)
    path.write_bytes(data)


def explain(
    alert_id: str,
    config: Config,
    recordings: list[Path],
    alerts_file: Path | None = None,
) -> Explanation:
    """Re-make alert ``alert_id`` and compare it (see the module doc).

    ``alerts_file``: the JSONL file holding the alert and its manifest; without it the
    recordings are replayed whole and the alert is only shown. ``recordings``: the input
    files (by default those the manifest names, in the working directory or beside
    ``alerts_file``).
    """
    original = find_alert(alerts_file, alert_id) if alerts_file is not None else None
    result = Explanation(alert_id, original, None)
    audit = json.loads(original).get("audit") if original is not None else None
    if original is not None and not isinstance(audit, dict):
        raise ExplainError(f"alert {alert_id} carries no audit manifest (made before manifests existed)")
    with tempfile.TemporaryDirectory(prefix="cascadewatch-explain-") as scratch:
        folder = Path(scratch)
        inputs: list[Path] = []
        if audit is None:
            if not recordings:
                raise ExplainError("give the alerts file (--from) or the recordings (--recording)")
            inputs = recordings
            result.replayed = [(path.name, -1) for path in recordings]
        else:
            _compare_manifest(audit, config, result.differences)
            near = alerts_file.parent if alerts_file else None
            for item in audit.get("inputs", []):
                if item.get("live"):
                    inputs.append(_live_input(item, recordings, near, alert_id))
                    result.replayed.append((inputs[-1].name, -1))
                    continue
                path = _locate(item["recording"], recordings, near)
                data, prefix = prefix_of(path, int(item["lines"]))
                if prefix.lines != item["lines"] or prefix.sha256 != item.get("sha256"):
                    result.differences.append(
                        f"input {item['recording']} differs: its first {prefix.lines} lines hash {prefix.sha256}, "
                        f"the alert was made from {item['lines']} lines hashing {item.get('sha256')}"
                    )
                inputs.append(folder / "inputs" / item["recording"])
                inputs[-1].parent.mkdir(exist_ok=True)
                _write_prefix(data, inputs[-1])
                result.replayed.append((item["recording"], prefix.lines))
        out = folder / "out"
        run_replay(
            inputs, config, ReplayOptions(alerts_out=out / "alerts.jsonl", snapshots_out=out / "snapshots.jsonl")
        )
        try:
            result.reproduced = find_alert(out / "alerts.jsonl", alert_id)
        except ExplainError:
            result.differences.append(f"the re-run made no alert {alert_id}")
        made = result.alert
        if made is not None:
            # the snapshot of the second holding the alert's ts (a provisional alert's is a checkpoint)
            result.snapshot = _snapshot(out / "snapshots.jsonl", made["asset"], made["ts"] // 1000 * 1000)
    if original is not None and result.reproduced is not None and not result.identical and not result.live:
        result.differences.extend(_field_differences(json.loads(original), json.loads(result.reproduced)))
    return result


def _snapshot(path: Path, asset: str, ts: int) -> dict[str, Any] | None:
    with open(path, "rb") as handle:
        for line in handle:
            item = json.loads(line)
            if item.get("asset") == asset and item.get("ts") == ts:
                return dict(item)
    return None


def _field_differences(original: dict[str, Any], reproduced: dict[str, Any]) -> list[str]:
    """One sentence per field whose value differs (or that only one side has)."""
    out = []
    for key in dict.fromkeys([*original, *reproduced]):
        if original.get(key, "<absent>") != reproduced.get(key, "<absent>"):
            was = json.dumps(original.get(key, "<absent>"), ensure_ascii=False)
            now = json.dumps(reproduced.get(key, "<absent>"), ensure_ascii=False)
            out.append(f"field {key}: the alert has {was[:200]}, the re-run {now[:200]}")
    return out
