"""Discord webhooks against a fake on 127.0.0.1 that checks Discord's embed limits and
answers with Discord's status codes and bodies."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from alert_fakes import (
    DISCORD_UNKNOWN_WEBHOOK,
    FakeDiscord,
    deliver,
    discord_problem,
    discord_rate_limited,
    enqueue,
    make_alert,
    wait_until,
)

from cascadewatch.connectors.alerts.config import AlertsConfig, DestinationConfig
from cascadewatch.connectors.alerts.destinations.discord import MAX_EMBEDS, discord_message
from cascadewatch.connectors.alerts.worker import DeliveryWorker

HOOK_PATH = "/api/webhooks/1180000000000000000/SeCrEtWeBhOoKtOkEnSeCrEtWeBhOoKtOkEn"


def discord_config(tmp_path: Path, url: str, monkeypatch: pytest.MonkeyPatch, **kw) -> AlertsConfig:
    monkeypatch.setenv("CW_TEST_DISCORD_URL", url + HOOK_PATH)
    options = {"backoff_base_s": 0.05, "backoff_max_s": 0.2, "timeout_s": 2.0, "rate_per_s": 50.0, **kw}
    return AlertsConfig(
        outbox=str(tmp_path / "outbox.sqlite"),
        poll_s=0.05,
        destinations=[DestinationConfig(name="floor", type="discord", url_env="CW_TEST_DISCORD_URL", **options)],
    )


def test_embed_coloured_by_severity(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    alert = make_alert(cascade="liquidation", summary="@everyone BTC-USDT DOWN: 72% cascade risk")
    with FakeDiscord(HOOK_PATH) as discord:
        outbox = deliver(discord_config(tmp_path, discord.url, monkeypatch), [alert])
    [request] = discord.requests
    assert request.headers["content-type"] == "application/json"
    [embed] = request.json()["embeds"]
    assert request.json()["allowed_mentions"] == {"parse": []}  # "@everyone" pings nobody
    assert embed["title"] == "\N{LARGE RED CIRCLE} CRITICAL: BTC-USDT cascade risk down"
    assert embed["description"] == alert["summary"]
    assert embed["color"] == 0xD00000
    assert embed["fields"][:5] == [
        {"name": "Asset", "value": "BTC-USDT", "inline": True},
        {"name": "Direction", "value": "down (longs liquidated)", "inline": True},
        {"name": "Severity", "value": "critical", "inline": True},
        {"name": "Probability", "value": "72%", "inline": True},
        {"name": "Price", "value": "64,000.5", "inline": True},
    ]
    assert embed["footer"] == {"text": f"BTC-USDT:cascade:down · alert {alert['id']}"}
    assert embed["timestamp"] == "2023-11-14T22:13:20.000Z"
    assert outbox.counts()["floor"]["delivered"] == 1
    colours = [
        discord_message([make_alert(severity=s, action=a)])["embeds"][0]["color"]
        for s, a in (("warning", "trigger"), ("info", "trigger"), ("critical", "resolve"))
    ]
    assert colours == [0xF2A900, 0x2F80ED, 0x2EB67D]


def test_a_burst_is_coalesced_within_discords_limits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    long = "x" * 5000
    burst = [make_alert(asset=f"A{i}-USDT", summary=long, note=long) for i in range(7)]
    assert discord_problem(discord_message(burst[:MAX_EMBEDS])) is None
    with FakeDiscord(HOOK_PATH) as discord:
        config = discord_config(tmp_path, discord.url, monkeypatch, rate_per_s=2.0)
        enqueue(config, burst)
        worker = DeliveryWorker(config, seed=7).start()
        try:
            wait_until(lambda: worker.unfinished() == 0)
        finally:
            worker.stop()
    assert [len(r.json()["embeds"]) for r in discord.requests] == [5, 2]
    assert all(r.headers.get("content-length") for r in discord.requests)


def test_429_waits_for_retry_after_in_the_body(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with FakeDiscord(HOOK_PATH) as discord:
        discord.script(discord_rate_limited(1.5))  # the header says 2 (rounded): the body's 1.5 rules
        outbox = deliver(discord_config(tmp_path, discord.url, monkeypatch), [make_alert()])
    first, second = discord.requests
    assert 1.45 <= second.at - first.at < 1.95
    assert outbox.counts()["floor"]["delivered"] == 1


def test_unknown_webhook_is_failed_and_the_url_never_shown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with FakeDiscord(HOOK_PATH) as discord:
        discord.script(DISCORD_UNKNOWN_WEBHOOK)
        outbox = deliver(discord_config(tmp_path, discord.url, monkeypatch), [make_alert()])
    [row] = outbox.rows("failed")
    assert row.last_error == "Discord answered 404: Unknown Webhook (code 10015)"
    secret = HOOK_PATH.split("/")[-1]
    files = b"".join(p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()).decode("utf-8", "replace")
    assert [secret[i : i + 8] for i in range(len(secret) - 7) if secret[i : i + 8] in caplog.text + files] == []
