"""``cascadewatch alerts test|status|retry-failed``: clear results, never a secret."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from alert_fakes import PD_INVALID, FakePagerDuty, FakeSlack, FakeWebhook, make_alert
from alert_fakes import alerts_cli as cli

from cascadewatch.connectors.alerts.config import (
    AlertsConfig,
    DestinationConfig,
    load_alerts_config,
)
from cascadewatch.connectors.alerts.outbox import Outbox
from cascadewatch.connectors.alerts.routing import Router
from cascadewatch.pipelines.cli.alerts import main

KEY = "R0UT1NGKEYR0UT1NGKEYR0UT1NGKEY00"
SLACK_PATH = "/services/T0SECRET/B0SECRET/zzzzSECRETzzzz"


def write_config(
    tmp_path: Path,
    pd_url: str = "http://127.0.0.1:9",
    slack_url_env: str = "CW_SLACK",
    hook_url: str = "http://127.0.0.1:9",
) -> Path:
    path = tmp_path / "cascadewatch.toml"
    path.write_text(f"""
[replay]
allowed_lag_s = 2.0

[alerts]
outbox = "{tmp_path / "outbox.sqlite"}"

[[alerts.destinations]]
name = "pager"
type = "pagerduty"
url = "{pd_url}/v2/enqueue"
secret_env = "CW_PD_KEY"
timeout_s = 1.0

[[alerts.destinations]]
name = "desk"
type = "slack"
url_env = "{slack_url_env}"
severities = ["warning", "critical"]

[[alerts.destinations]]
name = "hook"
type = "webhook"
url = "{hook_url}/hook"
secret_env = "CW_HOOK_SECRET"

[riskfeed]
port = 9876
token_env = "CW_FEED_TOKEN"
""")
    return path


def test_config_sections_parse(tmp_path: Path) -> None:
    alerts, feed = load_alerts_config(str(write_config(tmp_path)))
    assert [d.name for d in alerts.destinations] == ["pager", "desk", "hook"]
    assert alerts.destination("desk").severities == ["warning", "critical"]
    assert (feed.port, feed.host, feed.token_env) == (9876, "127.0.0.1", "CW_FEED_TOKEN")
    bad = tmp_path / "bad.toml"
    bad.write_text('[alerts]\noutbox = "x"\nsurprise = 1\n')
    with pytest.raises(ValueError, match="surprise"):
        load_alerts_config(str(bad))


def test_pagerduty_test_alert_triggers_and_resolves(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CW_PD_KEY", KEY)
    with FakePagerDuty() as pd:
        code, out = cli(["alerts", "test", "--destination", "pager", "--config", str(write_config(tmp_path, pd.url))])
    assert code == 0, out
    assert "✓ trigger to pager (pagerduty 127.0.0.1:" in out and "delivered (HTTP 202)" in out
    assert "✓ resolve to pager" in out
    assert [r.json()["event_action"] for r in pd.requests] == ["trigger", "resolve"]
    assert pd.requests[0].json()["payload"]["severity"] == "info"
    assert KEY not in out


def test_missing_key_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CW_PD_KEY", raising=False)
    code, out = cli(["alerts", "test", "--destination", "pager", "--config", str(write_config(tmp_path))])
    assert code == 1
    assert "missing secret" in out and "environment variable CW_PD_KEY is not set" in out


def test_400_body_is_shown(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CW_PD_KEY", "short-key")
    with FakePagerDuty() as pd:
        pd.script(PD_INVALID)
        code, out = cli(["alerts", "test", "--destination", "pager", "--config", str(write_config(tmp_path, pd.url))])
    assert code == 1
    assert "PagerDuty rejected the event (400): invalid event: Event object is invalid: Length of 'routing_key'" in out
    assert "not retryable" in out and "hint: the destination rejected the message" in out
    assert "short-key" not in out


def test_unreachable_is_said(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("CW_SLACK", f"http://127.0.0.1:{port}{SLACK_PATH}")
    code, out = cli(["alerts", "test", "--destination", "desk", "--config", str(write_config(tmp_path))])
    assert code == 1
    assert "Slack unreachable: URLError" in out and "hint: check the URL" in out
    assert "SECRET" not in out


def test_slack_and_webhook_test_alerts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CW_HOOK_SECRET", "hook-secret")
    with FakeSlack() as slack, FakeWebhook("hook-secret") as hook:
        monkeypatch.setenv("CW_SLACK", slack.url + SLACK_PATH)
        config = write_config(tmp_path, hook_url=hook.url)
        assert cli(["alerts", "test", "--destination", "desk", "--config", str(config)])[0] == 0
        code, out = cli(["alerts", "test", "--destination", "hook", "--config", str(config)])
    assert code == 0 and "delivered (HTTP 204)" in out
    assert slack.requests[0].json()["attachments"][0]["blocks"][0]["text"]["text"].endswith("TEST test risk down")
    assert hook.verified == [True]


def test_unknown_destination_lists_the_known_ones(tmp_path: Path) -> None:
    code, out = cli(["alerts", "test", "--destination", "nope", "--config", str(write_config(tmp_path))])
    assert code == 2
    assert "no destination named 'nope' (known: pager, desk, hook)" in out


def test_status_shows_failed_with_reason_and_retry_failed_requeues(tmp_path: Path) -> None:
    config_path = write_config(tmp_path)
    alerts_config, _ = load_alerts_config(str(config_path))
    with Outbox(alerts_config.outbox) as outbox:
        outbox.enqueue([make_alert()], Router(alerts_config.destinations))
        claimed = outbox.claim("pager")
        outbox.mark_failed([c.seq for c in claimed], "PagerDuty rejected the event (400): invalid event")
    code, out = cli(["alerts", "status", "--config", str(config_path)])
    assert code == 0
    assert "failed deliveries" in out and "PagerDuty rejected the event (400): invalid event" in out
    assert "BTC-USDT:cascade:down" in out
    code, out = cli(["alerts", "retry-failed", "--config", str(config_path), "--destination", "pager"])
    assert "1 failed deliveries are pending again" in out


def test_main_entry_parses(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["alerts", "--help"])
    assert "test" in capsys.readouterr().out


def test_config_rejects_destination_without_its_secret_env() -> None:
    import msgspec

    with pytest.raises(msgspec.ValidationError, match="webhook needs url or url_env"):
        msgspec.convert({"destinations": [{"name": "w", "type": "webhook"}]}, AlertsConfig)
    with pytest.raises(msgspec.ValidationError, match="unknown severity 'fatal'"):
        msgspec.convert({"name": "c", "type": "console", "severities": ["fatal"]}, DestinationConfig)


def test_deliver_until_empty_fails_while_a_disabled_destination_has_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("CW_SLACK", "CW_PD_KEY", "CW_HOOK_SECRET"):
        monkeypatch.delenv(name, raising=False)
    config_path = write_config(tmp_path)
    alerts_config, _ = load_alerts_config(str(config_path))
    with Outbox(alerts_config.outbox) as outbox:
        outbox.enqueue([make_alert()], Router(alerts_config.destinations))
    code, out = cli(["alerts", "deliver", "--config", str(config_path), "--until-empty", "--timeout", "30"])
    assert code == 1
    assert (
        "1 deliveries to desk still pending: destination 'desk': environment variable CW_SLACK (its URL) is not set"
        in out
    )
    assert "1 deliveries to pager still pending: destination 'pager': environment variable CW_PD_KEY is not set" in out


def test_the_worker_lock_is_on_the_real_path_of_the_outbox(tmp_path: Path) -> None:
    from cascadewatch.connectors.alerts.worker import DeliveryWorker, WorkerLocked

    real = AlertsConfig(outbox=str(tmp_path / "data" / "outbox.sqlite"))
    (tmp_path / "link").symlink_to(tmp_path / "data")
    linked = AlertsConfig(outbox=str(tmp_path / "link" / "outbox.sqlite"))
    first = DeliveryWorker(real).start()
    try:
        second = DeliveryWorker(linked)
        with pytest.raises(WorkerLocked, match=f"another delivery worker is running on {tmp_path}/data/outbox.sqlite"):
            second.start()
        second.outbox.close()
    finally:
        first.stop()
    DeliveryWorker(linked).start().stop()  # free again once the first has stopped


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"url": "ftp://hooks.example/x"}, "destination 'w': url must be an http:// or https:// URL (scheme 'ftp')"),
        ({"url": "not a url"}, "destination 'w': url contains whitespace or control characters"),
        ({"url": "https:///no-host"}, "destination 'w': url has no host"),
        (
            {"url": "https://h/x", "backoff_base_s": -1.0},
            "backoff_base_s must be > 0 and backoff_max_s >= backoff_base_s",
        ),
        (
            {"url": "https://h/x", "backoff_max_s": -5.0},
            "backoff_base_s must be > 0 and backoff_max_s >= backoff_base_s",
        ),
    ],
)
def test_config_rejects_bad_urls_and_backoff_at_load(tmp_path: Path, fields: dict, message: str) -> None:
    import msgspec

    with pytest.raises(msgspec.ValidationError, match=message.replace("(", r"\(").replace(")", r"\)")):
        msgspec.convert({"destinations": [{"name": "w", "type": "webhook", **fields}]}, AlertsConfig)
    config = tmp_path / "c.toml"
    config.write_text(
        '[alerts]\n[[alerts.destinations]]\nname = "w"\ntype = "webhook"\n'
        + "".join(f"{key} = {value!r}\n".replace("'", '"') for key, value in fields.items())
    )
    code, out = cli(["alerts", "test", "--destination", "w", "--config", str(config)])
    assert code == 2 and message in out
