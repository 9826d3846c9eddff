"""One venue instrument's closed second (:class:`InstrumentState`) for the flow step tests: a
quiet second (no trades, no liquidations, no book) with the fields a test names changed."""

from __future__ import annotations

from typing import Any

from cascadewatch.pipelines.steps.items import InstrumentState


def instrument_state(
    second_ms: int, venue: str = "binance-usdm", instrument: str = "BTC-USDT-PERP", **fields: Any
) -> InstrumentState:
    """The second ``second_ms`` (ms) of ``venue``'s ``instrument`` at price 100, ``fields`` overriding."""
    quiet: dict[str, Any] = {
        "price": 100.0,
        "mark": None,
        "index": None,
        "funding": None,
        "oi_qty": None,
        "oi_usd": None,
        "buy_usd": 0.0,
        "sell_usd": 0.0,
        "trades": 0,
        "liq_long_usd": 0.0,
        "liq_short_usd": 0.0,
        "liquidations": 0,
        "book_valid": False,
        "best_bid": None,
        "best_ask": None,
        "depth_bid_usd": (),
        "depth_ask_usd": (),
    }
    return InstrumentState(
        venue=venue,
        instrument=instrument,
        asset=instrument.removesuffix("-PERP"),
        second=second_ms,
        **{**quiet, **fields},
    )
