"""The simulation loop: a spot index, one market per venue, a recording and its truth.

Per step (``scenario.step_s``) the spot index moves (its own random walk, a slow pull toward
the perpetuals' mid prices since perpetuals lead price discovery, scenario drifts and jumps),
then, on every venue in turn:

1. market makers quote (close the spread, refresh, cancel, pull back under stress);
2. the traders' market orders of the step are executed in time order (:mod:`.agents`);
3. the mark price moves (index + smoothed basis) and the liquidation engine takes over every
   position it crossed, sending forced orders into the book (:mod:`.liquidation`);
4. the venue writer publishes the book changes (:mod:`.venues`).

A cascade on one venue drags the index and, through arbitrage, the other venues. At every
whole second the writers publish mark price, open interest and the throttled liquidation feeds,
and the true per-second forced notional (every liquidation, published or not) and price go
through :class:`cascadewatch.detectors.labels.CascadeLabeler`: the truth file's ``cascade`` lines come from
the same label definition the evaluator uses.
"""

from __future__ import annotations

import math
import random
import sys
import time
from dataclasses import dataclass, field, fields
from itertools import accumulate
from pathlib import Path

import msgspec

from cascadewatch.connectors.recording import RecordingWriter
from cascadewatch.detectors.labels import CascadeLabeler, LabelConfig
from cascadewatch.pipelines.simulate.agents import (
    LONG,
    SHORT,
    FlowParams,
    Positions,
    Traders,
)
from cascadewatch.pipelines.simulate.book import LOT, Book, MarketMaker
from cascadewatch.pipelines.simulate.liquidation import LiquidationEngine
from cascadewatch.pipelines.simulate.scenarios import (
    LEVERAGES,
    Phase,
    Scenario,
    StopCluster,
)
from cascadewatch.pipelines.simulate.venues import (
    BinanceFeed,
    BybitFeed,
    Feed,
    FrameSink,
    frame_writer,
)

__all__ = ["SimulationResult", "run_scenario", "VENUE_SPECS", "ASSET"]

ASSET = "BTC-USDT"
CELL_TICKS = 50  # one book level per 5 USDT
BUCKET_TICKS = 100  # liquidation-price buckets of 10 USDT
LEVELS_TICKS = 1000  # truth "levels" buckets of 100 USDT
ORDER_MAX_CELLS = 400  # an ordinary market order walks at most ~200 bps
QUOTE_RANGE_BPS = 190.0  # market makers quote this far from the last trade (< 400 OKX levels)
INDEX_PULL_S = 0.02  # pull of the spot index toward the perpetuals, per second
MARK_TAU_S = 1.0  # smoothing of the basis in the mark price
OI_BASE_BTC = 8_000.0  # open interest of positions the simulation does not track, per unit of scale


@dataclass(frozen=True)
class VenueSpec:
    """Size of a venue relative to Binance, its maintenance margin rate and feed latency."""

    scale: float
    mmr: float
    latency_ms: float


VENUE_SPECS = {
    "binance-usdm": VenueSpec(scale=1.0, mmr=0.004, latency_ms=28.0),
    "bybit-linear": VenueSpec(scale=0.7, mmr=0.005, latency_ms=55.0),
    "okx-swap": VenueSpec(scale=0.5, mmr=0.004, latency_ms=80.0),
}


@dataclass
class SimulationResult:
    """What a run produced: paths, frame counts, the true cascades and a few market facts."""

    scenario: str
    seed: int
    duration_s: float
    out: Path
    truth: Path | None
    frames: int
    cascades: list[dict]
    venues: dict[str, dict] = field(default_factory=dict)
    price_start: float = 0.0
    price_end: float = 0.0
    price_min: float = 0.0
    price_max: float = 0.0
    wall_s: float = 0.0


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


def _conditions(windows: list[_Window], venue: str, t_ms: int, base_cum: tuple[float, ...]) -> tuple[FlowParams, float]:
    """The traders' parameters and the market makers' liquidity factor at ``t_ms`` on ``venue``."""
    open_rate, long_share, lev_cum, size, trend, hedge, liquidity = 1.0, 0.5, base_cum, 1.0, 0.0, 0.0, 1.0
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
            lev_cum = tuple(accumulate(ph.leverage))
        size *= ph.size
        trend += ph.trend_usd_s
        hedge = max(hedge, ph.hedge)
        liquidity *= 1.0 + (ph.liquidity - 1.0) * w
    return FlowParams(open_rate, long_share, lev_cum, size, trend, hedge), liquidity


class _Venue:
    """One venue's market: book, market makers, traders, liquidation engine, frame writer."""

    def __init__(self, name: str, sc: Scenario, rng: random.Random, sink: FrameSink) -> None:
        spec = VENUE_SPECS[name]
        self.name = name
        self.scale = spec.scale
        self.rng = rng
        price_ticks = sc.price * 10
        self.book = Book(int(price_ticks * 1.8 / CELL_TICKS), CELL_TICKS, int(price_ticks // CELL_TICKS))
        self.mm = MarketMaker(self.book, sc.price, sc.depth_usd_bps * spec.scale, QUOTE_RANGE_BPS, rng, sc.step_s)
        self.mm.seed()
        self.book.changed_bids.clear()
        self.book.changed_asks.clear()
        self.positions = Positions(spec.mmr, BUCKET_TICKS)
        self.traders = Traders(rng, spec.scale, self.positions, sc.noise_rate, sc.open_rate, sc.hold_s, LEVERAGES)
        self.engine = LiquidationEngine(self.positions, tau_s=MARK_TAU_S)
        step_ms = int(round(sc.step_s * 1000))
        self.feed: Feed
        writer = frame_writer(name)
        if writer is BinanceFeed:
            self.feed = BinanceFeed(
                sink, self.book, rng, spec.latency_ms, depth_ms=step_ms if step_ms in (100, 250, 500) else 100
            )
        else:
            self.feed = writer(sink, self.book, rng, spec.latency_ms)
        self.oi_base = int(OI_BASE_BTC * spec.scale / LOT)
        self.last_tick = self.book.tick(self.book.last_cell)
        self.premium = 0.0
        self.faults: list[tuple[int, str]] = []
        self.liq_count = 0
        self.liq_usd = [0.0, 0.0]
        self.liq_in_book_usd = 0.0
        self.first_liq_ms: int | None = None

    def mid(self) -> float:
        return self.book.mid_ticks()

    def oi_lots(self) -> int:
        return self.oi_base + self.positions.open_lots[LONG] + self.positions.open_lots[SHORT]

    def step(
        self,
        t_ms: int,
        step_ms: int,
        index: float,
        fair: float,
        p: FlowParams,
        liquidity: float,
        shocks: list[tuple[int, float]],
        forced: list[float],
    ) -> None:
        """One step of this venue (module docstring); adds its liquidated notional to ``forced``."""
        book, feed = self.book, self.feed
        self.mm.step(liquidity)
        price_usd = book.tick(book.last_cell) / 10
        basis_bps = (self.mid() - fair) / fair * 1e4
        last_ms = t_ms
        for order in self.traders.orders(t_ms, step_ms, price_usd, p, basis_bps, shocks):
            ms = last_ms = t_ms + int(order[0])
            fills = book.take(order[1], order[2], ORDER_MAX_CELLS)
            if not fills:
                continue
            feed.trade(ms, order[1], fills)
            lots = sum(q for _, q in fills)
            self.mm.note_flow(lots * LOT * price_usd * (1 if order[1] == "buy" else -1))
            self.last_tick = book.tick(fills[-1][0])
            self.traders.filled(ms, order, lots, book.avg_tick(fills))
        self.traders.after_trades(self.last_tick)
        self.engine.update_mark(index, self.mid(), step_ms / 1000.0)
        self._liquidate(max(t_ms + step_ms - 12, last_ms), t_ms + step_ms - 1, forced)
        feed.publish_book(t_ms + step_ms)

    def _liquidate(self, ms: int, last_ms: int, forced: list[float]) -> None:
        """Send the engine's forced orders, IOC down (up) to the bankruptcy price."""
        book = self.book
        for lo in self.engine.liquidations():
            ms = min(ms + 1, last_ms)
            bk = int(round(lo.bankruptcy))
            reach = book.bb - book.cell_of(bk) if lo.side == "sell" else book.cell_of(bk) - book.ba
            fills = book.take(lo.side, lo.lots, reach) if reach >= 0 else []
            filled = sum(q for _, q in fills)
            in_book = sum(book.tick(c) * q for c, q in fills) / 10 * LOT
            value = in_book + (lo.lots - filled) * LOT * bk / 10  # the rest goes to the insurance fund
            side = LONG if lo.position == "long" else SHORT
            forced[side] += value
            self.liq_usd[side] += value
            self.liq_in_book_usd += in_book
            self.liq_count += 1
            if self.first_liq_ms is None and value > 50_000:
                self.first_liq_ms = ms
            if fills:
                self.mm.note_flow(in_book if lo.side == "buy" else -in_book)
                self.feed.trade(ms, lo.side, fills)
                self.last_tick = book.tick(fills[-1][0])
            self.feed.liquidation(ms, lo.position, lo.lots, fills, bk)

    def apply_faults(self, t_ms: int) -> None:
        while self.faults and self.faults[0][0] <= t_ms:
            _, what = self.faults.pop(0)
            if what == "disconnect":
                self.feed.disconnect(t_ms)
            elif what == "reconnect":
                self.feed.connect(t_ms)
            else:
                self.feed.lose_book_frame()

    def summary(self) -> dict:
        return {
            "liquidations": self.liq_count,
            "liquidated_long_usd": round(self.liq_usd[LONG], 2),
            "liquidated_short_usd": round(self.liq_usd[SHORT], 2),
            "liquidated_in_book_usd": round(self.liq_in_book_usd, 2),
            "first_large_liquidation_ms": self.first_liq_ms,
            "frames": dict(sorted(self.feed.counts.items())),
            "open_interest_btc": round(self.oi_lots() * LOT, 3),
        }


_DEFAULT_PHASE = Phase(0.0, 1.0)
_PHASE_FIELDS = [f.name for f in fields(Phase) if f.name not in ("start_s", "end_s")]


def _schedule(  # noqa: PLR0913 - private step of run_scenario, called once with its locals
    sc: Scenario,
    venues: list[_Venue],
    windows: list[_Window],
    anchor_ms: int,
    t0: int,
    duration_ms: int,
    step_ms: int,
    faults: bool,
    truth_lines: list[dict],
) -> tuple[list[tuple[int, str, str, float]], list[tuple[int, int]]]:
    """Place the scenario's shocks, stops and (optionally) faults. Returns the shocks in time
    order as ``(ms, venue or "", kind, amount)`` and the stop placements ``(ms, cluster index)``,
    and records them, and the phases, in the truth."""
    for win in windows:
        ph = win.phase
        changed = {k: getattr(ph, k) for k in _PHASE_FIELDS if getattr(ph, k) != getattr(_DEFAULT_PHASE, k)}
        truth_lines.append({"type": "phase", "ts": win.start_ms, "end": win.end_ms, **changed})
    shocks: list[tuple[int, str, str, float]] = []
    for sh in sc.shocks:
        at = max(t0, anchor_ms + int(sh.at_s * 1000))
        if sh.kind == "index":
            shocks.append((at, "", "index", sh.bps))
            truth_lines.append({"type": "shock", "ts": at, "kind": "index", "bps": sh.bps})
            continue
        for v in venues:
            if sh.venues is None or v.name in sh.venues:
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
                        "usd": sh.usd * v.scale,
                        "over_s": sh.over_s,
                    }
                )
    placements = sorted((max(t0, anchor_ms + int(st.placed_s * 1000)), i) for i, st in enumerate(sc.stops))
    if faults:
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
            "usd": st.usd * sum(v.scale for v in venues),
        }
    )


def run_scenario(
    sc: Scenario,
    seed: int,
    out: str | Path,
    truth: str | Path | None = None,
    *,
    progress: bool = False,
    faults: bool = False,
    label_config: LabelConfig | None = None,
    trace: list[dict] | None = None,
) -> SimulationResult:
    """Run ``sc`` (its ``duration_s``) with ``seed``; write the recording ``out`` and the truth.

    ``trace``, when a list, receives one dict per simulated second (index, per-venue mid, mark,
    liquidity factor, depth, forced notional): a diagnostic view of the market, not a venue output.
    """
    wall0 = time.perf_counter()
    rng = random.Random(seed)
    t0 = sc.start_ms
    step_ms = int(round(sc.step_s * 1000))
    dt = step_ms / 1000.0
    n_steps = int(sc.duration_s * 1000) // step_ms
    duration_ms = n_steps * step_ms
    out = Path(out)
    writer = RecordingWriter(
        out,
        comment=f"simulated scenario={sc.name} seed={seed} duration_s={sc.duration_s:g}"
        f" venues={','.join(sc.venues)} faults={int(faults)}",
    )
    sink = FrameSink(writer)
    venues = [_Venue(name, sc, random.Random(rng.getrandbits(64)), sink) for name in sc.venues]
    weights = [v.scale for v in venues]
    total_scale = sum(weights)
    base_cum = tuple(accumulate(sc.leverage))
    for v in venues:
        v.traders.seed(v.mid(), t0 / 1000.0, list(base_cum), sc.index_vol_bps)
    index = sum(v.mid() * v.scale for v in venues) / total_scale
    labeler = CascadeLabeler(ASSET, label_config or LabelConfig())
    cascades: list[dict] = []
    truth_lines: list[dict] = [
        {
            "type": "scenario",
            "name": sc.name,
            "seed": seed,
            "duration_s": sc.duration_s,
            "venues": list(sc.venues),
            "description": sc.description,
            "faults": faults,
        },
        {"type": "span", "asset": ASSET, "start": t0, "end": t0 + duration_ms},
    ]
    anchor_ms = t0 + int(sc.anchor * duration_ms)
    windows = [_Window(ph, anchor_ms, t0, t0 + duration_ms) for ph in sc.phases]
    shocks, placements = _schedule(sc, venues, windows, anchor_ms, t0, duration_ms, step_ms, faults, truth_lines)
    for v in venues:
        v.feed.connect(t0)

    forced = [0.0, 0.0]
    prices: list[float] = []
    next_shock = 0
    report_every = max(n_steps // 20, 1)
    index_sd = sc.index_vol_bps * 1e-4 * math.sqrt(dt)
    for step in range(n_steps + 1):
        t_ms = t0 + step * step_ms
        sink.release(t_ms * 1_000_000)
        if step and t_ms % 1000 == 0:
            # a whole second has passed: truth, label, per-second venue frames
            mid = sum(v.mid() * v.scale for v in venues) / total_scale
            prices.append(mid / 10)
            cascades.extend(labeler.update(t_ms - 1000, mid / 10, forced[0], forced[1]))
            if trace is not None:
                trace.append(_trace_row(t_ms - 1000, mid, index, forced, venues))
            forced = [0.0, 0.0]
            for v in venues:
                v.premium += 0.002 * ((v.mid() - index) / index - v.premium)
                funding = max(-0.0075, min(0.0075, 0.0001 + 0.3 * v.premium))
                v.feed.second(t_ms, v.engine.mark, index, funding, v.oi_lots(), v.last_tick)
            if (t_ms - t0) % (sc.levels_every_s * 1000) == 0:
                truth_lines.append(_levels_line(t_ms, mid, venues))
        elif t_ms % 1000 == 500:
            _half_second(venues, t_ms)
        if step == n_steps:
            break
        if progress and step % report_every == 0:
            print(
                f"simulate {sc.name}: {100 * step // n_steps:3d}%  t={(t_ms - t0) / 1000:.0f}s  "
                f"price={index / 10:.1f}  cascades={len(cascades)}",
                file=sys.stderr,
                flush=True,
            )
        end_ms = t_ms + step_ms
        for v in venues:
            v.apply_faults(t_ms)
        while placements and placements[0][0] <= t_ms:
            _place_stops(sc.stops[placements.pop(0)[1]], venues, t_ms, truth_lines)

        # the spot index: own random walk and drift, pulled toward the perpetuals, jumps
        mids = [v.mid() for v in venues]
        drift = sum(w.phase.index_bps_s for w in windows if w.phase.index_bps_s and w.start_ms <= t_ms < w.end_ms)
        index *= math.exp(index_sd * rng.gauss(0.0, 1.0) + drift * 1e-4 * dt)
        index += INDEX_PULL_S * dt * (sum(m * w for m, w in zip(mids, weights, strict=True)) / total_scale - index)
        next_shock, index, step_shocks = _take_shocks(shocks, next_shock, end_ms, index)

        for i, v in enumerate(venues):
            params, liquidity = _conditions(windows, v.name, t_ms, base_cum)
            fair = _fair_price(index, i, mids, weights)
            v.step(
                t_ms,
                step_ms,
                index,
                fair,
                params,
                liquidity,
                [(at, usd) for at, name, usd in step_shocks if name == v.name],
                forced,
            )

    cascades.extend(labeler.flush())
    sink.close()
    writer.close()
    cascades.sort(key=lambda c: (c["start"], c["direction"]))
    truth_path = Path(truth) if truth is not None else None
    if truth_path is not None:
        _write_truth(truth_path, truth_lines, cascades)
    return SimulationResult(
        scenario=sc.name,
        seed=seed,
        duration_s=sc.duration_s,
        out=out,
        truth=truth_path,
        frames=writer.lines_written,
        cascades=cascades,
        venues={v.name: v.summary() for v in venues},
        price_start=prices[0] if prices else sc.price,
        price_end=prices[-1] if prices else sc.price,
        price_min=min(prices) if prices else sc.price,
        price_max=max(prices) if prices else sc.price,
        wall_s=time.perf_counter() - wall0,
    )


def _take_shocks(
    shocks: list[tuple[int, str, str, float]], next_shock: int, end_ms: int, index: float
) -> tuple[int, float, list[tuple[int, str, float]]]:
    """Take the shocks before ``end_ms`` from ``shocks[next_shock:]``.

    Index jumps (``amount`` in bps) apply to ``index`` at once; the venue shocks are returned
    as ``(ms, venue, amount)``. Returns the next shock's position, the index, the venue shocks.
    """
    step_shocks: list[tuple[int, str, float]] = []
    while next_shock < len(shocks) and shocks[next_shock][0] < end_ms:
        at, vname, kind, amount = shocks[next_shock]
        next_shock += 1
        if kind == "index":
            index *= 1.0 + amount * 1e-4
        else:
            step_shocks.append((at, vname, amount))
    return next_shock, index, step_shocks


def _half_second(venues: list[_Venue], t_ms: int) -> None:
    """The half-second frames: Bybit's ticker deltas."""
    for v in venues:
        if isinstance(v.feed, BybitFeed):
            v.feed.half_second(t_ms)


def _fair_price(index: float, i: int, mids: list[float], weights: list[float]) -> float:
    """The arbitrageurs' fair price for venue ``i``: half the spot index, half the other venues' mid.

    The other venues' mid is weighted by their scale; with no other venue, the index alone.
    """
    others = sum(weights) - weights[i]
    if others <= 0:
        return index
    return 0.5 * index + 0.5 * sum(m * w for j, (m, w) in enumerate(zip(mids, weights, strict=True)) if j != i) / others


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


def _levels_line(t_ms: int, mid_ticks: float, venues: list[_Venue]) -> dict:
    """True liquidation levels of all open positions, summed over venues, in 100 USDT buckets
    within 10 % of the price: ``[[bucket centre price, notional USD], ...]`` ascending."""
    lo, hi = mid_ticks * 0.9, mid_ticks * 1.1
    ratio = LEVELS_TICKS // BUCKET_TICKS
    out = {}
    for side, key in ((LONG, "long"), (SHORT, "short")):
        acc: dict[int, float] = {}
        for v in venues:
            for b, lots in v.positions.bucket_lots(side).items():
                edge = b * BUCKET_TICKS
                if lo <= edge <= hi and lots > 0:
                    acc[b // ratio] = acc.get(b // ratio, 0.0) + lots * LOT * (edge + BUCKET_TICKS / 2) / 10
        out[key] = [
            [round((k * LEVELS_TICKS + LEVELS_TICKS / 2) / 10, 1), round(usd, 2)] for k, usd in sorted(acc.items())
        ]
    return {
        "type": "levels",
        "ts": t_ms,
        "asset": ASSET,
        "price": round(mid_ticks / 10, 2),
        "long": out["long"],
        "short": out["short"],
    }
