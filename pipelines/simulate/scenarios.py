"""Scenarios: the market's parameters and the exogenous events of each named run.

A scenario only sets the *conditions* (how crowded and how leveraged the traders are, how deep
the market makers quote, an optional trend) and the *exogenous triggers* (a large market order,
an index jump, market makers withdrawing, a cluster of stop orders). Whether a cascade follows
is up to the mechanism: positions with liquidation prices, a liquidation engine that sends
market orders into the book, market makers that pull back when volatility rises.

Each scenario has an *anchor*, the moment of its event, at ``anchor`` (a fraction) of the run;
phases, shocks and stop placements are given in seconds relative to it. A longer run is a
longer calm market around the same episode (a crowd builds up for the same 8 minutes before
the shock whether the run lasts 15 minutes or a day), so the episode keeps its shape.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

__all__ = [
    "Phase",
    "Shock",
    "StopCluster",
    "Scenario",
    "SCENARIOS",
    "LEVERAGES",
    "CALM_LEVERAGE",
    "CROWDED_LEVERAGE",
    "LOW_LEVERAGE",
]

LEVERAGES: tuple[float, ...] = (2, 3, 5, 10, 20, 25, 50, 75, 100)
CALM_LEVERAGE: tuple[float, ...] = (0.09, 0.09, 0.18, 0.26, 0.19, 0.11, 0.05, 0.015, 0.015)
"""Weights over :data:`LEVERAGES` for ordinary flow: 8 % of positions at 50x or more."""
CROWDED_LEVERAGE: tuple[float, ...] = (0.02, 0.02, 0.05, 0.1, 0.12, 0.14, 0.25, 0.15, 0.15)
"""Weights during a crowded build-up: 55 % of new positions at 50x or more."""
LOW_LEVERAGE: tuple[float, ...] = (0.2, 0.2, 0.25, 0.25, 0.1, 0.0, 0.0, 0.0, 0.0)
"""Weights of a cautious market: nothing above 20x (liquidation prices 4.6 % away or more)."""


@dataclass(frozen=True)
class Phase:
    """A window ``[start_s, end_s)`` (seconds from the scenario's anchor) that modifies the market.

    - ``open_rate``: multiplier of the leveraged traders' position-opening rate;
    - ``long_share``: share of new positions that are longs (``None``: the default 0.5);
    - ``leverage``: weights over :data:`LEVERAGES` (``None``: :data:`CALM_LEVERAGE`);
    - ``size``: multiplier of new position sizes;
    - ``trend_usd_s``: informed flow, USD per second per unit of venue scale (+ buys, - sells);
    - ``index_bps_s``: drift of the spot index, bps per second (informed selling or buying that
      moves the whole market, not only this venue's book);
    - ``hedge``: share of the new positions' net directional flow that is met by untracked
      counterparties (basis traders, market makers hedging elsewhere), so a crowd builds up
      without running the price away;
    - ``liquidity``: multiplier of the market makers' target depth (ramped over ``ramp`` of
      the phase at both ends, so depth vanishes and comes back gradually);
    - ``venues``: the venues affected (``None``: all).
    """

    start_s: float
    end_s: float
    open_rate: float = 1.0
    long_share: float | None = None
    leverage: tuple[float, ...] | None = None
    size: float = 1.0
    trend_usd_s: float = 0.0
    index_bps_s: float = 0.0
    hedge: float = 0.0
    liquidity: float = 1.0
    ramp: float = 0.0
    venues: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Shock:
    """An exogenous trigger ``at_s`` seconds from the scenario's anchor.

    - ``kind == "market"``: market orders of ``usd`` in total (+ buy, - sell), per unit of venue
      scale, spread over ``over_s`` seconds in ``slices`` orders, on ``venues`` (``None``: all);
    - ``kind == "index"``: the spot index jumps by ``bps`` (news); perpetuals follow through
      arbitrage.
    """

    at_s: float
    kind: str
    usd: float = 0.0
    bps: float = 0.0
    over_s: float = 5.0
    slices: int = 10
    venues: tuple[str, ...] | None = None


@dataclass(frozen=True)
class StopCluster:
    """Resting stop-market orders placed ``placed_s`` seconds from the anchor: ``side`` ``"sell"``
    (stop-losses of longs, below the price) or ``"buy"``, around ``at_bps`` from each venue's
    price at placement, spread over ``width_bps``, ``usd`` per unit of venue scale. A stop fires
    when the venue's last trade crosses it."""

    side: str
    at_bps: float
    usd: float
    placed_s: float = -120.0
    width_bps: float = 10.0
    count: int = 40
    venues: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Scenario:
    """A named run: venues, default duration, phases, shocks, stops and market parameters."""

    name: str
    description: str
    duration_s: float = 900.0
    anchor: float = 0.6  # the scenario's event, as a fraction of the run
    venues: tuple[str, ...] = ("binance-usdm", "bybit-linear", "okx-swap")
    phases: tuple[Phase, ...] = ()
    shocks: tuple[Shock, ...] = ()
    stops: tuple[StopCluster, ...] = ()
    start_ms: int = 1_768_435_200_000  # 2026-01-15T00:00:00Z
    price: float = 96_500.0
    index_vol_bps: float = 0.45  # spot index volatility, bps per sqrt(second)
    open_rate: float = 0.8  # leveraged positions opened per second per unit of venue scale
    noise_rate: float = 2.5  # untracked market orders per second per unit of venue scale
    hold_s: float = 7200.0  # mean holding time of a leveraged position
    leverage: tuple[float, ...] = CALM_LEVERAGE  # leverage mix of ordinary flow and of the initial positions
    depth_usd_bps: float = 220_000.0  # market makers' resting USD per bps of distance (Binance scale)
    step_s: float = 0.25  # simulation step (and book update interval)
    levels_every_s: int = 60  # truth "levels" line interval

    def with_duration(self, duration_s: float) -> Scenario:
        """This scenario with another duration (seconds)."""
        return replace(self, duration_s=duration_s)


def _squeeze(direction: str) -> Scenario:
    down = direction == "down"
    sign = 1.0 if down else -1.0
    return Scenario(
        name="long-squeeze" if down else "short-squeeze",
        description=(
            "Crowded, highly leveraged longs build up on a slow rally; a large market sell and a spot dip "
            "push the mark through their liquidation prices: a downward cascade."
            if down
            else "Crowded, highly leveraged shorts build up on a slow decline; a large market buy and a spot "
            "jump push the mark through their liquidation prices: an upward squeeze."
        ),
        phases=(
            Phase(
                -495,
                0,
                open_rate=3.0,
                long_share=0.75 if down else 0.25,
                leverage=CROWDED_LEVERAGE,
                size=1.4,
                hedge=0.7,
            ),
        ),
        shocks=(
            Shock(0, "index", bps=-sign * 50.0),
            Shock(0, "market", usd=-sign * 5_000_000.0, over_s=6.0, slices=12),
        ),
    )


SCENARIOS: dict[str, Scenario] = {
    "calm": Scenario(
        name="calm",
        description="An ordinary day: two-sided flow, moderate leverage, deep books; no cascade.",
        duration_s=86_400.0,
        step_s=0.5,
    ),
    "long-squeeze": _squeeze("down"),
    "short-squeeze": _squeeze("up"),
    "liquidity-drain": Scenario(
        name="liquidity-drain",
        description=(
            "Moderately crowded longs; market makers withdraw most of their depth first, then ordinary "
            "selling walks through the thin book into the long liquidation levels."
        ),
        phases=(
            Phase(-495, -45, open_rate=2.5, long_share=0.75, leverage=CROWDED_LEVERAGE, size=1.3, hedge=0.7),
            Phase(-90, 180, liquidity=0.25, ramp=0.25),
            Phase(0, 27, trend_usd_s=-60_000.0, index_bps_s=-1.5),
        ),
    ),
    "stop-run": Scenario(
        name="stop-run",
        description=(
            "Few leveraged positions near the price, a dense cluster of sell stops 40 bps below; an aggressive "
            "seller runs the stops: one-sided aggression without liquidations."
        ),
        leverage=LOW_LEVERAGE,
        phases=(Phase(-45, 0, trend_usd_s=-80_000.0, index_bps_s=-1.6),),
        stops=(StopCluster("sell", at_bps=-40.0, usd=6_000_000.0, width_bps=15.0),),
    ),
    "multi-venue": Scenario(
        name="multi-venue",
        description=(
            "Crowded longs on every venue; a large sell hits Bybit alone. Bybit's mark falls first and its "
            "liquidations start the cascade; arbitrage and the spot index carry it to Binance and OKX."
        ),
        duration_s=720.0,
        phases=(Phase(-396, 0, open_rate=3.0, long_share=0.75, leverage=CROWDED_LEVERAGE, size=1.4, hedge=0.7),),
        shocks=(Shock(0, "market", usd=-9_000_000.0, over_s=8.0, slices=16, venues=("bybit-linear",)),),
    ),
}
