"""Items that travel between the dataflow's stateful steps."""

from __future__ import annotations

from typing import Any

import msgspec

BOOK_RANGE_BPS = 1000
"""Book levels within this distance of the mid (bps) travel with each instrument state."""

DEPTH_BANDS_BPS = (10, 25, 50, 100)
"""Bands (basis points from the mid) at which resting book notional is measured."""


class InstrumentState(msgspec.Struct, frozen=True, gc=False, tag="instrument_state"):
    """The state of one venue instrument at the end of one event-time second.

    ``second`` is the start of the second in ms (UTC epoch). Flow fields (``*_usd``, counts)
    cover this second only; level fields (prices, OI, book) are the latest known values.
    Notional is in quote currency (USD for USDT/USDC/USD-quoted perpetuals).
    """

    venue: str
    instrument: str
    asset: str
    second: int
    price: float | None
    mark: float | None
    index: float | None
    funding: float | None
    oi_qty: float | None
    oi_usd: float | None
    buy_usd: float
    sell_usd: float
    trades: int
    liq_long_usd: float
    liq_short_usd: float
    liquidations: int
    book_valid: bool
    best_bid: float | None
    best_ask: float | None
    depth_bid_usd: tuple[float, ...]
    depth_ask_usd: tuple[float, ...]
    feed: tuple[str, ...] = ()
    buy_qty: float = 0.0
    sell_qty: float = 0.0
    liqs: tuple[tuple[int, float, float, str], ...] = ()
    """This second's liquidations: ``(ts_ns, price, qty_base, side)``, side ``long``/``short``."""
    bids: Any = None
    asks: Any = None
    """Book levels within :data:`BOOK_RANGE_BPS` of the mid, ``(n, 2)`` arrays of ``(price, qty)``,
    best first; ``None`` when the book is invalid."""
    book_cover_bps: float | None = None
    """How far from the mid the valid book reaches on its shorter side (bps): the distance of
    its deepest bid or ask level, whichever is nearer. Below ``max(DEPTH_BANDS_BPS)`` the
    widest depth band is partial (a lower bound). ``None`` for an invalid or one-sided book."""
    coarse: bool = False
    """``price`` comes from a time bin (BitMEX ``tradeBin1m`` / ``quoteBin1m``), not from trades."""


class ProvisionalAlert(msgspec.Struct, frozen=True, gc=False, tag="provisional_alert"):
    """A provisional cascade alert (:mod:`cascadewatch.pipelines.steps.provisional`) on its way to
    its asset's step: ``second`` (ms) is the open event-time second of the instrument when the
    alert was made, ``alert`` the output dict."""

    second: int
    asset: str
    venue: str
    instrument: str
    alert: dict[str, Any]


class AssetSecond(msgspec.Struct, frozen=True, gc=False, tag="asset_second"):
    """One released event-time second of one asset: its venue instruments' states, sorted by
    ``(venue, instrument)``, and the provisional alerts made in it, sorted by ``(venue,
    instrument, ts, direction)``. The merge step sends it to the asset's own step."""

    second: int
    asset: str
    states: tuple[InstrumentState, ...]
    provisional: tuple[ProvisionalAlert, ...] = ()


class SecondManifest(msgspec.Struct, frozen=True, gc=False, tag="second_manifest"):
    """The merge step released ``second`` for ``assets`` (sorted): the ordering step emits the
    second once it holds the output of every one of them."""

    second: int
    assets: tuple[str, ...]


class AssetOutput(msgspec.Struct, frozen=True, gc=False, tag="asset_output"):
    """What an asset's step produced for one second: the snapshot, then its alerts (dicts of
    the output contract, in order)."""

    second: int
    asset: str
    items: tuple[dict[str, Any], ...]
