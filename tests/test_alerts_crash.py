"""kill -9 of a delivery process with alerts pending: a restart sends every pending alert, and
PagerDuty (deduplicating on dedup_key) never opens an incident twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

from alert_fakes import FakePagerDuty, make_alert

from cascadewatch.connectors.alerts.config import load_alerts_config
from cascadewatch.connectors.alerts.outbox import Outbox
from cascadewatch.connectors.alerts.routing import Router

REPO = Path(__file__).resolve().parent.parent
KEY = "R0UT1NGKEYR0UT1NGKEYR0UT1NGKEY00"


def _deliver_process(config: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "CW_TEST_PD_KEY": KEY}
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cascadewatch.pipelines.cli.alerts",
            "alerts",
            "deliver",
            "--config",
            str(config),
            "--until-empty",
            "--timeout",
            "30",
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def test_kill_9_then_restart_sends_pending_once(tmp_path: Path) -> None:
    outbox_path = tmp_path / "outbox.sqlite"
    triggers = [make_alert(asset=f"A{i}-USDT", direction=d) for i in range(6) for d in ("down", "up")]
    resolves = [make_alert(asset=f"A{i}-USDT", action="resolve", ts=1_700_000_060_000) for i in range(4)]
    alerts = triggers + resolves
    with FakePagerDuty() as pd:
        config = tmp_path / "cascadewatch.toml"
        config.write_text(f"""
[alerts]
outbox = "{outbox_path}"
poll_s = 0.05

[[alerts.destinations]]
name = "pd"
type = "pagerduty"
url = "{pd.url}/v2/enqueue"
secret_env = "CW_TEST_PD_KEY"
rate_per_s = 100.0
backoff_base_s = 0.05
""")
        alerts_config, _ = load_alerts_config(str(config))
        with Outbox(outbox_path) as outbox:
            outbox.enqueue(alerts, Router(alerts_config.destinations))

        pd.hold = {6: 3.0}  # the 6th event is received, and the process dies before the answer
        first = _deliver_process(config)
        try:
            pd.wait_for(6, timeout=20)
        finally:
            first.send_signal(signal.SIGKILL)
            first.wait(timeout=10)
        assert first.returncode == -signal.SIGKILL
        before_kill = [r.json() for r in pd.requests]
        with Outbox(outbox_path) as outbox:
            counts = outbox.counts()["pd"]
        assert counts["delivered"] == 5 and counts["inflight"] == 1 and counts["pending"] == len(alerts) - 6

        second = _deliver_process(config)
        output, _ = second.communicate(timeout=30)
        assert second.returncode == 0, output.decode()
        assert "1 deliveries were in flight" in output.decode()
        after_restart = [r.json() for r in pd.requests[len(before_kill) :]]

    with Outbox(outbox_path) as outbox:
        assert outbox.counts()["pd"] == {"pending": 0, "inflight": 0, "delivered": len(alerts), "failed": 0}
    sent = Counter((e["dedup_key"], e["event_action"]) for e in before_kill + after_restart)
    expected = {(a["dedup_key"], a["action"]) for a in alerts}
    assert set(sent) == expected  # every alert reached PagerDuty
    # only the event in flight at the kill was sent again, and it was the first one after the restart
    assert [k for k, n in sent.items() if n > 1] == [(before_kill[5]["dedup_key"], before_kill[5]["event_action"])]
    assert after_restart[0] == before_kill[5]
    assert all(e not in after_restart for e in before_kill[:5])
    # PagerDuty deduplicated it: one incident per dedup key, each resolved once
    assert sorted(pd.incidents_opened) == sorted({a["dedup_key"] for a in triggers})
    assert sorted(pd.resolved) == sorted(a["dedup_key"] for a in resolves)
