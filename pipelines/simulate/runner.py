"""The simulation loop: a spot index, one market per venue, a recording and its truth.

The seed draws the market (:func:`.market.draw_market`) and the family's plan; then per step
(``scenario.step_s``) the spot index moves (:class:`_Index`: stochastic volatility, news moves
spread over tens of seconds whose rate and side liquidations excite, a slow pull toward the
perpetuals' mid prices, the plan's drifts and shocks), then, on every venue in turn:

1. market makers quote (refill, refresh, rebuild, pull back under stress; :mod:`.book`);
2. the traders' market orders of the step are executed in time order (:mod:`.agents`:
   noise, openings and closes, lagging arbitrage, value traders, the plan's flows);
3. the mark price moves (index + smoothed basis), the liquidation engine takes over every
   position it crossed and works its inventory into the book, the insurance fund settles each
   fill and auto-deleveraging closes what it cannot cover (:mod:`.liquidation`);
4. the venue writer publishes the book changes (:mod:`.venues`).

A cascade on one venue drags the index and, through arbitrage, the other venues. At every
whole second the writers publish mark price, open interest and the throttled liquidation feeds,
and the true per-second forced notional (every engine fill and ADL close, published or not)
and price go through :class:`cascadewatch.detectors.labels.CascadeLabeler`: the truth file's
``cascade`` lines come from the same label definition the evaluator uses.
"""

from __future__ import annotations

import functools
import math
import random
import sys
import time
from dataclasses import dataclass, field, fields, replace
from itertools import accumulate
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec

from cascadewatch.connectors.recording import RecordingWriter
from cascadewatch.detectors.labels import CascadeLabeler, LabelConfig
from cascadewatch.pipelines.simulate.agents import LONG, SHORT, FlowParams, Positions, Traders, poisson
from cascadewatch.pipelines.simulate.book import LOT, Book, MarketMaker, Quoting
from cascadewatch.pipelines.simulate.liquidation import LiquidationEngine
from cascadewatch.pipelines.simulate.market import LEVERAGES, Market, VenueMarket, draw_market
from cascadewatch.pipelines.simulate.mitigation import Injector, Lever
from cascadewatch.pipelines.simulate.scenarios import LOW_LEVERAGE, Phase, Plan, Scenario, StopCluster
from cascadewatch.pipelines.simulate.venues import BinanceFeed, BybitFeed, Feed, FrameSink, NullFeed, frame_writer

if TYPE_CHECKING:
    from cascadewatch.detectors._grid import DecayingLogGrid

__all__ = ["SimulationResult", "run_scenario", "ASSET"]

ASSET = "BTC-USDT"
ORDER_MAX_CELLS = 400  # an ordinary market order walks at most 400 levels (~200 bps)
QUOTE_RANGE_BPS = 190.0  # market makers quote this far from the last trade (< 400 OKX levels)
CELL_BPS = 0.5  # one book level per ~0.5 bps of price (a round number of ticks)
LEVELS_BUCKET_BPS = 10.0
"""Width of the buckets of the truth's ``levels`` lines, bps of log-price: the estimated map's grid
(:func:`_levels_grid`), so the truth and the estimate list their levels alike and ``evaluate``
finds the nearest dense cluster on both with one rule (its window of 5 levels and its mean per
level mean the same)."""
OI_BASE_USD = 7.7e8  # open interest of positions the simulation does not track, per unit of scale
BURST_USD = 250_000.0  # a venue's first liquidation burst: this much filled within 10 s
ADL_AFTER_S = 20.0  # the engine works its inventory at least this long before auto-deleveraging
MAX_VOL_X = 1.5  # the volatility state is capped here (diffusion x2.1, news rate x90)
_PLAN_MIX = 0x9A1D_77E3_0C5B
_RUN_MIX = 0x3C6E_F372_FE94


@dataclass
class SimulationResult:
    """What a run produced: paths, frame counts, the true cascades, the market it drew and a
    few market facts (``hourly``: true forced notional per simulated hour, ``[longs, shorts]``
    in USD; ``adl``: auto-deleveraging events; ``liquidation_ms``: the liquidation orders' times)."""

    scenario: str
    seed: int
    duration_s: float
    out: Path | None
    truth: Path | None
    frames: int
    cascades: list[dict]
    market: dict = field(default_factory=dict)
    plan: dict = field(default_factory=dict)
    venues: dict[str, dict] = field(default_factory=dict)
    hourly: list[list[float]] = field(default_factory=list)
    adl: list[dict] = field(default_factory=list)
    liquidation_ms: list[int] = field(default_factory=list)
    """Times of the liquidation orders every venue's engine sent (UTC epoch ms, sorted)."""
    price_start: float = 0.0
    price_end: float = 0.0
    price_min: float = 0.0
    price_max: float = 0.0
    wall_s: float = 0.0
    moves_bps: dict[str, float] = field(default_factory=dict)
    """Largest peak-to-trough fall (``down``) and trough-to-peak rise (``up``) of the per-second price, bps."""
    mitigation: dict = field(default_factory=dict)
    """With a lever (:mod:`.mitigation`): its facts (:meth:`.mitigation.Lever.summary`)."""


class _Window:
    """A phase placed in the run: absolute ``[start_ms, end_ms)`` and its ramp length (ms)."""

    __slots__ = ("phase", "start_ms", "end_ms", "ramp_ms")

    def __init__(self, phase: Phase, anchor_ms: int, t0: int, t_end: int) -> None:
        self.phase = phase
        self.start_ms = max(t0, anchor_ms + int(phase.start_s * 1000))
        self.end_ms = min(t_end, anchor_ms + int(phase.end_s * 1000))
        self.ramp_ms = (phase.end_s - phase.start_s) * 1000 * phase.ramp

    def weight(self, t_ms: int) -> float:
        """How much of the phase applies at ``t_ms`` (ramps at both ends)."""
        if not self.start_ms <= t_ms < self.end_ms:
            return 0.0
        if self.ramp_ms <= 0:
            return 1.0
        return max(0.0, min(1.0, (t_ms - self.start_ms) / self.ramp_ms, (self.end_ms - t_ms) / self.ramp_ms))


@dataclass(frozen=True)
class _Mix:
    """The market's cumulative leverage weights: ordinary, crowded, cautious."""

    calm: tuple[float, ...]
    crowd: tuple[float, ...]
    low: tuple[float, ...]


def _conditions(windows: list[_Window], venue: str, t_ms: int, m: Market, mix: _Mix) -> tuple[FlowParams, float]:
    """The traders' parameters and the market makers' liquidity factor at ``t_ms`` on ``venue``."""
    open_rate, long_share, lev_cum, size, trend, hedge, liquidity = 1.0, m.long_share, mix.calm, 1.0, 0.0, 0.0, 1.0
    unwind, unwind_side = 0.0, LONG
    for win in windows:
        ph = win.phase
        if ph.venues is not None and venue not in ph.venues:
            continue
        w = win.weight(t_ms)
        if w <= 0:
            continue
        open_rate *= ph.open_rate
        if ph.long_share is not None:
            long_share = ph.long_share
        if ph.leverage is not None:
            lev_cum = mix.crowd if ph.leverage == "crowd" else mix.low
        size *= ph.size
        trend += ph.trend_usd_s
        hedge = max(hedge, ph.hedge)
        if ph.unwind:
            unwind, unwind_side = ph.unwind, LONG if ph.unwind_long else SHORT
        liquidity *= 1.0 + (ph.liquidity - 1.0) * w
    return FlowParams(open_rate, long_share, lev_cum, size, trend, hedge, unwind, unwind_side), liquidity


class _Index:
    """The spot index (ticks): stochastic volatility, news jumps, a pull toward the perpetuals.

    Per step ``dt``: ``ln I += sigma * 1e-4 * sqrt(dt) * Z + (drift + jumps) * 1e-4 * dt``, then
    ``I += pull * dt * (perp mid - I)`` (perpetuals lead price discovery). ``sigma = vol_bps *
    exp(x / 2)``; per second ``x += -x / revert + vol_of_vol * sqrt(2 / revert) * Z + excite * 100 *
    liquidated / open interest`` (capped at :data:`MAX_VOL_X`): liquidations excite volatility.
    News arrives at ``jump_rate_h * exp(3 x)`` per hour, each a move of an exponential size
    (mean ``jump_bps``) spread over about ``jump_over_s``; it is bad news (down) with probability
    ``0.5 + 0.4 * tanh(s)``, ``s`` the 30-minute EWMA of the signed liquidated notional (longs +,
    shorts -) over 0.5 % of the open interest: a cascade is news too, and its side persists.
    With probability ``lead_share`` the news leaks first: for a lead-in of ``lead_s * U(0.5, 1.5)``
    seconds the index slides ``lead_frac`` of the move at a constant rate, then makes the rest
    over ``over`` seconds (the truth's news line carries ``lead_s``; its ``ts`` is the lead-in's start).
    The lead-ins of the plan's leaked shocks are kept in ``leaks``: :meth:`leak_bps_s` is the slide
    informed traders press onto the perpetuals (:attr:`.market.Market.informed`). The news' own
    lead-ins slide the index alone (pressing them too left the calm days' clustering at 0 of 11
    followed cascades against 2 of 15 on calm seeds 1-8: ``facts``).
    """

    def __init__(self, m: Market, price_ticks: float, rng: random.Random) -> None:
        self.m = m
        self.rng = rng
        self.value = price_ticks
        self.x = rng.gauss(0.0, m.vol_of_vol)
        self.jumps: list[tuple[int, int, float]] = []  # (start ms, end ms, bps per second)
        self.leaks: list[tuple[int, int, float]] = []  # the plan's lead-ins (start ms, end ms, bps/s)
        self.news: list[dict] = []
        self.side = 0.0  # EWMA of the signed liquidated share of open interest (longs +)

    def second(self, t_ms: int, forced: list[float], oi_usd: float) -> None:
        """Advance volatility by one second (``forced``: the second's liquidated longs and shorts,
        USD) and draw the news of the next second."""
        m, rng = self.m, self.rng
        tau = m.vol_revert_s
        self.x += -self.x / tau + m.vol_of_vol * math.sqrt(2.0 / tau) * rng.gauss(0.0, 1.0)
        self.side -= self.side / 1800.0
        if oi_usd > 0:
            self.x += m.excite * 100.0 * (forced[0] + forced[1]) / oi_usd
            self.side += (forced[0] - forced[1]) / (0.005 * oi_usd)
        self.x = min(self.x, MAX_VOL_X)
        for _ in range(poisson(rng, m.jump_rate_h / 3600.0 * math.exp(3.0 * self.x))):
            down = rng.random() < 0.5 + 0.4 * math.tanh(self.side)
            bps = rng.expovariate(1.0 / m.jump_bps) * (-1.0 if down else 1.0)
            over = m.jump_over_s * (0.5 + rng.random())
            line = {"type": "shock", "ts": t_ms, "kind": "news", "bps": round(bps, 2), "over_s": round(over, 1)}
            lead = m.lead_s * (0.5 + rng.random()) if rng.random() < m.lead_share else 0.0
            if lead > 0.0:
                self.jumps.append((t_ms, t_ms + int(lead * 1000), m.lead_frac * bps / lead))
                bps *= 1.0 - m.lead_frac
                line["lead_s"] = round(lead, 1)
            start = t_ms + int(lead * 1000)
            self.jumps.append((start, start + int(over * 1000), bps / over))
            self.news.append(line)

    def leak_bps_s(self, t_ms: int) -> float:
        """The index's slide from the plan's leaks under way at ``t_ms``, bps per second (+ up)."""
        if not self.leaks:
            return 0.0
        self.leaks = [j for j in self.leaks if j[1] > t_ms]
        return sum(rate for start, _, rate in self.leaks if start <= t_ms)

    def step(self, t_ms: int, dt: float, drift_bps_s: float, perp_mid: float) -> float:
        """Move the index over one step; returns it (ticks)."""
        if self.jumps:
            self.jumps = [j for j in self.jumps if j[1] > t_ms]
            drift_bps_s += sum(rate for start, _, rate in self.jumps if start <= t_ms)
        sigma = self.m.vol_bps * math.exp(0.5 * self.x)
        self.value *= math.exp(sigma * 1e-4 * math.sqrt(dt) * self.rng.gauss(0.0, 1.0) + drift_bps_s * 1e-4 * dt)
        self.value += self.m.index_pull_s * dt * (perp_mid - self.value)
        return self.value


class _Venue:
    """One venue's market: book, market makers, traders, liquidation engine, frame writer."""

    def __init__(self, vm: VenueMarket, m: Market, sc: Scenario, rng: random.Random, sink: FrameSink) -> None:
        self.name = vm.name
        self.scale = vm.scale * m.notional
        self.rng = rng
        price_ticks = m.price * 10
        cell = max(10, int(round(price_ticks * CELL_BPS * 1e-4 / 10)) * 10)
        self.book = Book(int(price_ticks * 1.8 / cell), cell, int(price_ticks // cell))
        quoting = Quoting(m.depth_usd_bps * self.scale, QUOTE_RANGE_BPS, m.mm_nerve, m.mm_return_s, m.mm_refill_s)
        self.mm = MarketMaker(self.book, m.price, quoting, rng, sc.step_s)
        self.mm.seed()
        self.book.changed_bids.clear()
        self.book.changed_asks.clear()
        self.positions = Positions(vm.mmr, max(10, cell * 2))
        self.traders = Traders(rng, self.scale, self.positions, m, LEVERAGES, sc.activity)
        self.engine = LiquidationEngine(
            self.positions,
            tau_s=vm.mark_tau_s,
            usd_s=vm.engine_usd_s * self.scale,
            slip_bps=vm.engine_slip_bps,
            fund_usd=vm.insurance_usd * self.scale,
            adl_after_s=ADL_AFTER_S,
        )
        step_ms = int(round(sc.step_s * 1000))
        self.feed: Feed
        writer = frame_writer(vm.name)
        if sink.writer is None:
            self.feed = NullFeed(sink, self.book, rng, vm.latency_ms, writer.venue)
        elif writer is BinanceFeed:
            self.feed = BinanceFeed(
                sink, self.book, rng, vm.latency_ms, depth_ms=step_ms if step_ms in (100, 250, 500) else 100
            )
        else:
            self.feed = writer(sink, self.book, rng, vm.latency_ms)
        self.oi_base = int(OI_BASE_USD * self.scale / m.price / LOT)
        self.last_tick = self.book.tick(self.book.last_cell)
        self.premium = 0.0
        self.funding_bias = m.funding_bias
        self.arb_basis = 0.0
        self._a_arb = 1.0 - math.exp(-sc.step_s / m.arb_lag_s)
        self.anchor = price_ticks  # the value traders' slow average (30 min)
        self.value_bps = 0.0  # the distance from it they react to (lagged)
        self._a_anchor = 1.0 - math.exp(-sc.step_s / 1800.0)
        self._a_value = 1.0 - math.exp(-sc.step_s / m.value_lag_s)
        self.faults: list[tuple[int, str]] = []
        self.liq_count = 0
        self.liq_usd = [0.0, 0.0]
        self.adl_usd = 0.0
        self.first_liq_ms: int | None = None
        self._recent: list[tuple[int, float]] = []
        self.first_adl_ms: int | None = None
        self.traded_lots = 0  # every fill, traders' and the engine's
        self.halted = False  # a circuit breaker's halt (:mod:`.mitigation`)
        self.band: tuple[float | None, float | None] | None = None  # its band: (floor, ceiling) ticks
        self.injector: Injector | None = None  # a liquidity-injection agent (:mod:`.mitigation`)

    def mid(self) -> float:
        """Mid price (ticks)."""
        return self.book.mid_ticks()

    def oi_lots(self) -> int:
        """Open interest (lots): untracked base, open positions and the engine's inventory."""
        inv = self.engine.inventory
        return self.oi_base + self.positions.open_lots[LONG] + self.positions.open_lots[SHORT] + inv[0] + inv[1]

    def step(
        self, t_ms: int, step_ms: int, index: float, fair: float, cond: tuple[FlowParams, float], ctx: _Step
    ) -> None:
        """One step of this venue (module docstring); adds its forced notional to ``ctx``."""
        book, feed = self.book, self.feed
        p, liquidity = cond
        inj = self.injector
        if inj is not None:
            lifted = inj.lift()
            self.mm.step(liquidity)
            inj.restore(*lifted)
        else:
            self.mm.step(liquidity)
        if self.halted:  # no matching: the market makers quote, the mark follows the index
            self.engine.update_mark(index, self.mid(), step_ms / 1000.0)
            feed.publish_book(t_ms + step_ms)
            return
        price_usd = book.tick(book.last_cell) / 10
        mid = self.mid()
        self.arb_basis += self._a_arb * ((mid - fair) / fair * 1e4 - self.arb_basis)
        self.anchor += self._a_anchor * (mid - self.anchor)
        self.value_bps += self._a_value * ((mid - self.anchor) / self.anchor * 1e4 - self.value_bps)
        orders = self.traders.orders(
            t_ms, step_ms, price_usd, p, self.arb_basis, ctx.shocks.get(self.name, []), self.value_bps
        )
        for order in orders:
            ms = t_ms + int(order[0])
            fills = book.take(order[1], order[2], ORDER_MAX_CELLS if self.band is None else self._banded(order[1]))
            if not fills:
                continue
            feed.trade(ms, order[1], fills)
            lots = sum(q for _, q in fills)
            self.traded_lots += lots
            self.mm.note_flow(lots * LOT * price_usd * (1 if order[1] == "buy" else -1))
            self.last_tick = book.tick(fills[-1][0])
            self.traders.filled(ms, order, lots, book.avg_tick(fills))
        self.traders.after_trades(self.last_tick)
        self.engine.update_mark(index, self.mid(), step_ms / 1000.0)
        self.engine.take_over((t_ms + step_ms) / 1000.0)
        self._work_inventory(t_ms + step_ms - 10, price_usd, step_ms / 1000.0, ctx)
        if inj is not None:
            inj.reconcile()
        feed.publish_book(t_ms + step_ms)

    def _work_inventory(self, ms: int, price_usd: float, dt: float, ctx: _Step) -> None:
        """Send the engine's slices into the book; auto-deleverage what the fund cannot cover."""
        book, engine = self.book, self.engine
        bb = book.tick(book.bb) if book.bb >= 0 else book.tick(book.last_cell)
        ba = book.tick(book.ba) if book.ba < book.n else book.tick(book.last_cell)
        for lo in engine.orders(bb, ba, price_usd, dt, LOT):
            ms += 1
            limit = book.cell_of(lo.limit)
            reach = book.bb - limit + 1 if lo.side == "sell" else limit - book.ba + 1
            if self.band is not None:
                reach = min(reach, self._banded(lo.side))
            fills = book.take(lo.side, lo.lots, reach) if reach > 0 else []
            side = LONG if lo.position == "long" else SHORT
            self.liq_count += 1
            ctx.liquidation_ms.append(ms)
            if fills:
                filled = sum(q for _, q in fills)
                self.traded_lots += filled
                usd = sum(book.tick(c) * q for c, q in fills) / 10 * LOT
                engine.settle(side, filled, book.avg_tick(fills), LOT)
                ctx.forced[side] += usd
                self.liq_usd[side] += usd
                self._note_burst(ms, usd)
                self.mm.note_flow(usd if lo.side == "buy" else -usd)
                self.mm.note_forced(usd)
                self.feed.trade(ms, lo.side, fills)
                self.last_tick = book.tick(fills[-1][0])
            self.feed.liquidation(ms, lo.position, lo.lots, fills, int(round(lo.bankruptcy)))
        for side, lots, bk in engine.adl_due(ms / 1000.0, LOT):
            self.positions.deleverage(engine.opposite(side), lots)
            usd = lots * LOT * bk / 10
            ctx.forced[side] += usd
            self.liq_usd[side] += usd
            self.adl_usd += usd
            if self.first_adl_ms is None:
                self.first_adl_ms = ms
            ctx.adl.append(
                {
                    "type": "adl",
                    "ts": ms,
                    "venue": self.name,
                    "side": "long" if side == LONG else "short",
                    "usd": round(usd, 2),
                }
            )

    def _banded(self, side: str) -> int:
        """How many cells an aggressive ``side`` order may walk inside a breaker's band (:mod:`.mitigation`)."""
        assert self.band is not None
        book = self.book
        floor, ceiling = self.band
        if side == "sell" and floor is not None:
            return max(0, min(ORDER_MAX_CELLS, book.bb - book.cell_of(floor) + 1))
        if side == "buy" and ceiling is not None:
            return max(0, min(ORDER_MAX_CELLS, book.cell_of(ceiling) - book.ba + 1))
        return ORDER_MAX_CELLS

    def _note_burst(self, ms: int, usd: float) -> None:
        """Remember the first moment the engine's fills reach :data:`BURST_USD` within 10 s."""
        if self.first_liq_ms is not None:
            return
        recent = self._recent
        recent.append((ms, usd))
        while recent[0][0] <= ms - 10_000:
            recent.pop(0)
        if sum(u for _, u in recent) >= BURST_USD:
            self.first_liq_ms = ms

    def apply_faults(self, t_ms: int) -> None:
        """Disconnects, reconnects and lost book frames due by ``t_ms``."""
        while self.faults and self.faults[0][0] <= t_ms:
            _, what = self.faults.pop(0)
            if what == "disconnect":
                self.feed.disconnect(t_ms)
            elif what == "reconnect":
                self.feed.connect(t_ms)
            else:
                self.feed.lose_book_frame()

    def summary(self) -> dict:
        """The venue's facts of the run (result and CLI summary)."""
        return {
            "liquidations": self.liq_count,
            "liquidated_long_usd": round(self.liq_usd[LONG], 2),
            "liquidated_short_usd": round(self.liq_usd[SHORT], 2),
            "adl_usd": round(self.adl_usd, 2),
            "insurance_fund_usd": round(self.engine.fund, 2),
            "first_large_liquidation_ms": self.first_liq_ms,
            "first_adl_ms": self.first_adl_ms,
            "frames": dict(sorted(self.feed.counts.items())),
            "open_interest_btc": round(self.oi_lots() * LOT, 3),
        }


@dataclass
class _Step:
    """What the venues of one step share: the shocks per venue, the forced notional (longs,
    shorts) of the current second, the ADL events, the times of the liquidation orders (ms) and
    the what-if lever (:mod:`.mitigation`)."""

    shocks: dict[str, list[tuple[int, float]]]
    forced: list[float]
    adl: list[dict]
    lever: Lever | None = None
    liquidation_ms: list[int] = field(default_factory=list)


@dataclass
class _Series:
    """The per-second outputs of a run: the labeller and its cascades, hourly forced notional
    (longs, shorts), the price, the optional trace; ``total_scale`` weighs the venues' mids."""

    labeler: CascadeLabeler
    total_scale: float
    trace: list[dict] | None
    cascades: list[dict] = field(default_factory=list)
    hourly: list[list[float]] = field(default_factory=list)
    prices: list[float] = field(default_factory=list)


_DEFAULT_PHASE = Phase(0.0, 1.0)
_PHASE_FIELDS = [f.name for f in fields(Phase) if f.name not in ("start_s", "end_s")]


def _resolve(venues: tuple[str, ...] | str | None, first: str) -> tuple[str, ...] | None:
    """A phase's or shock's venues with ``"first"`` standing for the run's largest venue."""
    if venues is None:
        return None
    if isinstance(venues, str):
        venues = (venues,)
    return tuple(first if v == "first" else v for v in venues)


def _schedule(
    plan: Plan,
    venues: list[_Venue],
    index: _Index,
    anchor_ms: int,
    t0: int,
    duration_ms: int,
    faults: bool,
    truth_lines: list[dict],
) -> tuple[list[tuple[int, str, str, float]], list[tuple[int, int]]]:
    """Place the plan's shocks, stops and (optionally) faults. Returns the shocks in time order as
    ``(ms, venue or "", kind, amount)`` and the stop placements ``(ms, cluster index)``, records
    them in the truth and the lead-ins of leaked shocks in ``index.leaks``."""
    first = venues[0].name
    shocks: list[tuple[int, str, str, float]] = []
    for sh in plan.shocks:
        at = max(t0, anchor_ms + int(sh.at_s * 1000))
        if sh.kind == "index":
            main_bps = sh.bps
            line = {"type": "shock", "ts": at, "kind": "index", "bps": round(sh.bps, 2), "over_s": round(sh.over_s, 1)}
            if sh.lead_s > 0:
                n = max(1, int(sh.lead_s / 2.0))
                lead_ms = int(sh.lead_s * 1000)
                per = sh.lead_frac * sh.bps / n
                shocks.extend((max(t0, at - lead_ms + i * lead_ms // n), "", "index", per) for i in range(n))
                index.leaks.append((max(t0, at - lead_ms), at, sh.lead_frac * sh.bps / sh.lead_s))
                main_bps = (1.0 - sh.lead_frac) * sh.bps
                line["lead_s"] = round(sh.lead_s, 1)
            shocks.extend(
                (at + int(i * sh.over_s * 1000 / sh.slices), "", "index", main_bps / sh.slices)
                for i in range(sh.slices)
            )
            truth_lines.append(line)
            continue
        targets = _resolve(sh.venues, first)
        for v in venues:
            if targets is None or v.name in targets:
                per = sh.usd * v.scale / sh.slices
                shocks.extend(
                    (at + int(i * sh.over_s * 1000 / sh.slices), v.name, "market", per) for i in range(sh.slices)
                )
                truth_lines.append(
                    {
                        "type": "shock",
                        "ts": at,
                        "kind": "market",
                        "venue": v.name,
                        "usd": round(sh.usd * v.scale, 2),
                        "over_s": round(sh.over_s, 1),
                    }
                )
    placements = sorted((max(t0, anchor_ms + int(st.placed_s * 1000)), i) for i, st in enumerate(plan.stops))
    if faults:
        step_ms = 250
        for i, v in enumerate(venues):
            d_at = t0 + (int((0.3 + 0.07 * i) * duration_ms) // 1000) * 1000
            g_at = t0 + (int((0.75 + 0.05 * i) * duration_ms) // step_ms) * step_ms
            v.faults = sorted([(d_at, "disconnect"), (d_at + 3000, "reconnect"), (g_at, "gap")])
            truth_lines.append(
                {"type": "fault", "ts": d_at, "venue": v.name, "kind": "disconnect", "until": d_at + 3000}
            )
            truth_lines.append({"type": "fault", "ts": g_at, "venue": v.name, "kind": "gap"})
    shocks.sort()
    return shocks, placements


def _place_stops(st: StopCluster, venues: list[_Venue], t_ms: int, truth_lines: list[dict]) -> None:
    """Rest a stop cluster around each venue's current price."""
    for v in venues:
        if st.venues is None or v.name in st.venues:
            center = v.mid() * (1 + st.at_bps * 1e-4)
            for i in range(st.count):
                trig = center * (1 + (i / max(st.count - 1, 1) - 0.5) * st.width_bps * 1e-4)
                v.traders.stops.add(st.side, trig, max(1, int(st.usd * v.scale / st.count / (trig / 10) / LOT)))
    mid = sum(v.mid() * v.scale for v in venues) / sum(v.scale for v in venues)
    truth_lines.append(
        {
            "type": "stops",
            "ts": t_ms,
            "side": st.side,
            "price": round(mid * (1 + st.at_bps * 1e-4) / 10, 1),
            "usd": round(st.usd * sum(v.scale for v in venues), 2),
        }
    )


def run_scenario(
    sc: Scenario,
    seed: int,
    out: str | Path | None,
    truth: str | Path | None = None,
    *,
    progress: bool = False,
    faults: bool = False,
    label_config: LabelConfig | None = None,
    trace: list[dict] | None = None,
) -> SimulationResult:
    """Run ``sc`` (its ``duration_s``) with ``seed``: draw the market and the plan, write the
    recording ``out`` (``None``: no recording, the market's facts only) and the truth.

    ``trace``, when a list, receives one dict per simulated second (index, per-venue mid, mark,
    liquidity factor, depth, forced notional): a diagnostic view of the market, not a venue output.
    ``sc.mitigation``: a lever applied inside the venues (:mod:`.mitigation`); ``None`` leaves
    the run exactly as without it.
    """
    wall0 = time.perf_counter()
    market = draw_market(seed, sc.venues, sc.min_venues)
    plan = sc.build(random.Random(seed ^ _PLAN_MIX))
    rng = random.Random(seed ^ _RUN_MIX)
    t0 = sc.start_ms
    step_ms = int(round(sc.step_s * 1000))
    dt = step_ms / 1000.0
    n_steps = int(sc.duration_s * 1000) // step_ms
    duration_ms = n_steps * step_ms
    writer = None
    if out is not None:
        out = Path(out)
        writer = RecordingWriter(
            out,
            comment=f"simulated scenario={sc.name} seed={seed} duration_s={sc.duration_s:g}"
            f" venues={','.join(v.name for v in market.venues)} faults={int(faults)}"
            + (f" mitigation={sc.mitigation.lever}" if sc.mitigation is not None else ""),
        )
    sink = FrameSink(writer)
    venues = [_Venue(vm, market, sc, random.Random(rng.getrandbits(64)), sink) for vm in market.venues]
    weights = [v.scale for v in venues]
    total_scale = sum(weights)
    mix = _Mix(
        tuple(accumulate(market.leverage)), tuple(accumulate(market.crowd_leverage)), tuple(accumulate(LOW_LEVERAGE))
    )
    for v in venues:
        v.traders.seed(v.mid(), t0 / 1000.0, list(mix.calm), market.vol_bps, market.long_share)
    index = _Index(market, sum(v.mid() * v.scale for v in venues) / total_scale, random.Random(rng.getrandbits(64)))
    out_s = _Series(CascadeLabeler(ASSET, label_config or LabelConfig()), total_scale, trace)
    anchor_ms = t0 + int(plan.anchor * duration_ms)
    plan_json = {"direction": plan.direction, "anchor": anchor_ms}
    truth_lines: list[dict] = [
        {
            "type": "scenario",
            "name": sc.name,
            "seed": seed,
            "duration_s": sc.duration_s,
            "venues": [v.name for v in venues],
            "description": sc.description,
            "faults": faults,
            "plan": plan_json,
            "market": market.to_json(),
        },
        {"type": "span", "asset": ASSET, "start": t0, "end": t0 + duration_ms},
    ]
    windows = _windows(plan, venues[0].name, anchor_ms, t0, duration_ms, truth_lines)
    shocks, placements = _schedule(plan, venues, index, anchor_ms, t0, duration_ms, faults, truth_lines)
    for v in venues:
        v.feed.connect(t0)
    lever = Lever(sc.mitigation, venues, t0) if sc.mitigation is not None else None

    ctx = _Step({}, [0.0, 0.0], [], lever)
    next_shock = 0
    report_every = max(n_steps // 20, 1)
    for step in range(n_steps + 1):
        t_ms = t0 + step * step_ms
        sink.release(t_ms * 1_000_000)
        if step and t_ms % 1000 == 0:
            _second(t_ms, venues, index, ctx, out_s)
            if truth is not None and (t_ms - t0) % (sc.levels_every_s * 1000) == 0:
                truth_lines.append(_levels_line(t_ms, out_s.prices[-1] * 10, venues))
        elif t_ms % 1000 == 500:
            _half_second(venues, t_ms)
        if step == n_steps:
            break
        if progress and step % report_every == 0:
            print(
                f"simulate {sc.name}: {100 * step // n_steps:3d}%  t={(t_ms - t0) / 1000:.0f}s  "
                f"price={index.value / 10:.1f}  cascades={len(out_s.cascades)}",
                file=sys.stderr,
                flush=True,
            )
        end_ms = t_ms + step_ms
        for v in venues:
            v.apply_faults(t_ms)
        while placements and placements[0][0] <= t_ms:
            _place_stops(plan.stops[placements.pop(0)[1]], venues, t_ms, truth_lines)

        mids = [v.mid() for v in venues]
        drift = sum(w.phase.index_bps_s for w in windows if w.phase.index_bps_s and w.start_ms <= t_ms < w.end_ms)
        index.step(t_ms, dt, drift, sum(m * w for m, w in zip(mids, weights, strict=True)) / total_scale)
        next_shock = _due_shocks(shocks, next_shock, end_ms, index, ctx)
        _informed(index.leak_bps_s(t_ms), t_ms, dt, venues, market, ctx)
        idx = index.value
        for i, v in enumerate(venues):
            fair = _fair(i, idx, mids, weights)
            v.step(t_ms, step_ms, idx, fair, _conditions(windows, v.name, t_ms, market, mix), ctx)

    cascades = out_s.cascades
    cascades.extend(out_s.labeler.flush())
    prices, hourly = out_s.prices, out_s.hourly
    sink.close()
    if writer is not None:
        writer.close()
    cascades.sort(key=lambda c: (c["start"], c["direction"]))
    truth_lines.extend(index.news)
    truth_lines.extend(ctx.adl)
    truth_lines.extend(lever.events if lever is not None else ())
    truth_path = Path(truth) if truth is not None else None
    if truth_path is not None:
        _write_truth(truth_path, truth_lines, cascades)
    return SimulationResult(
        scenario=sc.name,
        seed=seed,
        duration_s=sc.duration_s,
        out=Path(out) if out is not None else None,
        truth=truth_path,
        frames=writer.lines_written if writer is not None else 0,
        cascades=cascades,
        market=market.to_json(),
        plan=plan_json,
        venues={v.name: v.summary() for v in venues},
        hourly=[[round(a, 2), round(b, 2)] for a, b in hourly],
        adl=ctx.adl,
        liquidation_ms=sorted(ctx.liquidation_ms),
        price_start=prices[0] if prices else market.price,
        price_end=prices[-1] if prices else market.price,
        price_min=min(prices) if prices else market.price,
        price_max=max(prices) if prices else market.price,
        wall_s=time.perf_counter() - wall0,
        moves_bps=_moves_bps(prices),
        mitigation=lever.summary() if lever is not None else {},
    )


def _moves_bps(prices: list[float]) -> dict[str, float]:
    """Largest peak-to-trough fall and trough-to-peak rise of ``prices``, bps (1 decimal)."""
    down = up = 0.0
    if prices:
        hi = lo = prices[0]
        for p in prices:
            hi, lo = max(hi, p), min(lo, p)
            down, up = max(down, (1.0 - p / hi) * 1e4), max(up, (p / lo - 1.0) * 1e4)
    return {"down": round(down, 1), "up": round(up, 1)}


def _half_second(venues: list[_Venue], t_ms: int) -> None:
    """Bybit pushes its liquidations every 500 ms."""
    for v in venues:
        if isinstance(v.feed, BybitFeed):
            v.feed.half_second(t_ms)


def _fair(i: int, index: float, mids: list[float], weights: list[float]) -> float:
    """The arbitrageurs' fair price for venue ``i``: half the spot index, half the other venues'
    scale-weighted mid (the index alone on a single venue)."""
    others = sum(weights) - weights[i]
    if others <= 0:
        return index
    return 0.5 * index + 0.5 * sum(m * w for j, (m, w) in enumerate(zip(mids, weights, strict=True)) if j != i) / others


def _due_shocks(shocks: list[tuple[int, str, str, float]], i: int, end_ms: int, index: _Index, ctx: _Step) -> int:
    """Apply the index shocks due before ``end_ms`` and hand the market ones to the venues
    (``ctx.shocks``); returns the index of the next shock."""
    ctx.shocks = {}
    while i < len(shocks) and shocks[i][0] < end_ms:
        at, vname, kind, amount = shocks[i]
        i += 1
        if kind == "index":
            index.value *= 1.0 + amount * 1e-4
        else:
            ctx.shocks.setdefault(vname, []).append((at, amount))
    return i


def _informed(leak_bps_s: float, t_ms: int, dt: float, venues: list[_Venue], m: Market, ctx: _Step) -> None:
    """Informed traders press a leak onto the perpetuals: a market order of ``informed *
    depth_usd_bps * leak_bps_s * dt`` USD per unit of scale on every venue at the step's start
    (+ buys; :class:`.market.Market`)."""
    if leak_bps_s:
        for v in venues:
            ctx.shocks.setdefault(v.name, []).append((t_ms, m.informed * m.depth_usd_bps * v.scale * leak_bps_s * dt))


def _windows(
    plan: Plan, first: str, anchor_ms: int, t0: int, duration_ms: int, truth_lines: list[dict]
) -> list[_Window]:
    """The plan's phases placed in the run (``"first"`` resolved), recorded in the truth."""
    windows = [
        _Window(replace(ph, venues=_resolve(ph.venues, first)), anchor_ms, t0, t0 + duration_ms) for ph in plan.phases
    ]
    for win in windows:
        ph = win.phase
        changed = {k: getattr(ph, k) for k in _PHASE_FIELDS if getattr(ph, k) != getattr(_DEFAULT_PHASE, k)}
        truth_lines.append({"type": "phase", "ts": win.start_ms, "end": win.end_ms, **_rounded(changed)})
    return windows


def _rounded(d: dict) -> dict:
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in d.items()}


def _second(t_ms: int, venues: list[_Venue], index: _Index, ctx: _Step, out: _Series) -> None:
    """A whole second has passed: label, hourly totals, volatility, per-second venue frames."""
    mid = sum(v.mid() * v.scale for v in venues) / out.total_scale
    out.prices.append(mid / 10)
    forced = ctx.forced
    if ctx.lever is not None:
        ctx.lever.second(t_ms, mid / 10, forced)
    out.cascades.extend(out.labeler.update(t_ms - 1000, mid / 10, forced[0], forced[1]))
    hour = (len(out.prices) - 1) // 3600
    if hour >= len(out.hourly):
        out.hourly.append([0.0, 0.0])
    out.hourly[hour][0] += forced[0]
    out.hourly[hour][1] += forced[1]
    if out.trace is not None:
        out.trace.append(_trace_row(t_ms - 1000, mid, index.value, forced, venues))
    oi_usd = sum(v.oi_lots() for v in venues) * LOT * mid / 10
    index.second(t_ms, forced, oi_usd)
    ctx.forced = [0.0, 0.0]
    for v in venues:
        v.premium += 0.002 * ((v.mid() - index.value) / index.value - v.premium)
        funding = max(-0.0075, min(0.0075, 0.0001 + 0.3 * v.premium + v.funding_bias))
        v.feed.second(t_ms, v.engine.mark, index.value, funding, v.oi_lots(), v.last_tick)


def _write_truth(path: Path, lines: list[dict], cascades: list[dict]) -> None:
    """Scenario and span first, then every line in time order (cascades at their start)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    head, rest = lines[:2], lines[2:] + cascades
    rest.sort(key=lambda d: (d.get("ts", d.get("start", 0)), d["type"]))
    with open(path, "wb") as fh:
        for line in head + rest:
            fh.write(msgspec.json.encode(line) + b"\n")


def _trace_row(sec: int, mid: float, index: float, forced: list[float], venues: list[_Venue]) -> dict:
    row = {"ts": sec, "price": mid / 10, "index": index / 10, "forced_long": forced[0], "forced_short": forced[1]}
    for v in venues:
        row[f"{v.name}.mid"] = v.mid() / 10
        row[f"{v.name}.mark"] = v.engine.mark / 10
        row[f"{v.name}.liquidity"] = v.mm.liquidity
        row[f"{v.name}.depth10"] = _depth_usd(v.book, 10)
        row[f"{v.name}.oi"] = v.oi_lots() * LOT
        row[f"{v.name}.fund"] = v.engine.fund
        row[f"{v.name}.inventory"] = (v.engine.inventory[0] + v.engine.inventory[1]) * LOT
    return row


def _depth_usd(book: Book, bps: float) -> float:
    """Resting USD within ``bps`` of the mid, both sides (diagnostics)."""
    mid = book.mid_ticks()
    total = 0.0
    for side in ("bid", "ask"):
        for c, q in book.levels(side, 10_000, 400):
            t = book.tick(c)
            if abs(t - mid) / mid * 1e4 > bps:
                break
            total += q * LOT * t / 10
    return total


@functools.cache
def _levels_grid() -> DecayingLogGrid:
    """The estimated map's grid of :data:`LEVELS_BUCKET_BPS` (imported here: NumPy stays out of
    ``cascadewatch --help``, which imports this module)."""
    from cascadewatch.detectors._grid import DecayingLogGrid

    return DecayingLogGrid(LEVELS_BUCKET_BPS, None)


def _levels_line(t_ms: int, mid_ticks: float, venues: list[_Venue]) -> dict:
    """True liquidation levels of all open positions within 10 % of the price, summed over venues,
    on the estimated map's own grid (:func:`_levels_grid`: bucket ``k`` holds the log-prices
    ``[k delta, (k + 1) delta)``, ``delta`` = 10 bps, listed by its centre ``exp((k + 0.5) delta)``
    in USD to the cent): ``[[centre price, notional USD], ...]`` ascending. A venue's position
    bucket (two book cells, about 1 bps) goes whole into the grid bucket of its centre."""
    lo, hi = mid_ticks * 0.9, mid_ticks * 1.1
    grid = _levels_grid()
    out = {}
    for side, key in ((LONG, "long"), (SHORT, "short")):
        acc: dict[int, float] = {}
        for v in venues:
            bw = v.positions.bw
            for b, lots in v.positions.bucket_lots(side).items():
                edge = b * bw
                if lo <= edge <= hi and lots > 0:
                    centre = (edge + bw / 2) / 10  # USD
                    k = grid.bucket_of_one(centre)
                    acc[k] = acc.get(k, 0.0) + lots * LOT * centre
        out[key] = [[round(float(grid.center(k)), 2), round(usd, 2)] for k, usd in sorted(acc.items())]
    return {
        "type": "levels",
        "ts": t_ms,
        "asset": ASSET,
        "price": round(mid_ticks / 10, 2),
        "bucket_bps": LEVELS_BUCKET_BPS,
        "long": out["long"],
        "short": out["short"],
    }
