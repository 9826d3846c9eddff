"""Live alert latency: exchange event time -> alert written to the (SQLite) outbox.

A fake Binance USD-M (``tests/live_fakes.py``, in a server process of its own) sends ``rate``
frames per second on loopback (aggTrade and depth diffs, round robin over ``symbols``
instruments); one instrument after another goes through a scripted long-liquidation cascade:
a forced sell (``forceOrder``) of 200,000 USD every 50 ms, the price 60 bps lower from the first
one on (the in-progress checks measure the move from the cascade's start, the first forced
sell). The fifth one takes the liquidations over the window to 1,000,000 USD, the default
``regime_min_liq_usd``, with the move past ``regime_min_move_bps`` (50): that forced sell's
exchange time ``E`` is the cascade's *trigger event*. The cascades start ``spacing_s`` apart
(not a whole number of seconds, so the trigger events fall at every phase of a second).

The live session (:func:`cascadewatch.pipelines.run.live.run_live`, defaults, one worker) runs
against it and writes its alerts to a real SQLite outbox; per instrument, the latency is the
outbox's ``enqueued_at`` of the first cascade ``trigger`` of its down key minus the trigger
event's exchange time. Reported: p50, p99 and max over the instruments, and which alert came
first (``provisional`` or the per-second ``trigger``).

Needs the source tree (the fakes live in ``tests/``): ``python -m
cascadewatch.pipelines.bench.alert_latency`` from the repository, as ``make bench`` does; it
prints JSON, :func:`bench_alert_latency` returns the same dict.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import msgspec

TESTS = Path(__file__).resolve().parents[2] / "tests"
SYMBOLS = ("BTCUSDT", "ETHUSDT", "BCHUSDT", "XRPUSDT", "EOSUSDT", "LTCUSDT", "TRXUSDT", "ETCUSDT", "LINKUSDT",
           "XLMUSDT", "ADAUSDT", "XMRUSDT", "DASHUSDT", "ZECUSDT", "XTZUSDT", "BNBUSDT")  # fmt: skip
"""Instruments of the fake's exchange info (the recorded Binance session's), one cascade each."""
PRICE = 30_000.0
LIQ_USD = 200_000.0
LIQ_EVERY_S = 0.05
LIQS_TO_CROSS = 5
"""Forced sells of ``LIQ_USD`` until the cascade's liquidations reach 1,000,000 USD."""


class _Market:
    """The server process's script: paced frames, cascades, trigger event times."""

    def __init__(self, fake: Any, symbols: list[str], rate: float, spacing_s: float) -> None:
        self.fake = fake
        self.symbols = symbols
        self.rate = rate
        self.spacing_s = spacing_s
        self.price = dict.fromkeys(symbols, PRICE)
        self.triggers: dict[str, int] = {}
        self.frames = 0
        self.seconds = 0.0

    async def cascade(self, symbol: str) -> None:
        """Forced sells, the price 60 bps down after the first; note the exchange time of the one
        that crosses."""
        for i in range(LIQS_TO_CROSS + 3):
            price = self.price[symbol]
            await self.fake.force_order(symbol, price, round(LIQ_USD / price, 6))
            self.price[symbol] = PRICE * (1 - 0.006)
            if i + 1 == LIQS_TO_CROSS:
                self.triggers[symbol] = time.time_ns() // 1_000_000
            await asyncio.sleep(LIQ_EVERY_S)

    async def run(self, warmup_s: float, tail_s: float) -> None:
        """Send the paced stream; start each cascade on time; stop ``tail_s`` after the last."""
        while sum(1 for c in self.fake.clients if c.topics and c.closed is None) < 2:
            await asyncio.sleep(0.01)
        start = time.perf_counter()
        starts = [warmup_s + i * self.spacing_s for i in range(len(self.symbols))]
        end = starts[-1] + tail_s
        tasks: list[asyncio.Future[None]] = []
        i = 0
        while (elapsed := time.perf_counter() - start) < end:
            if starts and elapsed >= starts[0]:
                starts.pop(0)
                tasks.append(asyncio.ensure_future(self.cascade(self.symbols[len(tasks)])))
            symbol = self.symbols[(i // 2) % len(self.symbols)]
            if i % 2:
                await self.fake.depth_diff(symbol)
            else:
                await self.fake.agg_trade(symbol, self.price[symbol])
            i += 1
            self.frames = i
            delay = start + i / self.rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            elif i % 64 == 0:
                await asyncio.sleep(0)
        self.seconds = time.perf_counter() - start
        await asyncio.gather(*tasks)


def _serve(args: argparse.Namespace) -> int:
    """The server process: print the fake's URLs, run the market, write the trigger times."""
    sys.path.insert(0, str(TESTS))
    fakes = importlib.import_module("live_fakes")  # the test suite's fake venues (tests/live_fakes.py)
    FakeBinance, SimBook = fakes.FakeBinance, fakes.SimBook

    symbols = list(SYMBOLS[: args.symbols])
    with FakeBinance() as fake:
        for seed, symbol in enumerate(symbols):
            fake.books[symbol] = SimBook(seed=seed + 1)
        print(json.dumps({"market": fake.ws_url("/market/stream"), "public": fake.ws_url("/public/stream"),
                          "rest": fake.rest_url}), flush=True)  # fmt: skip
        market = _Market(fake, symbols, args.rate, args.spacing)
        fake.call(market.run(args.warmup, args.tail), timeout=3600)
        sent = {"triggers": market.triggers, "frames": market.frames, "seconds": market.seconds}
        Path(args.serve).write_text(json.dumps(sent))
    return 0


def _percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile ``q`` (0..1) of ``values``."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered) + 0.5) - 1))]


def _first_pages(outbox: Path) -> dict[str, tuple[str, float]]:
    """Per asset: the first cascade trigger of its down key in the outbox, ``(how, enqueued_at)``."""
    db = sqlite3.connect(outbox)
    try:
        rows = db.execute("SELECT body, enqueued_at FROM alerts ORDER BY enqueued_at").fetchall()
    finally:
        db.close()
    first: dict[str, tuple[str, float]] = {}
    for body, enqueued_at in rows:
        alert = json.loads(body)
        if alert["kind"] == "cascade" and alert["action"] == "trigger" and alert["direction"] == "down":
            how = "provisional" if alert.get("provisional") else "per-second"
            first.setdefault(alert["asset"], (how, enqueued_at))
    return first


def bench_alert_latency(
    symbols: int = 16, rate: float = 10_000.0, spacing_s: float = 0.73, config_toml: str | None = None
) -> dict[str, Any]:
    """Run the fake market and a live session against it; latency per cascade (see the module docstring).

    ``config_toml``: a config file for the live session (default: the defaults); its ``[live]``
    and ``[alerts]`` are replaced (the fake venue, a fresh outbox). ``[provisional] enabled =
    false`` measures the per-second alerts alone.
    """
    from cascadewatch.connectors.alerts.config import AlertsConfig
    from cascadewatch.connectors.live_config import LiveConfig, VenueConfig
    from cascadewatch.pipelines.config import Config, load_config
    from cascadewatch.pipelines.run.live import LiveOptions, run_live

    warmup_s, tail_s = 4.0, 5.0
    with tempfile.TemporaryDirectory(prefix="cascadewatch-latency-") as scratch:
        out = Path(scratch)
        command = [sys.executable, "-m", "cascadewatch.pipelines.bench.alert_latency", "--serve", str(out / "t.json")]
        command += ["--symbols", str(symbols), "--rate", str(rate), "--spacing", str(spacing_s)]
        command += ["--warmup", str(warmup_s), "--tail", str(tail_s)]
        server = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        try:
            assert server.stdout is not None
            urls = json.loads(server.stdout.readline())
            venue = VenueConfig(ws_url=urls["market"], ws_book_url=urls["public"], rest_url=urls["rest"],
                                symbols=list(SYMBOLS[:symbols]), poll_s=0.0)  # fmt: skip
            live = LiveConfig(venues=["binance"], queue_size=1_000_000, staleness_s=60.0).with_venue("binance", venue)
            base = load_config(config_toml) if config_toml else Config()
            # the config file's tables, the fake's venue and a fresh outbox (no destinations)
            config = msgspec.structs.replace(base, live=live, alerts=AlertsConfig(outbox=str(out / "outbox.sqlite")))
            duration = warmup_s + (symbols - 1) * spacing_s + tail_s + 6.0
            run_live(
                config,
                live,
                LiveOptions(
                    duration_s=duration, alerts_out=out / "alerts.jsonl", snapshots_out=out / "snapshots.jsonl",
                    dead_letters_out=out / "dead.jsonl", serve_metrics=False, deliver_alerts=True,
                    serve_riskfeed=False,
                ),
            )  # fmt: skip
        finally:
            server.wait(60)
        sent = json.loads((out / "t.json").read_text())
        triggers = sent["triggers"]
        pages = _first_pages(out / "outbox.sqlite")
    asset_of = {symbol: symbol.removesuffix("USDT") + "-USDT" for symbol in triggers}
    latencies = {s: pages[asset_of[s]][1] - ms / 1000.0 for s, ms in triggers.items() if asset_of[s] in pages}
    values = list(latencies.values())
    return {
        "rate": rate,
        "rate_sent": round(sent["frames"] / sent["seconds"]),
        "cascades": len(triggers),
        "paged": len(values),
        "first_page_by": sorted({pages[asset_of[s]][0] for s in latencies}),
        "latency_s_p50": round(_percentile(values, 0.5), 3) if values else None,
        "latency_s_p99": round(_percentile(values, 0.99), 3) if values else None,
        "latency_s_max": round(max(values), 3) if values else None,
        "latency_s": {s: round(v, 3) for s, v in sorted(latencies.items())},
    }


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark (``python -m cascadewatch.pipelines.bench.alert_latency``); returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--serve", metavar="TRIGGERS_JSON", help=argparse.SUPPRESS)
    parser.add_argument("--symbols", type=int, default=16, help="instruments, one cascade each (max 16)")
    parser.add_argument("--rate", type=float, default=10_000.0, help="frames per second the fake sends")
    parser.add_argument("--spacing", type=float, default=0.73, help="seconds between cascade starts")
    parser.add_argument("--warmup", type=float, default=4.0, help=argparse.SUPPRESS)
    parser.add_argument("--tail", type=float, default=5.0, help=argparse.SUPPRESS)
    parser.add_argument("--config", help="config file of the live session (default: the defaults)")
    args = parser.parse_args(argv)
    if args.serve:
        return _serve(args)
    print(json.dumps(bench_alert_latency(args.symbols, args.rate, args.spacing, args.config), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
