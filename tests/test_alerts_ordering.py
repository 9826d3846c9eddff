"""Per-key order across failures and ``retry-failed``: PagerDuty ends in the pipeline's state.

Rule (docs/alerts.md): a delivery waits while an earlier one of its dedup key is still being
retried; a delivery that failed for good is superseded by any later one of its key, and
``alerts retry-failed`` resends only failed deliveries that nothing later supersedes.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from alert_fakes import FakePagerDuty, make_alert
from alert_fakes import alerts_cli as cli

from cascadewatch.connectors.alerts.config import load_alerts_config
from cascadewatch.connectors.alerts.outbox import SUPERSEDED, Outbox
from cascadewatch.connectors.alerts.routing import Router

KEY = "R0UT1NGKEYR0UT1NGKEYR0UT1NGKEY00"


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
timeout_s = 2.0
""")
    return path


def pipeline_state(alerts: list[dict]) -> set[str]:
    """Dedup keys whose latest alert is a trigger: the incidents the pipeline holds open."""
    latest = {alert["dedup_key"]: alert["action"] for alert in alerts}
    return {key for key, action in latest.items() if action == "trigger"}


def enqueue(config_path: Path, alerts: list[dict]) -> None:
    config, _ = load_alerts_config(str(config_path))
    with Outbox(config.outbox) as outbox:
        outbox.enqueue(alerts, Router(config.destinations))


def test_retry_failed_leaves_pagerduty_in_the_pipelines_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CW_PD_KEY", KEY)
    a_trigger, a_resolve = make_alert(), make_alert(action="resolve", ts=1_700_000_060_000)
    b_trigger = make_alert(asset="ETH-USDT")
    c_trigger = make_alert(asset="SOL-USDT")
    c_resolve = make_alert(asset="SOL-USDT", action="resolve", ts=1_700_000_060_000)
    d_trigger, d_resolve = (
        make_alert(asset="XRP-USDT"),
        make_alert(asset="XRP-USDT", action="resolve", ts=1_700_000_060_000),
    )
    d_again = make_alert(asset="XRP-USDT", ts=1_700_000_120_000)
    alerts = [a_trigger, b_trigger, c_trigger, d_trigger, a_resolve, c_resolve, d_resolve, d_again]
    with FakePagerDuty() as pd:
        # A: trigger refused, resolve accepted. B: trigger refused, nothing after it.
        # C: trigger accepted, resolve refused. D: trigger refused, resolve accepted, trigger again refused.
        pd.refuse = {
            ("BTC-USDT:cascade:down", "trigger"),
            ("ETH-USDT:cascade:down", "trigger"),
            ("SOL-USDT:cascade:down", "resolve"),
            ("XRP-USDT:cascade:down", "trigger"),
        }
        config_path = write_config(tmp_path, pd.url)
        enqueue(config_path, alerts[:4])
        assert cli(["alerts", "deliver", "--config", str(config_path), "--until-empty", "--timeout", "20"])[0] == 0
        pd.refuse.add(("XRP-USDT:cascade:down", "trigger"))
        enqueue(config_path, alerts[4:])
        assert cli(["alerts", "deliver", "--config", str(config_path), "--until-empty", "--timeout", "20"])[0] == 0
        code, out = cli(["alerts", "retry-failed", "--config", str(config_path)])
        assert code == 0
        assert "3 failed deliveries are pending again" in out  # B's trigger, C's resolve, D's second trigger
        assert "2 failed deliveries are superseded by a later alert" in out  # A's and D's first triggers
        assert cli(["alerts", "deliver", "--config", str(config_path), "--until-empty", "--timeout", "20"])[0] == 0
        # a second retry-failed resends nothing: the superseded stay superseded
        assert (
            "0 failed deliveries are pending again" in cli(["alerts", "retry-failed", "--config", str(config_path)])[1]
        )
        sent = [(r.json()["dedup_key"].split("-")[0], r.json()["event_action"]) for r in pd.requests]
    assert pd.open == pipeline_state(alerts) == {"ETH-USDT:cascade:down", "XRP-USDT:cascade:down"}
    assert sent == [
        ("BTC", "trigger"),  # 400
        ("ETH", "trigger"),  # 400
        ("SOL", "trigger"),
        ("XRP", "trigger"),  # 400
        ("BTC", "resolve"),
        ("SOL", "resolve"),  # 400
        ("XRP", "resolve"),
        ("XRP", "trigger"),  # 400
        ("ETH", "trigger"),  # retried
        ("SOL", "resolve"),  # retried
        ("XRP", "trigger"),  # retried: the latest of its key
    ]
    config, _ = load_alerts_config(str(config_path))
    with Outbox(config.outbox) as outbox:
        failed = {row.alert_id: row.last_error or "" for row in outbox.rows("failed")}
        assert outbox.pending() == 0
    assert set(failed) == {a_trigger["id"], d_trigger["id"]}
    assert failed[a_trigger["id"]].startswith(f"{SUPERSEDED} {a_resolve['id']} (resolve): PagerDuty rejected")
    assert failed[d_trigger["id"]].startswith(f"{SUPERSEDED} {d_again['id']} (trigger): PagerDuty rejected")


def test_a_resolve_waits_for_its_trigger_while_it_is_retried(tmp_path: Path) -> None:
    route = Router(load_alerts_config(str(write_config(tmp_path, "http://127.0.0.1:9")))[0].destinations)
    trigger, resolve = make_alert(), make_alert(action="resolve", ts=1_700_000_060_000)
    with Outbox(tmp_path / "o.sqlite") as outbox:
        outbox.enqueue([trigger, resolve], route)
        [claimed] = outbox.claim("pager", limit=10)
        assert claimed.alert_id == trigger["id"]
        outbox.mark_retry([claimed.seq], at=0.0, reason="PagerDuty answered 503")
        assert [d.alert_id for d in outbox.claim("pager", limit=10)] == [trigger["id"]]
