"""Every secret through every error path, found nowhere: output, logs, outbox rows.

The secrets: a Slack webhook URL, a webhook URL from ``url_env`` with its HMAC key, and a
PagerDuty routing key. The paths: a malformed URL, an error body that echoes the secret, an
exception whose text holds it (in a send and in the worker loop). "Found" means any
substring of 8 characters of the secret part (for URLs: everything after the host).
"""

from __future__ import annotations

import http.client
import json
import logging
import sqlite3
from pathlib import Path

import pytest
from alert_fakes import Answer, FakePagerDuty, FakeSlack, FakeWebhook, enqueue, make_alert, wait_until
from alert_fakes import alerts_cli as cli

from cascadewatch.connectors.alerts.config import AlertsConfig, load_alerts_config
from cascadewatch.connectors.alerts.secrets import redact, secret_fragments
from cascadewatch.connectors.alerts.worker import DeliveryWorker

SLACK_PATH = "/services/T0SECRET1/B0SECRET2/zzzzSECRETzzzzSECRETzz"
HOOK_PATH = "/hooks/tok-9f8e7d6c5b4a3210"
HOOK_KEY = "hmac-key-5a4b3c2d1e"
PD_KEY = "R0UT1NGKEYR0UT1NGKEYR0UT1NGKEY00"


def leaks(text: str, secrets: list[str]) -> list[str]:
    """The 8-character pieces of ``secrets`` found in ``text``."""
    return [s[i : i + 8] for s in secrets for i in range(len(s) - 7) if s[i : i + 8] in text]


def write_config(tmp_path: Path, pd_url: str) -> Path:
    path = tmp_path / "cascadewatch.toml"
    path.write_text(f"""
[alerts]
outbox = "{tmp_path / "outbox.sqlite"}"
poll_s = 0.05

[[alerts.destinations]]
name = "pager"
type = "pagerduty"
url = "{pd_url}/v2/enqueue"
secret_env = "CW_PD_KEY"
rate_per_s = 50.0
max_attempts = 2
backoff_base_s = 0.01
backoff_max_s = 0.02

[[alerts.destinations]]
name = "desk"
type = "slack"
url_env = "CW_SLACK"
rate_per_s = 50.0
max_attempts = 2
backoff_base_s = 0.01
backoff_max_s = 0.02

[[alerts.destinations]]
name = "hook"
type = "webhook"
url_env = "CW_HOOK_URL"
secret_env = "CW_HOOK_KEY"
rate_per_s = 50.0
max_attempts = 2
backoff_base_s = 0.01
backoff_max_s = 0.02
""")
    return path


def outbox_text(config: AlertsConfig) -> str:
    with sqlite3.connect(config.outbox) as db:
        return json.dumps(db.execute("SELECT * FROM deliveries").fetchall())


def deliver_all(config: AlertsConfig) -> None:
    enqueue(config, [make_alert()])
    worker = DeliveryWorker(config, seed=3).start()
    try:
        wait_until(lambda: worker.unfinished() == 0)
    finally:
        worker.stop()


def test_fragments_and_redaction_of_a_cut_or_encoded_secret() -> None:
    url = "https://hooks.slack.com" + SLACK_PATH
    fragments = secret_fragments(url, url=True)
    assert fragments == [SLACK_PATH]
    assert redact("found at least ' ' in '/services/T0SECRET1/B0SEC'", fragments) == "found at least ' ' in '***'"
    assert redact("POST https://hooks.slack.com/services/x", fragments) == "POST https://hooks.slack.com***x"
    assert redact("short T0SEC", fragments) == "short T0SEC"  # 5 characters: not a secret fragment
    spaced = secret_fragments("https://h.example/a b/cdefghijk", url=True)
    assert "/a%20b/cdefghijk" in spaced
    assert redact("GET /a%20b/cdefghijk", spaced) == "GET ***"
    assert redact("key R0UT1NGKEY", secret_fragments("R0UT1NGKEY")) == "key ***"


def test_malformed_secret_url_is_refused_and_never_shown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("CW_SLACK", "https://hooks.slack.com" + SLACK_PATH + " trailing")
    monkeypatch.setenv("CW_HOOK_URL", "http://127.0.0.1:9" + HOOK_PATH + "\n")
    monkeypatch.setenv("CW_HOOK_KEY", HOOK_KEY)
    monkeypatch.setenv("CW_PD_KEY", PD_KEY)
    config_path = write_config(tmp_path, "http://127.0.0.1:9")
    code, out = cli(["alerts", "test", "--destination", "desk", "--config", str(config_path)])
    assert code == 2
    assert (
        "destination 'desk': environment variable CW_SLACK (its URL) contains whitespace or control characters" in out
    )
    code, hook_out = cli(["alerts", "test", "--destination", "hook", "--config", str(config_path)])
    assert code == 2 and "environment variable CW_HOOK_URL (its URL) contains whitespace" in hook_out
    config, _ = load_alerts_config(str(config_path))
    enqueue(config, [make_alert()])
    code, deliver_out = cli(["alerts", "deliver", "--config", str(config_path), "--timeout", "0.5"])
    assert "destination desk disabled" in deliver_out and "destination hook disabled" in deliver_out
    seen = out + hook_out + deliver_out + caplog.text + outbox_text(config) + "".join(capsys.readouterr())
    assert leaks(seen, [SLACK_PATH, HOOK_PATH, HOOK_KEY, PD_KEY]) == []


def test_echoed_bodies_never_show_a_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("CW_HOOK_KEY", HOOK_KEY)
    monkeypatch.setenv("CW_PD_KEY", PD_KEY)
    with FakePagerDuty() as pd, FakeSlack() as slack, FakeWebhook(HOOK_KEY) as hook:
        monkeypatch.setenv("CW_SLACK", slack.url + SLACK_PATH)
        monkeypatch.setenv("CW_HOOK_URL", hook.url + HOOK_PATH)
        # a proxy's 404 echoing the path (cut), a 502 echoing the whole URL, a 400 quoting the key
        echo_slack = f"no route for POST {SLACK_PATH[:30]}".encode()
        echo_hook = f"bad gateway: upstream {hook.url}{HOOK_PATH} (signature {HOOK_KEY})".encode()
        echo_pd = json.dumps({"status": "invalid event", "errors": [f"routing_key {PD_KEY} unknown"]}).encode()
        slack.script(Answer(404, echo_slack), Answer(404, echo_slack))
        hook.script(Answer(502, echo_hook), Answer(502, echo_hook), Answer(502, echo_hook))
        pd.script(Answer(400, echo_pd), Answer(400, echo_pd))
        config_path = write_config(tmp_path, pd.url)
        outs = [
            cli(["alerts", "test", "--destination", name, "--config", str(config_path)]) for name in ("desk", "hook")
        ]
        outs.append(cli(["alerts", "test", "--destination", "pager", "--config", str(config_path)]))
        config, _ = load_alerts_config(str(config_path))
        deliver_all(config)
        status = cli(["alerts", "status", "--config", str(config_path)])[1]
    assert [code for code, _ in outs] == [1, 1, 1]
    assert "Slack answered 404: no route for POST ***" in outs[0][1]
    assert f"webhook answered 502: bad gateway: upstream {hook.url}*** (signature ***)" in outs[1][1]
    assert "routing_key *** unknown" in outs[2][1]
    assert "Slack answered 404: no route for POST ***" in status
    seen = "".join(out for _, out in outs) + status + caplog.text + outbox_text(config) + "".join(capsys.readouterr())
    assert leaks(seen, [SLACK_PATH, HOOK_PATH, HOOK_KEY, PD_KEY]) == []


def test_exception_text_never_shows_a_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture
) -> None:
    from slack_sdk.webhook import WebhookClient

    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("CW_HOOK_KEY", HOOK_KEY)
    monkeypatch.setenv("CW_PD_KEY", PD_KEY)
    monkeypatch.setenv("CW_SLACK", "https://hooks.slack.invalid" + SLACK_PATH)
    monkeypatch.setenv("CW_HOOK_URL", "http://127.0.0.1:9" + HOOK_PATH)

    def invalid_url(self: WebhookClient, **_: object) -> None:  # what http.client says of a bad path
        raise http.client.InvalidURL(f"URL can't contain control characters. {self.url.split('.invalid')[1]!r}")

    monkeypatch.setattr(WebhookClient, "send", invalid_url)
    config_path = write_config(tmp_path, "http://127.0.0.1:9")
    code, out = cli(["alerts", "test", "--destination", "desk", "--config", str(config_path)])
    assert code == 1 and "InvalidURL: URL can't contain control characters. '***'" in out
    config, _ = load_alerts_config(str(config_path))

    worker = DeliveryWorker(config, seed=3)
    hook = worker.destinations["hook"]

    def crash(alerts: list) -> None:  # a bug in the loop itself: logged with its traceback
        raise RuntimeError(f"cannot post to {hook.url} with key {HOOK_KEY} / {PD_KEY}")

    monkeypatch.setattr(hook, "send", crash)
    enqueue(config, [make_alert()])
    worker.start()
    try:
        wait_until(lambda: "alert delivery loop for hook" in caplog.text and "RuntimeError" in caplog.text)
        wait_until(lambda: worker.outbox.counts()["desk"]["failed"] == 1)
    finally:
        worker.stop()
    assert "RuntimeError: cannot post to http://127.0.0.1:9*** with key *** / ***" in caplog.text
    seen = out + caplog.text + outbox_text(config) + "".join(capsys.readouterr())
    assert "InvalidURL" in outbox_text(config)
    assert leaks(seen, [SLACK_PATH, HOOK_PATH, HOOK_KEY, PD_KEY]) == []
