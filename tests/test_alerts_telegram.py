"""Telegram Bot API ``sendMessage`` against a fake on 127.0.0.1 that parses MarkdownV2 as
Telegram does and answers with Telegram's bodies and status codes."""

from __future__ import annotations

import doctest
import logging
import socket
from pathlib import Path

import pytest
from alert_fakes import (
    FakeTelegram,
    alerts_cli,
    deliver,
    make_alert,
    parse_markdown_v2,
    telegram_too_many,
)

import cascadewatch.connectors.alerts.destinations.telegram as telegram
from cascadewatch.connectors.alerts.config import AlertsConfig, DestinationConfig
from cascadewatch.connectors.alerts.destinations.telegram import escape, telegram_text

TOKEN = "5937461820:AAHsecretSECRETsecretSECRETsecret12"
CHAT = "-1001234567890"
NASTY = "BTC-USDT DOWN: 72% [x](y) a_b*c~d`e>f#g+h=i|j{k}l.m!n\\o · $48.0M"


def telegram_config(tmp_path: Path, url: str, monkeypatch: pytest.MonkeyPatch, **kw) -> AlertsConfig:
    monkeypatch.setenv("CW_TEST_TG_TOKEN", TOKEN)
    options = {"backoff_base_s": 0.05, "backoff_max_s": 0.2, "timeout_s": 2.0, "rate_per_s": 50.0, **kw}
    return AlertsConfig(
        outbox=str(tmp_path / "outbox.sqlite"),
        poll_s=0.05,
        destinations=[
            DestinationConfig(
                name="traders", type="telegram", url=url, secret_env="CW_TEST_TG_TOKEN", chat_id=CHAT, **options
            )
        ],
    )


def test_escaping_doctest_and_every_reserved_character_round_trips() -> None:
    assert doctest.testmod(telegram).failed == 0
    every = "_*[]()~`>#+-=|{}.!\\ plain"
    assert parse_markdown_v2(escape(every)) == every
    with pytest.raises(ValueError, match="Character '-' is reserved"):
        parse_markdown_v2("BTC-USDT")
    with pytest.raises(ValueError, match="Can't find end of the entity"):
        parse_markdown_v2("*bold")


def test_message_as_telegram_shows_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    alert = make_alert(cascade="liquidation", summary=NASTY)
    with FakeTelegram(TOKEN, CHAT) as tg:
        outbox = deliver(telegram_config(tmp_path, tg.url, monkeypatch), [alert])
    [request] = tg.requests
    assert request.path == f"/bot{TOKEN}/sendMessage"
    body = request.json()
    assert (body["chat_id"], body["parse_mode"], body["disable_web_page_preview"]) == (CHAT, "MarkdownV2", True)
    assert body["text"] == telegram_text(alert)
    assert tg.messages == [
        "\N{LARGE RED CIRCLE} CRITICAL: BTC-USDT cascade risk down\n"
        f"{NASTY}\n"
        "\n"
        "Asset: BTC-USDT\n"
        "Direction: down (longs liquidated)\n"
        "Severity: critical\n"
        "Probability: 72%\n"
        "Price: 64,000.5\n"
        "Nearest cluster: 63,000 (-156 bps) · $48.00M\n"
        "Notional at risk: $52.00M\n"
        "Depth in front: $4.20M (×0.41 of usual)\n"
        "Cascade reach: 310 bps · $91.00M forced\n"
        "Hawkes branching: 0.87\n"
        "Liq USD 60s: $6.20M\n"
        "\n"
        f"BTC-USDT:cascade:down · alert {alert['id']} · 2023-11-14T22:13:20.000Z"
    ]
    assert body["text"].startswith("*\N{LARGE RED CIRCLE} CRITICAL: BTC\\-USDT cascade risk down*\n")
    assert outbox.counts()["traders"]["delivered"] == 1


def test_resolve_headline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with FakeTelegram(TOKEN, CHAT) as tg:
        deliver(telegram_config(tmp_path, tg.url, monkeypatch), [make_alert(action="resolve")])
    assert tg.messages[0].splitlines()[0] == "\N{WHITE HEAVY CHECK MARK} Resolved: BTC-USDT cascade down"
    assert "Severity: resolved" in tg.messages[0].splitlines()


def test_429_waits_for_the_bodys_retry_after(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with FakeTelegram(TOKEN, CHAT) as tg:
        tg.script(telegram_too_many(1))  # no Retry-After header: only parameters.retry_after
        outbox = deliver(telegram_config(tmp_path, tg.url, monkeypatch), [make_alert()])
    first, second = tg.requests
    assert second.at - first.at >= 0.95  # backoff alone would be 0.025..0.05 s
    assert first.body == second.body
    assert outbox.counts()["traders"]["delivered"] == 1


def test_refusals_are_failed_with_telegrams_description(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with FakeTelegram(TOKEN, "-100999") as tg:
        outbox = deliver(telegram_config(tmp_path, tg.url, monkeypatch), [make_alert()])
    [row] = outbox.rows("failed")
    assert row.last_error == "Telegram answered 400: Bad Request: chat not found"
    assert len(tg.requests) == 1


def test_the_bot_token_is_never_shown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with FakeTelegram("5937461820:AAHanotherTOKENanotherTOKENanother", CHAT) as tg:  # ours is refused: 401
        config = telegram_config(tmp_path, tg.url, monkeypatch, max_attempts=2)
        outbox = deliver(config, [make_alert()])
        [row] = outbox.rows("failed")
        assert row.last_error == "Telegram answered 401: Unauthorized"
    with socket.socket() as sock:  # a port nobody listens on: the error names the URL
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}"
    config = telegram_config(tmp_path / "closed", closed, monkeypatch, max_attempts=1)
    outbox = deliver(config, [make_alert()])
    [row] = outbox.rows("failed")
    assert row.last_error is not None and row.last_error.startswith("gave up after 1 attempts: Telegram unreachable")
    config_file = tmp_path / "cw.toml"
    config_file.write_text(
        f'[alerts]\noutbox = "{tmp_path / "cli.sqlite"}"\n[[alerts.destinations]]\nname = "traders"\n'
        f'type = "telegram"\nurl = "{closed}"\nsecret_env = "CW_TEST_TG_TOKEN"\nchat_id = "{CHAT}"\n'
    )
    code, shown = alerts_cli(["alerts", "test", "--destination", "traders", "--config", str(config_file)])
    assert code == 1 and "Telegram unreachable" in shown
    httpx_lines = [r.getMessage() for r in caplog.records if r.name == "httpx"]
    assert any("/bot***" in line for line in httpx_lines)  # httpx logged the request, redacted
    files = b"".join(p.read_bytes() for p in tmp_path.rglob("*") if p.is_file())
    everything = caplog.text + shown + "\n".join(httpx_lines) + files.decode("utf-8", "replace")
    pieces = [TOKEN[i : i + 8] for i in range(len(TOKEN) - 7)]
    assert [piece for piece in pieces if piece in everything] == []
