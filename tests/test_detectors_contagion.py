"""Known answers of the grouped contagion alert (detectors/contagion.py, pipelines/steps/contagion.py)."""

from __future__ import annotations

import pytest

from cascadewatch.connectors.outputs import alert_id
from cascadewatch.detectors.contagion import AssetState, ContagionConfig, ContagionMonitor
from cascadewatch.pipelines.config import DetectorsConfig
from cascadewatch.pipelines.steps.contagion import ContagionStep

T0 = 1_765_108_800_000  # 2025-12-07 12:00:00 UTC


def _monitor(window_s: int = 300, min_assets: int = 2, calm_s: float = 0.0) -> ContagionMonitor:
    return ContagionMonitor(
        ContagionConfig(window_s=window_s, min_assets=min_assets), warn_enter=0.3, warn_exit=0.15, calm_s=calm_s
    )


def _run(monitor: ContagionMonitor, timeline: dict[int, dict[str, tuple[float, str | None]]], end_s: int) -> list:
    """Feed seconds 0..end_s; ``timeline[s][asset] = (prob, cascade)`` from second ``s`` on (down only)."""
    current: dict[str, tuple[float, str | None]] = {}
    out = []
    for s in range(end_s + 1):
        current.update(timeline.get(s, {}))
        states = [AssetState(a, "down", p, c) for a, (p, c) in current.items()]
        states += [AssetState(a, "up", 0.0, None) for a in current]
        out.extend(monitor.update(T0 + s * 1000, states))
    return out


def test_onset_order_summary_and_members() -> None:
    """Three assets begin 41 s and 77 s apart: one trigger at the second, one update at the third."""
    timeline = {
        3: {"BTC-USDT": (0.0, "liquidation"), "ETH-USDT": (0.05, None), "SOL-USDT": (0.0, None)},
        44: {"ETH-USDT": (0.45, None)},
        80: {"SOL-USDT": (0.31, None)},
    }
    alerts = _run(_monitor(), timeline, 90)
    assert [(a.action, a.severity, a.ts - T0) for a in alerts] == [
        ("trigger", "warning", 44_000),
        ("trigger", "warning", 80_000),
    ]
    first, second = alerts
    assert first.summary == "contagion: BTC-USDT down at 12:00:03, ETH-USDT down +41 s"
    assert second.summary == "contagion: BTC-USDT down at 12:00:03, ETH-USDT down +41 s, SOL-USDT down +77 s"
    assert {a.dedup_key for a in alerts} == {"contagion:down"}
    assert {a.kind for a in alerts} == {"contagion"}
    assert first.asset == "BTC-USDT" and first.direction == "down" and first.opened_ts == T0 + 44_000
    assert second.assets == [
        {"asset": "BTC-USDT", "onset_ts": T0 + 3000, "after_s": 0, "cascade": True},
        {"asset": "ETH-USDT", "onset_ts": T0 + 44_000, "after_s": 41, "cascade": False},
        {"asset": "SOL-USDT", "onset_ts": T0 + 80_000, "after_s": 77, "cascade": False},
    ]
    assert first.id == alert_id("contagion:down", T0 + 44_000, "trigger", "warning/2")
    assert second.id == alert_id("contagion:down", T0 + 44_000, "trigger", "warning/3")


@pytest.mark.parametrize(("gap_s", "grouped"), [(300, True), (301, False)])
def test_window_boundary(gap_s: int, grouped: bool) -> None:
    """Onsets exactly window_s apart group; window_s + 1 do not."""
    timeline = {0: {"BTC-USDT": (0.5, None), "ETH-USDT": (0.0, None)}, gap_s: {"ETH-USDT": (0.5, None)}}
    alerts = _run(_monitor(window_s=300), timeline, gap_s + 5)
    assert [(a.action, a.ts - T0) for a in alerts] == ([("trigger", gap_s * 1000)] if grouped else [])


def test_one_asset_never_groups() -> None:
    """A single asset in a cascade for minutes: nothing (the per-asset alert's job)."""
    alerts = _run(_monitor(), {0: {"BTC-USDT": (0.9, "liquidation"), "ETH-USDT": (0.1, None)}}, 900)
    assert alerts == []


def test_escalation_and_resolve() -> None:
    """Warning on two high probabilities, critical once two have a cascade in progress, resolve
    when the last member's episode ends (calm_s after it cools), carrying the severity."""
    timeline = {
        0: {"BTC-USDT": (0.4, None), "ETH-USDT": (0.4, None)},
        10: {"BTC-USDT": (0.4, "liquidation")},
        20: {"ETH-USDT": (0.2, "deleveraging")},
        30: {"BTC-USDT": (0.1, None)},  # cools: its episode ends at 30 + 60
        40: {"ETH-USDT": (0.2, None)},  # still hot (>= warn_exit)
        100: {"ETH-USDT": (0.1, None)},  # cools at 100: ends at 160
    }
    alerts = _run(_monitor(calm_s=60.0), timeline, 200)
    assert [(a.action, a.severity, a.ts - T0) for a in alerts] == [
        ("trigger", "warning", 0),
        ("trigger", "critical", 20_000),
        ("resolve", "critical", 160_000),
    ]
    assert (
        alerts[-1].summary
        == "contagion: BTC-USDT down at 12:00:00, ETH-USDT down +0 s: resolved (was critical for 2m40s)"
    )
    assert [m["cascade"] for m in alerts[-1].assets] == [True, True]
    assert len({a.id for a in alerts}) == 3


def test_dedup_one_group_per_direction_and_new_group_after_resolve() -> None:
    """While a group is open, onsets after its window neither join nor open a second group;
    after the resolve, two new onsets open a new incident (new id, same dedup key)."""
    timeline = {
        0: {"BTC-USDT": (0.5, None), "ETH-USDT": (0.5, None), "SOL-USDT": (0.0, None), "XRP-USDT": (0.0, None)},
        400: {"SOL-USDT": (0.5, None), "XRP-USDT": (0.5, None)},  # after the window: no join
        500: {"BTC-USDT": (0.0, None), "ETH-USDT": (0.0, None)},  # group ends (calm_s = 0)
        700: {"SOL-USDT": (0.0, None), "XRP-USDT": (0.0, None)},
    }
    alerts = _run(_monitor(), timeline, 710)
    assert [(a.action, a.ts - T0, [m["asset"] for m in a.assets]) for a in alerts] == [
        ("trigger", 0, ["BTC-USDT", "ETH-USDT"]),
        ("resolve", 500_000, ["BTC-USDT", "ETH-USDT"]),
        ("trigger", 501_000, ["SOL-USDT", "XRP-USDT"]),
        ("resolve", 700_000, ["SOL-USDT", "XRP-USDT"]),
    ]
    assert {a.dedup_key for a in alerts} == {"contagion:down"}
    assert alerts[0].id != alerts[2].id


def test_directions_do_not_mix() -> None:
    """BTC down and ETH up at the same second: not a group."""
    monitor = _monitor()
    states = [AssetState("BTC-USDT", "down", 0.5, None), AssetState("ETH-USDT", "up", 0.5, None)]
    assert [monitor.update(T0 + s * 1000, states) for s in range(5)] == [[]] * 5


def test_min_assets_three() -> None:
    """min_assets = 3: two assets do not group, the third within the window opens it."""
    timeline = {
        0: {"A-USDT": (0.5, None), "B-USDT": (0.5, None), "C-USDT": (0.0, None)},
        200: {"C-USDT": (0.5, None)},
    }
    alerts = _run(_monitor(min_assets=3), timeline, 210)
    assert [(a.action, a.ts - T0, len(a.assets)) for a in alerts] == [("trigger", 200_000, 3)]


def test_config_rejects_one_asset() -> None:
    """A group of one asset is the per-asset alert; the config says so."""
    with pytest.raises(ValueError, match="min_assets must be >= 2"):
        ContagionConfig(min_assets=1)


def _snap(ts: int, asset: str, prob: float) -> dict:
    return {"type": "snapshot", "ts": ts, "asset": asset, "down": {"prob": prob, "cascade": None}, "up": {"prob": 0.0}}


def test_step_inserts_after_the_second_for_any_batching() -> None:
    """The step's output is the same however the ordered seconds are split into lists, and the
    alert follows its second's items."""
    seconds = [
        [_snap(T0, "BTC-USDT", 0.5), _snap(T0, "ETH-USDT", 0.01)],
        [
            _snap(T0 + 1000, "BTC-USDT", 0.5),
            {"type": "alert", "ts": T0 + 1000, "kind": "cascade"},
            _snap(T0 + 1000, "ETH-USDT", 0.5),
        ],
        [_snap(T0 + 2000, "BTC-USDT", 0.5), _snap(T0 + 2000, "ETH-USDT", 0.5)],
    ]
    outputs = []
    for split in (
        [seconds[0] + seconds[1] + seconds[2]],
        [seconds[0], seconds[1], seconds[2]],
        [seconds[0] + seconds[1], seconds[2]],
    ):
        step = ContagionStep(ContagionConfig(), DetectorsConfig(model="none"))
        outputs.append([item for items in split for item in step(items)])
    assert outputs[0] == outputs[1] == outputs[2]
    kinds = [(i["type"], i.get("kind"), i["ts"] - T0) for i in outputs[0]]
    assert kinds[3:7] == [
        ("alert", "cascade", 1000),
        ("snapshot", None, 1000),
        ("alert", "contagion", 1000),
        ("snapshot", None, 2000),
    ]
    assert len(outputs[0]) == 8
