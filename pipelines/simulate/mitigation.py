"""What-if levers inside the simulated venues: circuit breaker, dynamic margin, liquidity injection.

Opt-in (``cascadewatch simulate --mitigation LEVER``; ``run_scenario(..., mitigation=...)``):
without a lever the runner takes none of these paths and its output is byte-identical.
Each lever acts inside the venues' mechanics, at every whole second ``t`` of the run:

- **circuit breaker** (:class:`~cascadewatch.detectors.mitigation.CircuitBreaker`, the rule
  of the snapshots' ``breaker``, fed with the scale-weighted mid and the true forced notional
  of all venues): while either direction is tripped every venue *halts*: no order is matched
  (traders' and exogenous orders are rejected, the liquidation engines neither take positions
  over nor work their inventory), market makers keep quoting and the spot index keeps moving;
  matching resumes when the rule releases (``halt_s`` after it last held). With
  ``breaker_mode="band"`` the venues keep matching inside a band instead (limit down / up): no
  trade below (a down trip) or above (an up trip) the venue's mid at the trip, for orders and
  for the engine alike; what cannot trade is cancelled (orders) or waits (the engine).
- **dynamic margin** (:class:`~cascadewatch.detectors.mitigation.MarginRule`, the formula of
  the snapshots' ``margin_mmr``): every ``every_s`` seconds each venue sets its maintenance
  margin rate to ``max(venue's base rate, suggested rate)`` (rising at most ``margin_step``
  per recalibration) from its own 1 s mid volatility
  (EWMA, 60 s half-life), traded notional per second over the last 60 s, the thinner side's
  depth within 100 bps and the notional of positions liquidated within 100 bps of the mark;
  the liquidation prices of all open positions move at once (``entry * (1 - 1/L + mmr)``),
  new positions are capped at ``1 / (imr_multiple * mmr)`` leverage, and the positions a
  raise puts behind the mark are taken over at once: the lever's procyclicality cost. With
  ``margin_new_only`` the open positions keep their rate (grandfathered): only new positions
  get the new rate and the cap.
- **liquidity injection**: an agent per venue watches its mid; when it has fallen
  ``trigger_bps`` below its maximum of the last ``window_s`` seconds (risen above the
  minimum) it posts bids (asks) worth what is left of its budget (``usd`` times the venue's
  scale, less what it already bought) evenly over the cells from the best price to
  ``band_bps`` away, re-centred every second; it pulls them once the move is back under half
  the trigger. Its orders queue behind the market makers' at each level (a fill takes theirs
  first) and the market makers quote as if they were not there. It holds what it bought to
  the end of the run, marked at the last mid: its loss is the lever's procyclicality cost.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from cascadewatch.detectors.breaker import CircuitBreaker
from cascadewatch.detectors.margin import MarginRule
from cascadewatch.pipelines.simulate.agents import LONG, SHORT
from cascadewatch.pipelines.simulate.book import LOT, Book

if TYPE_CHECKING:  # pragma: no cover
    from cascadewatch.pipelines.simulate.runner import _Venue

__all__ = ["BREAKER_MODES", "LEVERS", "Mitigation", "Injector", "Lever"]

LEVERS = ("circuit-breaker", "dynamic-margin", "liquidity-injection")
BREAKER_MODES = ("halt", "band")


@dataclass(frozen=True)
class Mitigation:
    """A lever and its parameters (module docstring); the defaults are the CLI's.

    Breaker: ``band_bps`` within ``window_s`` seconds or ``liq_usd`` forced within them trips
    it; it holds ``halt_s`` after the rule last held; ``breaker_mode``: ``"halt"`` (no matching)
    or ``"band"`` (no trade beyond the price it tripped at). Margin: recalibrated every ``every_s``
    seconds by ``margin`` (:class:`MarginRule`), rising at most ``margin_step`` (a fraction) per
    recalibration, as venues announce margin changes in steps; ``margin_new_only``: open
    positions keep the rate they were opened with (only new ones get the new rate and the
    cap). Injection: ``trigger_bps`` from the extreme of
    the last ``window_s`` seconds starts it; budget ``usd`` per unit of venue scale; posted
    over ``band_bps``.
    """

    lever: str
    band_bps: float = 100.0
    window_s: int = 60
    liq_usd: float = 20e6
    halt_s: float = 60.0
    breaker_mode: str = "halt"
    every_s: int = 30
    margin: MarginRule = field(default_factory=MarginRule)
    margin_step: float = 0.25
    margin_new_only: bool = False
    trigger_bps: float = 40.0
    usd: float = 10e6
    injection_band_bps: float = 40.0

    def __post_init__(self) -> None:
        if self.lever not in LEVERS:
            raise ValueError(f"unknown mitigation {self.lever!r}; known: {', '.join(LEVERS)}")
        if self.breaker_mode not in BREAKER_MODES:
            raise ValueError(f"unknown breaker mode {self.breaker_mode!r}; known: {', '.join(BREAKER_MODES)}")

    @property
    def label(self) -> str:
        """The lever's name in tables: ``dynamic-margin (new positions)`` with ``margin_new_only``."""
        if self.lever == "dynamic-margin" and self.margin_new_only:
            return "dynamic-margin (new positions)"
        if self.lever == "circuit-breaker" and self.breaker_mode == "band":
            return "circuit-breaker (band)"
        return self.lever


class Injector:
    """One venue's injecting agent (module docstring): its resting lots per cell, its inventory."""

    def __init__(self, book: Book, budget_usd: float, band_bps: float) -> None:
        self.book = book
        self.budget_usd = budget_usd
        self.band_bps = band_bps
        self.side: str | None = None  # "bid" while buying a fall, "ask" while selling a rise
        self.own: dict[int, int] = {}
        self.bought_lots = 0  # signed: + bought (bids filled), - sold (asks filled)
        self.cash_ticks_lots = 0.0  # signed: - paid, + received (ticks x lots)
        self.traded_usd = 0.0

    def _levels(self) -> list[int]:
        return self.book.bids if self.side == "bid" else self.book.asks

    def _set(self, cell: int, lots: int) -> None:
        if self.side == "bid":
            self.book.set_bid(cell, lots)
        else:
            self.book.set_ask(cell, lots)

    def lift(self) -> tuple[set[int], dict[int, int]]:
        """Take its lots out of the book before the market makers quote; returns what to restore."""
        if not self.own:
            return set(), {}
        levels = self._levels()
        changed = self.book.changed_bids if self.side == "bid" else self.book.changed_asks
        before = {c: levels[c] for c in self.own}
        seen = set(changed)
        for c, q in self.own.items():
            self._set(c, levels[c] - q)
        return seen, before

    def restore(self, seen: set[int], before: dict[int, int]) -> None:
        """Put its lots back behind the market makers' (a cell the other side crossed loses them)."""
        if not self.own:
            return
        levels = self._levels()
        changed = self.book.changed_bids if self.side == "bid" else self.book.changed_asks
        for c in list(self.own):
            want = levels[c] + self.own[c]
            self._set(c, want)
            if levels[c] != want:  # the other side is at or through this cell now
                del self.own[c]
            elif c not in seen and want == before[c]:
                changed.discard(c)  # unchanged level: nothing to publish

    def reconcile(self) -> None:
        """After the step's matching: its lots at a level are what is left of it, at most (fills
        take the market makers' first); the difference traded at the level's price."""
        if not self.own:
            return
        levels, book = self._levels(), self.book
        sign = 1 if self.side == "bid" else -1
        for c in list(self.own):
            left = min(self.own[c], levels[c])
            filled = self.own[c] - left
            if filled:
                self.bought_lots += sign * filled
                self.cash_ticks_lots -= sign * filled * book.tick(c)
                self.traded_usd += filled * LOT * book.tick(c) / 10
            if left:
                self.own[c] = left
            else:
                del self.own[c]

    def pull(self) -> None:
        """Cancel its resting lots."""
        levels = self._levels() if self.side else []
        for c, q in self.own.items():
            self._set(c, max(levels[c] - q, 0))
        self.own = {}

    def post(self, side: str, price_usd: float) -> None:
        """Re-centre: pull, then post what is left of the budget over the band from the best price."""
        self.pull()
        self.side = side
        book = self.book
        spent = abs(self.bought_lots) * LOT * price_usd
        left_lots = int((self.budget_usd - spent) / price_usd / LOT)
        if left_lots <= 0:
            return
        best = book.bb if side == "bid" else book.ba
        if not 0 <= best < book.n:
            return
        cells = max(1, int(self.band_bps * 1e-4 * book.tick(best) / book.cell_ticks))
        per = max(1, left_lots // cells)
        levels = self._levels()
        for k in range(cells):
            c = best - k if side == "bid" else best + k
            if not 0 <= c < book.n:
                break
            self._set(c, levels[c] + per)
            self.own[c] = per

    def pnl_usd(self, mid_ticks: float) -> float:
        """Marked at ``mid_ticks``: cash plus inventory at the mid, USD."""
        return (self.cash_ticks_lots + self.bought_lots * mid_ticks) * LOT / 10


class Lever:
    """A :class:`Mitigation` applied to a run's venues (module docstring); the runner calls
    :meth:`second` at every whole second and each venue consults its ``halted`` flag and its
    injector."""

    def __init__(self, m: Mitigation, venues: list[_Venue], t0_ms: int) -> None:
        self.m = m
        self.venues = venues
        self.t0_ms = t0_ms
        self.events: list[dict] = []
        self.tripped_s = 0
        self.margin_liquidated_usd = 0.0
        self.margin_liquidated = 0
        self.breaker: CircuitBreaker | None = None
        self._tripped = False
        self._base_mmr = [v.positions.mmr for v in venues]
        self._vol: list[list[float]] = [[v.mid(), 0.0] for v in venues]  # last mid, EWMA of r^2
        self._traded: list[deque[int]] = [deque(maxlen=60) for _ in venues]
        self._last_lots = [0 for _ in venues]
        self._mids: list[deque[tuple[int, float]]] = [deque() for _ in venues]
        if m.lever == "circuit-breaker":
            self.breaker = CircuitBreaker(m.band_bps, m.window_s, m.liq_usd, m.halt_s)
        if m.lever == "liquidity-injection":
            for v in venues:
                v.injector = Injector(v.book, m.usd * v.scale, m.injection_band_bps)

    def second(self, t_ms: int, mid_usd: float, forced: list[float]) -> None:
        """A whole second ``t_ms`` has passed: the asset's mid (USD) and forced notional (longs, shorts)."""
        if self.breaker is not None:
            self._breaker(t_ms, mid_usd, forced)
        elif self.m.lever == "dynamic-margin":
            self._margin_second(t_ms)
        else:
            self._inject(t_ms)

    def _breaker(self, t_ms: int, mid_usd: float, forced: list[float]) -> None:
        assert self.breaker is not None
        state = self.breaker.update(t_ms / 1000.0, mid_usd, forced[0], forced[1])
        halt = state["down"].tripped or state["up"].tripped
        banding = self.m.breaker_mode == "band" and halt and not self._tripped
        for v in self.venues:
            if self.m.breaker_mode == "halt":
                v.halted = halt
            elif not halt:
                v.band = None
            elif banding:  # no trade below (above) the venue's mid at the trip
                mid = v.mid()
                v.band = (mid if state["down"].tripped else None, mid if state["up"].tripped else None)
        if halt and not self._tripped:
            cause = state["down"].cause or state["up"].cause
            band = {v.name: round(v.mid() / 10, 2) for v in self.venues} if banding else None
            self._event(t_ms, self.m.breaker_mode, cause=cause, **({"at": band} if band else {}))
        elif self._tripped and not halt:
            self._event(t_ms, "resume")
        self._tripped = halt
        self.tripped_s += int(halt)

    def _margin_second(self, t_ms: int) -> None:
        a = 1.0 - 0.5 ** (1.0 / 60.0)
        for i, v in enumerate(self.venues):
            mid = v.mid()
            vol = self._vol[i]
            r = math.log(mid / vol[0]) if vol[0] > 0 and mid > 0 else 0.0
            vol[0], vol[1] = mid, vol[1] + a * (r * r - vol[1])
            self._traded[i].append(v.traded_lots - self._last_lots[i])
            self._last_lots[i] = v.traded_lots
        if (t_ms - self.t0_ms) % (self.m.every_s * 1000):
            return
        for i, v in enumerate(self.venues):
            self._recalibrate(t_ms, i, v)

    def _recalibrate(self, t_ms: int, i: int, v: _Venue) -> None:
        mid = v.mid()
        price_usd = mid / 10
        volume = sum(self._traded[i]) * LOT * price_usd / max(len(self._traded[i]), 1)
        depth = min(_side_depth_usd(v.book, "bid", 100.0), _side_depth_usd(v.book, "ask", 100.0))
        size = v.positions.lots_within(mid * 0.99, mid * 1.01) * LOT * price_usd
        rule = self.m.margin.suggest(math.sqrt(self._vol[i][1]), volume, depth, size)
        mmr = max(self._base_mmr[i], min(rule.mmr, v.positions.mmr * (1.0 + self.m.margin_step)))
        if abs(mmr - v.positions.mmr) < 1e-6:
            return
        if self.m.margin_new_only:
            v.positions.mmr = mmr  # new positions only: the open ones keep their liquidation prices
        else:
            v.positions.set_mmr(mmr)
        v.traders.lev_cap = 1.0 / (self.m.margin.imr_multiple * mmr)
        lots_before = v.engine.taken_lots[LONG] + v.engine.taken_lots[SHORT]
        taken = v.engine.take_over(t_ms / 1000.0)
        lots = v.engine.taken_lots[LONG] + v.engine.taken_lots[SHORT] - lots_before
        self.margin_liquidated += taken
        self.margin_liquidated_usd += lots * LOT * v.engine.mark / 10
        self._event(t_ms, "mmr", venue=v.name, mmr=round(mmr, 6), liquidated=taken)

    def _inject(self, t_ms: int) -> None:
        m = self.m
        for i, v in enumerate(self.venues):
            inj = v.injector
            assert inj is not None
            mid = v.mid()
            mids = self._mids[i]
            mids.append((t_ms, mid))
            while mids[0][0] <= t_ms - m.window_s * 1000:
                mids.popleft()
            hi = max(x for _, x in mids)
            lo = min(x for _, x in mids)
            fall, rise = (1 - mid / hi) * 1e4, (mid / lo - 1) * 1e4
            prev = inj.side
            want = "bid" if fall >= m.trigger_bps else "ask" if rise >= m.trigger_bps else None
            if want is None and (
                prev == "bid" and fall >= m.trigger_bps / 2 or prev == "ask" and rise >= m.trigger_bps / 2
            ):
                want = prev  # not yet back under half the trigger: keep the orders
            if want is not None:
                inj.post(want, mid / 10)
                if want != prev:
                    self._event(t_ms, "post", venue=v.name, side=want)
            elif prev is not None:
                inj.pull()
                inj.side = None
                self._event(t_ms, "pull", venue=v.name)

    def _event(self, t_ms: int, event: str, **more) -> None:
        """A truth line ``{"type": "mitigation", "ts", "lever", "event", ...}``."""
        self.events.append({"type": "mitigation", "ts": t_ms, "lever": self.m.lever, "event": event, **more})

    def summary(self) -> dict:
        """The lever's facts of the run: seconds tripped, margin liquidations, the injectors' PnL."""
        out: dict = {"lever": self.m.label}
        if self.m.lever == "circuit-breaker":
            out["tripped_s"] = self.tripped_s  # seconds tripped: halted, or banded
        elif self.m.lever == "dynamic-margin":
            out["margin_liquidated"] = self.margin_liquidated
            out["margin_liquidated_usd"] = round(self.margin_liquidated_usd, 2)
            out["mmr"] = {v.name: round(v.positions.mmr, 6) for v in self.venues}
        else:
            traded = pnl = 0.0
            for v in self.venues:
                assert v.injector is not None
                traded += v.injector.traded_usd
                pnl += v.injector.pnl_usd(v.mid())
            out["injected_usd"] = round(traded, 2)
            out["injector_pnl_usd"] = round(pnl, 2)
        return out


def _side_depth_usd(book: Book, side: str, bps: float) -> float:
    """Resting USD within ``bps`` of the mid on one side."""
    mid = book.mid_ticks()
    total = 0.0
    for c, q in book.levels(side, 10_000, 400):
        t = book.tick(c)
        if abs(t - mid) / mid * 1e4 > bps:
            break
        total += q * LOT * t / 10
    return total
