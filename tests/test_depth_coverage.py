"""A book that does not reach the widest depth band (100 bps) is marked: ``book_cover_bps`` on
the instrument second, the venue in the snapshot's ``depth_partial``."""

from __future__ import annotations

import pytest

from cascadewatch.connectors.events import BookSnapshot
from cascadewatch.connectors.sources import Watermark
from cascadewatch.connectors.units import NS_PER_S as NS
from cascadewatch.pipelines.steps.asset_aggregator import AssetAggregator
from cascadewatch.pipelines.steps.instrument_tracker import InstrumentTracker
from cascadewatch.pipelines.steps.items import InstrumentState

T0 = 1_700_000_000 * NS


def _second(
    venue: str, instrument: str, bids: list[tuple[float, float]], asks: list[tuple[float, float]]
) -> InstrumentState:
    tracker = InstrumentTracker(allowed_lag_ns=0)
    snapshot = BookSnapshot(
        venue=venue, symbol="X", instrument=instrument, ts=T0, recv=T0, bids=tuple(bids), asks=tuple(asks), seq=1
    )
    (state,) = tracker.process([snapshot, Watermark(0, T0 + NS)])
    assert isinstance(state, InstrumentState)
    return state


def test_a_shallow_book_is_marked_partial_and_a_deep_one_is_not() -> None:
    # mid 100: bids reach 99.5 (50 bps), asks 102 (200 bps): the shorter side covers 50 bps
    shallow = _second("bybit-linear", "BTC-USDT-PERP", [(99.9, 1.0), (99.5, 2.0)], [(100.1, 1.0), (102.0, 1.0)])
    assert shallow.book_cover_bps == pytest.approx(50.0)
    deep = _second("binance-usdm", "BTC-USDT-PERP", [(99.9, 1.0), (98.9, 2.0)], [(100.1, 1.0), (101.0, 1.0)])
    assert deep.book_cover_bps == pytest.approx(100.0)  # exactly 100 bps: the 100 bps band is whole
    snapshot = AssetAggregator("BTC-USDT").update(T0 // 1_000_000, [deep, shallow])
    assert snapshot.depth_partial == ["bybit-linear"]
    # binance's 98.9 bid is 110 bps out; bybit's whole bid side is in: a lower bound for the band
    assert snapshot.depth_bid_usd["100"] == pytest.approx(99.9 + (99.9 + 2 * 99.5))
