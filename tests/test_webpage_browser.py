"""The web page and the report in a real browser: headless Chromium (Debian's ``chromium``) driven
by Playwright for Python, pointed at the system browser (Playwright never downloads one).

The live test replays the demo recording with ``replay --riskfeed --speed 30`` on loopback with a
token, and checks what the page shows against what the replay wrote. The screenshots of the
README (docs/img/*.png) are written by these tests when ``CASCADEWATCH_SCREENSHOTS=1`` (``make
screenshots``), to a temporary folder otherwise.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from cascadewatch.connectors.riskfeed import RiskFeedServer
from cascadewatch.pipelines.cli.main import bundled_demo_recording, main
from cascadewatch.pipelines.simulate import Mitigation
from cascadewatch.pipelines.simulate.lab import run_lab, summarize

CHROMIUM = shutil.which("chromium")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no Chromium installed (`make deps` installs Debian's chromium)"
)
sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright for Python is not installed (pip: playwright)")

ROOT = Path(__file__).resolve().parents[1]
DEMO = bundled_demo_recording()
TOKEN = "page-test-token"
ASSET = "BTC-USDT"

# Pixels of the chart's plot area by colour (getImageData: unpremultiplied RGBA): the heatmap's
# long levels are red, short levels green, the price line near white.
COUNT_PIXELS = """(which) => {
  const u = window.cwState ? window.cwState.charts[which] : window.cwCharts[which];
  const b = u.bbox, d = u.ctx.getImageData(b.left, b.top, b.width, b.height).data;
  let red = 0, green = 0, white = 0;
  for (let i = 0; i < d.length; i += 4) {
    const [r, g, bl, a] = [d[i], d[i + 1], d[i + 2], d[i + 3]];
    if (a < 10) continue;
    if (r > g + 60 && r > bl + 40) red++;
    else if (g > r + 60) green++;
    else if (r > 200 && g > 200 && bl > 200) white++;
  }
  return {red, green, white, all: d.length / 4};
}"""


def screenshots_dir(tmp_path: Path) -> Path:
    """docs/img with CASCADEWATCH_SCREENSHOTS=1 (the README's images), else a temporary folder."""
    if os.environ.get("CASCADEWATCH_SCREENSHOTS") == "1":
        return ROOT / "docs" / "img"
    return tmp_path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_http(url: str, process: subprocess.Popen[str], timeout: float = 60.0) -> None:
    """Poll ``url`` until the server answers (any HTTP status)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()[1][-2000:]
        try:
            urllib.request.urlopen(url, timeout=1).close()
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.1)  # polling the server's start, not waiting for time to pass
    raise AssertionError(f"{url} did not answer within {timeout} s")


@pytest.fixture
def browser() -> Any:
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        chromium.close()


def _cells(page: Any) -> dict[str, str]:
    return page.eval_on_selector_all(
        f'#cw-overview tr[data-asset="{ASSET}"] td[data-field]',
        "tds => Object.fromEntries(tds.map(td => [td.dataset.field, td.dataset.value]))",
    )


def _status(page: Any, state: str, timeout: float = 20_000) -> str:
    page.wait_for_selector(f'#cw-status[data-state="{state}"]', timeout=timeout)
    return page.inner_text("#cw-status")


def test_live_page_during_a_replay(tmp_path: Path, browser: Any) -> None:
    port = free_port()
    config = tmp_path / "feed.toml"
    config.write_text(f'[riskfeed]\nport = {port}\ntoken_env = "CW_PAGE_TOKEN"\nping_interval_s = 5.0\n')
    snapshots_out, alerts_out = tmp_path / "s.jsonl", tmp_path / "a.jsonl"
    command = [sys.executable, "-m", "cascadewatch.pipelines.cli.main", "replay", str(DEMO), "--riskfeed"]
    command += ["--speed", "30", "--config", str(config), "--quiet"]
    command += ["--snapshots-out", str(snapshots_out), "--alerts-out", str(alerts_out)]
    env = {**os.environ, "CW_PAGE_TOKEN": TOKEN}
    replay = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    shots = screenshots_dir(tmp_path)
    try:
        wait_for_http(f"http://127.0.0.1:{port}/api/auth", replay)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(f"http://127.0.0.1:{port}/?stale_s=1")

        # no token, then a wrong one: an error, no data
        assert _status(page, "unauthorized") == "this feed needs a token"
        page.fill("#cw-token-input", "wrong")
        page.click("#cw-token button")
        page.wait_for_function("() => document.getElementById('cw-status').textContent.startsWith('token refused')")
        assert page.locator("#cw-overview tbody tr").count() == 0
        page.fill("#cw-token-input", TOKEN)
        page.click("#cw-token button")
        _status(page, "connected")
        page.wait_for_selector(f'#cw-overview tr[data-asset="{ASSET}"]')
        assert page.is_hidden("#cw-token")
        overview = _cells(page)
        assert page.inner_text("#cw-count") == "1 asset"
        page.screenshot(path=str(shots / "webpage-overview.png"), clip={"x": 0, "y": 0, "width": 1280, "height": 140})

        # the asset view: heatmap, price and probabilities drawn; a new snapshot redraws within 2 s
        page.click(f'#cw-overview tr[data-asset="{ASSET}"] a')
        page.wait_for_function("() => window.cwState.charts && window.cwState.charts.price.data[0].length > 5")
        # the server's history: the chart starts at the replay's first second, before the page connected
        page.wait_for_function("() => window.cwState.charts.price.data[0][0] === 1768435200", timeout=5000)
        price = page.evaluate(COUNT_PIXELS, "price")
        assert price["red"] > 0.02 * price["all"] and price["green"] > 0.02 * price["all"] and price["white"] > 100
        prob = page.evaluate(COUNT_PIXELS, "prob")
        assert prob["red"] > 50 and prob["green"] > 50  # P(down) red, P(up) green
        before = page.evaluate("() => window.cwState.charts.price.ctx.canvas.toDataURL()")
        page.wait_for_function(
            "(before) => window.cwState.charts.price.ctx.canvas.toDataURL() !== before", arg=before, timeout=2000
        )

        # the alert log: each alert of the replay, triggers and resolves
        page.wait_for_function(
            "() => document.querySelectorAll('.cw-alert-table tr.cw-resolve').length >= 1", timeout=60_000
        )
        page.screenshot(path=str(shots / "webpage-asset.png"), full_page=True)

        # the replay ends and its server stops: shown plainly
        assert replay.wait(timeout=120) == 0, replay.communicate()[1][-2000:]
        assert _status(page, "disconnected").startswith("disconnected")
        assert page.get_attribute("body", "data-feed") == "disconnected"
        shown = page.eval_on_selector_all(".cw-alert-table tbody tr", "rows => rows.map(r => r.dataset.id)")
    finally:
        if replay.poll() is None:
            replay.kill()
            replay.wait()

    snapshots = {s["ts"]: s for s in map(json.loads, snapshots_out.read_text().splitlines())}
    shown_snapshot = snapshots[int(overview["ts"])]
    # the page's numbers are the feed's (JavaScript writes 55387.0 as "55387": compared as numbers)
    assert {k: float(overview[k]) for k in ("price", "prob_down", "prob_up")} == {
        k: shown_snapshot[k] for k in ("price", "prob_down", "prob_up")
    }
    assert overview["books_valid"] == shown_snapshot["books_valid"]
    alerts = [json.loads(line) for line in alerts_out.read_text().splitlines()]
    assert {"trigger", "resolve"} <= {a["action"] for a in alerts}
    assert shown == [a["id"] for a in reversed(alerts)]  # every alert of the replay, newest first

    # a server on the same port again: the page reconnects, then shows it stale (no snapshot for 1 s)
    last = shown_snapshot if shown_snapshot["ts"] == max(snapshots) else snapshots[max(snapshots)]
    with RiskFeedServer(port=port, token=TOKEN, ping_interval_s=None) as restarted:
        _status(page, "stale")
        restarted.publish({**last, "ts": last["ts"] + 1000})
        _status(page, "connected", timeout=5000)
        page.wait_for_function(f"() => window.cwState.assets.get('{ASSET}').last.ts === {last['ts'] + 1000}")
        price_text, _, rest = page.inner_text(".cw-headline").partition(" · ")
        assert float(price_text) == last["price"] and rest.startswith("P(down) ")  # (compared as numbers)
    assert errors == []


def test_report_opens_offline_with_the_cascade_shaded_and_the_alerts_marked(tmp_path: Path, browser: Any) -> None:
    report = tmp_path / "report.html"
    truth = DEMO.with_name("demo.truth.jsonl")
    lab = tmp_path / "lab.json"  # the mitigation lab's output, as `cascadewatch mitigate --json` prints it
    summary = summarize(run_lab(["long-squeeze"], [1], [Mitigation("circuit-breaker")], 300.0, None))
    lab.write_text(json.dumps({"runs": [], "summary": summary}))
    assert main(["report", str(DEMO), "--truth", str(truth), "--out", str(report), "--mitigate", str(lab)]) == 0
    context = browser.new_context(viewport={"width": 1280, "height": 900}, offline=True)
    page = context.new_page()
    requests: list[str] = []
    errors: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(report.as_uri())
    page.wait_for_selector("body[data-ready='1']")
    assert requests == [report.as_uri()] and errors == []
    # the truth's cascade shaded on the probability chart, the alerts as lines with the first one's lead
    shading = page.evaluate(
        """() => {
          const u = window.cwCharts.prob, c = JSON.parse(document.getElementById('cw-data').textContent).cascades[0];
          const x0 = u.valToPos(c.start / 1000, 'x', true), x1 = u.valToPos(c.end / 1000, 'x', true);
          const y = Math.round(u.valToPos(0.85, 'y', true));  // above every line of the demo's chart
          const inside = u.ctx.getImageData(Math.round((x0 + x1) / 2), y, 1, 1).data;
          const outside = u.ctx.getImageData(Math.round(u.bbox.left + 5), y, 1, 1).data;
          return {inside: Array.from(inside), outside: Array.from(outside), width: x1 - x0};
        }"""
    )
    assert shading["width"] > 5 and shading["inside"][3] > 20 and shading["outside"][3] == 0
    data = json.loads(page.evaluate("() => document.getElementById('cw-data').textContent"))
    first = data["cascades"][0]["first_alert"]
    when = time.strftime("%H:%M:%S", time.gmtime(first["ts"] // 1000))
    assert page.inner_text(".cw-truth-table tbody").split("\t")[-1] == (
        f"{first['severity']} at {when}, lead {first['lead_s']:.0f} s"
    )
    rows = page.eval_on_selector_all(".cw-alert-table tbody tr", "rows => rows.map(r => r.className)")
    assert rows == [f"cw-alert cw-{a['action']} cw-{a['severity']}" for a in reversed(data["alerts"])]
    assert {"cw-alert cw-trigger cw-critical", "cw-alert cw-resolve cw-critical"} <= set(rows)
    price = page.evaluate(COUNT_PIXELS, "price")
    assert price["red"] > 0.02 * price["all"] and price["green"] > 0.02 * price["all"] and price["white"] > 100
    # the mitigation readouts of the asset's last snapshot, per direction
    last = [s for s in data["snapshots"] if s["asset"] == ASSET][-1]
    cells = page.eval_on_selector_all(
        ".cw-mitigation-table tbody tr", "rows => rows.map(r => [...r.cells].map(c => c.textContent))"
    )
    assert [row[0] for row in cells] == ["down", "up"]
    for row, direction in zip(cells, ("down", "up"), strict=True):
        r = last[direction]
        assert row[2] == f"{100 * r['margin_mmr']:.2f}%" and row[3] == f"{r['leverage_cap']:.1f}x"
        since = time.strftime("%H:%M:%S", time.gmtime((r["breaker_since"] or 0) // 1000))
        assert row[5] == (f"tripped since {since}" if r["breaker"] else "not tripped")
    # the lab's table: one row per lever, the forced notional as mean ± sd in M$
    lab_rows = page.eval_on_selector_all(
        ".cw-lab-table tbody tr", "rows => rows.map(r => [...r.cells].map(c => c.textContent))"
    )
    assert [(row[0], row[1], row[3]) for row in lab_rows] == [
        (e["scenario"], e["lever"], f"{e['forced_usd']['mean'] / 1e6:.1f} ± {e['forced_usd']['sd'] / 1e6:.1f}")
        for e in summary
    ]
    page.screenshot(path=str(screenshots_dir(tmp_path) / "report.png"), full_page=True)


def test_page_keeps_up_with_50_assets_at_one_snapshot_a_second(tmp_path: Path, browser: Any) -> None:
    """50 assets, 120 s of the demo's snapshots (levels included) each: the test publishes one
    second of all 50 once the page has taken the previous one; the page must go faster than
    real time (one second of feed in under a second), on the overview and on an asset view."""
    (tmp_path / "levels.toml").write_text("[detectors]\nsnapshot_levels = true\n")
    replay = ["replay", str(DEMO), "--quiet", "--config", str(tmp_path / "levels.toml")]
    assert main([*replay, "--snapshots-out", str(tmp_path / "s.jsonl")]) == 0
    demo = [json.loads(line) for line in (tmp_path / "s.jsonl").read_text().splitlines()][300:420]
    assets = [f"A{i:02d}-USDT" for i in range(50)]
    with RiskFeedServer(port=0, ping_interval_s=None) as feed:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(f"http://127.0.0.1:{feed.port}/")
        _status(page, "connected")
        timings, expected = {}, 0
        for view, seconds in (("overview", demo[:60]), ("asset", demo[60:])):
            if view == "asset":
                page.goto(f"http://127.0.0.1:{feed.port}/#/asset/A00-USDT")
            start = time.monotonic()
            for snapshot in seconds:
                feed.publish_many({**snapshot, "asset": asset} for asset in assets)
                expected += len(assets)
                page.wait_for_function(f"() => window.cwState.received >= {expected}", timeout=10_000)
            timings[view] = (time.monotonic() - start) / len(seconds)
        page.wait_for_function("() => window.cwState.charts && window.cwState.charts.price.data[0].length == 120")
        assert page.locator("#cw-overview tbody tr").count() == 0 or page.is_hidden("#cw-overview")
        assert feed.stats.dropped_slow == 0
    print(
        f"seconds of a 50-asset feed taken per wall second: {1 / timings['overview']:.1f} (overview), "
        f"{1 / timings['asset']:.1f} (asset view)"
    )
    assert timings["overview"] < 1.0 and timings["asset"] < 1.0
