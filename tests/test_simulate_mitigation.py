"""The what-if levers inside the simulator (``pipelines/simulate/mitigation.py``) and the lab
(``pipelines/simulate/lab.py``, ``cascadewatch mitigate``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cascadewatch.connectors.events import Trade
from cascadewatch.connectors.frames import FrameDecoder
from cascadewatch.connectors.recording import RecordingReader
from cascadewatch.pipelines.cli.main import main
from cascadewatch.pipelines.simulate import SCENARIOS, Mitigation, simulate
from cascadewatch.pipelines.simulate.agents import LONG, SHORT, Positions
from cascadewatch.pipelines.simulate.book import Book
from cascadewatch.pipelines.simulate.lab import run_lab, summarize
from cascadewatch.pipelines.simulate.mitigation import Injector
from cascadewatch.pipelines.simulate.runner import run_scenario


def test_set_mmr_moves_every_liquidation_price_and_the_mark_then_crosses_them() -> None:
    pos = Positions(mmr=0.005, bucket_ticks=10)
    long_id = pos.open(0.0, LONG, 7, entry=1000.0, lev=10.0, exit_t=1e9)  # liq 1000 * (1 - 0.1 + 0.005) = 905
    short_id = pos.open(0.0, SHORT, 3, entry=1000.0, lev=10.0, exit_t=1e9)  # 1000 * (1 + 0.1 - 0.005) = 1095
    assert (pos.liq[long_id], pos.liq[short_id]) == pytest.approx((905.0, 1095.0), abs=1e-9)
    assert pos.crossed(910.0) == []
    assert (
        pos.lots_within(900.0, 1100.0) == 10 and pos.lots_within(1000.0, 1080.0) == 0
    )  # by bucket: 1095 is in [1090, 1100)
    pos.set_mmr(0.02)  # 1000 * (1 - 0.1 + 0.02) = 920; 1000 * (1 + 0.1 - 0.02) = 1080
    assert (pos.liq[long_id], pos.liq[short_id]) == pytest.approx((920.0, 1080.0), abs=1e-9)
    assert pos.bucket_lots(LONG) == {92: 7} and pos.bucket_lots(SHORT) == {108: 3}
    assert pos.crossed(915.0) == [long_id]  # the raise put the long behind a mark of 915
    assert pos.open_lots == [0, 3]


def test_injector_queues_behind_the_market_makers_and_accounts_its_fills() -> None:
    book = Book(n_cells=100, cell_ticks=10, mid_cell=50)
    for c in (49, 48, 47):
        book.set_bid(c, 5)  # market makers: 5 lots per cell below 50
    book.set_ask(51, 5)
    inj = Injector(book, budget_usd=1e9, band_bps=100.0)
    inj.side = "bid"
    for c in (49, 48):
        book.set_bid(c, book.bids[c] + 4)
        inj.own[c] = 4
    fills = book.take("sell", 12, 10)  # 9 lots at 49 (5 theirs, 4 ours), 3 at 48 (theirs)
    assert fills == [(49, 9), (48, 3)]
    inj.reconcile()
    assert inj.own == {48: 4}  # at 48 the market makers' 5 are ahead: 3 of theirs filled, ours untouched
    assert inj.bought_lots == 4
    tick = book.tick(49)
    assert inj.cash_ticks_lots == -4 * tick
    assert inj.pnl_usd(tick + 10.0) == pytest.approx(4 * 10.0 * 0.001 / 10)  # up 10 ticks (1 USDT) on 0.004 BTC
    # the market makers quote as if the injector were not there, and its lots come back behind theirs
    lifted = inj.lift()
    assert book.bids[48] == 2
    book.set_bid(48, 6)  # they refill their level
    inj.restore(*lifted)
    assert (book.bids[48], inj.own) == (10, {48: 4})
    inj.pull()
    assert (book.bids[48], inj.own) == (6, {})


def test_without_a_lever_the_run_is_the_plain_run_byte_for_byte(tmp_path: Path) -> None:
    sc = SCENARIOS["long-squeeze"].with_duration(120.0)
    a = run_scenario(sc, 5, tmp_path / "a.rec", tmp_path / "a.jsonl")
    b = run_scenario(sc.with_mitigation(None), 5, tmp_path / "b.rec", tmp_path / "b.jsonl")
    assert (tmp_path / "a.rec").read_bytes() == (tmp_path / "b.rec").read_bytes()
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()
    assert a.mitigation == b.mitigation == {}


def test_the_breaker_halts_matching_between_its_halt_and_resume(tmp_path: Path) -> None:
    # a tight band so the squeeze trips it: 40 bps within 30 s, held 20 s
    m = Mitigation("circuit-breaker", band_bps=40.0, window_s=30, halt_s=20.0)
    trace: list[dict] = []
    result = run_scenario(SCENARIOS["long-squeeze"].with_mitigation(m), 1, None, tmp_path / "t.jsonl", trace=trace)
    events = [json.loads(line) for line in (tmp_path / "t.jsonl").read_text().splitlines()]
    halts = [(e["ts"], e["event"]) for e in events if e["type"] == "mitigation"]
    assert halts and halts[0][1] == "halt" and all(e in ("halt", "resume") for _, e in halts)
    assert result.mitigation["tripped_s"] > 0
    start, end = halts[0][0], next(ts for ts, e in halts if e == "resume")
    # the trace row of second s is written at s + 1 s: seconds [start, end - 1) are fully halted
    halted = [r for r in trace if start <= r["ts"] < end - 1000]
    assert halted and all(r["forced_long"] == r["forced_short"] == 0.0 for r in halted)
    assert sum(r["forced_long"] for r in trace) > 0


def test_lab_is_deterministic_and_the_procyclicality_columns_fill(capsys: pytest.CaptureFixture[str]) -> None:
    levers = [Mitigation("dynamic-margin"), Mitigation("liquidity-injection")]
    rows = run_lab(["long-squeeze"], [1], levers, duration_s=600.0)
    assert rows == run_lab(["long-squeeze"], [1], levers, duration_s=600.0)
    by = {r["lever"]: r for r in rows}
    assert list(by) == ["none", "dynamic-margin", "liquidity-injection"]
    assert by["none"]["margin_liquidated_usd"] == by["none"]["injector_loss_usd"] == 0.0
    assert by["dynamic-margin"]["margin_liquidated_usd"] > 0  # a raise in a stressed market liquidates someone
    assert by["liquidity-injection"]["injector_loss_usd"] > 0  # bids bought into a falling market
    summary = summarize(rows)
    assert [(e["lever"], e["seeds"], e["forced_usd"]["sd"]) for e in summary] == [
        ("none", 1, 0.0),
        ("dynamic-margin", 1, 0.0),
        ("liquidity-injection", 1, 0.0),
    ]
    margin = summary[1]
    assert margin["forced_vs_none"] == round(by["dynamic-margin"]["forced_usd"] / by["none"]["forced_usd"] - 1, 4)


def test_mitigate_cli_prints_a_table_and_progress(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["mitigate", "--scenarios", "stop-run", "--seeds", "2", "--levers", "circuit-breaker", "--duration", "120"]
    assert main(argv) == 0
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert lines[0].startswith("| scenario | lever | seeds | forced M$ |")
    assert [line.split(" | ")[1] for line in lines[2:]] == ["none", "circuit-breaker"]
    assert "mitigate 1/2: stop-run seed=2 none" in err and "mitigate 2/2: stop-run seed=2 circuit-breaker" in err
    assert main([*argv, "--json", "--quiet"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [r["lever"] for r in data["runs"]] == ["none", "circuit-breaker"]


def test_simulate_cli_applies_the_lever_and_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["simulate", "--scenario", "long-squeeze", "--seed", "1", "--duration", "120", "--quiet", "--json"]
    argv += ["--out", str(tmp_path / "m.rec"), "--mitigation", "dynamic-margin", "--margin-every-s", "10"]
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["mitigation"]["lever"] == "dynamic-margin"
    assert "mitigation=dynamic-margin" in (tmp_path / "m.rec").read_text().splitlines()[0]
    with pytest.raises(ValueError, match="unknown mitigation"):
        simulate(SCENARIOS["calm"].with_mitigation(Mitigation("prayer")), 1, 10.0, None)


def test_grandfathered_margin_liquidates_nobody_at_a_raise(tmp_path: Path) -> None:
    m = Mitigation("dynamic-margin", margin_new_only=True)
    result = run_scenario(SCENARIOS["long-squeeze"].with_duration(600.0).with_mitigation(m), 1, None, tmp_path / "t")
    events = [json.loads(line) for line in (tmp_path / "t").read_text().splitlines()]
    raises = [e for e in events if e["type"] == "mitigation" and e["event"] == "mmr"]
    assert raises and all(e["liquidated"] == 0 for e in raises)
    assert max(e["mmr"] for e in raises) > 0.0065  # above every venue's base rate
    assert result.mitigation["lever"] == "dynamic-margin (new positions)"
    assert result.mitigation["margin_liquidated_usd"] == 0.0


def test_a_banded_breaker_trades_nothing_below_the_price_it_tripped_at(tmp_path: Path) -> None:
    """Band mode: while tripped (down), no venue prints a trade below its mid at the trip (the
    level of the floor's cell may sit up to one cell, about 0.5 bps, under it), and each trades
    down to it: the band binds."""
    m = Mitigation("circuit-breaker", breaker_mode="band")
    sc = SCENARIOS["long-squeeze"].with_mitigation(m)
    result = run_scenario(sc, 1, tmp_path / "b.rec", tmp_path / "b.jsonl")
    events = [json.loads(line) for line in (tmp_path / "b.jsonl").read_text().splitlines()]
    marks = [e for e in events if e["type"] == "mitigation"]
    assert [e["event"] for e in marks] == ["band", "resume"]
    start, end, floors = marks[0]["ts"], marks[1]["ts"], marks[0]["at"]
    decoder = FrameDecoder()
    lowest: dict[str, float] = {}
    for frame in RecordingReader(tmp_path / "b.rec"):
        for ev in decoder.decode(frame.source, frame.payload, frame.recv).events:
            if isinstance(ev, Trade) and start * 10**6 < ev.ts < end * 10**6:
                lowest[ev.venue] = min(lowest.get(ev.venue, ev.price), ev.price)
    assert set(lowest) == set(floors)
    # every venue traded down to its floor and not below it: the band binds
    assert all(floors[v] * (1 - 1e-4) <= lowest[v] <= floors[v] * (1 + 5e-4) for v in floors), (lowest, floors)
    assert result.mitigation == {"lever": "circuit-breaker (band)", "tripped_s": (end - start) // 1000}
