"""The real per-asset step of the dataflow (:class:`AssetRisk`: venue merge, detectors, alert
policies) on a scripted market of two venues, second by second, with answers derived from the
definitions: leveraged longs pile up, the price breaks 8 bps a second through their levels
while longs are liquidated, then it is calm; one venue's book has a sequence gap.

Every expected number below follows from the scenario and the documented rules
(``pipelines/config.py`` defaults, ``detectors/regime.py``, ``detectors/policy.py``,
``detectors/labels.py``), not from a previous run."""

from __future__ import annotations

import math
import pickle
from typing import Any

import numpy as np
import pytest

from cascadewatch.pipelines.config import DetectorsConfig
from cascadewatch.pipelines.steps.asset_risk import AssetRisk
from cascadewatch.pipelines.steps.items import AssetOutput, AssetSecond, InstrumentState

T0 = 1_767_225_600  # 2026-01-01T00:00:00Z, seconds
NS = 1_000_000_000
CRASH, CALM, END = 600, 660, 1300
"""Seconds (from T0) where the break starts, where it stops, and the end of the script."""
DROP = 8e-4
"""Log-price fall per second during the break."""
OKX_PREMIUM = 1.0002
"""okx trades 2 bps above binance, so the merged price is the mean of the two: ``p * 1.0001``."""
DEPTH_BID = (1000.0, 2000.0, 3000.0, 4000.0)
DEPTH_ASK = (1500.0, 2500.0, 3500.0, 4500.0)


def binance_price(t: int) -> float:
    """Calm: 100 +- 1 bp; break: 100 * exp(-DROP * (i + 1)) in its i-th second; then flat."""
    if t < CRASH:
        return 100.0 * (1 + 1e-4 * (-1) ** t)
    return 100.0 * math.exp(-DROP * (min(t, CALM - 1) - CRASH + 1))


def liquidations(t: int) -> list[tuple[int, float, float, str]]:
    """Three longs of 100k USD each second of the break from its 7th second (606..659)."""
    if not CRASH + 6 <= t < CALM:
        return []
    price = binance_price(t)
    return [((T0 + t) * NS + k, price, 1e5 / price, "long") for k in range(3)]


def oi_qty(t: int) -> float:
    """Open interest grows 72 contracts a second in the calm (positions opened), then holds."""
    return 50_000.0 + 72.0 * (min(t, CRASH - 1) + 1)


def state(venue: str, instrument: str, t: int, price: float, oi: float, **extra: Any) -> InstrumentState:
    """One venue instrument's second: aggressive buys 80 / sells 20 in the calm (longs opening),
    10 / 90 in the break, 5 / 5 after; a 200-level book of 40 per level either side."""
    buy_qty, sell_qty = (80.0, 20.0) if t < CRASH else (10.0, 90.0) if t < CALM else (5.0, 5.0)
    book_valid = extra.pop("book_valid", True)
    ticks = np.arange(1, 201) * 0.01
    liqs = extra.pop("liqs", ())
    return InstrumentState(
        venue=venue,
        instrument=instrument,
        asset="BTC-USDT",
        second=(T0 + t) * 1000,
        price=price,
        mark=price,
        index=None,
        funding=1e-4,
        oi_qty=oi,
        oi_usd=oi * price,
        buy_usd=buy_qty * price,
        sell_usd=sell_qty * price,
        trades=10,
        liq_long_usd=sum(p * q for _, p, q, _ in liqs),
        liq_short_usd=0.0,
        liquidations=len(liqs),
        book_valid=book_valid,
        best_bid=price - 0.01 if book_valid else None,
        best_ask=price + 0.01 if book_valid else None,
        depth_bid_usd=DEPTH_BID,
        depth_ask_usd=DEPTH_ASK,
        buy_qty=buy_qty,
        sell_qty=sell_qty,
        liqs=tuple(liqs),
        bids=np.c_[price - ticks, np.full(200, 40.0)] if book_valid else None,
        asks=np.c_[price + ticks, np.full(200, 40.0)] if book_valid else None,
        **extra,
    )


def second(t: int) -> AssetSecond:
    """Both venues' states of second ``t``; okx's book has a gap at 300, resynced at 303."""
    price = binance_price(t)
    okx: dict[str, Any] = {}
    if t == 300:
        okx = {"feed": ("gap: expected seq=10, got seq=12",), "book_valid": False}
    elif t in (301, 302):
        okx = {"book_valid": False}
    elif t == 303:
        okx = {"feed": ("resync: snapshot seq=20",)}
    states = (
        state("binance-usdm", "BTCUSDT", t, price, oi_qty(t), liqs=liquidations(t)),
        state("okx-swap", "BTC-USDT-SWAP", t, price * OKX_PREMIUM, oi_qty(t) / 2, **okx),
    )
    return AssetSecond((T0 + t) * 1000, "BTC-USDT", states)


def ms(t: int) -> int:
    return (T0 + t) * 1000


CONFIG = DetectorsConfig(model="none", regime_min_liq_usd=500_000.0, regime_min_move_bps=30.0)
"""The wiring without the shipped model, at the in-progress thresholds the script was written for
(500k USD and 30 bps; the defaults are the label's, 1M USD and 50 bps)."""


@pytest.fixture(scope="module")
def run() -> tuple[list[AssetOutput], list[tuple[int, dict]]]:
    """The whole script through one :class:`AssetRisk`; what ``on_sample`` saw, with the second."""
    seen: list[tuple[int, dict]] = []
    now = [0]
    risk = AssetRisk(CONFIG, on_sample=lambda sample: seen.append((now[0], sample)))
    outputs = []
    for t in range(END):
        now[0] = t
        outputs.append(risk.update(second(t)))
    return outputs, seen


def alerts_of(outputs: list[AssetOutput]) -> list[dict]:
    return [item for out in outputs for item in out.items if item["type"] == "alert"]


def test_each_second_gives_its_snapshot_first_then_its_alerts(run) -> None:
    outputs, _ = run
    assert [(out.second, out.asset) for out in outputs] == [(ms(t), "BTC-USDT") for t in range(END)]
    assert all(out.items[0]["type"] == "snapshot" and out.items[0]["ts"] == out.second for out in outputs)
    assert all(item["type"] == "alert" for out in outputs for item in out.items[1:])


def test_the_venue_merge(run) -> None:
    outputs, _ = run
    snap = outputs[299].items[0]
    p = binance_price(299)
    assert snap["price"] == float(f"{(p + p * OKX_PREMIUM) / 2:.10g}")  # median of two = their mean
    assert snap["venues"] == ["binance-usdm", "okx-swap"]
    assert snap["oi_usd"] == round(oi_qty(299) * p + oi_qty(299) / 2 * p * OKX_PREMIUM, 2)
    assert snap["funding"] == 1e-4
    assert snap["depth_bid_usd"] == {"10": 2000.0, "25": 4000.0, "50": 6000.0, "100": 8000.0}
    assert snap["depth_ask_usd"] == {"10": 3000.0, "25": 5000.0, "50": 7000.0, "100": 9000.0}
    assert snap["books_valid"] == "2/2"
    # the gap: okx's book is invalid 300..302 and its depth no longer counts
    gap = outputs[300].items[0]
    assert gap["books_valid"] == "1/2" and gap["depth_bid_usd"]["10"] == 1000.0
    assert gap["feed"] == ["okx-swap: gap: expected seq=10, got seq=12"]
    assert outputs[303].items[0]["books_valid"] == "2/2"
    # realized liquidations: 300k USD a second from 606; 60 s sums
    assert [outputs[t].items[0]["liq_long_usd_1s"] for t in (605, 606, 659, 660)] == [0.0, 300_000.0, 300_000.0, 0.0]
    assert outputs[700].items[0]["liq_long_usd_60s"] == 19 * 300_000.0  # seconds 641..659 of (640, 700]


def test_the_estimated_map_puts_the_20x_longs_450_bps_below(run) -> None:
    """Longs opened at ~100 with the default tiers, no liquidation before the break (the mix stays
    the prior): of the long levels within the 10 % range 20x holds 24 %, 25x 15 %, 50x 9 %; 93
    buckets below the price hold levels, so a dense window of 5 needs ``3 * 5 / 93`` = 16 % of
    them (25x would pass the 14 % of the 106 buckets of the range, empty ones included, which is
    not the rule: the mean is over levels). The nearest dense level is 20x, liquidated at
    ``100 * (1 - 1/20 + mmr 0.005) = 95.5``."""
    outputs, _ = run
    down = outputs[CRASH - 1].items[0]["down"]
    assert down["cluster_price"] == pytest.approx(95.5, rel=5e-4)
    assert 444.0 <= down["cluster_bps"] <= 449.0
    assert down["cascade"] is None and outputs[CRASH - 1].items[0]["up"]["cascade"] is None


def test_the_alerts_of_the_script(run) -> None:
    """- feed: okx's gap at 300 opens a warning, the resync at 303 resolves it;
    - cascade down, critical: the price has fallen 6 * 8 = 48 bps when the liquidations begin
      (606), which does not count: the move is measured from the cascade's start (the label's,
      606: the first liquidation second, dense enough), i.e. from the price of 605. At 607 the
      window holds 600k USD >= regime_min_liq_usd 500k but the move is 2 * 8 = 16 bps; at 609,
      4 * 8 = 32 bps (>= 30): a liquidation cascade in progress, which pages by itself;
    - it stays in progress while the window holds 500k USD of long liquidations (the episode,
      whose move counts from its start, 605: 54 * 8 = 432 bps at the bottom): until 717, whose
      window (657, 717] holds 658 and 659; 718 is the first calm second, and the policy resolves
      ``calm_s`` = 60 s later, at 778 (opened 169 s before, more than ``min_hold_s``)."""
    outputs, _ = run
    got = [(a["ts"], a["kind"], a["action"], a["severity"], a["dedup_key"]) for a in alerts_of(outputs)]
    assert got == [
        (ms(300), "feed", "trigger", "warning", "BTC-USDT:feed:okx-swap"),
        (ms(303), "feed", "resolve", "warning", "BTC-USDT:feed:okx-swap"),
        (ms(609), "cascade", "trigger", "critical", "BTC-USDT:cascade:down"),
        (ms(778), "cascade", "resolve", "critical", "BTC-USDT:cascade:down"),
    ]
    assert [outputs[t].items[0]["down"]["cascade"] for t in (607, 608, 609, 717, 718)] == [
        None,
        None,
        "liquidation",
        "liquidation",
        None,
    ]
    assert {a["problem"] for a in alerts_of(outputs) if a["kind"] == "feed"} == {"gap: expected seq=10, got seq=12"}


def test_the_alert_carries_the_snapshots_readout(run) -> None:
    """The policy sees what the snapshot shows (same second, same direction)."""
    outputs, _ = run
    snap, alert = outputs[609].items
    assert alert["price"] == float(f"{snap['price']:.8g}")
    assert alert["probability"] == snap["down"]["prob"]
    assert alert["level"] == float(f"{snap['down']['cluster_price']:.8g}")
    assert alert["distance_bps"] == snap["down"]["cluster_bps"]
    assert alert["liq_usd_60s"] == snap["liq_long_usd_60s"] == 1_200_000.0  # 606..609
    assert alert["cascade"] == snap["down"]["cascade"] == "liquidation"
    assert alert["venues"] == snap["venues"]
    assert alert["opened_ts"] == ms(609)


def test_on_sample_sees_both_directions_each_second_and_the_cascade_label(run) -> None:
    """Samples: one per direction per second with a price. The label (``detectors/labels.py``,
    floor 1M): the window first holds 1.2M >= 1M at 609 and last at 715 (four liquidation
    seconds, 656..659); it starts at 606, ends at 659 (the last liquidation second), bottoms
    at 659, and is emitted ``merge_gap_s`` = 60 s after 715: at 775."""
    _, seen = run
    samples = [s for _, s in seen if s["type"] == "sample"]
    assert [(s["direction"], s["t"]) for s in samples[:4]] == [
        ("down", T0 + 0.0),
        ("up", T0 + 0.0),
        ("down", T0 + 1.0),
        ("up", T0 + 1.0),
    ]
    assert len(samples) == 2 * END
    [(emitted, cascade)] = [(t, s) for t, s in seen if s["type"] == "cascade"]
    assert emitted == 775
    assert (cascade["direction"], cascade["start"], cascade["peak"], cascade["end"]) == (
        "down",
        ms(606),
        ms(659),
        ms(659),
    )
    assert cascade["forced_notional"] == pytest.approx(54 * 300_000.0)
    assert cascade["move_bps"] == pytest.approx(1e4 * (1 - math.exp(-DROP * 54)), abs=0.01)


def test_the_step_pickled_mid_cascade_continues_identically(run) -> None:
    """Bytewax recovery snapshots this state: a round trip in the middle of the break gives
    the same outputs after it (and ``on_sample`` does not change the outputs)."""
    outputs, _ = run
    risk = AssetRisk(CONFIG)
    for t in range(630):
        risk.update(second(t))
    risk = pickle.loads(pickle.dumps(risk))
    assert [risk.update(second(t)) for t in range(630, END)] == outputs[630:]


def test_the_breaker_trips_when_the_break_passes_300_bps_and_holds_120_s_after_the_rule(run) -> None:
    """Default rule (``[detectors.mitigation]``): 300 bps below the high of the last 300 s.
    The merged price is ``binance * 1.0001``; the window's high before the break is
    ``100 * (1 + 1e-4) * 1.0001``; in the break's i-th second the fall is
    ``1 - exp(-8e-4 * (i + 1)) / (1 + 1e-4)``: 292.6 bps at 636, 300.4 at 637 (trips). The
    bottom (659 on) is ``100 * exp(-0.048)``; it stays 300 bps under the window's high while the
    window holds second 620 (``100 * exp(-8e-4 * 21)``: 307 bps), i.e. through 920 (621: 299.4),
    and the breaker holds 120 s more: tripped 637..1039. Long liquidations (16.2 M$ in all)
    never reach the 25 M$ rule; nothing trips up."""
    outputs, _ = run
    down = [outputs[t].items[0]["down"] for t in range(END)]
    assert [t for t in range(END) if down[t]["breaker"]] == list(range(637, 1040))
    assert {down[t]["breaker_since"] for t in range(637, 1040)} == {ms(637)}
    assert down[636]["breaker_since"] is None and down[1040]["breaker_since"] is None
    assert not any(outputs[t].items[0]["up"]["breaker"] for t in range(END))
    # the critical alert at 609 came before the breaker: its evidence says not tripped
    alert = outputs[609].items[1]
    assert alert["breaker_since"] is None and alert["margin_mmr"] == round(down[609]["margin_mmr"], 6)
    for t in (100, 609, 700):
        assert down[t]["margin_mmr"] >= 0.004
        assert down[t]["leverage_cap"] == pytest.approx(1 / (2 * down[t]["margin_mmr"]), abs=0.006)
