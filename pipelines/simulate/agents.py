"""The traders: leveraged speculators with liquidation prices, noise, arbitrage, trend and stops.

Every agent acts through market orders ``(offset_ms, side, lots, tag, ref)`` that the runner
sends into the venue's book in time order; ``side`` is the aggressor (``buy``/``sell``),
``tag`` says who sent it and ``ref`` carries what is needed once it filled (the leverage of an
opening position):

- ``noise``: untracked two-sided flow, Poisson arrivals, log-normal sizes;
- ``open``: leveraged traders opening positions (share of longs, leverage mix and size set by
  the scenario's phase); in a market far from its slow average they cut their leverage to at
  most ``100 * 30 / |distance in bps|`` (at least 5x): nobody opens at 100x in a crash; a
  filled opening order becomes a :class:`Positions` entry with its liquidation price and a
  random holding time;
- ``close``: positions whose holding time ended, closed at market;
- ``arb``: arbitrageurs trading the venue's basis to a fair price (half the spot index, half the
  other venues' mid) as they saw it ``arb_lag_s`` ago, linear in the basis beyond 2 bps and
  capacity-limited (the market's draw);
- ``hedge``: untracked counterparties meeting part of a crowd's net directional flow (its
  openings and its closes);
- ``unwind``: a crowd closing its positions early, a share per second (a quiet unwind);
- ``value``: value traders buying a fall and selling a rise once the price is far from its
  slow average (linear beyond a free band, capacity-limited, arriving late);
- ``trend``: informed flow of a phase; ``shock``: a scenario's exogenous order;
- ``stop``: resting stop-market orders fired by the last trade crossing their trigger.

:class:`Positions` holds one venue's open leveraged positions. Each has an entry price, a
leverage ``L`` and the venue's maintenance margin rate ``mmr``, hence a liquidation price

    long:  entry * (1 - 1/L + mmr)        short: entry * (1 + 1/L - mmr)

and a bankruptcy price ``entry * (1 -/+ 1/L)``. Positions are indexed by liquidation-price
bucket so the liquidation engine finds the crossed ones in ``O(log n)``, and the true
liquidation levels (the truth file's ``levels`` lines) are the bucket totals.
"""

from __future__ import annotations

import heapq
import math
import random
from bisect import bisect_left
from dataclasses import dataclass

from sortedcontainers import SortedList

from cascadewatch.pipelines.simulate.book import LOT
from cascadewatch.pipelines.simulate.market import Market

__all__ = ["Positions", "StopBook", "Traders", "FlowParams", "Order", "poisson", "lognormal_lots", "pick"]

Order = tuple[float, str, int, str, float | int | None]
"""``(offset_ms in the step, aggressor side, lots, tag, ref)``: ``ref`` is the leverage of an
``open``, the position id of a ``close``, else ``None``."""

LONG, SHORT = 0, 1


def poisson(rng: random.Random, lam: float) -> int:
    """A Poisson draw by inversion (``lam`` small: a few per step)."""
    if lam <= 0:
        return 0
    if lam > 30:
        return max(0, int(round(rng.gauss(lam, math.sqrt(lam)))))
    u = rng.random()
    p = math.exp(-lam)
    n, cum = 0, p
    while u > cum and n < 200:
        n += 1
        p *= lam / n
        cum += p
    return n


def lognormal_lots(rng: random.Random, median_usd: float, sigma: float, price: float) -> int:
    """Order size in lots for a log-normal USD amount."""
    usd = median_usd * math.exp(sigma * rng.gauss(0.0, 1.0))
    return max(1, int(usd / price / LOT))


def pick(rng: random.Random, values: tuple[float, ...], cum_weights: list[float] | tuple[float, ...]) -> float:
    """A weighted choice from precomputed cumulative weights."""
    return values[min(bisect_left(cum_weights, rng.random() * cum_weights[-1]), len(values) - 1)]


class Positions:
    """Open leveraged positions of one venue (see the module docstring).

    Columns are parallel lists indexed by position id; ``_members[side][bucket]`` lists the ids
    whose liquidation price falls in ``bucket`` (``bucket_ticks`` wide), ``_lots`` their total,
    ``_keys`` the non-empty buckets in order.
    """

    def __init__(self, mmr: float, bucket_ticks: int) -> None:
        self.mmr = mmr
        self.bw = bucket_ticks
        self.side: list[int] = []
        self.lots: list[int] = []
        self.entry: list[float] = []
        self.lev: list[float] = []
        self.liq: list[float] = []
        self.alive: list[bool] = []
        self._bucket: list[int] = []
        self._members: tuple[dict[int, list[int]], dict[int, list[int]]] = ({}, {})
        self._lots: tuple[dict[int, int], dict[int, int]] = ({}, {})
        self._keys = (SortedList(), SortedList())
        self.open_lots = [0, 0]
        self.open_count = [0, 0]
        self._exits: list[tuple[float, int]] = []

    def __len__(self) -> int:
        return len(self._exits)

    def count(self, side: int) -> int:
        """Open positions of ``side``."""
        return self.open_count[side]

    def liquidation_price(self, side: int, entry: float, lev: float) -> float:
        """The liquidation price of a ``side`` position opened at ``entry`` with leverage ``lev``.

        ``entry * (1 - 1/lev + mmr)`` for a long, ``entry * (1 + 1/lev - mmr)`` for a short
        (``mmr``: maintenance margin rate).
        """
        if side == LONG:
            return entry * (1.0 - 1.0 / lev + self.mmr)
        return entry * (1.0 + 1.0 / lev - self.mmr)

    @staticmethod
    def bankruptcy_price(side: int, entry: float, lev: float) -> float:
        """The price at which the position's margin is gone: ``entry * (1 -/+ 1/lev)``."""
        return entry * (1.0 - 1.0 / lev) if side == LONG else entry * (1.0 + 1.0 / lev)

    def open(self, t: float, side: int, lots: int, entry: float, lev: float, exit_t: float) -> int:
        """Add a position (``entry`` in ticks); it closes by itself at ``exit_t`` unless liquidated."""
        pid = len(self.side)
        liq = self.liquidation_price(side, entry, lev)
        b = int(liq // self.bw)
        self.side.append(side)
        self.lots.append(lots)
        self.entry.append(entry)
        self.lev.append(lev)
        self.liq.append(liq)
        self.alive.append(True)
        self._bucket.append(b)
        members = self._members[side]
        if b in members:
            members[b].append(pid)
            self._lots[side][b] += lots
        else:
            members[b] = [pid]
            self._lots[side][b] = lots
            self._keys[side].add(b)
        self.open_lots[side] += lots
        self.open_count[side] += 1
        heapq.heappush(self._exits, (exit_t, pid))
        return pid

    def _remove(self, pid: int) -> None:
        side, b = self.side[pid], self._bucket[pid]
        self.alive[pid] = False
        members = self._members[side][b]
        members.remove(pid)
        self._lots[side][b] -= self.lots[pid]
        self.open_lots[side] -= self.lots[pid]
        self.open_count[side] -= 1
        if not members:
            del self._members[side][b]
            del self._lots[side][b]
            self._keys[side].remove(b)

    def due(self, t_end: float) -> list[tuple[float, int]]:
        """Positions whose holding time ends before ``t_end``: ``[(exit_t, id)]`` (removed)."""
        out = []
        exits = self._exits
        while exits and exits[0][0] < t_end:
            exit_t, pid = heapq.heappop(exits)
            if self.alive[pid]:
                self._remove(pid)
                out.append((exit_t, pid))
        return out

    def crossed(self, mark: float) -> list[int]:
        """Remove and return the positions the mark price (ticks) has liquidated, nearest first.

        Longs with ``liq >= mark``, shorts with ``liq <= mark``.
        """
        out: list[int] = []
        mb = int(mark // self.bw)
        keys = self._keys[LONG]
        while keys and keys[-1] >= mb:
            b = keys[-1]
            ids = list(self._members[LONG][b])
            hit = ids if b > mb else [p for p in ids if self.liq[p] >= mark]
            for p in sorted(hit, key=lambda p: -self.liq[p]):
                self._remove(p)
                out.append(p)
            if b == mb:
                break
        keys = self._keys[SHORT]
        while keys and keys[0] <= mb:
            b = keys[0]
            ids = list(self._members[SHORT][b])
            hit = ids if b < mb else [p for p in ids if self.liq[p] <= mark]
            for p in sorted(hit, key=lambda p: self.liq[p]):
                self._remove(p)
                out.append(p)
            if b == mb:
                break
        return out

    def deleverage(self, side: int, lots: int) -> int:
        """Auto-deleveraging: close ``lots`` of ``side`` off the book, the most profitable first
        (longs with the lowest liquidation prices, i.e. the lowest entries; shorts with the
        highest); the last one partly. Returns the lots closed (less when the side runs out)."""
        keys = self._keys[side]
        done = 0
        while done < lots and keys:
            b = keys[0] if side == LONG else keys[-1]
            pid = self._members[side][b][0]
            take = min(self.lots[pid], lots - done)
            if take == self.lots[pid]:
                self._remove(pid)
            else:
                self.lots[pid] -= take
                self._lots[side][b] -= take
                self.open_lots[side] -= take
            done += take
        return done

    def set_mmr(self, mmr: float) -> None:
        """Recalibrate the maintenance margin rate: every open position's liquidation price
        becomes ``entry * (1 -/+ 1/L +/- mmr)`` at once (dynamic margin, :mod:`.mitigation`)."""
        self.mmr = mmr
        for side in (LONG, SHORT):
            members, lots, keys = self._members[side], self._lots[side], self._keys[side]
            moved: list[int] = []
            for b in list(keys):
                for pid in members[b]:
                    self.liq[pid] = self.liquidation_price(side, self.entry[pid], self.lev[pid])
                    if int(self.liq[pid] // self.bw) != b:
                        moved.append(pid)
            for pid in moved:
                b, nb = self._bucket[pid], int(self.liq[pid] // self.bw)
                members[b].remove(pid)
                lots[b] -= self.lots[pid]
                if not members[b]:
                    del members[b], lots[b]
                    keys.remove(b)
                self._bucket[pid] = nb
                if nb in members:
                    members[nb].append(pid)
                    lots[nb] += self.lots[pid]
                else:
                    members[nb], lots[nb] = [pid], self.lots[pid]
                    keys.add(nb)

    def lots_within(self, lo: float, hi: float) -> int:
        """Open lots (both sides) whose liquidation bucket lies within ``[lo, hi]`` (ticks)."""
        total = 0
        for side in (LONG, SHORT):
            for b in self._keys[side].irange(int(lo // self.bw), int(hi // self.bw)):
                total += self._lots[side][b]
        return total

    def sample(self, rng: random.Random, side: int, n: int) -> list[int]:
        """Up to ``n`` distinct open positions of ``side`` drawn at random (removed): a crowd that
        closes early."""
        out: list[int] = []
        total = len(self.side)
        for _ in range(4 * n):
            if len(out) >= n or not total:
                break
            pid = rng.randrange(total)
            if self.alive[pid] and self.side[pid] == side:
                self._remove(pid)
                out.append(pid)
        return out

    def bucket_lots(self, side: int) -> dict[int, int]:
        """Open lots per liquidation bucket of one side (``bucket * bucket_ticks`` = lower edge)."""
        return self._lots[side]


class StopBook:
    """Resting stop-market orders of one venue: fire when the last trade crosses the trigger."""

    def __init__(self) -> None:
        self._sell: list[tuple[float, int]] = []  # (trigger ticks, lots), highest trigger last
        self._buy: list[tuple[float, int]] = []  # lowest trigger last

    def add(self, side: str, trigger: float, lots: int) -> None:
        """Add a ``side`` stop order of ``lots`` that triggers at ``trigger`` (ticks)."""
        if side == "sell":
            self._sell.append((trigger, lots))
            self._sell.sort()
        else:
            self._buy.append((trigger, lots))
            self._buy.sort(reverse=True)

    def __len__(self) -> int:
        return len(self._sell) + len(self._buy)

    def triggered(self, last: float) -> list[tuple[str, int]]:
        """Stops fired by the last trade price ``last`` (ticks): ``[(side, lots)]``."""
        out = []
        while self._sell and self._sell[-1][0] >= last:
            out.append(("sell", self._sell.pop()[1]))
        while self._buy and self._buy[-1][0] <= last:
            out.append(("buy", self._buy.pop()[1]))
        return out


@dataclass(frozen=True, slots=True)
class FlowParams:
    """The traders' behaviour at one moment on one venue (the scenario's phases applied)."""

    open_rate: float = 1.0  # multiplier of the position-opening rate
    long_share: float = 0.5
    lev_cum: tuple[float, ...] = ()  # cumulative weights over LEVERAGES
    size: float = 1.0  # multiplier of opening sizes
    trend_usd_s: float = 0.0  # informed flow, + buys
    hedge: float = 0.0  # share of the crowd's net flow met by untracked counterparties
    unwind: float = 0.0  # share of the crowd side's positions closed early, per second
    unwind_side: int = LONG


class Traders:
    """All the agents of one venue: they turn a step into market orders (module docstring)."""

    NOISE_USD, NOISE_SIGMA = 6_000.0, 1.1  # median size and log-sd of noise orders
    OPEN_USD, OPEN_SIGMA = 12_000.0, 1.2  # median size and log-sd of opening orders
    ARB_FREE_BPS = 2.0

    def __init__(
        self,
        rng: random.Random,
        scale: float,
        positions: Positions,
        market: Market,
        leverages: tuple[float, ...],
        activity: float = 1.0,
    ) -> None:
        self.rng = rng
        self.scale = scale
        self.positions = positions
        self.stops = StopBook()
        self.noise_rate = market.noise_rate * scale * activity
        self.open_rate = market.open_rate * scale
        self.hold_s = market.hold_s
        self.arb_usd_s_bps = market.arb_usd_s_bps
        self.arb_cap_usd_s = market.arb_cap_usd_s
        self.value_usd_s_bps = market.value_usd_s_bps
        self.value_free_bps = market.value_free_bps
        self.value_cap_usd_s = 150.0 * market.value_usd_s_bps
        self.leverages = leverages
        self._pending: list[Order] = []
        self.lev_cap = math.inf  # a dynamic margin's leverage cap (:mod:`.mitigation`)
        self._mean_open = math.exp(self.OPEN_SIGMA**2 / 2)  # mean / median of a log-normal size

    def seed(self, price_ticks: float, t: float, lev_cum: list[float], index_vol_bps: float, long_share: float) -> None:
        """An equilibrium population opened over the past holding time, minus the liquidated."""
        rng, pos = self.rng, self.positions
        for _ in range(int(self.open_rate * self.hold_s)):
            side = LONG if rng.random() < long_share else SHORT
            lev = pick(rng, self.leverages, lev_cum)
            age = rng.expovariate(1.0 / self.hold_s)
            entry = price_ticks * math.exp(index_vol_bps * 1e-4 * math.sqrt(age) * rng.gauss(0.0, 1.0))
            liq = pos.liquidation_price(side, entry, lev)
            if (side == LONG and liq >= price_ticks * 0.9995) or (side == SHORT and liq <= price_ticks * 1.0005):
                continue
            lots = lognormal_lots(rng, self.OPEN_USD, self.OPEN_SIGMA, price_ticks / 10)
            pos.open(t, side, lots, entry, lev, t + rng.expovariate(1.0 / self.hold_s))

    def orders(
        self,
        t_ms: int,
        step_ms: int,
        price_usd: float,
        p: FlowParams,
        basis_bps: float,
        shocks: list[tuple[int, float]],
        value_bps: float = 0.0,
    ) -> list[Order]:
        """The step's market orders, sorted by time; ``shocks`` are ``(ms, usd)`` exogenous orders,
        ``basis_bps`` the basis the arbitrageurs see, ``value_bps`` the distance of the price from
        its slow average the value traders see (+ above)."""
        rng = self.rng
        dt = step_ms / 1000.0
        out: list[Order] = []

        def lots_of(usd: float) -> int:
            return max(1, int(abs(usd) / price_usd / LOT))

        for _ in range(poisson(rng, self.noise_rate * dt)):
            out.append(
                (
                    rng.random() * step_ms,
                    "buy" if rng.random() < 0.5 else "sell",
                    lognormal_lots(rng, self.NOISE_USD, self.NOISE_SIGMA, price_usd),
                    "noise",
                    None,
                )
            )
        max_lev = max(5.0, 3000.0 / max(abs(value_bps), 30.0))
        for _ in range(poisson(rng, self.open_rate * p.open_rate * dt)):
            side = "buy" if rng.random() < p.long_share else "sell"
            out.append(
                (
                    rng.random() * step_ms,
                    side,
                    lognormal_lots(rng, self.OPEN_USD * p.size, self.OPEN_SIGMA, price_usd),
                    "open",
                    min(pick(rng, self.leverages, p.lev_cum), max_lev, self.lev_cap),
                )
            )
        pos = self.positions
        closed_usd = 0.0  # signed: + buys (shorts closing)
        for exit_t, pid in pos.due((t_ms + step_ms) / 1000.0):
            side = "sell" if pos.side[pid] == LONG else "buy"
            out.append((max(0.0, exit_t * 1000 - t_ms), side, pos.lots[pid], "close", pid))
        if p.unwind > 0:
            n = poisson(rng, p.unwind * dt * pos.count(p.unwind_side))
            for pid in pos.sample(rng, p.unwind_side, n):
                side = "sell" if pos.side[pid] == LONG else "buy"
                out.append((rng.random() * step_ms, side, pos.lots[pid], "close", pid))
                closed_usd += pos.lots[pid] * LOT * price_usd * (1 if side == "buy" else -1)
        if abs(basis_bps) > self.ARB_FREE_BPS:
            usd = min(self.arb_usd_s_bps * (abs(basis_bps) - self.ARB_FREE_BPS), self.arb_cap_usd_s) * self.scale * dt
            out.append((rng.random() * step_ms, "sell" if basis_bps > 0 else "buy", lots_of(usd), "arb", None))
        if abs(value_bps) > self.value_free_bps:
            usd = self.value_usd_s_bps * (abs(value_bps) - self.value_free_bps)
            usd = min(usd, self.value_cap_usd_s) * self.scale * dt * (0.5 + rng.random())
            out.append((rng.random() * step_ms, "sell" if value_bps > 0 else "buy", lots_of(usd), "value", None))
        if p.hedge:
            net = self.open_rate * p.open_rate * (2.0 * p.long_share - 1.0) * self.OPEN_USD * p.size * self._mean_open
            usd = p.hedge * (net * dt + closed_usd) * (0.5 + rng.random())
            if abs(usd) > 1.0:
                out.append((rng.random() * step_ms, "sell" if usd > 0 else "buy", lots_of(usd), "hedge", None))
        if p.trend_usd_s:
            usd = p.trend_usd_s * self.scale * dt * (0.5 + rng.random())
            out.append((rng.random() * step_ms, "buy" if usd > 0 else "sell", lots_of(usd), "trend", None))
        for at, usd in shocks:
            out.append((float(at - t_ms), "buy" if usd > 0 else "sell", lots_of(usd), "shock", None))
        out.extend(self._pending)
        self._pending = []
        out.sort(key=lambda o: o[0])
        return out

    def filled(self, ms: int, order: Order, lots: int, avg_tick: float) -> None:
        """An order of theirs traded ``lots`` at ``avg_tick``: an opening order becomes a position."""
        if order[3] == "open":
            side = LONG if order[1] == "buy" else SHORT
            lev = order[4]
            assert lev is not None  # an opening order carries its leverage
            self.positions.open(
                ms / 1000.0, side, lots, avg_tick, lev, ms / 1000.0 + self.rng.expovariate(1.0 / self.hold_s)
            )

    def after_trades(self, last_tick: float) -> None:
        """Stops fired by the last trade go out early in the next step."""
        for side, lots in self.stops.triggered(last_tick):
            self._pending.append((1.0 + self.rng.random() * 20, side, lots, "stop", None))
