"""PagerDuty Events API v2 against a fake on 127.0.0.1 answering like the real one."""

from __future__ import annotations

import json
import logging
import socket
from pathlib import Path

import pytest
from alert_fakes import (
    PD_INVALID,
    PD_THROTTLED,
    Answer,
    FakePagerDuty,
    deliver,
    make_alert,
    pd_accepted,
    wait_until,
)
from prometheus_client import REGISTRY

from cascadewatch.connectors.alerts.config import AlertsConfig, DestinationConfig
from cascadewatch.connectors.alerts.destinations.pagerduty import (
    SUMMARY_MAX,
    PagerDutyDestination,
)

KEY = "R0UT1NGKEYR0UT1NGKEYR0UT1NGKEY00"  # 32 characters like a real integration key


@pytest.fixture(autouse=True)
def routing_key(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("CW_TEST_PD_KEY", KEY)
    return KEY


def pd_config(tmp_path: Path, url: str, name: str = "pd", **kw) -> AlertsConfig:
    options = {"backoff_base_s": 0.05, "backoff_max_s": 0.2, "rate_per_s": 50.0, "timeout_s": 2.0, **kw}
    return AlertsConfig(
        outbox=str(tmp_path / "outbox.sqlite"),
        poll_s=0.05,
        destinations=[
            DestinationConfig(
                name=name, type="pagerduty", url=url + "/v2/enqueue", secret_env="CW_TEST_PD_KEY", **options
            )
        ],
    )


def metric(name: str, destination: str) -> float:
    return REGISTRY.get_sample_value(name, {"destination": destination}) or 0.0


def test_trigger_and_resolve_bodies_and_headers(tmp_path: Path) -> None:
    alert = make_alert()
    resolve = make_alert(action="resolve", ts=1_700_000_060_000)
    sent_before = metric("cascadewatch_alerts_sent_total", "pd")
    with FakePagerDuty() as pd:
        outbox = deliver(pd_config(tmp_path, pd.url), [alert, resolve])
    assert metric("cascadewatch_alerts_sent_total", "pd") == sent_before + 2
    assert metric("cascadewatch_alerts_pending", "pd") == 0
    trigger_req, resolve_req = pd.requests
    assert trigger_req.path == "/v2/enqueue"
    assert trigger_req.headers["content-type"] == "application/json"
    assert trigger_req.headers["user-agent"].startswith("cascadewatch/")
    assert trigger_req.json() == {
        "routing_key": KEY,
        "event_action": "trigger",
        "dedup_key": "BTC-USDT:cascade:down",
        "payload": {
            "summary": alert["summary"],
            "source": "cascadewatch",
            "severity": "critical",
            "timestamp": "2023-11-14T22:13:20.000Z",
            "component": "BTC-USDT",
            "group": "cascade",
            "class": "cascade down",
            "custom_details": {
                "alert_id": alert["id"],
                "ts": "2023-11-14T22:13:20.000Z",
                "opened_ts": 1_700_000_000_000,
                "probability": 0.72,
                "price": 64000.5,
                "level": 63000.0,
                "distance_bps": -156.3,
                "cluster_usd": 48_000_000.0,
                "notional_at_risk_usd": 52_000_000.0,
                "depth_usd": 4_200_000.0,
                "depth_ratio": 0.41,
                "reach_usd": 91_000_000.0,
                "reach_bps": 310.0,
                "branching": 0.87,
                "liq_usd_60s": 6_200_000.0,
                "cascade": None,
                "venues": ["binance-usdm", "okx-swap"],
            },
        },
        "client": "cascadewatch",
    }
    assert resolve_req.json() == {"routing_key": KEY, "event_action": "resolve", "dedup_key": "BTC-USDT:cascade:down"}
    assert pd.incidents_opened == ["BTC-USDT:cascade:down"] and pd.resolved == ["BTC-USDT:cascade:down"]
    assert outbox.counts()["pd"]["delivered"] == 2


def test_summary_is_cut_to_1024_and_severity_mapped() -> None:
    config = DestinationConfig(
        name="pd",
        type="pagerduty",
        url="http://127.0.0.1:9/x",
        secret_env="CW_TEST_PD_KEY",
        severity_map={"warning": "error"},
    )
    from cascadewatch.connectors.alerts.destinations.pagerduty import pagerduty_event

    event = pagerduty_event(make_alert(severity="warning", summary="x" * 5000), KEY, config.severity_map, "cw")
    assert len(event["payload"]["summary"]) == SUMMARY_MAX and event["payload"]["summary"].endswith("…")
    assert event["payload"]["severity"] == "error" and event["payload"]["source"] == "cw"
    assert pagerduty_event(make_alert(severity="info"), KEY, {}, "cw")["payload"]["severity"] == "info"


def test_400_is_never_retried_and_stays_failed_with_the_reason(tmp_path: Path) -> None:
    before = metric("cascadewatch_alerts_failed_total", "pd400")
    with FakePagerDuty() as pd:
        pd.script(PD_INVALID)
        outbox = deliver(pd_config(tmp_path, pd.url, name="pd400"), [make_alert()])
        wait_until(lambda: True)
    assert len(pd.requests) == 1
    [row] = outbox.rows("failed")
    assert row.attempts == 1
    assert row.last_error == (
        "PagerDuty rejected the event (400): invalid event: Event object is invalid: "
        "Length of 'routing_key' is incorrect (should be 32 characters)"
    )
    assert metric("cascadewatch_alerts_failed_total", "pd400") == before + 1
    assert metric("cascadewatch_alerts_pending", "pd400") == 0


@pytest.mark.parametrize("first", [PD_THROTTLED, Answer(500, b"Internal Server Error"), Answer(502, b"")])
def test_429_and_5xx_are_retried(tmp_path: Path, first: Answer) -> None:
    before = metric("cascadewatch_alerts_retried_total", "pdretry")
    with FakePagerDuty() as pd:
        pd.script(first, first)
        outbox = deliver(pd_config(tmp_path, pd.url, name="pdretry"), [make_alert()])
    assert len(pd.requests) == 3
    assert [r.json() for r in pd.requests[1:]] == [pd.requests[0].json()] * 2
    assert outbox.counts()["pdretry"] == {"pending": 0, "inflight": 0, "delivered": 1, "failed": 0}
    assert metric("cascadewatch_alerts_retried_total", "pdretry") == before + 2


def test_retry_after_is_honoured(tmp_path: Path) -> None:
    with FakePagerDuty() as pd:
        pd.script(Answer(429, b"", {"Retry-After": "1"}))
        deliver(pd_config(tmp_path, pd.url), [make_alert()])
    assert pd.requests[1].at - pd.requests[0].at >= 0.95


def test_timeout_is_retried(tmp_path: Path) -> None:
    with FakePagerDuty() as pd:
        pd.script(Answer(202, b"{}", delay=1.5))  # longer than the client's timeout
        outbox = deliver(pd_config(tmp_path, pd.url, timeout_s=0.4), [make_alert()])
    assert len(pd.requests) == 2
    assert outbox.counts()["pd"]["delivered"] == 1


def test_unreachable_is_retried_then_given_up_after_max_attempts(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port with nothing listening
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = pd_config(tmp_path, f"http://127.0.0.1:{port}", max_attempts=3)
    outbox = deliver(config, [make_alert()])
    [row] = outbox.rows("failed")
    assert row.attempts == 3
    assert row.last_error.startswith("gave up after 3 attempts: PagerDuty unreachable: ConnectError")


def test_routing_key_never_in_logs_errors_or_outbox(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    echo = json.dumps(
        {"status": "invalid event", "message": "Event object is invalid", "errors": [f"Unknown routing key {KEY}"]}
    ).encode()
    with FakePagerDuty() as pd:
        pd.script(Answer(503, f"upstream said {KEY}".encode()), Answer(400, echo))
        outbox = deliver(pd_config(tmp_path, pd.url), [make_alert()])
    [row] = outbox.rows("failed")
    assert "Unknown routing key ***" in row.last_error
    assert KEY not in caplog.text and "***" in caplog.text
    with open(Path(outbox.path), "rb") as raw:
        assert KEY.encode() not in raw.read()


def test_direct_send_outcomes() -> None:
    with FakePagerDuty() as pd:
        dest = PagerDutyDestination(
            DestinationConfig(name="pd", type="pagerduty", url=pd.url, secret_env="CW_TEST_PD_KEY")
        )
        pd.script(pd_accepted("BTC-USDT:cascade:down"))
        outcome = dest.send([make_alert()])
        dest.close()
    assert (outcome.kind, outcome.status) == ("delivered", 202)
