"""Provisional cascade alerts (cascadewatch.pipelines.steps.provisional): known answers on a
scripted Binance stream, the outbox they reach at once, no second page for the per-second alert
that confirms one, the same bytes for any batch size and worker count, and the same alerts from
a live run against the fake venue and from the replay of its tap."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path

import pytest
from live_fakes import FakeBinance, SimBook
from live_support import FAST_BACKOFF, tapped_options

from cascadewatch.connectors.alerts.config import AlertsConfig
from cascadewatch.connectors.events import Liquidation, Trade
from cascadewatch.connectors.live_config import LiveConfig, VenueConfig
from cascadewatch.connectors.sources import Watermark
from cascadewatch.pipelines.cli.main import main
from cascadewatch.pipelines.config import Config, ReplayConfig
from cascadewatch.pipelines.run.live import run_live
from cascadewatch.pipelines.run.replay import ReplayOptions, run_replay
from cascadewatch.pipelines.steps.provisional import InstrumentTrigger, ProvisionalRule, ProvisionalWatch

RECORDINGS = Path(__file__).parent / "fixtures" / "recordings"
S = 1_000_000_000
MS = 1_000_000
T0 = 1_700_000_000 * S
"""The scripted stream's start (receive time, ns; on a second)."""
CROSS = T0 + 5_400 * MS + 123_456
"""Receive time of the fifth forced sell of 200,000 USD: the long liquidations reach 1,000,000 USD."""
RULE = ProvisionalRule.of(250, 60, 1_000_000.0, 50.0, 2.0)
"""The default rule: the label's thresholds (1M USD and 50 bps over 60 s), 2 s allowed lag."""


def trade(recv: int, price: float) -> Trade:
    return Trade("binance-usdm", "BTCUSDT", "BTC-USDT-PERP", recv - 5 * MS, recv, price, 0.01, "sell")


def liquidation(recv: int, price: float, usd: float) -> Liquidation:
    return Liquidation("binance-usdm", "BTCUSDT", "BTC-USDT-PERP", recv - 5 * MS, recv, price, usd / price, "long", usd)


def scripted_events() -> list[Trade | Liquidation]:
    """Trades at 30,000 every 100 ms up to 5.0 s, then at 29,800 (67 bps lower) from 5.1 s, after
    the first forced sell; forced sells of 200,000 USD at 5.05, 5.15, 5.25, 5.35 s and at
    ``CROSS``. The cascade starts at the first forced sell, whose bucket opens at 30,000."""
    events: list[Trade | Liquidation] = [trade(T0 + i * 100 * MS, 30_000.0) for i in range(51)]
    events += [trade(T0 + i * 100 * MS, 29_800.0) for i in range(51, 58)]
    events += [liquidation(T0 + ms * MS, 29_800.0, 200_000.0) for ms in (5_050, 5_150, 5_250, 5_350)]
    events.append(liquidation(CROSS, 29_800.0, 200_000.0))
    return sorted(events, key=lambda e: e.recv)


def test_the_trigger_crossed_at_t_fires_at_the_first_checkpoint_at_or_after_t() -> None:
    """Crossed at 5.400123456 s: the alert is stamped 5.5 s (the next checkpoint of 250 ms) and
    made when the first frame received after 5.5 s is read (the trade at 5.6 s), not earlier;
    it travels with the event-time second of that frame (5)."""
    trigger = InstrumentTrigger(RULE)
    events = scripted_events()
    until_checkpoint = [e for e in events if e.recv <= T0 + 5_500 * MS]
    assert until_checkpoint[-1].recv == T0 + 5_500 * MS  # a trade exactly at the checkpoint
    assert trigger.process([*until_checkpoint, Watermark(0, T0 + 3_500 * MS)]) == []
    later = events[len(until_checkpoint) :]
    (made,) = trigger.process(later[:1])
    assert later[0].recv == T0 + 5_600 * MS
    assert trigger.process(later[1:]) == []  # one alert per episode
    assert made.second == (T0 // S + 5) * 1000
    assert (made.asset, made.venue, made.instrument) == ("BTC-USDT", "binance-usdm", "BTC-USDT-PERP")
    alert = made.alert
    at_ms = T0 // MS + 5_500
    assert {k: alert[k] for k in ("action", "severity", "kind", "direction", "ts", "opened_ts", "provisional")} == {
        "action": "trigger",
        "severity": "critical",
        "kind": "cascade",
        "direction": "down",
        "ts": at_ms,
        "opened_ts": at_ms,
        "provisional": True,
    }
    assert alert["dedup_key"] == "BTC-USDT:cascade:down"
    assert alert["price"] == 29_800.0 and alert["liq_usd_60s"] == 1_000_000.0
    assert alert["summary"] == (
        "BTC-USDT DOWN: liquidation cascade starting (provisional, binance-usdm BTC-USDT-PERP): "
        "$1.0M longs liquidated and 67 bps in 60s"
    )


def test_a_price_that_fell_before_the_forced_sells_began_does_not_fire() -> None:
    """The same forced sells after the price has already fallen to 29,800 (at 5.0 s): the move
    from the cascade's start (the last price before the first forced sell) is 0 bps, though the
    window's high is 67 bps above, so the trigger does not hold (the label would not call this
    a cascade either); a fall of 30 more bps after the sells (to 29,710) fires, with 30 bps."""
    early = [
        e if not isinstance(e, Trade) or e.recv != T0 + 5 * S else trade(e.recv, 29_800.0) for e in scripted_events()
    ]
    assert sum(isinstance(e, Trade) and e.price == 29_800.0 for e in early) == 8
    assert InstrumentTrigger(RULE).process([*early, trade(T0 + 9 * S, 29_800.0)]) == []
    rule_30 = ProvisionalRule.of(250, 60, 1_000_000.0, 30.0, 2.0)
    (made,) = InstrumentTrigger(rule_30).process(
        [*early, trade(T0 + 5_800 * MS, 29_710.0), trade(T0 + 6_100 * MS, 29_710.0)]
    )
    assert made.alert["ts"] == T0 // MS + 6_000 and made.alert["summary"].endswith(
        "$1.0M longs liquidated and 30 bps in 60s"
    )


def test_a_later_wave_counts_from_its_own_start() -> None:
    """Wave one: 600,000 USD of forced sells (3.05-3.25 s) after the price had slid to 29,800, no
    move after them; the price recovers to 30,000; wave two: 400,000 USD more (10.05, 10.15 s)
    and the price falls to 29,820. From wave one's start the move is 0; from wave two's (the last
    price before its bucket: 30,000) 60 bps, with 1,000,000 USD in the window: it fires at the
    checkpoint of 10.25 s."""
    events: list[Trade | Liquidation] = [trade(T0 + i * 100 * MS, 30_000.0) for i in range(21)]
    events += [trade(T0 + i * 100 * MS, 29_800.0) for i in range(21, 51)]
    events += [liquidation(T0 + ms * MS, 29_800.0, 200_000.0) for ms in (3_050, 3_150, 3_250)]
    events += [trade(T0 + i * 100 * MS, 30_000.0) for i in range(51, 101)]
    events += [liquidation(T0 + ms * MS, 29_820.0, 200_000.0) for ms in (10_050, 10_150)]
    events += [trade(T0 + i * 100 * MS, 29_820.0) for i in range(101, 111)]
    (made,) = InstrumentTrigger(RULE).process(sorted(events, key=lambda e: e.recv))
    assert made.alert["ts"] == T0 // MS + 10_250
    assert made.alert["summary"].endswith("$1.0M longs liquidated and 60 bps in 60s")


def test_a_trigger_pickled_before_the_open_price_reads_the_start_bucket_high() -> None:
    """A state from before buckets kept their open price (six fields) unpickles with the open
    unknown; the start bucket's high (30,000: its open was counted in it) stands in, so the
    alert is the same."""
    import pickle

    events = scripted_events()
    head = [e for e in events if e.recv <= T0 + 5_300 * MS]
    trigger = InstrumentTrigger(RULE)
    assert trigger.process(head) == []
    state = trigger.__dict__.copy()
    state["buckets"] = type(trigger.buckets)(b[:6] for b in trigger.buckets)
    old = InstrumentTrigger.__new__(InstrumentTrigger)
    old.__setstate__(pickle.loads(pickle.dumps(state)))
    assert all(len(b) == 7 and b[6] is None for b in old.buckets)
    tail = [*events[len(head) :], trade(T0 + 6 * S, 29_800.0)]
    (made,) = old.process(tail)
    (again,) = InstrumentTrigger(RULE).process([*events, trade(T0 + 6 * S, 29_800.0)])
    assert made.alert == again.alert


def test_four_forced_sells_do_not_fire_and_a_provisional_alert_unconfirmed_is_resolved() -> None:
    trigger = InstrumentTrigger(RULE)
    events = [e for e in scripted_events() if e.recv != CROSS]
    assert trigger.process([*events, trade(T0 + 9 * S, 29_800.0)]) == []
    (made,) = InstrumentTrigger(RULE).process([*scripted_events(), trade(T0 + 6 * S, 29_800.0)])
    watch = ProvisionalWatch(confirm_s=10.0)
    second = made.second
    assert watch.update(second, (made,), {}) == []
    assert watch.update(second + 9_000, (), {}) == []
    (resolve,) = watch.update(second + 10_000, (), {})
    assert {k: resolve[k] for k in ("action", "dedup_key", "opened_ts", "ts", "provisional")} == {
        "action": "resolve",
        "dedup_key": "BTC-USDT:cascade:down",
        "opened_ts": made.alert["opened_ts"],
        "ts": second + 10_000,
        "provisional": True,
    }
    confirmed = ProvisionalWatch(confirm_s=10.0)
    assert confirmed.update(second, (made,), {}) == []
    assert confirmed.update(second + 1_000, (), {"BTC-USDT:cascade:down": "critical"}) == []
    assert confirmed.update(second + 20_000, (), {}) == []  # confirmed: the policy resolves it


def write_recording(path: Path, tail_s: int = 240) -> Path:
    """The scripted stream as Binance frames (exchange info from the real session's bootstrap),
    then a trade at 29,800 every second for ``tail_s`` s (the per-second incident resolves)."""
    with (RECORDINGS / "binance-usdm-2021-07-22-head.rec").open() as real:
        info = next(line for line in real if "/fapi/v1/exchangeInfo" in line).split(" ", 2)[2]
    lines = ["# cascadewatch-recording v1 scripted cascade\n", f"{T0 - S} binance-usdm!rest {info}"]
    events = scripted_events() + [trade(T0 + i * S, 29_800.0) for i in range(7, 7 + tail_s)]
    for i, event in enumerate(events):
        ms = (event.ts) // MS
        if isinstance(event, Trade):
            data = {"e": "aggTrade", "E": ms, "a": i, "s": "BTCUSDT", "p": f"{event.price:.1f}", "q": "0.010",
                    "f": i, "l": i, "T": ms, "m": True}  # fmt: skip
            frame = {"stream": "btcusdt@aggTrade", "data": data}
        else:
            order = {"s": "BTCUSDT", "S": "SELL", "o": "LIMIT", "f": "IOC", "q": f"{event.qty:.9f}",
                     "p": f"{event.price:.1f}", "ap": f"{event.price:.1f}", "X": "FILLED",
                     "l": f"{event.qty:.9f}", "z": f"{event.qty:.9f}", "T": ms}  # fmt: skip
            frame = {"stream": "btcusdt@forceOrder", "data": {"e": "forceOrder", "E": ms, "o": order}}
        lines.append(f"{event.recv} binance-usdm {json.dumps(frame, separators=(',', ':'))}\n")
    path.write_text("".join(lines))
    return path


@pytest.fixture(scope="module")
def scripted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_recording(tmp_path_factory.mktemp("scripted") / "cascade.rec")


def _replay(out: Path, recording: Path, **kwargs) -> bytes:
    run_replay([recording], options=ReplayOptions(alerts_out=out / "alerts.jsonl", **kwargs))
    return (out / "alerts.jsonl").read_bytes()


def test_replays_give_the_same_provisional_and_per_second_alerts_for_any_batch_size_and_workers(
    tmp_path: Path, scripted: Path
) -> None:
    reference = _replay(tmp_path / "ref", scripted, batch_size=1000)
    alerts = [json.loads(line) for line in reference.splitlines()]
    assert [(a["action"], a.get("provisional", False), a["ts"] - T0 // MS) for a in alerts] == [
        ("trigger", True, 5_500),  # the provisional alert, first in its second (5)
        ("trigger", False, 5_000),  # the per-second trigger of second 5 confirms it
        ("resolve", False, alerts[2]["ts"] - T0 // MS),
    ]
    assert alerts[2]["ts"] - T0 // MS >= 125_000  # held 120 s at least
    assert {a["dedup_key"] for a in alerts} == {"BTC-USDT:cascade:down"}
    for batch_size, workers in ((1, 1), (1000, 2), (1, 2)):
        assert _replay(tmp_path / f"b{batch_size}w{workers}", scripted, batch_size=batch_size, workers=workers) == (
            reference
        )


def test_the_outbox_gets_the_provisional_alert_and_pages_the_desk_once(tmp_path: Path, scripted: Path) -> None:
    """Replayed with --deliver to a JSONL destination: the provisional trigger pages; the
    per-second trigger that confirms it is stored without a delivery; the per-second resolve
    goes to the destination the provisional alert paged."""
    delivered = tmp_path / "delivered.jsonl"
    outbox = tmp_path / "outbox.sqlite"
    config = tmp_path / "config.toml"
    config.write_text(
        f'[alerts]\noutbox = "{outbox}"\n[[alerts.destinations]]\nname = "desk"\ntype = "jsonl"\npath = "{delivered}"\n'
    )
    argv = ["replay", str(scripted), "--config", str(config), "--deliver", "--quiet"]
    assert main([*argv, "--alerts-out", str(tmp_path / "alerts.jsonl")]) == 0
    produced = [json.loads(line) for line in (tmp_path / "alerts.jsonl").read_text().splitlines()]
    provisional, confirming, resolve = produced
    db = sqlite3.connect(outbox)
    try:
        stored = dict(db.execute("SELECT id, body FROM alerts").fetchall())
        deliveries = db.execute("SELECT alert_id, destination, action FROM deliveries ORDER BY seq").fetchall()
    finally:
        db.close()
    assert set(stored) == {provisional["id"], confirming["id"], resolve["id"]}
    assert json.loads(stored[provisional["id"]])["ts"] == T0 // MS + 5_500
    assert deliveries == [(provisional["id"], "desk", "trigger"), (resolve["id"], "desk", "resolve")]
    sent = [json.loads(line) for line in delivered.read_text().splitlines()]
    assert [(a["id"], a["action"]) for a in sent] == [(provisional["id"], "trigger"), (resolve["id"], "resolve")]


def test_a_live_run_writes_the_provisional_alert_to_the_outbox_and_its_tap_replays_the_same(tmp_path: Path) -> None:
    """The fake venue: trades, then six forced sells of 200,000 USD 10 ms apart, the price 60 bps
    lower from the second one on (the move counts from the first forced sell). The run writes a
    provisional alert to the outbox before the per-second one; the replay of the run's tap
    gives the same alerts (up to the audit manifest, which names the inputs)."""
    with FakeBinance() as fake:
        fake.books["BTCUSDT"] = SimBook(seed=5)
        venue = VenueConfig(
            ws_url=fake.ws_url("/market/stream"),
            ws_book_url=fake.ws_url("/public/stream"),
            rest_url=fake.rest_url,
            symbols=["BTCUSDT"],
            poll_s=0.0,
        )
        live = LiveConfig(venues=["binance"], backoff=FAST_BACKOFF, binance=venue)

        async def market() -> None:
            while sum(1 for c in fake.clients if c.topics and c.closed is None) < 2:
                await asyncio.sleep(0.01)
            for i in range(300):
                price = 30_000.0 if i <= 105 else 29_820.0
                await fake.agg_trade("BTCUSDT", price)
                if i % 5 == 0:
                    await fake.depth_diff("BTCUSDT")
                if 105 <= i < 111:
                    await fake.force_order("BTCUSDT", price, round(200_000 / price, 6))
                await asyncio.sleep(0.01)

        running = fake.spawn(market())
        config = Config(
            replay=ReplayConfig(allowed_lag_s=0.5), alerts=AlertsConfig(outbox=str(tmp_path / "outbox.sqlite"))
        )
        live_out = tmp_path / "live"
        run_live(
            config,
            live,
            tapped_options(live_out, 5.5, tmp_path / "tap.rec", deliver_alerts=True),
        )
        running.result(5)
    live_alerts = (live_out / "alerts.jsonl").read_bytes().splitlines()
    triggers = [json.loads(a) for a in live_alerts if json.loads(a)["action"] == "trigger"]
    (provisional,) = [a for a in triggers if a.get("provisional")]
    (per_second,) = [a for a in triggers if not a.get("provisional")]
    assert provisional["dedup_key"] == per_second["dedup_key"] == "BTC-USDT:cascade:down"
    db = sqlite3.connect(tmp_path / "outbox.sqlite")
    try:
        enqueued = [row[0] for row in db.execute("SELECT id FROM alerts ORDER BY enqueued_at, rowid")]
    finally:
        db.close()
    # in the outbox at once: before the per-second trigger, which waits for its second to close
    # and the allowed lag (0.5 s), while the provisional one waits for the next checkpoint (0.25 s)
    assert enqueued.index(provisional["id"]) < enqueued.index(per_second["id"])
    (tap,) = sorted(tmp_path.glob("tap.*.rec"))
    replay_out = tmp_path / "replay"
    run_replay([tap], config, ReplayOptions(alerts_out=replay_out / "alerts.jsonl"))
    replay_alerts = (replay_out / "alerts.jsonl").read_bytes().splitlines()
    assert [a[: a.rindex(b',"audit":')] for a in replay_alerts] == [a[: a.rindex(b',"audit":')] for a in live_alerts]


def test_one_provisional_alert_per_episode_until_the_trigger_has_been_quiet_for_a_window() -> None:
    """A bounce (the move falls below 50 bps for a check) does not fire the trigger again;
    after 60 s of checks at which it did not hold, a new wave of forced sells does."""
    trigger = InstrumentTrigger(RULE)
    (first,) = trigger.process(scripted_events())  # checked at 5.5 s (the frame of 5.6 s)
    assert first.alert["ts"] == T0 // MS + 5_500
    bounce = [trade(T0 + 6 * S, 30_000.0), trade(T0 + 6_300 * MS, 29_800.0), trade(T0 + 6_600 * MS, 29_800.0)]
    assert trigger.process(bounce) == []  # 6.0 s: the bounce (no move); 6.5 s: holds again, no new alert
    quiet = [trade(T0 + i * S, 29_800.0) for i in range(7, 128)]  # the sells leave the window at 65.5 s
    assert trigger.process(quiet) == []
    wave = [liquidation(T0 + 128 * S + i * MS, 29_800.0, 200_000.0) for i in range(5)]
    wave += [trade(T0 + 128_100 * MS, 29_600.0), trade(T0 + 128_300 * MS, 29_600.0)]
    (again,) = trigger.process(wave)
    assert again.alert["ts"] == T0 // MS + 128_250 and again.alert["liq_usd_60s"] == 1_000_000.0
