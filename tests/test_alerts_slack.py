"""Slack incoming webhook (slack-sdk) against a fake on 127.0.0.1 answering like Slack."""

from __future__ import annotations

import logging
import socket
from pathlib import Path

import pytest
from alert_fakes import (
    SLACK_INVALID,
    SLACK_NO_SERVICE,
    Answer,
    FakeSlack,
    deliver,
    enqueue,
    make_alert,
    slack_rate_limited,
    wait_until,
)

from cascadewatch.connectors.alerts.config import AlertsConfig, DestinationConfig
from cascadewatch.connectors.alerts.destinations.slack import (
    SlackDestination,
    slack_message,
)
from cascadewatch.connectors.alerts.worker import DeliveryWorker

HOOK_PATH = "/services/T0000SECRET/B0000SECRET/XXXXsecretXXXXsecretXXXX"


def slack_config(tmp_path: Path, url: str, monkeypatch: pytest.MonkeyPatch, **kw) -> AlertsConfig:
    monkeypatch.setenv("CW_TEST_SLACK_URL", url + HOOK_PATH)
    options = {"backoff_base_s": 0.05, "backoff_max_s": 0.2, "timeout_s": 2.0, **kw}
    return AlertsConfig(
        outbox=str(tmp_path / "outbox.sqlite"),
        poll_s=0.05,
        destinations=[DestinationConfig(name="desk", type="slack", url_env="CW_TEST_SLACK_URL", **options)],
    )


def test_block_kit_message_and_headers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    alert = make_alert(cascade="liquidation")
    with FakeSlack() as slack:
        outbox = deliver(slack_config(tmp_path, slack.url, monkeypatch), [alert])
    [request] = slack.requests
    assert request.path == HOOK_PATH
    assert request.headers["content-type"] == "application/json;charset=utf-8"
    assert request.json() == {
        "text": alert["summary"],
        "attachments": [
            {
                "color": "#D00000",
                "fallback": alert["summary"],
                "blocks": [
                    {
                        "type": "header",
                        "text": {
                            "type": "plain_text",
                            "text": ":red_circle: CRITICAL: BTC-USDT cascade risk down",
                            "emoji": True,
                        },
                    },
                    {"type": "section", "text": {"type": "mrkdwn", "text": alert["summary"]}},
                    {
                        "type": "section",
                        "fields": [
                            {"type": "mrkdwn", "text": "*Asset*\nBTC-USDT"},
                            {"type": "mrkdwn", "text": "*Direction*\ndown (longs liquidated)"},
                            {"type": "mrkdwn", "text": "*Severity*\ncritical"},
                            {"type": "mrkdwn", "text": "*Probability*\n72%"},
                            {"type": "mrkdwn", "text": "*Price*\n64,000.5"},
                            {"type": "mrkdwn", "text": "*Nearest cluster*\n63,000 (-156 bps) · $48.00M"},
                            {"type": "mrkdwn", "text": "*Notional at risk*\n$52.00M"},
                            {"type": "mrkdwn", "text": "*Depth in front*\n$4.20M (×0.41 of usual)"},
                            {"type": "mrkdwn", "text": "*Cascade reach*\n310 bps · $91.00M forced"},
                            {"type": "mrkdwn", "text": "*Hawkes branching*\n0.87"},
                        ],
                    },
                    {
                        "type": "context",
                        "elements": [
                            {
                                "type": "mrkdwn",
                                "text": f"`BTC-USDT:cascade:down` · alert {alert['id']} · 2023-11-14T22:13:20.000Z"
                                " · cascade in progress: liquidation · venues: binance-usdm, okx-swap",
                            }
                        ],
                    },
                ],
            }
        ],
    }
    assert outbox.counts()["desk"]["delivered"] == 1


def test_resolve_is_green_in_the_same_style() -> None:
    body = slack_message([make_alert(action="resolve", severity="warning")])
    attachment = body["attachments"][0]
    assert attachment["color"] == "#2EB67D"
    assert attachment["blocks"][0]["text"]["text"] == ":white_check_mark: Resolved: BTC-USDT cascade down"
    assert {"type": "mrkdwn", "text": "*Severity*\nresolved"} in attachment["blocks"][2]["fields"]
    warning = slack_message([make_alert(severity="warning")])["attachments"][0]
    assert warning["color"] == "#F2A900"


def test_429_waits_for_retry_after(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with FakeSlack() as slack:
        slack.script(slack_rate_limited(1))
        outbox = deliver(slack_config(tmp_path, slack.url, monkeypatch, rate_per_s=50.0), [make_alert()])
    first, second = slack.requests
    assert second.at - first.at >= 0.95
    assert first.body == second.body
    assert outbox.counts()["desk"]["delivered"] == 1


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        (SLACK_INVALID, "Slack answered 400: invalid_payload"),
        (SLACK_NO_SERVICE, "Slack answered 404: no_service"),
        (Answer(403, b"invalid_token"), "Slack answered 403: invalid_token"),
    ],
)
def test_4xx_is_failed_not_retried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, answer: Answer, reason: str
) -> None:
    with FakeSlack() as slack:
        slack.script(answer)
        outbox = deliver(slack_config(tmp_path, slack.url, monkeypatch), [make_alert()])
    assert len(slack.requests) == 1
    [row] = outbox.rows("failed")
    assert row.last_error == reason


def test_500_and_timeout_are_retried(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with FakeSlack() as slack:
        slack.script(Answer(500, b"rollup_error"), Answer(200, b"ok", delay=1.2))
        outbox = deliver(slack_config(tmp_path, slack.url, monkeypatch, rate_per_s=50.0, timeout_s=0.4), [make_alert()])
    assert len(slack.requests) == 3
    assert outbox.counts()["desk"]["delivered"] == 1


def test_one_message_per_second_and_bursts_coalesced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with FakeSlack() as slack:
        config = slack_config(tmp_path, slack.url, monkeypatch)  # default: 1 message per second
        worker = DeliveryWorker(config).start()
        try:
            enqueue(config, [make_alert()])
            slack.wait_for(1)
            burst = [make_alert(asset=f"A{i}-USDT") for i in range(5)]
            enqueue(config, burst)
            worker.wake()
            slack.wait_for(2)
            enqueue(config, [make_alert(asset="LAST-USDT")])
            worker.wake()
            slack.wait_for(3)
            wait_until(lambda: worker.unfinished() == 0)
        finally:
            worker.stop()
    first, second, third = slack.requests
    assert second.at - first.at >= 0.95 and third.at - second.at >= 0.95
    coalesced = second.json()
    assert len(coalesced["attachments"]) == 5
    assert coalesced["text"].startswith("5 cascadewatch alerts: A0-USDT down critical; A1-USDT down critical")
    assert [a["blocks"][0]["text"]["text"] for a in coalesced["attachments"]] == [
        f":red_circle: CRITICAL: A{i}-USDT cascade risk down" for i in range(5)
    ]


def test_webhook_url_never_in_logs_or_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = slack_config(tmp_path, f"http://127.0.0.1:{port}", monkeypatch, max_attempts=2, rate_per_s=50.0)
    outbox = deliver(config, [make_alert()])
    [row] = outbox.rows("failed")
    assert row.last_error.startswith("gave up after 2 attempts: Slack unreachable: URLError")
    assert "SECRET" not in caplog.text and "secret" not in row.last_error
    dest = SlackDestination(config.destinations[0])
    assert "SECRET" not in dest.describe() and "SECRET" not in repr(dest.send([make_alert()]))


def test_unset_url_env_disables_the_destination_clearly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CW_TEST_SLACK_MISSING", raising=False)
    config = AlertsConfig(
        outbox=str(tmp_path / "o.sqlite"),
        destinations=[DestinationConfig(name="desk", type="slack", url_env="CW_TEST_SLACK_MISSING")],
    )
    worker = DeliveryWorker(config)
    assert worker.errors == {
        "desk": "destination 'desk': environment variable CW_TEST_SLACK_MISSING (its URL) is not set"
    }
    worker.outbox.close()


def test_a_refused_coalesced_message_is_split_so_one_bad_alert_fails_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    alerts = [make_alert(asset=f"A{i}-USDT") for i in range(3)]
    with FakeSlack() as slack:
        slack.script(SLACK_INVALID, Answer(200, b"ok"), SLACK_INVALID, Answer(200, b"ok"))
        outbox = deliver(slack_config(tmp_path, slack.url, monkeypatch, rate_per_s=20.0), alerts)
    assert [len(r.json()["attachments"]) for r in slack.requests] == [3, 1, 1, 1]
    assert outbox.counts()["desk"] == {"pending": 0, "inflight": 0, "delivered": 2, "failed": 1}
    [row] = outbox.rows("failed")
    assert row.alert_id == alerts[1]["id"] and row.last_error == "Slack answered 400: invalid_payload"


def test_other_evidence_is_shown_after_the_policys_fields() -> None:
    old_style = {
        k: v
        for k, v in make_alert().items()
        if k
        in ("type", "id", "dedup_key", "action", "severity", "kind", "asset", "direction", "ts", "summary", "price")
    }
    old_style["liquidated_usd_60s"] = 6_200_000.0
    fields = slack_message([old_style])["attachments"][0]["blocks"][2]["fields"]
    assert [f["text"] for f in fields[3:]] == ["*Probability*\n-", "*Price*\n64,000.5", "*Liquidated USD 60s*\n$6.20M"]
