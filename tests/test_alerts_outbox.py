"""The outbox: idempotent transactional enqueue, routing, ordering, retry, recovery; the sink."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import bytewax.operators as op
import pytest
from alert_fakes import make_alert
from bytewax.dataflow import Dataflow
from bytewax.testing import TestingSource, run_main

from cascadewatch.connectors.alerts.config import AlertsConfig, DestinationConfig
from cascadewatch.connectors.alerts.outbox import Outbox, Requeued
from cascadewatch.connectors.alerts.routing import Router, asset_matches
from cascadewatch.connectors.alerts.sink import AlertOutboxSink
from cascadewatch.connectors.sinks import to_stream


class Clock:
    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def dest(name: str, **kw) -> DestinationConfig:
    return DestinationConfig(name=name, type="console", **kw)


def test_enqueue_is_idempotent_on_alert_id_across_reopen(tmp_path: Path) -> None:
    route = Router([dest("a"), dest("b")])
    alerts = [make_alert(), make_alert(direction="up")]
    with Outbox(tmp_path / "o.sqlite") as outbox:
        assert [d for _, d in outbox.enqueue(alerts, route)] == [["a", "b"], ["a", "b"]]
        assert outbox.enqueue(alerts, route) == []
    with Outbox(tmp_path / "o.sqlite") as outbox:  # a resumed or replayed flow
        assert outbox.enqueue([*alerts, make_alert(asset="ETH-USDT")], route) == [
            (make_alert(asset="ETH-USDT")["id"], ["a", "b"])
        ]
        assert outbox.counts() == {n: {"pending": 3, "inflight": 0, "delivered": 0, "failed": 0} for n in ("a", "b")}
    db = sqlite3.connect(tmp_path / "o.sqlite")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_enqueue_is_one_transaction(tmp_path: Path) -> None:
    def route(alert: dict) -> list[str]:
        if alert["asset"] == "BAD-USDT":
            raise RuntimeError("routing blew up")
        return ["a"]

    with Outbox(tmp_path / "o.sqlite") as outbox:
        with pytest.raises(RuntimeError):
            outbox.enqueue([make_alert(), make_alert(asset="BAD-USDT")], route)
        assert outbox.counts() == {}
        assert outbox.alert(make_alert()["id"]) is None


def test_routing_rules() -> None:
    route = Router(
        [
            dest("pager", severities=["critical"], assets=["BTC", "ETH-USDT"]),
            dest("desk", severities=["warning", "critical"], kinds=["cascade"]),
            dest("triggers-only", actions=["trigger"]),
            dest("other-kind", kinds=["stop_run"]),
        ]
    )
    assert route(make_alert(severity="critical")) == ["pager", "desk", "triggers-only"]
    assert route(make_alert(severity="warning")) == ["desk", "triggers-only"]
    assert route(make_alert(asset="ETH-USDT", severity="critical")) == ["pager", "desk", "triggers-only"]
    assert route(make_alert(asset="ETH-USDC", severity="critical")) == ["desk", "triggers-only"]
    assert route(make_alert(severity="info")) == ["triggers-only"]
    assert route(make_alert(action="resolve", severity="info")) == []
    assert asset_matches("BTC-USDT", ["btc"]) and not asset_matches("BTCDOM-USDT", ["BTC"])


def test_resolve_follows_the_destinations_of_its_trigger(tmp_path: Path) -> None:
    route = Router([dest("pager", severities=["critical"]), dest("desk", severities=["warning"])])
    with Outbox(tmp_path / "o.sqlite") as outbox:
        outbox.enqueue([make_alert(severity="critical")], route)
        # the policy resolves at "warning": routing alone would send it to the desk only
        [(_, destinations)] = outbox.enqueue(
            [make_alert(action="resolve", severity="warning", ts=1_700_000_060_000)], route
        )
        assert destinations == ["pager"]
        # a resolve whose trigger is unknown (outbox wiped) is routed by the rules
        [(_, destinations)] = outbox.enqueue(
            [make_alert(asset="SOL-USDT", action="resolve", severity="warning")], route
        )
        assert destinations == ["desk"]


def test_claim_keeps_order_per_dedup_key_and_honours_retry_time(tmp_path: Path) -> None:
    clock = Clock()
    route = Router([dest("d")])
    with Outbox(tmp_path / "o.sqlite", clock=clock) as outbox:
        trigger_a, trigger_b = make_alert(), make_alert(asset="ETH-USDT")
        resolve_a = make_alert(action="resolve", ts=1_700_000_060_000)
        outbox.enqueue([trigger_a, trigger_b, resolve_a], route)
        first = outbox.claim("d", limit=10)
        assert [c.alert_id for c in first] == [trigger_a["id"], trigger_b["id"]]  # resolve waits for its trigger
        assert all(c.attempts == 1 for c in first)
        assert outbox.claim("d", limit=10) == []
        outbox.mark_retry([first[0].seq], at=clock.t + 30, reason="PagerDuty answered 503")
        outbox.mark_delivered([first[1].seq])
        assert outbox.claim("d", limit=10) == []  # the trigger is not due; its resolve waits behind it
        assert outbox.next_due("d") == clock.t + 30
        clock.t += 30
        again = outbox.claim("d", limit=10)
        assert [(c.alert_id, c.attempts) for c in again] == [(trigger_a["id"], 2)]
        outbox.mark_delivered([again[0].seq])
        assert [c.alert for c in outbox.claim("d")] == [resolve_a]


def test_recover_returns_inflight_to_pending_and_failed_stay_visible(tmp_path: Path) -> None:
    route = Router([dest("d")])
    with Outbox(tmp_path / "o.sqlite") as outbox:
        outbox.enqueue([make_alert(), make_alert(asset="ETH-USDT")], route)
        claimed = outbox.claim("d", limit=2)
        outbox.mark_failed([claimed[1].seq], "PagerDuty rejected the event (400): invalid event")
    # the process died with the first one in flight
    with Outbox(tmp_path / "o.sqlite") as outbox:
        assert outbox.counts()["d"] == {"pending": 0, "inflight": 1, "delivered": 0, "failed": 1}
        assert outbox.recover() == 1
        assert outbox.pending() == 1
        [row] = outbox.rows("failed")
        assert row.alert_id == make_alert(asset="ETH-USDT")["id"] and "invalid event" in row.last_error
        assert outbox.requeue_failed("d") == Requeued(pending=1, superseded=0)
        assert outbox.counts()["d"]["pending"] == 2


def _run_sink_flow(items: list, sink: AlertOutboxSink) -> None:
    flow = Dataflow("outbox_test")
    op.output("outbox", op.input("in", flow, TestingSource(items)), sink)
    run_main(flow)


def test_sink_enqueues_alerts_once_and_ignores_snapshots(tmp_path: Path) -> None:
    config = AlertsConfig(outbox=str(tmp_path / "o.sqlite"), destinations=[dest("a")])
    snapshot = {"type": "snapshot", "ts": 1_700_000_000_000, "asset": "BTC-USDT", "price": 1.0}
    alerts = [make_alert(), make_alert(direction="up"), make_alert(action="resolve", ts=1_700_000_060_000)]
    items = [to_stream("snapshots", snapshot)] + [to_stream("alerts", a) for a in alerts]
    _run_sink_flow(items, AlertOutboxSink(config, deliver=False))
    _run_sink_flow(items, AlertOutboxSink(config, deliver=False))  # a replay of the same input
    with Outbox(config.outbox) as outbox:
        assert outbox.counts() == {"a": {"pending": 3, "inflight": 0, "delivered": 0, "failed": 0}}
        assert [outbox.alert(a["id"]) for a in alerts] == alerts


def test_sink_runs_the_delivery_worker_and_drains_at_the_end(tmp_path: Path) -> None:
    out = tmp_path / "delivered.jsonl"
    config = AlertsConfig(
        outbox=str(tmp_path / "o.sqlite"),
        poll_s=0.05,
        destinations=[DestinationConfig(name="file", type="jsonl", path=str(out))],
    )
    alerts = [make_alert(), make_alert(direction="up")]
    _run_sink_flow([to_stream("alerts", a) for a in alerts], AlertOutboxSink(config, drain_s=5.0))
    assert [json.loads(line) for line in out.read_text().splitlines()] == alerts
    with Outbox(config.outbox) as outbox:
        assert outbox.counts()["file"]["delivered"] == 2
