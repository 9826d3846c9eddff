"""The market a seed draws: asset scale, venues, leverage, market makers, volatility, funding.

Every run draws its own :class:`Market` from its seed (:func:`draw_market`), so no two seeds
share one: the price level and the notional scale of the asset, which venues list it and how
big each is, the leverage mix of the traders, how deep and how nervous the market makers are,
how fast the arbitrageurs and the liquidation engines work, the volatility regime (level,
volatility of volatility, jumps and how much they excite each other) and the funding bias.
The draw uses its own random stream (``Random(seed)`` mixed with a constant), so the market of
a seed does not depend on the scenario's length or on anything the simulation draws later.

Ranges are wide on purpose (a model trained on these runs must not learn one market); each is
log-uniform unless said otherwise, and the docstring of each field gives its unit.
"""

from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass

__all__ = ["Market", "VenueMarket", "draw_market", "VENUE_NAMES", "SIMULATED_VENUES", "LEVERAGES"]

VENUE_NAMES: tuple[str, ...] = ("binance-usdm", "bybit-linear", "okx-swap")
LEVERAGES: tuple[float, ...] = (2, 3, 5, 10, 20, 25, 50, 75, 100)
_LATENCY_MS = {
    "binance-usdm": 28.0,
    "bybit-linear": 55.0,
    "okx-swap": 80.0,
    "bitmex": 45.0,
    "deribit": 45.0,
    "hyperliquid": 120.0,
}
SIMULATED_VENUES: tuple[str, ...] = tuple(_LATENCY_MS)
"""Every venue a run may name (``Scenario.venues``); drawn runs use :data:`VENUE_NAMES` only, so
BitMEX is written only when a run asks for it (``--venues``), Deribit and Hyperliquid only in
``multi-venue-wide`` or when a run names them."""
_SEED_MIX = 0x5EED_3A7C_91B4


@dataclass(frozen=True)
class VenueMarket:
    """One venue of a market.

    - ``scale``: the venue's size (flows, depth, open interest) in units of the market's
      notional scale (the largest venue of a run is 1);
    - ``mmr``: maintenance margin rate (fraction of the notional);
    - ``latency_ms``: feed latency;
    - ``mark_tau_s``: smoothing of the basis in the mark price, seconds;
    - ``engine_usd_s``: the liquidation engine's throughput, USD per second per unit of scale;
    - ``engine_slip_bps``: how far through the best price the engine's orders may trade;
    - ``insurance_usd``: the insurance fund at the start, USD.
    """

    name: str
    scale: float
    mmr: float
    latency_ms: float
    mark_tau_s: float
    engine_usd_s: float
    engine_slip_bps: float
    insurance_usd: float


@dataclass(frozen=True)
class Market:
    """Everything a seed draws (see the module docstring); USD amounts are per unit of venue scale.

    Asset: ``price`` (USDT), ``notional`` (multiplier of every flow, depth and fund).
    Traders: ``leverage`` and ``crowd_leverage`` (weights over :data:`LEVERAGES` for ordinary and
    crowded flow), ``long_share`` (share of longs in ordinary flow), ``funding_bias`` (added to
    the funding rate, per 8 h), ``hold_s`` (mean holding time), ``open_rate`` and ``noise_rate``
    (orders per second per unit of scale).
    Market makers: ``depth_usd_bps`` (resting USD per bps of distance), ``mm_nerve`` (how hard
    they pull back under stress, 1 = the reference), ``mm_return_s`` (time constant of their
    return), ``mm_refill_s`` (mean time to refill a swept level next to the price).
    Arbitrage: ``arb_lag_s`` (age of the prices the arbitrageurs trade on), ``arb_usd_s_bps``
    (USD per second per bps of basis), ``arb_cap_usd_s`` (their capacity), ``index_pull_s``
    (pull of the spot index toward the perpetuals, per second).
    Value traders: ``value_usd_s_bps`` (USD per second per bps of distance of the price from its
    30-minute average beyond ``value_free_bps``, against the move), ``value_lag_s`` (how late
    they arrive: the time constant of their reaction). They end a cascade once it has gone far.
    Volatility of the spot index: ``vol_bps`` (bps per sqrt(second), long-run level),
    ``vol_of_vol`` (stationary sd of log volatility), ``vol_revert_s`` (its mean reversion),
    ``jump_rate_h`` (news per hour at the long-run level), ``jump_bps`` (mean size),
    ``jump_over_s`` (how long the index takes to move by a jump), ``excite`` (rise of log
    volatility per 1 % of the market's open interest liquidated: liquidations beget volatility).
    News that leaks: ``lead_share`` (share of news the market trades on before it breaks, 0..1),
    ``lead_s`` (mean length of that lead-in, seconds), ``lead_frac`` (share of the move made
    during the lead-in). A leaked move starts as a slow slide toward the liquidation levels, so
    the first, most leveraged positions are liquidated minutes before the dense part: the trickle
    real markets show before a cascade (BitMEX XBTUSD 2020: 0.24 liquidations a minute in the five
    minutes before a labelled cascade, 0.01 at calm times). Those who trade on a scenario's leaked
    shock do it on the perpetuals, where price discovery leads. ``informed`` (dimensionless) is how
    hard they press the books: while the leak slides the index ``r`` bps per second, every venue
    takes market orders of ``informed * depth_usd_bps * |r|`` USD per second per unit of venue
    scale in the shock's direction, about ``informed * r`` bps per second of pressure on a book
    that did not refill.
    """

    price: float
    notional: float
    venues: tuple[VenueMarket, ...]
    leverage: tuple[float, ...]
    crowd_leverage: tuple[float, ...]
    long_share: float
    funding_bias: float
    hold_s: float
    open_rate: float
    noise_rate: float
    depth_usd_bps: float
    mm_nerve: float
    mm_return_s: float
    mm_refill_s: float
    arb_lag_s: float
    arb_usd_s_bps: float
    arb_cap_usd_s: float
    index_pull_s: float
    value_usd_s_bps: float
    value_free_bps: float
    value_lag_s: float
    vol_bps: float
    vol_of_vol: float
    vol_revert_s: float
    jump_rate_h: float
    jump_bps: float
    jump_over_s: float
    excite: float
    lead_share: float = 0.0
    lead_s: float = 0.0
    lead_frac: float = 0.0
    informed: float = 0.0

    def to_json(self) -> dict:
        """A JSON-ready dict (floats rounded to 6 significant digits, byte-stable)."""

        def rnd(v: object) -> object:
            if isinstance(v, float):
                return float(f"{v:.6g}")
            if isinstance(v, (list, tuple)):
                return [rnd(x) for x in v]
            if isinstance(v, dict):
                return {k: rnd(x) for k, x in v.items()}
            return v

        out = rnd(asdict(self))
        assert isinstance(out, dict)
        return out


def _logu(rng: random.Random, lo: float, hi: float) -> float:
    return math.exp(rng.uniform(math.log(lo), math.log(hi)))


def _tilted(rng: random.Random, base: tuple[float, ...], spread: float) -> tuple[float, ...]:
    """``base`` weights over :data:`LEVERAGES` tilted by ``exp(t * ln L)``, ``t`` uniform in
    ``[-spread, spread]``, renormalised (a market with more or fewer high-leverage traders)."""
    t = rng.uniform(-spread, spread)
    w = [b * math.exp(t * math.log(lev / 20.0)) for b, lev in zip(base, LEVERAGES, strict=True)]
    total = sum(w)
    return tuple(x / total for x in w)


CALM_BASE: tuple[float, ...] = (0.09, 0.09, 0.18, 0.26, 0.19, 0.11, 0.05, 0.015, 0.015)
"""Reference weights of ordinary flow: 8 % of positions at 50x or more."""
CROWD_BASE: tuple[float, ...] = (0.02, 0.02, 0.05, 0.1, 0.12, 0.14, 0.25, 0.15, 0.15)
"""Reference weights of a crowded build-up: 55 % of new positions at 50x or more."""


def draw_market(seed: int, venues: tuple[str, ...] | None = None, min_venues: int = 1) -> Market:
    """The market of ``seed`` (module docstring). ``venues``: the venue set (``None``: drawn, at
    least ``min_venues`` of :data:`VENUE_NAMES`, in a random order of size)."""
    rng = random.Random(seed ^ _SEED_MIX)
    price = _logu(rng, 18_000.0, 125_000.0)
    notional = _logu(rng, 0.45, 2.2)
    if venues is None:
        k = max(min_venues, 1 + (rng.random() < 0.7) + (rng.random() < 0.55))
        names = list(VENUE_NAMES)
        rng.shuffle(names)
        chosen = tuple(names[:k])
    else:
        chosen = tuple(venues)
    vms = []
    for i, name in enumerate(chosen):
        vms.append(
            VenueMarket(
                name=name,
                scale=1.0 if i == 0 else rng.uniform(0.35, 0.9),
                mmr=rng.choice((0.004, 0.004, 0.005, 0.0065)),
                latency_ms=_LATENCY_MS[name] * rng.uniform(0.7, 1.4),
                mark_tau_s=_logu(rng, 3.0, 30.0),
                engine_usd_s=_logu(rng, 80_000.0, 500_000.0),
                engine_slip_bps=_logu(rng, 6.0, 30.0),
                insurance_usd=_logu(rng, 1.5e6, 25e6),
            )
        )
    funding_bias = rng.uniform(-0.0001, 0.0003)
    return Market(
        price=price,
        notional=notional,
        venues=tuple(vms),
        leverage=_tilted(rng, CALM_BASE, 0.6),
        crowd_leverage=_tilted(rng, CROWD_BASE, 0.5),
        long_share=min(0.6, max(0.4, 0.5 + 150.0 * funding_bias + rng.gauss(0.0, 0.02))),
        funding_bias=funding_bias,
        hold_s=_logu(rng, 2_400.0, 14_400.0),
        open_rate=_logu(rng, 0.5, 1.3),
        noise_rate=_logu(rng, 1.6, 4.0),
        depth_usd_bps=_logu(rng, 120_000.0, 400_000.0),
        mm_nerve=_logu(rng, 0.5, 2.0),
        mm_return_s=_logu(rng, 20.0, 180.0),
        mm_refill_s=_logu(rng, 0.4, 4.0),
        arb_lag_s=_logu(rng, 1.0, 12.0),
        arb_usd_s_bps=_logu(rng, 20_000.0, 80_000.0),
        arb_cap_usd_s=_logu(rng, 200_000.0, 600_000.0),
        index_pull_s=_logu(rng, 0.003, 0.015),
        value_usd_s_bps=_logu(rng, 2_000.0, 8_000.0),
        value_free_bps=_logu(rng, 15.0, 40.0),
        value_lag_s=_logu(rng, 3.0, 15.0),
        vol_bps=_logu(rng, 0.3, 0.75),
        vol_of_vol=rng.uniform(0.25, 0.6),
        vol_revert_s=_logu(rng, 1_200.0, 7_200.0),
        jump_rate_h=_logu(rng, 0.12, 0.45),
        jump_bps=_logu(rng, 40.0, 90.0),
        jump_over_s=_logu(rng, 30.0, 180.0),
        excite=_logu(rng, 1.5, 4.5),
        lead_share=rng.uniform(0.2, 0.9),
        lead_s=_logu(rng, 90.0, 480.0),
        lead_frac=rng.uniform(0.15, 0.4),
        informed=rng.uniform(0.4, 1.2),
    )
