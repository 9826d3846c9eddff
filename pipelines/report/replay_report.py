"""``cascadewatch report``: one self-contained HTML file for a replay.

The recordings are replayed with the estimated levels in the snapshots (``[detectors]
snapshot_levels``); the page is the web page's charts (``connectors/web``: uPlot, charts.js,
report.js and the styles, inlined) over the data, inlined as one JSON document
(``<script id="cw-data" type="application/json">``):

- ``snapshots``: the replay's snapshots as written to its snapshots JSONL, every ``step_s``-th
  second of each asset (``step_s = ceil(seconds / MAX_POINTS)``, 1 for up to
  :data:`MAX_POINTS` seconds), with ``down.levels`` / ``up.levels`` kept every
  ``level_step_s`` seconds only (the heatmap's columns) and removed from the others;
- ``alerts``: every alert of the replay, as in its alerts JSONL;
- ``cascades``: the truth's labelled cascades, each with its first alert (``first_alert``:
  the first trigger of that asset and direction at most the horizon before its start and not
  after its end, ``lead_s = (start - ts) / 1000``, ``null`` when missed); ``leads``: alert id ->
  lead (s) of those first alerts;
- ``thresholds``: the policy's ``warn_enter``, ``warn_exit``, ``crit_enter``;
- ``mitigation``, when given: the ``summary`` rows of ``cascadewatch mitigate --json`` (per
  scenario and lever, mean and sd over seeds), drawn as the lab's table.

The file loads nothing: no network is needed to open it.
"""

from __future__ import annotations

import json
import math
import tempfile
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec

from cascadewatch.connectors.webpage import web_file
from cascadewatch.pipelines.config import Config
from cascadewatch.pipelines.flow import page_info
from cascadewatch.pipelines.run.replay import ReplayOptions, run_replay

MAX_POINTS = 7200
"""Seconds per asset shown at full resolution; longer replays show every ``step_s``-th second."""
LEVEL_STEP_S = 10
"""Seconds between two heatmap columns (at least ``step_s``)."""


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Every JSON object of a JSONL file (blank lines skipped)."""
    with open(path) as lines:
        return [json.loads(line) for line in lines if line.strip()]


def first_alerts(cascades: list[dict[str, Any]], alerts: list[dict[str, Any]], horizon_s: float) -> None:
    """Set ``first_alert`` on each truth cascade (see the module docstring), in place.

    >>> c = [{"asset": "BTC-USDT", "direction": "down", "start": 100_000, "end": 130_000}]
    >>> first_alerts(c, [{"id": "a", "action": "trigger", "kind": "cascade", "asset": "BTC-USDT",
    ...                   "direction": "down", "ts": 91_000, "severity": "warning"}], 300)
    >>> c[0]["first_alert"]
    {'id': 'a', 'ts': 91000, 'severity': 'warning', 'lead_s': 9.0}
    """
    triggers = sorted(
        (a for a in alerts if a.get("kind") == "cascade" and a.get("action") == "trigger"), key=lambda a: a["ts"]
    )
    for c in cascades:
        first = next(
            (
                a
                for a in triggers
                if (a["asset"], a["direction"]) == (c["asset"], c["direction"])
                and c["start"] - horizon_s * 1000 <= a["ts"] <= c["end"]
            ),
            None,
        )
        c["first_alert"] = (
            None
            if first is None
            else {
                "id": first["id"],
                "ts": first["ts"],
                "severity": first["severity"],
                "lead_s": (c["start"] - first["ts"]) / 1000,
            }
        )


def thin(snapshots: list[dict[str, Any]], step_s: int, level_step_s: int) -> list[dict[str, Any]]:
    """Every ``step_s``-th second of each asset; levels kept every ``level_step_s`` seconds only."""
    kept: list[dict[str, Any]] = []
    last_levels: dict[str, int] = {}
    for s in snapshots:
        second = s["ts"] // 1000
        if second % step_s:
            continue
        if second - last_levels.get(s["asset"], -(10**12)) >= level_step_s and "down" in s:
            last_levels[s["asset"]] = second
        elif "down" in s:
            s = {**s, **{d: {k: v for k, v in s[d].items() if k != "levels"} for d in ("down", "up")}}
        kept.append(s)
    return kept


def report_data(
    recordings: Sequence[Path], snapshots: list[dict], alerts: list[dict], truth: list[dict], config: Config
) -> dict[str, Any]:
    """The JSON document the report page draws (see the module docstring)."""
    per_asset: dict[str, int] = defaultdict(int)
    for s in snapshots:
        per_asset[s["asset"]] += 1
    step_s = max(1, math.ceil(max(per_asset.values(), default=0) / MAX_POINTS))
    cascades = [dict(c) for c in truth if c.get("type") == "cascade"]
    first_alerts(cascades, alerts, config.detectors.horizon_s)
    return {
        "recordings": [Path(r).name for r in recordings],
        "thresholds": page_info(config.detectors)["thresholds"],
        "step_s": step_s,
        "level_step_s": max(LEVEL_STEP_S, step_s),
        "snapshots_total": len(snapshots),
        "snapshots": thin(snapshots, step_s, max(LEVEL_STEP_S, step_s)),
        "alerts": alerts,
        "truth": bool(truth),
        "cascades": cascades,
        "leads": {c["first_alert"]["id"]: c["first_alert"]["lead_s"] for c in cascades if c["first_alert"]},
    }


def read_mitigation(path: Path) -> list[dict[str, Any]]:
    """The ``summary`` rows of a ``cascadewatch mitigate --json`` output file; a file that is not
    one raises ``ValueError`` naming it."""
    try:
        summary = json.loads(path.read_text())["summary"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{path}: not the JSON of cascadewatch mitigate --json ({exc})") from None
    if not isinstance(summary, list):
        raise ValueError(f"{path}: not the JSON of cascadewatch mitigate --json (summary is not a list)")
    return summary


def _asset(name: str) -> str:
    body = web_file(name)
    if body is None:  # pragma: no cover - package data missing: a broken install
        raise FileNotFoundError(f"web asset {name} missing from the package")
    return body.decode()


def render_html(data: dict[str, Any]) -> str:
    """The self-contained report page for ``data`` (scripts, styles and data inlined)."""
    payload = json.dumps(data, separators=(",", ":")).replace("</", "<\\/")  # no "</script>" inside the JSON
    script = "".join(
        f"<script>\n{_asset(name)}\n</script>\n" for name in ("vendor/uPlot.iife.min.js", "charts.js", "report.js")
    )
    title = "cascadewatch report: " + ", ".join(data["recordings"])
    return (
        '<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{_escape(title)}</title>\n"
        f"<style>\n{_asset('vendor/uPlot.min.css')}\n{_asset('style.css')}\n</style>\n</head>\n<body>\n"
        f'<header><span class="cw-brand">{_escape(title)}</span></header>\n'
        '<div id="cw-report" class="cw-report"></div>\n'
        f'<script id="cw-data" type="application/json">{payload}</script>\n{script}</body>\n</html>\n'
    )


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def write_report(
    recordings: Sequence[Path],
    truths: Sequence[Path] | None,
    config: Config | None,
    out: Path,
    mitigation: Path | None = None,
) -> dict[str, Any]:
    """Replay ``recordings`` together (with ``truths``, at most one per recording: a multi-asset
    simulation's one truth covers all its recordings) and write the report to ``out``.
    ``mitigation``: the JSON that ``cascadewatch mitigate --json`` printed, shown as the lab's table.

    Returns the report's data (:func:`report_data`).
    """
    config = config or Config()
    if truths and len(truths) > len(recordings):
        raise ValueError(f"--truth: {len(truths)} files for {len(recordings)} recordings")
    lab = read_mitigation(mitigation) if mitigation is not None else None
    levels = msgspec.structs.replace(config, detectors=msgspec.structs.replace(config.detectors, snapshot_levels=True))
    with tempfile.TemporaryDirectory(prefix="cascadewatch-report-") as scratch:
        snapshots_path, alerts_path = Path(scratch) / "snapshots.jsonl", Path(scratch) / "alerts.jsonl"
        run_replay(recordings, levels, ReplayOptions(alerts_out=alerts_path, snapshots_out=snapshots_path))
        snapshots, alerts = read_jsonl(snapshots_path), read_jsonl(alerts_path)
    truth = [item for path in truths or () for item in read_jsonl(path)]
    data = report_data(recordings, snapshots, alerts, truth, config)
    if lab is not None:
        data["mitigation"] = lab
    out.write_text(render_html(data))
    return data
