"""Alertmanager (API v2): the exact request, and the real Alertmanager started on loopback.

The real-server test needs Debian's ``prometheus-alertmanager`` (``make deps``); it is skipped,
with that reason, when the binary is absent. It shows: the alert appears in Alertmanager's API
with our labels and annotations, stays active because the worker sends it again, an escalation
ends the warning's label set, a silence suppresses it, and the resolve ends it.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from alert_fakes import Answer, FakeServer, alerts_cli, enqueue, make_alert, wait_until

from cascadewatch.connectors.alerts.config import AlertsConfig, DestinationConfig
from cascadewatch.connectors.alerts.destinations.alertmanager import (
    alertmanager_alert,
    alertmanager_labels,
)
from cascadewatch.connectors.alerts.outbox import Outbox
from cascadewatch.connectors.alerts.worker import DeliveryWorker

ALERTMANAGER = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
NO_ALERTMANAGER = (
    "alertmanager not installed (Debian package 'prometheus-alertmanager': apt-get install -y prometheus-alertmanager)"
)
RUNBOOK = "https://wiki.example/runbooks/cascade"


def am_config(tmp_path: Path, url: str, **kw: Any) -> AlertsConfig:
    options = {"backoff_base_s": 0.05, "backoff_max_s": 0.2, "timeout_s": 2.0, "runbook_url": RUNBOOK, **kw}
    return AlertsConfig(
        outbox=str(tmp_path / "outbox.sqlite"),
        poll_s=0.05,
        destinations=[DestinationConfig(name="am", type="alertmanager", url=url, **options)],
    )


def test_the_alert_as_alertmanager_reads_it() -> None:
    alert = make_alert(severity="warning")
    body = alertmanager_alert(alert, RUNBOOK, live_until_ms=1_700_000_240_000)
    evidence = {k: v for k, v in alert.items() if k not in {"type", "id", "dedup_key", "action", "severity"}}
    evidence = {k: v for k, v in evidence.items() if k not in {"kind", "asset", "direction", "ts", "summary"}}
    assert body == {
        "labels": {
            "alertname": "cascadewatch_cascade",
            "dedup_key": "BTC-USDT:cascade:down",
            "asset": "BTC-USDT",
            "direction": "down",
            "kind": "cascade",
            "severity": "warning",
            "venues": "binance-usdm,okx-swap",
        },
        "annotations": {
            "summary": alert["summary"],
            "evidence": json.dumps(evidence, separators=(",", ":")),
            "alert_id": alert["id"],
            "runbook_url": RUNBOOK,
        },
        "startsAt": "2023-11-14T22:13:20.000Z",
        "endsAt": "2023-11-14T22:17:20.000Z",
    }
    resolve = alertmanager_alert(
        make_alert(action="resolve", ts=1_700_000_090_000, opened_ts=1_700_000_000_000), None, 0
    )
    assert (resolve["startsAt"], resolve["endsAt"]) == ("2023-11-14T22:13:20.000Z", "2023-11-14T22:14:50.000Z")
    assert "runbook_url" not in resolve["annotations"]
    feed = {"kind": "feed", "dedup_key": "BTC-USDT:feed:okx-swap", "asset": "BTC-USDT", "direction": None}
    assert alertmanager_labels({**feed, "severity": "warning", "venue": "okx-swap"}) == {
        "alertname": "cascadewatch_feed",
        "dedup_key": "BTC-USDT:feed:okx-swap",
        "asset": "BTC-USDT",
        "kind": "feed",
        "severity": "warning",
        "venues": "okx-swap",
    }


def test_escalation_ends_the_previous_label_set_and_open_alerts_are_resent(tmp_path: Path) -> None:
    warning = make_alert(severity="warning", ts=1_700_000_000_000)
    critical = make_alert(severity="critical", ts=1_700_000_030_000, opened_ts=1_700_000_000_000)
    with FakeServer() as am:
        config = am_config(tmp_path, am.url, resend_s=0.2)
        enqueue(config, [warning])
        worker = DeliveryWorker(config, seed=7).start()
        try:
            first, again = am.wait_for(2)
            enqueue(config, [critical])
            worker.wake()
            wait_until(lambda: any(len(r.json()) == 2 for r in am.requests))
        finally:
            worker.stop()
    assert first.path == again.path == "/api/v2/alerts"
    assert first.headers["content-type"] == "application/json"
    [sent] = first.json()
    [resent] = again.json()
    assert resent["labels"] == sent["labels"] and resent["endsAt"] > sent["endsAt"]
    assert sent["labels"]["severity"] == "warning"
    now_ms = time.time() * 1000
    assert 0 < _ms(sent["endsAt"]) - now_ms <= 4 * 200  # 4 x resend_s ahead of the send
    escalation = next(r.json() for r in am.requests if len(r.json()) == 2)
    assert [a["labels"]["severity"] for a in escalation] == ["critical", "warning"]
    assert escalation[1]["endsAt"] == "2023-11-14T22:13:50.000Z"  # the warning ends at the escalation
    with Outbox(config.outbox) as outbox:
        assert [a["id"] for a in outbox.live_triggers("am")] == [critical["id"]]


def test_400_is_kept_failed_with_alertmanagers_reason(tmp_path: Path) -> None:
    refused = Answer(400, b'"start time must be before end time"\n', {"Content-Type": "application/json"})
    with FakeServer() as am:
        am.script(refused)
        config = am_config(tmp_path, am.url)
        enqueue(config, [make_alert()])
        worker = DeliveryWorker(config, seed=7).start()
        try:
            wait_until(lambda: worker.unfinished() == 0)
        finally:
            worker.stop()
    with Outbox(config.outbox) as outbox:
        [row] = outbox.rows("failed")
        assert row.last_error == 'Alertmanager answered 400: "start time must be before end time"'
        assert outbox.live_triggers("am") == []


def _ms(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000


# ------------------------------------------------------------------ the real Alertmanager


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


def _post(url: str, body: Any) -> Any:
    request = urllib.request.Request(
        url, json.dumps(body).encode(), {"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[str]:
    """A real Alertmanager on 127.0.0.1 (no cluster port), its base URL."""
    if ALERTMANAGER is None:
        pytest.skip(NO_ALERTMANAGER)
    config = tmp_path / "alertmanager.yml"
    config.write_text("route:\n  receiver: desk\n  group_wait: 1h\nreceivers:\n  - name: desk\n")
    port = _free_port()
    log = tmp_path / "alertmanager.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [
                ALERTMANAGER,
                f"--config.file={config}",
                f"--storage.path={tmp_path / 'am-data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--cluster.listen-address=",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(f"{base}/-/ready", timeout=1) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"alertmanager did not start ({proc.poll()}):\n{log.read_text()[-2000:]}")
            time.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        proc.wait(10)


def _ours(base: str, query: str = "") -> list[dict[str, Any]]:
    return [a for a in _get(f"{base}/api/v2/alerts{query}") if a["labels"].get("dedup_key") == "BTC-USDT:cascade:down"]


def test_real_alertmanager_shows_silences_and_ends_the_alert(tmp_path: Path, alertmanager: str) -> None:
    now = int(time.time()) * 1000
    warning = make_alert(severity="warning", ts=now - 30_000)
    critical = make_alert(severity="critical", ts=now - 20_000, opened_ts=now - 30_000)
    resolve = make_alert(action="resolve", severity="critical", ts=now - 10_000, opened_ts=now - 30_000)
    config = am_config(tmp_path, alertmanager, resend_s=0.3)
    enqueue(config, [warning])
    worker = DeliveryWorker(config, seed=7).start()
    try:
        wait_until(lambda: len(_ours(alertmanager)) == 1)
        [shown] = _ours(alertmanager)
        assert shown["labels"] == {
            "alertname": "cascadewatch_cascade",
            "dedup_key": "BTC-USDT:cascade:down",
            "asset": "BTC-USDT",
            "direction": "down",
            "kind": "cascade",
            "severity": "warning",
            "venues": "binance-usdm,okx-swap",
        }
        assert shown["annotations"]["summary"] == warning["summary"]
        assert shown["annotations"]["runbook_url"] == RUNBOOK
        assert json.loads(shown["annotations"]["evidence"])["probability"] == 0.72
        assert shown["status"]["state"] == "active"
        assert _ms(shown["startsAt"]) == now - 30_000
        # the worker sends it again: its endsAt moves on, so it never lapses while open
        wait_until(lambda: [_ms(a["endsAt"]) for a in _ours(alertmanager)] > [_ms(shown["endsAt"])])

        enqueue(config, [critical])
        worker.wake()
        wait_until(lambda: [a["labels"]["severity"] for a in _ours(alertmanager)] == ["critical"])

        silence = _post(
            f"{alertmanager}/api/v2/silences",
            {
                "matchers": [{"name": "dedup_key", "value": "BTC-USDT:cascade:down", "isRegex": False}],
                "startsAt": datetime.fromtimestamp(time.time() - 1).astimezone().isoformat(),
                "endsAt": datetime.fromtimestamp(time.time() + 3600).astimezone().isoformat(),
                "createdBy": "test",
                "comment": "maintenance",
            },
        )["silenceID"]
        wait_until(lambda: [a["status"]["state"] for a in _ours(alertmanager)] == ["suppressed"])
        assert _ours(alertmanager)[0]["status"]["silencedBy"] == [silence]
        assert _ours(alertmanager, "?silenced=false") == []

        enqueue(config, [resolve])
        worker.wake()
        wait_until(lambda: _ours(alertmanager) == [])
    finally:
        worker.stop()
    with Outbox(config.outbox) as outbox:
        assert outbox.counts()["am"]["delivered"] == 3
        assert outbox.live_triggers("am") == []


def test_alerts_test_command_triggers_and_resolves_on_the_real_alertmanager(tmp_path: Path, alertmanager: str) -> None:
    config = tmp_path / "cw.toml"
    config.write_text(
        f'[alerts]\noutbox = "{tmp_path / "outbox.sqlite"}"\n[[alerts.destinations]]\nname = "am"\n'
        f'type = "alertmanager"\nurl = "{alertmanager}"\n'
    )
    code, shown = alerts_cli(["alerts", "test", "--destination", "am", "--config", str(config), "--no-resolve"])
    assert code == 0 and "trigger to am (alertmanager 127.0.0.1:" in shown and "delivered (HTTP 200)" in shown
    [test] = [a for a in _get(f"{alertmanager}/api/v2/alerts") if a["labels"]["kind"] == "test"]
    assert test["labels"]["alertname"] == "cascadewatch_test" and test["status"]["state"] == "active"
    code, shown = alerts_cli(["alerts", "test", "--destination", "am", "--config", str(config)])
    assert code == 0 and "resolve to am" in shown
    wait_until(lambda: [a for a in _get(f"{alertmanager}/api/v2/alerts") if a["labels"]["kind"] == "test"] == [])
