"""``cascadewatch report``: one self-contained HTML file whose data is the replay's output."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from cascadewatch.pipelines.cli.main import bundled_demo_recording, main
from cascadewatch.pipelines.report.replay_report import LEVEL_STEP_S, read_mitigation, thin

DEMO = bundled_demo_recording()
TRUTH = DEMO.with_name("demo.truth.jsonl")


class _Page(HTMLParser):
    """The page's tags with their attributes and the text of each script and style."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.scripts: list[tuple[dict[str, str | None], str]] = []
        self.styles: list[str] = []
        self._open: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._open = tag if tag in ("script", "style") else None

    def handle_data(self, data: str) -> None:
        if self._open == "script":
            self.scripts.append((self.tags[-1][1], data))
        elif self._open == "style":
            self.styles.append(data)
        self._open = None


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def demo_report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    out = tmp_path_factory.mktemp("report")
    assert main(["report", str(DEMO), "--truth", str(TRUTH), "--out", str(out / "report.html")]) == 0
    (out / "levels.toml").write_text("[detectors]\nsnapshot_levels = true\n")
    replay = ["replay", str(DEMO), "--quiet", "--config", str(out / "levels.toml")]
    assert main([*replay, "--snapshots-out", str(out / "s.jsonl"), "--alerts-out", str(out / "a.jsonl")]) == 0
    assert main(["replay", str(DEMO), "--quiet", "--snapshots-out", str(out / "plain.jsonl")]) == 0
    return out / "report.html", out


def _data(html: Path) -> tuple[_Page, dict[str, Any]]:
    page = _Page()
    page.feed(html.read_text())
    (payload,) = [text for attrs, text in page.scripts if attrs.get("id") == "cw-data"]
    return page, json.loads(payload)


def test_embedded_data_is_the_replays_output(demo_report: tuple[Path, Path]) -> None:
    html, out = demo_report
    _, data = _data(html)
    snapshots, alerts = _jsonl(out / "s.jsonl"), _jsonl(out / "a.jsonl")
    assert len(snapshots) == data["snapshots_total"] == 901 and data["step_s"] == 1
    assert data["snapshots"] == thin(snapshots, 1, LEVEL_STEP_S)
    with_levels = [s for s in data["snapshots"] if "levels" in s.get("down", {})]
    assert [s["ts"] // 1000 for s in with_levels] == list(range(1768435200, 1768436101, 10))
    assert with_levels == [s for s in snapshots if (s["ts"] // 1000) % 10 == 0]  # those snapshots whole
    assert data["alerts"] == alerts
    assert {"trigger", "resolve"} <= {a["action"] for a in alerts}  # the demo has both (the page tests show them)
    # the levels are the only addition: without them a snapshot is the plain replay's, byte for byte
    plain = (out / "plain.jsonl").read_text().splitlines()
    stripped = [
        {**s, **{d: {k: v for k, v in s[d].items() if k != "levels"} for d in ("down", "up")}} for s in snapshots
    ]
    assert [json.dumps(s, separators=(",", ":")) for s in stripped] == plain
    assert data["thresholds"] == {"warn_enter": 0.035, "warn_exit": 0.0175, "crit_enter": 0.6}


def test_the_truth_cascade_and_each_first_alerts_lead(demo_report: tuple[Path, Path]) -> None:
    _, data = _data(demo_report[0])
    (cascade,) = data["cascades"]
    assert (cascade["asset"], cascade["direction"], cascade["start"], cascade["end"]) == (
        "BTC-USDT",
        "down",
        1768435884000,
        1768435922000,
    )
    # the first down trigger from 300 s (the horizon) before the start to the end: the shipped
    # model's, so read from the replay's alerts, and its lead
    trigger = next(
        a
        for a in data["alerts"]
        if a["action"] == "trigger" and a["direction"] == "down" and 1768435584000 <= a["ts"] <= 1768435922000
    )
    lead_s = (1768435884000 - trigger["ts"]) / 1000
    assert cascade["first_alert"] == {
        "id": trigger["id"],
        "ts": trigger["ts"],
        "severity": trigger["severity"],
        "lead_s": lead_s,
    }
    assert data["leads"] == {trigger["id"]: lead_s}


def test_the_page_loads_nothing(demo_report: tuple[Path, Path]) -> None:
    page, _ = _data(demo_report[0])
    linked = [(tag, attrs) for tag, attrs in page.tags if {"src", "href", "srcset", "action"} & attrs.keys()]
    assert linked == []
    code = "\n".join(text for _, text in page.scripts) + "\n".join(page.styles)
    assert re.findall(r"fetch\(|XMLHttpRequest|WebSocket|import\(|@import|url\(|sendBeacon", code) == []
    urls = re.findall(r"https?://[^\s\"')]+", "\n".join(text for attrs, text in page.scripts if "id" not in attrs))
    assert urls == ["https://github.com/leeoniya/uPlot"]  # uPlot's banner comment, not a request
    assert [len(page.scripts), len(page.styles)] == [4, 1]  # data, uPlot, charts.js, report.js; one style


def test_evaluate_writes_the_same_report(demo_report: tuple[Path, Path], tmp_path: Path) -> None:
    out = tmp_path / "evaluated.html"
    assert main(["evaluate", str(DEMO), "--truth", str(TRUTH), "--json", "--report", str(out)]) == 0
    assert _data(out)[1] == _data(demo_report[0])[1]


def test_a_mitigate_file_that_is_not_mitigate_json_is_a_clear_error(tmp_path: Path) -> None:
    """``report --mitigate F``: F must be what ``cascadewatch mitigate --json`` printed; anything
    else is refused naming the file, before any replay."""
    bad = tmp_path / "lab.json"
    bad.write_text('{"runs": []}')
    with pytest.raises(ValueError, match=r"lab\.json: not the JSON of cascadewatch mitigate --json"):
        read_mitigation(bad)
    bad.write_text('{"summary": [{"scenario": "long-squeeze"}]}')
    assert read_mitigation(bad) == [{"scenario": "long-squeeze"}]
