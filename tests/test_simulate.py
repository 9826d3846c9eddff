"""The simulator: deterministic, cascades from the mechanism where the scenario says, none in a
quiet calm stretch, an engine that works its inventory and deleverages, a market per seed, and
every frame exactly what the real venue parsers and book rules accept."""

from __future__ import annotations

import json
import zlib
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from cascadewatch.connectors.recording import RecordingReader
from cascadewatch.detectors.labels import label_series
from cascadewatch.pipelines.simulate import SCENARIOS, simulate
from cascadewatch.pipelines.simulate.runner import run_scenario

T0 = SCENARIOS["calm"].start_ms
VENUES = ("binance-usdm", "bybit-linear", "okx-swap")


def read_truth(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def cascades(truth: list[dict], direction: str | None = None) -> list[dict]:
    return [t for t in truth if t["type"] == "cascade" and (direction is None or t["direction"] == direction)]


@pytest.fixture(scope="module")
def squeeze(tmp_path_factory):
    """A 10-minute long squeeze with faults (disconnects, lost book frames) and a trace."""
    d = tmp_path_factory.mktemp("squeeze")
    trace: list[dict] = []
    sc = SCENARIOS["long-squeeze"].with_duration(600).with_venues(VENUES)
    result = run_scenario(sc, 3, d / "ls.rec", d / "ls.truth.jsonl", faults=True, trace=trace)
    return result, trace


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path):
    for name in ("a", "b"):
        simulate("short-squeeze", 11, 240, tmp_path / f"{name}.rec.zst", tmp_path / f"{name}.truth.jsonl")
    simulate("short-squeeze", 12, 240, tmp_path / "c.rec.zst", tmp_path / "c.truth.jsonl")
    assert (tmp_path / "a.rec.zst").read_bytes() == (tmp_path / "b.rec.zst").read_bytes()
    assert (tmp_path / "a.truth.jsonl").read_bytes() == (tmp_path / "b.truth.jsonl").read_bytes()
    assert (tmp_path / "a.rec.zst").read_bytes() != (tmp_path / "c.rec.zst").read_bytes()


def test_calm_has_no_cascade(tmp_path):
    r = simulate("calm", 1, 1200, tmp_path / "calm.rec", tmp_path / "calm.truth.jsonl")
    truth = read_truth(tmp_path / "calm.truth.jsonl")
    assert r.cascades == [] and cascades(truth) == []
    assert truth[0]["type"] == "scenario" and truth[0]["name"] == "calm"
    assert truth[1] == {"type": "span", "asset": "BTC-USDT", "start": T0, "end": T0 + 1_200_000}
    levels = [t for t in truth if t["type"] == "levels"]
    assert len(levels) == 20 and all(lv["long"] and lv["short"] for lv in levels)
    # long levels below the price, short levels above it (none is already crossed)
    for lv in levels:
        assert max(p for p, _ in lv["long"]) < lv["price"] * 1.001
        assert min(p for p, _ in lv["short"]) > lv["price"] * 0.999


def test_truth_levels_lie_on_the_estimated_maps_grid(tmp_path):
    """The truth lists its levels in the buckets of the estimated map's grid (10 bps of log-price),
    each by its centre, so ``evaluate`` finds the nearest dense cluster on both with one rule:
    every listed price is the centre of its own bucket, one level per bucket, and neighbouring
    levels are a whole number of buckets apart."""
    import inspect
    import itertools
    import math

    from cascadewatch.detectors.liqmap_estimated import EstimatedLiquidationMap

    simulate("calm", 2, 300, tmp_path / "calm.rec", tmp_path / "calm.truth.jsonl")
    levels = [t for t in read_truth(tmp_path / "calm.truth.jsonl") if t["type"] == "levels"]
    bucket_bps = inspect.signature(EstimatedLiquidationMap).parameters["bucket_bps"].default
    delta = bucket_bps * 1e-4
    assert len(levels) == 5 and {lv["bucket_bps"] for lv in levels} == {bucket_bps}
    for lv in levels:
        for side in ("long", "short"):
            ks = [math.log(p) / delta - 0.5 for p, _ in lv[side]]  # centre exp((k + 0.5) delta)
            assert len(ks) > 20 and all(abs(k - round(k)) < 1e-3 for k in ks)
            steps = [round(b) - round(a) for a, b in itertools.pairwise(ks)]
            assert min(steps) >= 1 and all(usd > 0 for _, usd in lv[side])


def test_long_squeeze_has_a_down_cascade_after_the_shock(squeeze):
    result, _ = squeeze
    truth = read_truth(result.truth)
    shock = next(t["ts"] for t in truth if t["type"] == "shock")
    down = cascades(truth, "down")
    assert down and not cascades(truth, "up")
    c = down[-1]
    assert shock - 120_000 <= c["start"] <= shock + 60_000
    assert c["start"] <= c["peak"] <= c["end"]
    assert c["move_bps"] >= 50 and c["forced_notional"] >= 1_000_000
    # the liquidations were longs on every venue
    for v in VENUES:
        assert result.venues[v]["liquidated_long_usd"] > 10 * result.venues[v]["liquidated_short_usd"]


def test_short_squeeze_has_an_up_cascade(tmp_path):
    simulate("short-squeeze", 1, 600, tmp_path / "ss.rec", tmp_path / "ss.truth.jsonl")
    truth = read_truth(tmp_path / "ss.truth.jsonl")
    up = cascades(truth, "up")
    assert up and not cascades(truth, "down")
    assert up[0]["move_bps"] >= 50


def test_multi_venue_cascade_starts_on_bybit(tmp_path):
    r = simulate("multi-venue", 1, None, tmp_path / "mv.rec", tmp_path / "mv.truth.jsonl")
    assert cascades(read_truth(tmp_path / "mv.truth.jsonl"), "down")
    first = {v: r.venues[v]["first_large_liquidation_ms"] for v in VENUES}
    assert all(first.values())
    assert first["bybit-linear"] < first["binance-usdm"] and first["bybit-linear"] < first["okx-swap"]


def test_truth_is_the_label_of_the_true_series(squeeze):
    result, trace = squeeze
    got = label_series(
        [r["ts"] for r in trace],
        [r["price"] for r in trace],
        [r["forced_long"] for r in trace],
        [r["forced_short"] for r in trace],
        asset="BTC-USDT",
    )
    assert got == cascades(read_truth(result.truth))


def test_every_frame_parses_with_the_real_venue_parsers(squeeze):
    from cascadewatch.connectors.venues.base import ParseError
    from cascadewatch.connectors.venues.registry import parser_for

    result, _ = squeeze
    parsers = {}
    kinds: Counter = Counter()
    errors: list[tuple[str, str, bytes]] = []
    for fr in RecordingReader(result.out):
        if fr.channel == "conn":
            event = json.loads(fr.payload)
            assert event["event"] in ("open", "close") and event["url"].startswith("wss://")
            kinds[(fr.venue, "conn:" + event["event"])] += 1
            continue
        parser = parsers.get(fr.venue) or parsers.setdefault(fr.venue, parser_for(fr.venue))
        try:
            if fr.channel == "rest":
                obj = json.loads(fr.payload)
                parsed = parser.parse_rest(obj["path"], json.dumps(obj["body"]).encode(), fr.recv)
            else:
                parsed = parser.parse_ws(fr.payload, fr.recv)
        except ParseError as exc:
            errors.append((fr.venue, exc.reason, fr.payload[:200]))
            continue
        kinds[(fr.venue, parsed.kind)] += 1
    assert errors == []
    for v in VENUES:
        for kind in ("trade", "book", "liquidation", "instruments", "control", "conn:open", "conn:close"):
            assert kinds[(v, kind)] > 0, (v, kind)
        assert kinds[(v, "conn:open")] == 2 and kinds[(v, "conn:close")] == 1  # one disconnect each
    assert kinds[("binance-usdm", "mark_price")] and kinds[("okx-swap", "mark_price")]
    assert kinds[("bybit-linear", "ticker")] and kinds[("okx-swap", "open_interest")]
    assert kinds[("binance-usdm", "open_interest")]


def _okx_checksum(bids: dict, asks: dict) -> int:
    b = sorted(bids.items(), key=lambda kv: -kv[0])[:25]
    a = sorted(asks.items(), key=lambda kv: kv[0])[:25]
    parts = []
    for i in range(max(len(b), len(a))):
        if i < len(b):
            parts.append("{}:{}".format(*b[i][1]))
        if i < len(a):
            parts.append("{}:{}".format(*a[i][1]))
    crc = zlib.crc32(":".join(parts).encode())
    return crc - (1 << 32) if crc >= 1 << 31 else crc


def test_books_follow_the_venue_sequence_rules_and_match_the_market(squeeze):
    """Rebuild every venue's book from the recording with the venue's own sequence rule: gaps
    only where a book frame was lost on purpose, resyncs after them, never a crossed book, the
    mid equal to the simulated market's at every second, and OKX checksums that verify."""
    from cascadewatch.connectors.book import BookKeeper
    from cascadewatch.connectors.events import BookDelta, BookSnapshot
    from cascadewatch.connectors.venues.registry import parser_for

    result, trace = squeeze
    parsers = {v: parser_for(v) for v in VENUES}
    keepers = {v: BookKeeper(type(parsers[v]).sequence_rule()) for v in VENUES}
    statuses: Counter = Counter()
    mids: dict[str, list[tuple[int, float | None]]] = defaultdict(list)
    okx_bids: dict[float, tuple[str, str]] = {}
    okx_asks: dict[float, tuple[str, str]] = {}
    checked = 0
    for fr in RecordingReader(result.out):
        v = fr.venue
        keeper = keepers[v]
        if fr.channel == "conn":
            if json.loads(fr.payload)["event"] == "close":
                keeper.book.invalidate()
                keeper.rule.reset()
                mids[v].append((fr.recv // 1_000_000, None))
            continue
        if fr.channel == "rest":
            obj = json.loads(fr.payload)
            events = parsers[v].parse_rest(obj["path"], json.dumps(obj["body"]).encode(), fr.recv).events
        else:
            events = parsers[v].parse_ws(fr.payload, fr.recv).events
        for ev in events:
            if not isinstance(ev, (BookSnapshot, BookDelta)):
                continue
            for st in keeper.apply(ev):
                statuses[(v, st.state)] += 1
            book = keeper.book
            if book.valid and book.bids and book.asks:
                assert book.best_bid() < book.best_ask(), (v, ev.ts)
            mids[v].append((ev.ts // 1_000_000, book.mid()))
            if v == "okx-swap":
                data = _apply_okx_levels(fr.payload, okx_bids, okx_asks)
                if book.valid:
                    assert _okx_checksum(okx_bids, okx_asks) == data["checksum"]
                    checked += 1
    assert checked > 1000
    # faults: one lost book frame per venue (a gap, then a resync), and one disconnect
    for v in VENUES:
        assert statuses[(v, "gap")] == 1, (v, statuses)
        assert statuses[(v, "resync")] == 1, (v, statuses)
    # the rebuilt mid equals the simulated mid at every whole second where the book is valid
    assert _compare_mids(mids, trace) > 0.9 * 3 * len(trace)


def _apply_okx_levels(payload: bytes, bids: dict[float, tuple[str, str]], asks: dict[float, tuple[str, str]]) -> dict:
    """Apply an OKX books frame to the string levels kept for its checksum; returns its data."""
    frame = json.loads(payload)
    data = frame["data"][0]
    if frame["action"] == "snapshot":
        bids.clear()
        asks.clear()
    for side, store in (("bids", bids), ("asks", asks)):
        for px, sz, _, _ in data[side]:
            if float(sz) == 0:
                store.pop(float(px), None)
            else:
                store[float(px)] = (px, sz)
    return data


def _compare_mids(mids: dict[str, list[tuple[int, float | None]]], trace: list[dict]) -> int:
    """Assert each venue's rebuilt mid at every whole second equals the trace's; count the seconds compared."""
    compared = 0
    for v in VENUES:
        series = mids[v]
        i = 0
        for row in trace:
            t = row["ts"] + 1000
            while i < len(series) and series[i][0] <= t:
                i += 1
            if i == 0 or series[i - 1][1] is None:
                continue
            assert series[i - 1][1] == pytest.approx(row[f"{v}.mid"], abs=1e-6), (v, row["ts"])
            compared += 1
    return compared


def test_liquidation_feeds_keep_the_venues_limits(squeeze):
    result, _ = squeeze
    binance_per_second: Counter = Counter()
    okx_per_second: Counter = Counter()
    bybit_rows = 0
    bybit_pushes = []
    sides: Counter = Counter()
    for fr in RecordingReader(result.out):
        if fr.channel != "ws":
            continue
        msg = json.loads(fr.payload)
        if "event" in msg or "result" in msg or "op" in msg:
            continue  # subscription acknowledgements
        if b"forceOrder" in fr.payload:
            o = msg["data"]["o"]
            binance_per_second[o["T"] // 1000] += 1
            sides[("binance", o["S"])] += 1
        elif b"liquidation-orders" in fr.payload:
            detail = msg["data"][0]["details"][0]
            okx_per_second[int(detail["ts"]) // 1000] += 1
            assert (detail["posSide"], detail["side"]) in (("long", "sell"), ("short", "buy"))
            sides[("okx", detail["posSide"])] += 1
        elif b"allLiquidation" in fr.payload:
            bybit_rows += len(msg["data"])
            bybit_pushes.append(msg["ts"])
            sides.update(("bybit", row["S"]) for row in msg["data"])
    assert max(binance_per_second.values()) == 1 and max(okx_per_second.values()) == 1
    # a long squeeze: forced sells of longs (Binance SELL, OKX posSide long, Bybit S "Buy")
    assert sides[("binance", "SELL")] > 5 * sides[("binance", "BUY")]
    assert sides[("okx", "long")] > 5 * sides[("okx", "short")]
    assert sides[("bybit", "Buy")] > 5 * sides[("bybit", "Sell")]
    frames = result.venues
    # Binance and OKX hide all but one per second; Bybit publishes every liquidation (bar the
    # ones that happened while disconnected) in pushes on 500 ms boundaries
    assert sum(binance_per_second.values()) < frames["binance-usdm"]["liquidations"]
    assert frames["binance-usdm"]["frames"]["liquidation_hidden"] > 0
    assert bybit_rows >= 0.9 * frames["bybit-linear"]["liquidations"]
    assert all(ts % 500 == 0 for ts in bybit_pushes)


def test_unknown_scenario_and_bad_duration(tmp_path):
    with pytest.raises(ValueError):
        simulate("nope", 1, 10, tmp_path / "x.rec")
    with pytest.raises(ValueError):
        simulate("calm", 1, 0, tmp_path / "x.rec")


def test_engine_works_its_inventory_over_time_then_deleverages():
    """A 100x long of 5 BTC entered at 100,000: liquidation price 99,400 (mmr 0.4 %), bankruptcy
    99,000. The engine takes it over when the mark crosses, sells at most its throughput per
    step, pays the fill's edge over bankruptcy into the fund, and auto-deleverages the rest
    against the most profitable short when the fund cannot cover the loss at the mark."""
    from cascadewatch.pipelines.simulate.agents import LONG, SHORT, Positions
    from cascadewatch.pipelines.simulate.liquidation import LiquidationEngine

    pos = Positions(0.004, 100)
    pid = pos.open(0.0, LONG, 5000, 1_000_000.0, 100.0, 1e9)
    assert pos.liq[pid] == pytest.approx(994_000.0)
    pos.open(0.0, SHORT, 2000, 1_050_000.0, 5.0, 1e9)  # entered higher: the most profitable short
    pos.open(0.0, SHORT, 2000, 1_000_000.0, 5.0, 1e9)
    engine = LiquidationEngine(pos, tau_s=5.0, usd_s=100_000.0, slip_bps=10.0, fund_usd=0.0, adl_after_s=20.0)
    engine.update_mark(994_500.0, 994_500.0, 1.0)
    assert engine.take_over(1.0) == 0  # not crossed yet
    engine.update_mark(993_000.0, 993_000.0, 1.0)
    assert engine.take_over(2.0) == 1 and engine.inventory == [5000, 0]
    (order,) = engine.orders(993_000.0, 993_100.0, 99_300.0, 1.0, 0.001)
    assert (order.side, order.lots) == ("sell", 1007)  # 100,000 USD/s at 99,300
    assert order.limit == pytest.approx(992_007.0) and order.bankruptcy == pytest.approx(990_000.0)
    engine.settle(LONG, 1007, 992_000.0, 0.001)
    assert engine.fund == pytest.approx(201.4) and engine.inventory == [3993, 0]
    engine.update_mark(985_000.0, 985_000.0, 100.0)
    assert engine.adl_due(10.0, 0.001) == []  # worked for 8 s only
    assert engine.adl_due(30.0, 0.001) == [(LONG, 3993, pytest.approx(990_000.0))]
    assert engine.inventory == [0, 0]
    assert pos.deleverage(SHORT, 3993) == 3993
    assert pos.open_lots[SHORT] == 7  # the 1,050,000 short went first, then 1993 of the other


def test_each_seed_draws_its_own_market_and_timing():
    import random

    from cascadewatch.pipelines.simulate.market import draw_market

    markets = [draw_market(s) for s in range(1, 9)]
    assert draw_market(3) == markets[2]
    for field in ("price", "notional", "leverage", "depth_usd_bps", "mm_nerve", "vol_bps", "funding_bias"):
        assert len({getattr(m, field) for m in markets}) == 8, field
    assert len({tuple(v.name for v in m.venues) for m in markets}) > 2
    anchors = {SCENARIOS["long-squeeze"].build(random.Random(s)).anchor for s in range(8)}
    assert len(anchors) == 8 and min(anchors) >= 0.35 and max(anchors) <= 0.8
    directions = {SCENARIOS["surprise-shock"].build(random.Random(s)).direction for s in range(8)}
    assert directions == {"down", "up"}


def test_bitmex_frames_are_opt_in_and_replay_with_every_liquidation(tmp_path):
    """BitMEX is never drawn (a run names it); its frames parse with the BitMEX parser, the
    book survives a disconnect and a lost message (gap, resubscription, partial), and every
    liquidation order of the venue's engine is published while connected (one ``Liquidation``
    each, unlike Binance's one per second)."""
    from cascadewatch.connectors.book import BookKeeper
    from cascadewatch.connectors.events import BookDelta, BookSnapshot, FeedStatus, Liquidation
    from cascadewatch.connectors.frames import FrameDecoder
    from cascadewatch.pipelines.cli.simulate import main as simulate_main
    from cascadewatch.pipelines.simulate.market import VENUE_NAMES, draw_market

    assert all("bitmex" not in {v.name for v in draw_market(seed).venues} for seed in range(40))
    assert "bitmex" not in VENUE_NAMES
    assert simulate_main(["--scenario", "calm", "--venues", "bitmex,nope", "--out", str(tmp_path / "x.rec")]) == 2
    sc = SCENARIOS["long-squeeze"].with_duration(300).with_venues(("bitmex", "okx-swap"))
    result = run_scenario(sc, 2, tmp_path / "bm.rec", None, faults=True)
    decoder = FrameDecoder()
    keeper = BookKeeper(decoder.parser("bitmex").sequence_rule())
    statuses, published = [], 0
    for frame in RecordingReader(tmp_path / "bm.rec"):
        for event in decoder.decode(frame.source, frame.payload, frame.recv).events:
            if event.venue != "bitmex":
                continue
            if isinstance(event, Liquidation):
                published += 1
            elif isinstance(event, (BookSnapshot, BookDelta, FeedStatus)):
                statuses += [s.state for s in keeper.apply(event)]
    assert statuses == ["gap", "resync"]  # the lost message; the disconnect is a status of its own
    assert keeper.book.valid
    venue = result.venues["bitmex"]
    missed = venue["frames"].get("liquidation_missed", 0)  # sent during the 3-s disconnect
    assert published + missed == venue["liquidations"] and published > 10 * missed


def test_informed_traders_press_a_plan_leak_onto_every_venue():
    """While a plan's leak slides the index ``r`` bps/s, every venue takes a market order of
    ``informed * depth_usd_bps * scale * r * dt`` USD per step (sells for a fall); a leak over
    is pruned, and no order comes without one."""
    import random
    from types import SimpleNamespace

    from cascadewatch.pipelines.simulate.market import draw_market
    from cascadewatch.pipelines.simulate.runner import _Index, _informed, _Step

    m = draw_market(2)
    index = _Index(m, m.price * 10, random.Random(0))
    index.leaks.append((1_000, 5_000, -0.5))
    assert [index.leak_bps_s(t) for t in (500, 1_000, 4_999, 5_000)] == [0.0, -0.5, -0.5, 0.0]
    assert index.leaks == []
    venues = [SimpleNamespace(name="a", scale=1.0), SimpleNamespace(name="b", scale=0.5)]
    ctx = _Step({}, [0.0, 0.0], [])
    _informed(-0.5, 2_000, 0.1, venues, m, ctx)
    usd = m.informed * m.depth_usd_bps * -0.5 * 0.1
    assert ctx.shocks == {"a": [(2_000, usd)], "b": [(2_000, usd * 0.5)]} and usd < 0
    _informed(0.0, 2_100, 0.1, venues, m, ctx)
    assert ctx.shocks == {"a": [(2_000, usd)], "b": [(2_000, usd * 0.5)]}


def test_a_leaked_squeeze_trickles_before_it_breaks(monkeypatch):
    """Seeds 2, 4, 5 and 9 of ``long-squeeze`` leak their shock: the most leveraged longs are
    liquidated in the five minutes before the labelled start (seconds with a liquidation order:
    13, 9, 12, 9). Without informed traders (``informed`` 0) the crowd's hedged buying holds the
    perpetuals and fewer are (9, 5, 9, 1: 24 against 43 in all)."""
    from dataclasses import replace

    from cascadewatch.pipelines.simulate import runner

    def trickle(result) -> int:
        start = result.cascades[0]["start"]
        return len({ms // 1000 for ms in result.liquidation_ms if start - 300_000 <= ms < start - 5_000})

    sc = SCENARIOS["long-squeeze"]
    seeds = (2, 4, 5, 9)
    informed = [trickle(run_scenario(sc, seed, None)) for seed in seeds]
    draw = runner.draw_market
    monkeypatch.setattr(runner, "draw_market", lambda *a: replace(draw(*a), informed=0.0))
    quiet = [trickle(run_scenario(sc, seed, None)) for seed in seeds]
    assert min(informed) >= 8 and sum(informed) >= 1.5 * sum(quiet)
