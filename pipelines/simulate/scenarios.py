"""Scenario families: the exogenous conditions and events of a run, drawn per seed.

A family only sets the *conditions* (how crowded and how leveraged the traders are, how deep
the market makers quote, a trend, a crowd that closes early) and the *exogenous triggers* (a
large market order, a move of the spot index, market makers withdrawing, a cluster of stop
orders). Whether a cascade follows is up to the mechanism: positions with liquidation prices, a
mark price that follows the index, a liquidation engine that works its inventory into the book,
market makers that pull back and come back late, arbitrage that lags, and the background of
every run (stochastic volatility and news jumps that liquidations excite, :mod:`.market`).

Each family draws its :class:`Plan` from the seed (:attr:`Scenario.build`): the direction where
the family has none of its own, the *anchor* (the moment of its event, a fraction of the run,
so the episode sits at a different point in every run), the length and strength of a build-up,
the size and timing of shocks. Phases, shocks and stop placements are in seconds from the
anchor. The families are chosen so that "crowding, then a shock" is *not* the rule: crowds
that unwind quietly, shocks out of nowhere, slow grinds, several waves, one venue first.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, replace

from cascadewatch.pipelines.simulate.mitigation import Mitigation

__all__ = ["Phase", "Shock", "StopCluster", "Plan", "Scenario", "SCENARIOS", "LOW_LEVERAGE"]

LOW_LEVERAGE: tuple[float, ...] = (0.2, 0.2, 0.25, 0.25, 0.1, 0.0, 0.0, 0.0, 0.0)
"""Weights of a cautious market: nothing above 20x (liquidation prices 4.6 % away or more)."""


@dataclass(frozen=True)
class Phase:
    """A window ``[start_s, end_s)`` (seconds from the anchor) that modifies the market.

    - ``open_rate``: multiplier of the leveraged traders' position-opening rate;
    - ``long_share``: share of new positions that are longs (``None``: the market's);
    - ``leverage``: ``"crowd"`` (the market's crowded mix), ``"low"`` (:data:`LOW_LEVERAGE`) or
      ``None`` (the market's ordinary mix);
    - ``size``: multiplier of new position sizes;
    - ``trend_usd_s``: informed flow, USD per second per unit of venue scale (+ buys, - sells);
    - ``index_bps_s``: drift of the spot index, bps per second;
    - ``hedge``: share of the crowd's net flow (openings and closes) met by untracked
      counterparties, so a crowd builds up or unwinds without running the price away;
    - ``unwind``: share per second of the crowd side's positions that close early, the side
      being ``unwind_long`` (longs) or shorts;
    - ``liquidity``: multiplier of the market makers' target depth (ramped over ``ramp`` of
      the phase at both ends);
    - ``venues``: the venues affected (``None``: all).
    """

    start_s: float
    end_s: float
    open_rate: float = 1.0
    long_share: float | None = None
    leverage: str | None = None
    size: float = 1.0
    trend_usd_s: float = 0.0
    index_bps_s: float = 0.0
    hedge: float = 0.0
    unwind: float = 0.0
    unwind_long: bool = True
    liquidity: float = 1.0
    ramp: float = 0.0
    venues: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Shock:
    """An exogenous trigger ``at_s`` seconds from the anchor, spread over ``over_s`` seconds in
    ``slices`` parts.

    - ``kind == "market"``: market orders of ``usd`` in total (+ buy, - sell) per unit of venue
      scale, on ``venues`` (``None``: all; ``"first"``: the run's largest venue only);
    - ``kind == "index"``: the spot index moves by ``bps`` (news); perpetuals follow through
      their mark price and arbitrage. With ``lead_s > 0`` the news leaks: the index slides
      ``lead_frac * bps`` over the ``lead_s`` seconds before ``at_s`` (evenly, in 2-second
      slices) and moves the rest, ``(1 - lead_frac) * bps``, from ``at_s`` as above.
    """

    at_s: float
    kind: str
    usd: float = 0.0
    bps: float = 0.0
    over_s: float = 5.0
    slices: int = 10
    venues: tuple[str, ...] | str | None = None
    lead_s: float = 0.0
    lead_frac: float = 0.0


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
class Plan:
    """What a family drew for one seed: the anchor (fraction of the run), the direction of its
    episode (``"down"``/``"up"``, ``None`` without one), phases, shocks and stops."""

    anchor: float = 0.6
    direction: str | None = None
    phases: tuple[Phase, ...] = ()
    shocks: tuple[Shock, ...] = ()
    stops: tuple[StopCluster, ...] = ()


@dataclass(frozen=True)
class Scenario:
    """A scenario family: name, description, default duration, venues and its plan drawer.

    ``venues``: the venue set (``None``: drawn by the market, at least ``min_venues``);
    ``build(rng)`` draws the seed's :class:`Plan`.
    """

    name: str
    description: str
    build: Callable[[random.Random], Plan]
    duration_s: float = 900.0
    venues: tuple[str, ...] | None = None
    min_venues: int = 1
    start_ms: int = 1_768_435_200_000  # 2026-01-15T00:00:00Z
    step_s: float = 0.25  # simulation step (and book update interval)
    levels_every_s: int = 60  # truth "levels" line interval
    activity: float = 1.0  # multiplier of the untracked two-sided flow (a busier market)
    mitigation: Mitigation | None = None  # a what-if lever inside the venues (opt-in, :mod:`.mitigation`)

    def with_duration(self, duration_s: float) -> Scenario:
        """The same family over ``duration_s`` seconds."""
        return replace(self, duration_s=duration_s)

    def with_venues(self, venues: tuple[str, ...]) -> Scenario:
        """The same family on exactly ``venues``."""
        return replace(self, venues=tuple(venues))

    def with_mitigation(self, mitigation: Mitigation | None) -> Scenario:
        """The same family with a what-if lever applied inside the venues (``None``: none)."""
        return replace(self, mitigation=mitigation)


def _u(rng: random.Random, lo: float, hi: float) -> float:
    return rng.uniform(lo, hi)


def _logu(rng: random.Random, lo: float, hi: float) -> float:
    return math.exp(rng.uniform(math.log(lo), math.log(hi)))


def _direction(rng: random.Random, fixed: str | None) -> tuple[str, float]:
    """``(direction, sign)``: sign +1 for a downward episode (longs crowded, selling)."""
    d = fixed or ("down" if rng.random() < 0.5 else "up")
    return d, (1.0 if d == "down" else -1.0)


def _crowd(rng: random.Random, sign: float, start_s: float, end_s: float = 0.0, strength: float = 1.0) -> Phase:
    """A crowded, leveraged build-up on one side, hedged so it does not run the price away."""
    share = _u(rng, 0.7, 0.8)
    return Phase(
        start_s,
        end_s,
        open_rate=_u(rng, 1.2, 2.4) * strength,
        long_share=share if sign > 0 else 1.0 - share,
        leverage="crowd",
        size=_u(rng, 1.1, 1.4),
        hedge=_u(rng, 0.6, 0.8),
    )


LEAK_SHARE = 0.6
"""Share of the seeds of a family with news (``squeeze``, ``multi-wave``) whose first index move leaks."""


def _leak(rng: random.Random, plan: Plan, share: float = LEAK_SHARE) -> Plan:
    """With probability ``share``, give the plan's first index shock a lead-in of 60-300 s in
    which the index makes 25-60 % of its move (:class:`Shock`): enough, on most seeds, to reach
    the most leveraged of the crowd's levels, whose liquidations trickle in before the break; the
    runner has informed traders press the slide onto the perpetuals. Drawn after everything else
    of the plan, so the rest of a seed's plan is the same with or without the leak."""
    if rng.random() >= share:
        return plan
    lead, frac = _u(rng, 60, 300), _u(rng, 0.25, 0.6)
    shocks = list(plan.shocks)
    i = next(j for j, sh in enumerate(shocks) if sh.kind == "index")
    shocks[i] = replace(shocks[i], lead_s=lead, lead_frac=frac)
    return replace(plan, shocks=tuple(shocks))


def _squeeze(fixed: str | None) -> Callable[[random.Random], Plan]:
    def build(rng: random.Random) -> Plan:
        d, sign = _direction(rng, fixed)
        k = _logu(rng, 0.6, 1.6)
        plan = Plan(
            anchor=_u(rng, 0.35, 0.8),
            direction=d,
            phases=(_crowd(rng, sign, -_u(rng, 300, 600)),),
            shocks=(
                Shock(0, "index", bps=-sign * 90.0 * k, over_s=_u(rng, 5, 60), slices=12),
                Shock(0, "market", usd=-sign * 8_000_000.0 * k, over_s=_u(rng, 4, 12), slices=12),
            ),
        )
        return _leak(rng, plan)

    return build


def _liquidity_drain(rng: random.Random) -> Plan:
    k = _logu(rng, 0.7, 1.4)
    return Plan(
        anchor=_u(rng, 0.4, 0.8),
        direction="down",
        phases=(
            replace(_crowd(rng, 1.0, -_u(rng, 300, 500), -45, strength=0.8), size=1.3),
            Phase(-_u(rng, 60, 150), _u(rng, 120, 300), liquidity=_u(rng, 0.15, 0.35), ramp=0.25),
            Phase(0, _u(rng, 20, 40), trend_usd_s=-60_000.0 * k, index_bps_s=-1.5 * k),
        ),
    )


def _stop_run(rng: random.Random) -> Plan:
    k = _logu(rng, 0.7, 1.4)
    at = -_u(rng, 30, 50)
    return Plan(
        anchor=_u(rng, 0.35, 0.8),
        direction="down",
        phases=(Phase(-_u(rng, 30, 60), 0, leverage="low", trend_usd_s=-80_000.0 * k, index_bps_s=-1.6 * k),),
        stops=(StopCluster("sell", at_bps=at, usd=6_000_000.0 * k, width_bps=_u(rng, 10, 20)),),
    )


def _multi_venue(rng: random.Random) -> Plan:
    k = _logu(rng, 0.7, 1.4)
    lag = _u(rng, 10, 40)  # the selling reaches spot (the index) this much later
    return Plan(
        anchor=_u(rng, 0.45, 0.8),
        direction="down",
        phases=(
            _crowd(rng, 1.0, -_u(rng, 250, 450)),
            Phase(-5, _u(rng, 60, 180), liquidity=_u(rng, 0.3, 0.6), ramp=0.2, venues=("bybit-linear",)),
        ),
        shocks=(
            Shock(0, "market", usd=-15_000_000.0 * k, over_s=_u(rng, 5, 12), slices=16, venues=("bybit-linear",)),
            Shock(lag, "index", bps=-60.0 * k, over_s=_u(rng, 20, 60), slices=12),
        ),
    )


def _venue_spread(rng: random.Random) -> Plan:
    d, sign = _direction(rng, None)
    k = _logu(rng, 0.7, 1.5)
    return Plan(
        anchor=_u(rng, 0.35, 0.75),
        direction=d,
        phases=(
            _crowd(rng, sign, -_u(rng, 200, 500), strength=_u(rng, 0.6, 1.0)),
            Phase(-10, _u(rng, 60, 200), liquidity=_u(rng, 0.3, 0.6), ramp=0.2, venues=("first",)),
        ),
        shocks=(
            Shock(0, "market", usd=-sign * 14_000_000.0 * k, over_s=_u(rng, 5, 15), slices=16, venues="first"),
            Shock(_u(rng, 15, 60), "index", bps=-sign * 60.0 * k, over_s=_u(rng, 20, 90), slices=12),
        ),
    )


def _multi_wave(rng: random.Random) -> Plan:
    d, sign = _direction(rng, None)
    k = _logu(rng, 0.6, 1.3)
    waves = 2 + (rng.random() < 0.6)
    shocks = []
    at = 0.0
    for i in range(waves):
        w = k * (1.0 if i == 0 else _u(rng, 0.5, 1.0))
        shocks.append(Shock(at, "index", bps=-sign * 60.0 * w, over_s=_u(rng, 5, 25), slices=8))
        shocks.append(Shock(at, "market", usd=-sign * 6_000_000.0 * w, over_s=_u(rng, 4, 12), slices=10))
        at += _u(rng, 60, 240)
    plan = Plan(
        anchor=_u(rng, 0.3, 0.6),
        direction=d,
        phases=(
            _crowd(rng, sign, -_u(rng, 300, 600), strength=1.2),
            Phase(0, at + 60, liquidity=_u(rng, 0.4, 0.7), ramp=0.1),
        ),
        shocks=tuple(shocks),
    )
    return _leak(rng, plan)


def _surprise_shock(rng: random.Random) -> Plan:
    d, sign = _direction(rng, None)
    k = _logu(rng, 0.7, 1.6)
    return Plan(
        anchor=_u(rng, 0.3, 0.85),
        direction=d,
        shocks=(
            Shock(0, "index", bps=-sign * 120.0 * k, over_s=_u(rng, 10, 90), slices=12),
            Shock(0, "market", usd=-sign * 5_000_000.0 * k, over_s=_u(rng, 3, 10), slices=10),
        ),
    )


def _crowded_unwind(rng: random.Random) -> Plan:
    d, sign = _direction(rng, None)
    return Plan(
        anchor=_u(rng, 0.35, 0.6),
        direction=d,
        phases=(
            _crowd(rng, sign, -_u(rng, 300, 600)),
            Phase(0, _u(rng, 600, 1200), unwind=_u(rng, 0.002, 0.005), unwind_long=sign > 0, hedge=_u(rng, 0.7, 0.9)),
        ),
    )


def _grind(rng: random.Random) -> Plan:
    d, sign = _direction(rng, None)
    length = _u(rng, 1800, 3600)
    return Plan(
        anchor=_u(rng, 0.1, 0.35),
        direction=d,
        phases=(
            Phase(
                0,
                length,
                index_bps_s=-sign * _u(rng, 0.03, 0.07),
                trend_usd_s=-sign * _u(rng, 3_000, 10_000),
                liquidity=_u(rng, 0.6, 0.9),
                ramp=0.1,
            ),
        ),
    )


def _calm(rng: random.Random) -> Plan:
    return Plan(anchor=0.5)


SCENARIOS: dict[str, Scenario] = {
    "calm": Scenario(
        name="calm",
        description=(
            "An ordinary day: two-sided flow, the market's own leverage and depth, stochastic volatility and "
            "news jumps; the background of small liquidations and the odd small cascade (about two a day)."
        ),
        build=_calm,
        duration_s=86_400.0,
        step_s=0.5,
    ),
    "long-squeeze": Scenario(
        name="long-squeeze",
        description=(
            "Crowded, highly leveraged longs build up; a large market sell and a spot dip push the mark "
            "through their liquidation prices: a downward cascade."
        ),
        build=_squeeze("down"),
    ),
    "short-squeeze": Scenario(
        name="short-squeeze",
        description=(
            "Crowded, highly leveraged shorts build up; a large market buy and a spot jump push the mark "
            "through their liquidation prices: an upward squeeze."
        ),
        build=_squeeze("up"),
    ),
    "liquidity-drain": Scenario(
        name="liquidity-drain",
        description=(
            "Moderately crowded longs; market makers withdraw most of their depth first, then ordinary "
            "selling walks through the thin book into the long liquidation levels."
        ),
        build=_liquidity_drain,
    ),
    "stop-run": Scenario(
        name="stop-run",
        description=(
            "Few leveraged positions near the price, a dense cluster of sell stops below; an aggressive "
            "seller runs the stops: one-sided aggression without liquidations."
        ),
        build=_stop_run,
    ),
    "multi-venue": Scenario(
        name="multi-venue",
        description=(
            "Crowded longs on every venue; Bybit's market makers pull back and a large sell hits Bybit alone. "
            "Bybit's mark falls first and its liquidations start the cascade; the selling reaches spot 10-40 s "
            "later and arbitrage and the index carry it to Binance and OKX."
        ),
        build=_multi_venue,
        duration_s=720.0,
        venues=("bybit-linear", "binance-usdm", "okx-swap"),
    ),
    "multi-venue-wide": Scenario(
        name="multi-venue-wide",
        description=(
            "The multi-venue cascade on five venues: Bybit, Binance and OKX plus Deribit (inverse BTC-PERPETUAL, "
            "liquidations as flagged fills) and Hyperliquid (no public liquidations: its forced fills look like "
            "any trade). Opt-in: no other scenario draws these two venues."
        ),
        build=_multi_venue,
        duration_s=720.0,
        venues=("bybit-linear", "binance-usdm", "okx-swap", "deribit", "hyperliquid"),
    ),
    "venue-spread": Scenario(
        name="venue-spread",
        description=(
            "A crowd on every venue; market makers of the largest venue pull back and a large order hits it "
            "alone: the cascade starts there and spreads, late (the move reaches spot 15-60 s later), through "
            "lagging arbitrage and the index."
        ),
        build=_venue_spread,
        min_venues=2,
    ),
    "multi-wave": Scenario(
        name="multi-wave",
        description=(
            "A crowd, then two or three shocks minutes apart while market makers stay away: a cascade in "
            "waves, each liquidating the next layer of positions."
        ),
        build=_multi_wave,
        duration_s=1200.0,
    ),
    "surprise-shock": Scenario(
        name="surprise-shock",
        description=(
            "No build-up: ordinary leverage and flow, then news moves the spot index by 80-190 bps "
            "within 10-90 s; whatever leverage sits in the way is liquidated."
        ),
        build=_surprise_shock,
    ),
    "crowded-unwind": Scenario(
        name="crowded-unwind",
        description=(
            "A crowded, leveraged build-up like a squeeze's, but no shock: the crowd closes its positions "
            "over 10-20 minutes into willing counterparties, and nothing cascades unless the market does it."
        ),
        build=_crowded_unwind,
        duration_s=1800.0,
    ),
    "grind": Scenario(
        name="grind",
        description=(
            "Slow grinding deleveraging: the index drifts 100-250 bps an hour with thinner books; positions "
            "are liquidated one layer at a time, in a trickle or in small cascades."
        ),
        build=_grind,
        duration_s=5400.0,
        step_s=0.5,
    ),
}
"""The scenario families by name (``cascadewatch simulate --scenario``)."""
