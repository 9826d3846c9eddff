"""Known-answer tests of pipelines/evaluation/scoring.py on hand-made alerts, snapshots and truth."""

from __future__ import annotations

import json

import pytest

from cascadewatch.pipelines.evaluation.scoring import (
    map_error,
    percentile,
    score,
    score_runs,
)

T0 = 1_768_435_200_000  # 2026-01-15T00:00:00Z


def s(sec: float) -> int:
    return T0 + int(sec * 1000)


def cascade(asset, direction, start, peak, end):
    return {
        "type": "cascade",
        "asset": asset,
        "direction": direction,
        "start": s(start),
        "peak": s(peak),
        "end": s(end),
        "forced_notional": 5e6,
        "move_bps": 120.0,
    }


def alert(ts, direction, asset="BTC-USDT", action="trigger", kind="cascade"):
    return {
        "type": "alert",
        "id": f"{asset}-{direction}-{ts}",
        "action": action,
        "kind": kind,
        "asset": asset,
        "direction": direction,
        "ts": s(ts),
        "severity": "warning",
    }


TRUTH = [
    {"type": "span", "asset": "BTC-USDT", "start": T0, "end": T0 + 2 * 86_400_000},
    cascade("BTC-USDT", "down", 1000, 1030, 1060),
    cascade("BTC-USDT", "down", 5000, 5020, 5090),
    cascade("BTC-USDT", "up", 9000, 9010, 9040),
    cascade("ETH-USDT", "down", 1000, 1010, 1020),
    {"type": "levels", "ts": s(0), "asset": "BTC-USDT", "price": 100.0, "long": [], "short": []},
]

ALERTS = [
    alert(760, "down"),  # warns c1 240 s ahead
    alert(900, "down"),  # a second warning for c1: neither a catch of its own nor a false alarm
    alert(5010, "down"),  # c2, 10 s after its start and before its peak: caught, lead -10
    alert(3000, "down"),  # nothing within 300 s: false alarm
    alert(8800, "up"),  # c3, lead 200
    alert(1000, "up"),  # no up cascade near: false alarm
    alert(1050, "down", action="resolve"),  # not a trigger
    alert(1040, "down", kind="feed"),  # not a cascade alert
    alert(1055, "down"),  # after c1's peak but before its end: late, not caught, not a false alarm
]

SNAPSHOTS = [
    {"type": "snapshot", "ts": s(700), "asset": "BTC-USDT", "prob_down": 0.8, "prob_up": 0.1},
    {"type": "snapshot", "ts": s(1000), "asset": "BTC-USDT", "prob_down": 0.5, "prob_up": None},
    {"type": "snapshot", "ts": s(2000), "asset": "BTC-USDT", "prob_down": 0.2, "prob_up": 0.0},
]


def test_hand_made_scores_exact():
    r = score(ALERTS, SNAPSHOTS, TRUTH, horizon_s=300)
    down, up, overall = r["down"], r["up"], r["overall"]
    # down: c1 caught (lead 240), c2 caught (lead -10), ETH c4 missed
    assert (down["cascades"], down["caught"], down["false_alarms"], down["triggers"]) == (3, 2, 1, 5)
    assert down["recall"] == pytest.approx(2 / 3, abs=1e-6)
    assert down["lead_s"] == {"median": 115.0, "p10": 15.0}  # p10 = -10 + 0.1 * (240 - -10)
    assert down["days"] == 2.0 and down["false_alarms_per_day"] == 0.5
    assert (up["cascades"], up["caught"], up["false_alarms"]) == (1, 1, 1)
    assert up["lead_s"] == {"median": 200.0, "p10": 200.0}
    assert (overall["cascades"], overall["caught"], overall["false_alarms"]) == (4, 3, 2)
    assert overall["recall"] == 0.75
    assert overall["lead_s"] == {"median": 200.0, "p10": 32.0}  # -10 + 0.2 * (200 - -10)
    assert overall["false_alarms_per_day"] == 1.0
    # every alert here is a warning: no page caught anything, none was false
    assert down["pages"] == {
        "caught": 0,
        "recall": 0.0,
        "lead_s": {"median": None, "p10": None},
        "triggers": 0,
        "false": 0,
        "false_per_day": 0.0,
    }
    # Brier, down: (0.8, y=1) (0.5, y=0: the start is not after the snapshot) (0.2, 0)
    assert down["brier"] == pytest.approx(0.11)
    assert down["brier_base_rate"] == pytest.approx(2 / 9, abs=1e-6)
    assert down["forecasts"] == 3
    # up: (0.1, 0), (0.0, 0); the null forecast is skipped
    assert up["brier"] == pytest.approx(0.005) and up["brier_base_rate"] == 0.0 and up["brier_skill"] is None
    assert overall["brier"] == pytest.approx(0.068) and overall["brier_base_rate"] == pytest.approx(0.16)
    bins = {b["lo"]: b for b in down["reliability"]}
    assert len(down["reliability"]) == 10
    assert bins[0.8] == {"lo": 0.8, "hi": 0.9, "n": 1, "mean_prob": 0.8, "observed": 1.0}
    assert bins[0.5]["observed"] == 0.0 and bins[0.2]["n"] == 1 and bins[0.0]["mean_prob"] is None
    json.dumps(r)  # plain JSON


def test_issue_shape_keys():
    r = score(ALERTS, SNAPSHOTS, TRUTH)
    for m in (r["overall"], r["down"], r["up"]):
        assert {
            "cascades",
            "caught",
            "recall",
            "lead_s",
            "false_alarms",
            "days",
            "false_alarms_per_day",
            "brier",
            "brier_base_rate",
        } <= set(m)
        assert set(m["lead_s"]) == {"median", "p10"}


def test_empty_inputs_give_nulls_not_errors():
    r = score([], [], [])
    m = r["overall"]
    assert m["cascades"] == 0 and m["recall"] is None and m["lead_s"] == {"median": None, "p10": None}
    assert m["days"] == 0.0 and m["false_alarms_per_day"] is None and m["brier"] is None


def test_days_fall_back_to_snapshot_seconds_and_override():
    truth = [t for t in TRUTH if t["type"] != "span"]
    assert score([], SNAPSHOTS, truth)["overall"]["days"] == pytest.approx(3 / 86400, abs=1e-6)
    assert score([], SNAPSHOTS, TRUTH, days=4.0)["overall"]["days"] == 4.0


def test_runs_are_matched_separately_then_pooled():
    # run 2 has the same timestamps but no cascades: its triggers must not catch run 1's cascades
    run1 = (ALERTS, SNAPSHOTS, TRUTH)
    run2 = ([alert(760, "down")], [], [{"type": "span", "asset": "BTC-USDT", "start": T0, "end": T0 + 86_400_000}])
    r = score_runs([run1, run2])
    assert r["down"]["cascades"] == 3 and r["down"]["caught"] == 2
    assert r["down"]["false_alarms"] == 2 and r["down"]["days"] == 3.0


def test_percentile_linear():
    assert percentile([], 50) is None
    assert percentile([5.0], 10) == 5.0
    assert percentile([0.0, 10.0], 10) == 1.0
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0


def test_map_error_known_answer():
    truth = [
        {
            "type": "levels",
            "ts": s(60),
            "asset": "BTC-USDT",
            "price": 100.0,
            "long": [[99.0, 100.0], [98.0, 100.0]],
            "short": [[101.0, 200.0]],
        }
    ]
    # estimate 30 s older: all long notional 100 bps away, no short levels
    est = [{"ts": s(30), "asset": "BTC-USDT", "liq_map": {"long": [[99.0, 200.0]], "short": []}}]
    r = map_error(est, truth)
    # half of the true notional sits 100 bps further out: EMD = 0.5 * 100 bps
    assert r["long"] == {"n": 1, "emd_bps_mean": 50.0, "emd_bps_median": 50.0, "abs_log2_ratio_median": 0.0}
    assert r["short"]["n"] == 0 and r["short"]["emd_bps_mean"] is None
    assert r["overall"]["n"] == 1
    # top-level shape (the truth's own) works too; a too-old estimate is not used
    assert (
        map_error([{"ts": s(30), "asset": "BTC-USDT", "long": [[99.0, 400.0]]}], truth)["long"]["abs_log2_ratio_median"]
        == 1.0
    )
    assert map_error(est, truth, max_age_s=10)["overall"]["n"] == 0


def test_map_summary_error_known_answer():
    pytest.importorskip("cascadewatch.detectors.liqmap_estimated")
    from cascadewatch.pipelines.evaluation.scoring import map_summary_error

    truth = [
        {
            "type": "levels",
            "ts": s(60),
            "asset": "BTC-USDT",
            "price": 100.0,
            "long": [[97.0, 10.0], [98.0, 100.0], [99.0, 10.0]],
            "short": [[101.0, 5.0], [103.0, 5.0]],
        }
    ]
    snaps = [
        {
            "type": "snapshot",
            "ts": s(59),
            "asset": "BTC-USDT",
            "down": {"at_risk_usd": 240.0, "cluster_bps": 150.0},
            "up": {"at_risk_usd": 10.0, "cluster_bps": 300.0},
        }
    ]
    # window 1, 2x the uniform share (120 / 3 = 40 -> 80): the 98 bucket is the true cluster, 200 bps away;
    # the short side has no dense bucket (5 < 2 * 5)
    r = map_summary_error(snaps, truth, window=1, dense_multiple=2.0)
    assert r["down"] == {
        "n": 1,
        "at_risk_abs_log2_ratio_median": 1.0,
        "cluster_error_bps_median": 50.0,
        "cluster_error_bps_mean": 50.0,
        "cluster_found": 1,
        "cluster_missed": 0,
        "cluster_spurious": 0,
    }
    assert r["up"]["at_risk_abs_log2_ratio_median"] == 0.0 and r["up"]["cluster_spurious"] == 1
    assert r["overall"]["n"] == 2 and r["overall"]["at_risk_abs_log2_ratio_median"] == 0.5
    # a snapshot older than max_age_s is not compared
    assert map_summary_error(snaps, truth, max_age_s=0.5)["overall"]["n"] == 0


def test_map_summary_error_runs_pools_lines_not_medians():
    """Two runs sharing timestamps: each run's lines meet its own snapshots, and the medians are
    over all lines (3 ratios: 0, 1, 3 -> median 1; per-run medians would be 0.5 and 3)."""
    pytest.importorskip("cascadewatch.detectors.liqmap_estimated")
    from cascadewatch.pipelines.evaluation.scoring import map_summary_error, map_summary_error_runs

    def levels(ts: int) -> dict:
        return {
            "type": "levels",
            "ts": s(ts),
            "asset": "BTC-USDT",
            "price": 100.0,
            "long": [[99.0, 100.0]],
            "short": [],
        }

    def snap(ts: int, at_risk: float) -> dict:
        return {
            "type": "snapshot",
            "ts": s(ts),
            "asset": "BTC-USDT",
            "down": {"at_risk_usd": at_risk, "cluster_bps": None},
        }

    one = ([snap(59, 100.0), snap(119, 200.0)], [levels(60), levels(120)])
    two = ([snap(59, 800.0)], [levels(60)])
    pooled = map_summary_error_runs([one, two])["down"]
    assert pooled["n"] == 3 and pooled["at_risk_abs_log2_ratio_median"] == 1.0
    assert map_summary_error(*one)["down"]["at_risk_abs_log2_ratio_median"] == 0.5
    assert map_summary_error(*two)["down"]["at_risk_abs_log2_ratio_median"] == 3.0


def test_only_triggers_that_page_count():
    """As the outbox sends them: a trigger on a key already open at the same or a higher severity
    (another venue's provisional alert, the per-second alert confirming it) is no new page; an
    escalation is; a resolve closes the key."""
    key = {"dedup_key": "BTC-USDT:cascade:down"}

    def page(ts, action="trigger", severity="critical"):
        return {**alert(ts, "down", action=action), **key, "severity": severity}

    alerts = [
        page(2000, severity="warning"),  # nothing within 300 s: a false alarm
        page(2001, severity="warning"),  # the same incident again: not a page
        page(2002),  # escalation: a page, and a second false alarm
        page(2003),  # another venue's provisional, key open at critical: not a page
        page(2100, action="resolve", severity="critical"),
        page(4990),  # a new incident: warns c2 (start 5000) 10 s ahead
        page(5001),  # the per-second alert confirming it: not a page
    ]
    down = score(alerts, [], TRUTH, horizon_s=300)["down"]
    assert (down["triggers"], down["false_alarms"], down["caught"]) == (3, 2, 1)
    assert down["lead_s"] == {"median": 10.0, "p10": 10.0}
    # the pages alone: the escalation at 2002 (false) and the new incident at 4990 (c2, 10 s ahead)
    pages = down["pages"]
    assert (pages["triggers"], pages["false"], pages["caught"], pages["false_per_day"]) == (2, 1, 1, 0.5)
    assert pages["lead_s"] == {"median": 10.0, "p10": 10.0} and pages["recall"] == pytest.approx(1 / 3, abs=1e-6)


def test_a_warning_then_a_page_lead_separately():
    """A warning 200 s before c1 (start 1000) escalated to a page 20 s after it: the alarm's lead
    is the warning's, the page's is its own; a page during no cascade is a false page."""
    key = {"dedup_key": "BTC-USDT:cascade:down"}
    alerts = [
        {**alert(800, "down"), **key},
        {**alert(1020, "down"), **key, "severity": "critical"},
        {**alert(1060, "down", action="resolve"), **key, "severity": "critical"},
        {**alert(3000, "down"), **key, "severity": "critical"},
    ]
    down = score(alerts, [], TRUTH, horizon_s=300)["down"]
    assert (down["caught"], down["lead_s"]["median"], down["false_alarms"]) == (1, 200.0, 1)
    assert (down["pages"]["caught"], down["pages"]["lead_s"]["median"], down["pages"]["false"]) == (1, -20.0, 1)
