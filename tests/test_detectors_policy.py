"""The alert policy on hand-made probability series: exactly the expected alerts."""

from __future__ import annotations

import hashlib
import json
import pickle

import msgspec
import pytest

from cascadewatch.connectors.outputs import ALERT_HEADER
from cascadewatch.detectors.drivers import Driver
from cascadewatch.detectors.policy import AlertPolicy, AssetReadout, DirectionReadout

ASSET = "BTC-USDT"
KEY = "BTC-USDT:cascade:down"


def update(policy: AlertPolicy, r: AssetReadout) -> list[dict]:
    """The policy's alerts for ``r`` as output items (dicts, in the contract's key order)."""
    return [alert.to_dict() for alert in policy.update(r)]


def make_policy() -> AlertPolicy:
    return AlertPolicy(warn_enter=0.3, warn_exit=0.2, crit_enter=0.6, min_hold_s=5, calm_s=2, cooldown_s=10)


# (second, probability, cascade in progress)
SERIES = [
    (0, 0.10, None),
    (1, 0.35, None),  # trigger warning (incident opened at 1)
    (2, 0.25, None),  # in the hysteresis band: hot
    (3, 0.15, None),  # calm since 3
    (4, 0.10, None),
    (5, 0.10, None),  # calm 2 s, but held only 4 s < 5
    (6, 0.10, None),  # held 5 s: resolve; cooldown until 16
    (7, 0.40, None),  # a warning during the cooldown: suppressed
    (8, 0.70, None),  # a critical bypasses the cooldown: trigger critical (opened 8)
    (9, 0.10, None),  # calm since 9
    (10, 0.25, None),  # hot again: calm reset
    (11, 0.10, None),  # calm since 11
    (12, 0.10, None),
    (13, 0.10, None),  # calm 2 s, held 5 s: resolve; cooldown until 23
    (20, 0.35, None),  # cooldown: suppressed
    (23, 0.35, None),  # cooldown over: trigger warning (opened 23)
    (24, 0.65, None),  # escalate: trigger critical, same dedup key
    (25, 0.05, "liquidation"),  # a cascade in progress is hot whatever the probability
    (26, 0.00, None),  # calm since 26
    (27, 0.00, None),
    (28, 0.00, None),  # calm 2 s, held 5 s: resolve
    (29, 0.90, "liquidation"),  # critical straight away (cooldown bypassed)
]

EXPECTED = [
    # (ts ms, action, severity, incident opened ms)
    (1000, "trigger", "warning", 1000),
    (6000, "resolve", "warning", 1000),
    (8000, "trigger", "critical", 8000),
    (13000, "resolve", "critical", 8000),
    (23000, "trigger", "warning", 23000),
    (24000, "trigger", "critical", 23000),
    (28000, "resolve", "critical", 23000),
    (29000, "trigger", "critical", 29000),
]


def readout(s: int, p: float | None, cascade: str | None, up_p: float | None = 0.0) -> AssetReadout:
    return AssetReadout(
        asset=ASSET,
        ts=s * 1000,
        price=65_000.0,
        venues=("binance-usdm", "bybit-linear"),
        branching=0.71,
        down=DirectionReadout(
            prob=p,
            cascade=cascade,
            cluster_price=64_150.0,
            cluster_bps=130.77,
            cluster_usd=48.2e6,
            at_risk_usd=1.234e8,
            depth_usd=12.1e6,
            depth_ratio=0.4567,
            reach_usd=3.1e7,
            reach_bps=212.34,
            liq_usd_60s=2.5e6,
        ),
        up=DirectionReadout(prob=up_p),
    )


def run(policy: AlertPolicy, series=SERIES) -> list[dict]:
    out = []
    for s, p, c in series:
        out.extend(update(policy, readout(s, p, c)))
    return out


def test_hysteresis_hold_cooldown_escalate_resolve_sequence():
    alerts = run(make_policy())
    got = [(a["ts"], a["action"], a["severity"], a["opened_ts"]) for a in alerts]
    assert got == EXPECTED
    for a in alerts:
        assert a["type"] == "alert" and a["kind"] == "cascade" and a["asset"] == ASSET and a["direction"] == "down"
        assert a["dedup_key"] == KEY
        want = hashlib.sha1(f"{KEY}|{a['opened_ts']}|{a['action']}|{a['severity']}".encode()).hexdigest()[:20]
        assert a["id"] == want
    assert len({a["id"] for a in alerts}) == len(alerts)


def test_alert_shape_key_order_and_evidence():
    a = run(make_policy())[0]
    assert list(a)[:10] == list(ALERT_HEADER)  # the header's names: tests/test_output_contract.py
    assert a["probability"] == 0.35
    assert a["level"] == 64_150.0 and a["distance_bps"] == 130.8
    assert a["notional_at_risk_usd"] == 123_400_000.0 and a["cluster_usd"] == 48_200_000.0
    assert a["depth_usd"] == 12_100_000.0 and a["depth_ratio"] == 0.457
    assert a["reach_usd"] == 31_000_000.0 and a["reach_bps"] == 212.3
    assert a["branching"] == 0.71 and a["venues"] == ["binance-usdm", "bybit-linear"]
    assert a["summary"] == (
        "BTC-USDT DOWN: 35% cascade risk in 5m · $48.2M longs at 64,150 (131 bps below) · "
        "bids $12.1M within 1% · reach 212 bps · n=0.71"
    )
    json.dumps(a)  # plain JSON types only


def test_a_warning_names_its_drivers_and_the_model():
    """The families that raised the probability lead the summary in the desk's words, and the
    evidence lists them with their log-odds; the cluster is not repeated when it is a driver."""
    drivers = (
        Driver("crowding", 1.9, "longs crowding: OI +1.9 % in 5 min on net buying"),
        Driver("levels", 0.8, "$48.2M of long liquidation levels 131 bps below"),
    )
    r = AssetReadout(
        asset=ASSET,
        ts=1000,
        price=65_000.0,
        model="0123456789ab",
        down=DirectionReadout(
            prob=0.42, cluster_price=64_150.0, cluster_bps=130.77, cluster_usd=48.2e6, drivers=drivers
        ),
    )
    (a,) = update(make_policy(), r)
    assert a["summary"] == (
        "BTC-USDT DOWN: 42% cascade risk in 5m: longs crowding: OI +1.9 % in 5 min on net buying; "
        "$48.2M of long liquidation levels 131 bps below"
    )
    assert a["model"] == "0123456789ab"
    assert a["drivers"] == [
        {"family": "crowding", "logit": 1.9, "text": "longs crowding: OI +1.9 % in 5 min on net buying"},
        {"family": "levels", "logit": 0.8, "text": "$48.2M of long liquidation levels 131 bps below"},
    ]


def test_summaries_of_cascade_and_resolve():
    alerts = run(make_policy())
    assert alerts[1]["summary"] == "BTC-USDT DOWN: resolved, cascade risk 10% (was warning for 0m05s)"
    last = alerts[-1]
    assert last["cascade"] == "liquidation"
    assert last["summary"].startswith("BTC-USDT DOWN: liquidation cascade IN PROGRESS, $2.5M longs liquidated in 60s")


def test_directions_and_assets_are_independent():
    pol = make_policy()
    out = update(pol, readout(0, 0.5, None, up_p=0.7))
    assert [(a["direction"], a["severity"], a["dedup_key"]) for a in out] == [
        ("down", "warning", KEY),
        ("up", "critical", "BTC-USDT:cascade:up"),
    ]
    eth = msgspec.structs.replace(readout(0, 0.5, None), asset="ETH-USDT")
    assert [a["dedup_key"] for a in update(pol, eth)] == ["ETH-USDT:cascade:down"]
    assert pol.open_incidents() == {
        KEY: "warning",
        "BTC-USDT:cascade:up": "critical",
        "ETH-USDT:cascade:down": "warning",
    }


def test_unknown_probability_never_triggers_and_cooldown_without_bypass():
    pol = make_policy()
    assert update(pol, readout(0, None, None, up_p=None)) == []
    pol = AlertPolicy(
        warn_enter=0.3,
        warn_exit=0.2,
        crit_enter=0.6,
        min_hold_s=0,
        calm_s=0,
        cooldown_s=10,
        critical_bypasses_cooldown=False,
    )
    series = [(0, 0.4, None), (1, 0.1, None), (2, 0.9, None), (11, 0.9, None)]
    got = [(a["ts"], a["action"], a["severity"]) for a in run(pol, series)]
    assert got == [(0, "trigger", "warning"), (1000, "resolve", "warning"), (11000, "trigger", "critical")]


def test_same_input_same_alerts_and_pickled_policy_continues_identically():
    ref = run(make_policy())
    assert run(make_policy()) == ref
    pol = make_policy()
    first = run(pol, SERIES[:10])
    pol2 = pickle.loads(pickle.dumps(pol))
    assert first + run(pol2, SERIES[10:]) == ref


def test_invalid_thresholds():
    with pytest.raises(ValueError):
        AlertPolicy(warn_enter=0.3, warn_exit=0.4)


def test_a_stop_run_alone_does_not_page_unless_configured():
    def r(s, p, kind):
        return AssetReadout(asset=ASSET, ts=s * 1000, price=100.0, down=DirectionReadout(prob=p, cascade=kind))

    pol = make_policy()
    assert [a for s in range(5) for a in update(pol, r(s, 0.1, "stop_run"))] == []
    # the probability still pages, and the stop run shows as evidence
    alerts = update(pol, r(5, 0.4, "stop_run"))
    assert [(a["action"], a["severity"], a["cascade"]) for a in alerts] == [("trigger", "warning", "stop_run")]
    # a liquidation cascade in progress pages by itself
    pol = make_policy()
    assert [a["severity"] for a in update(pol, r(0, 0.0, "liquidation"))] == ["critical"]
    # stop runs page when listed
    pol = AlertPolicy(warn_enter=0.3, warn_exit=0.2, page_kinds=("liquidation", "stop_run"))
    assert [a["severity"] for a in update(pol, r(0, 0.0, "stop_run"))] == ["critical"]
    # a policy pickled before page_kinds existed pages as the default
    old = make_policy()
    del old.__dict__["page_kinds"]
    old = pickle.loads(pickle.dumps(old))
    assert old.page_kinds == ("deleveraging", "liquidity", "liquidation")
