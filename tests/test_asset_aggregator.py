"""The asset aggregator's rolling 60 s sums: the seconds of the window only, summed oldest first,
and a state pickled with the window as one deque of rows resumes with the same sums."""

from __future__ import annotations

import pickle
from collections import deque

from instrument_states import instrument_state

from cascadewatch.pipelines.steps.asset_aggregator import AssetAggregator
from cascadewatch.pipelines.steps.items import InstrumentState

S0 = 1_700_000_000_000  # ms


def _state(second_ms: int, long_usd: float, short_usd: float, buy_usd: float) -> InstrumentState:
    return instrument_state(
        second_ms,
        buy_usd=buy_usd,
        trades=1,
        liq_long_usd=long_usd,
        liq_short_usd=short_usd,
        depth_bid_usd=(0.0, 0.0, 0.0, 0.0),
        depth_ask_usd=(0.0, 0.0, 0.0, 0.0),
    )


def test_the_60s_sums_hold_the_last_60_seconds() -> None:
    aggregator = AssetAggregator("BTC-USDT")
    aggregator.update(S0, [_state(S0, 1000.0, 5.0, 10.0)])
    snapshot = aggregator.update(S0 + 59_000, [_state(S0 + 59_000, 250.0, 0.0, 0.25)])
    assert (snapshot.liq_long_usd_60s, snapshot.liq_short_usd_60s, snapshot.trade_usd_60s) == (1250.0, 5.0, 10.25)
    snapshot = aggregator.update(S0 + 60_000, [_state(S0 + 60_000, 0.0, 2.0, 1.0)])  # the first second left
    assert (snapshot.liq_long_usd_60s, snapshot.liq_short_usd_60s, snapshot.trade_usd_60s) == (250.0, 2.0, 1.25)


def test_a_window_pickled_as_rows_resumes_as_columns() -> None:
    aggregator = AssetAggregator("BTC-USDT")
    aggregator.update(S0, [_state(S0, 1000.0, 5.0, 10.0)])
    aggregator.update(S0 + 1000, [_state(S0 + 1000, 250.0, 0.0, 0.25)])
    old = pickle.loads(pickle.dumps(aggregator))
    # the state as the previous version pickled it: one deque of (second_ms, long, short, traded)
    state = dict(old.__dict__, window=deque(zip(*old.window, strict=True)))
    resumed = AssetAggregator.__new__(AssetAggregator)
    resumed.__setstate__(state)
    assert resumed.window == old.window
    assert resumed.update(S0 + 2000, [_state(S0 + 2000, 1.0, 1.0, 1.0)]) == aggregator.update(
        S0 + 2000, [_state(S0 + 2000, 1.0, 1.0, 1.0)]
    )


def test_live_is_kept_within_a_second_and_follows_every_update() -> None:
    """``live`` answers the same second from what it kept, a later second anew (the stale cut
    moves), and an update with a new instrument shows in the next answer."""
    aggregator = AssetAggregator("BTC-USDT")
    aggregator.update(S0, [_state(S0, 0.0, 0.0, 1.0)])
    first = aggregator.live(S0)
    assert [s.second for s in first] == [S0]
    first.clear()  # the caller's list: the kept answer is not touched
    assert [s.second for s in aggregator.live(S0)] == [S0]
    assert aggregator.live(S0 + 60_000) == []  # 60 s later the instrument is stale
    assert [s.venue for s in aggregator.live(S0 + 1_000)] == ["binance-usdm"]  # kept for S0 + 1 s ...
    okx = instrument_state(S0 + 1_000, venue="okx-swap", instrument="BTC-USDT-SWAP")
    aggregator.update(S0 + 1_000, [okx])  # ... and dropped by the update of that second
    assert [(s.venue, s.second) for s in aggregator.live(S0 + 1_000)] == [
        ("binance-usdm", S0),
        ("okx-swap", S0 + 1_000),
    ]
    assert "_live" not in pickle.loads(pickle.dumps(aggregator)).__dict__  # derived: not pickled
