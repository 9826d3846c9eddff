"""The generic webhook: exact JSON body, HMAC-SHA256 signature verified by the fake, retries."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from pathlib import Path

import pytest
from alert_fakes import Answer, FakeWebhook, deliver, make_alert

from cascadewatch.connectors.alerts.config import AlertsConfig, DestinationConfig

SECRET = "whsec-3f9a0c1d2e4b5a6978"


def hook_config(tmp_path: Path, url: str, monkeypatch: pytest.MonkeyPatch, secret: str = SECRET, **kw) -> AlertsConfig:
    monkeypatch.setenv("CW_TEST_HOOK_SECRET", secret)
    options = {"backoff_base_s": 0.05, "backoff_max_s": 0.2, "rate_per_s": 50.0, "timeout_s": 2.0, **kw}
    return AlertsConfig(
        outbox=str(tmp_path / "outbox.sqlite"),
        poll_s=0.05,
        destinations=[
            DestinationConfig(
                name="hook", type="webhook", url=url + "/cascadewatch", secret_env="CW_TEST_HOOK_SECRET", **options
            )
        ],
    )


def test_body_is_the_alert_and_the_signature_verifies(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    alerts = [make_alert(), make_alert(action="resolve", ts=1_700_000_060_000, summary="résolu ✓")]
    with FakeWebhook(SECRET) as hook:
        outbox = deliver(hook_config(tmp_path, hook.url, monkeypatch), alerts)
    assert hook.verified == [True, True]
    for request, alert in zip(hook.requests, alerts, strict=True):
        assert request.path == "/cascadewatch"
        assert request.headers["content-type"] == "application/json"
        assert request.headers["x-alert-id"] == alert["id"]
        assert request.json() == alert
        assert request.body == json.dumps(alert, separators=(",", ":"), ensure_ascii=False).encode()
        assert request.headers["x-signature"] == hmac.new(SECRET.encode(), request.body, hashlib.sha256).hexdigest()
    assert outbox.counts()["hook"]["delivered"] == 2


def test_wrong_secret_is_refused_and_not_retried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with FakeWebhook(SECRET) as hook:
        outbox = deliver(hook_config(tmp_path, hook.url, monkeypatch, secret="not-the-shared-secret"), [make_alert()])
    assert hook.verified == [False]
    [row] = outbox.rows("failed")
    assert row.last_error == 'webhook answered 401: {"error":"bad signature"}'
    assert "not-the-shared-secret" not in caplog.text


def test_retries_like_pagerduty(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with FakeWebhook(SECRET) as hook:
        hook.script(Answer(503, b"busy"), Answer(429, b"", {"Retry-After": "1"}), Answer(422, b"unprocessable"))
        outbox = deliver(hook_config(tmp_path, hook.url, monkeypatch), [make_alert()])
    assert len(hook.requests) == 3
    assert hook.requests[2].at - hook.requests[1].at >= 0.95
    [row] = outbox.rows("failed")
    assert (row.attempts, row.last_error) == (3, "webhook answered 422: unprocessable")


def test_secret_url_is_redacted_from_http_client_logs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with FakeWebhook(SECRET) as hook:
        monkeypatch.setenv("CW_TEST_HOOK_URL", hook.url + "/hooks/tok-9f8e7d6c5b4a")
        monkeypatch.setenv("CW_TEST_HOOK_SECRET", SECRET)
        config = AlertsConfig(
            outbox=str(tmp_path / "o.sqlite"),
            poll_s=0.05,
            destinations=[
                DestinationConfig(
                    name="hook", type="webhook", url_env="CW_TEST_HOOK_URL", secret_env="CW_TEST_HOOK_SECRET"
                )
            ],
        )
        deliver(config, [make_alert()])
    assert hook.requests[0].path == "/hooks/tok-9f8e7d6c5b4a"
    # httpx's own INFO line: scheme and host stay readable, the secret path is redacted
    assert f'HTTP Request: POST {hook.url}*** "HTTP/1.1 204' in caplog.text
    assert "tok-9f8e7d6c5b4a" not in caplog.text and SECRET not in caplog.text
