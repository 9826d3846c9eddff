"""A start-up in which no venue ever connects ends with the reason (exit 1), for ``run`` and
``record``; one venue up is a successful start."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from live_fakes import FakeBinance, SimBook
from live_support import FAST_BACKOFF

from cascadewatch.connectors.live_config import FeedStartError, LiveConfig, VenueConfig
from cascadewatch.pipelines.cli.live import main as live_main
from cascadewatch.pipelines.config import Config
from cascadewatch.pipelines.run.live import LiveOptions, record, run_live

DOWN = VenueConfig(ws_url="ws://127.0.0.1:9/ws", rest_url="http://127.0.0.1:9", symbols=["BTC-USDT-SWAP"])


def _down(**overrides: object) -> LiveConfig:
    return LiveConfig(
        venues=["okx"], okx=DOWN, backoff=FAST_BACKOFF, startup_timeout_s=1.0, rest_timeout_s=0.5, **overrides
    )


def test_run_with_no_venue_reachable_ends_with_the_reason(tmp_path: Path) -> None:
    started = time.monotonic()
    options = LiveOptions(
        duration_s=30.0,
        alerts_out=tmp_path / "alerts.jsonl",
        snapshots_out=tmp_path / "snapshots.jsonl",
        dead_letters_out=tmp_path / "dead.jsonl",
        serve_metrics=False,
        serve_riskfeed=False,
    )
    with pytest.raises(FeedStartError, match=r"no venue connected within 1 s \(okx-swap: public: connect failed: "):
        run_live(Config(), _down(), options)
    assert time.monotonic() - started < 6.0  # not the 30 s asked for


def test_record_with_no_venue_reachable_exits_1_naming_the_venue(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(FeedStartError, match="okx-swap"):
        record(_down(), tmp_path / "out.rec", duration_s=30.0, serve_metrics=False)
    config = tmp_path / "live.toml"
    config.write_text(
        '[live]\nvenues = ["okx"]\nstartup_timeout_s = 1.0\nrest_timeout_s = 0.5\n'
        '[live.okx]\nws_url = "ws://127.0.0.1:9/ws"\nrest_url = "http://127.0.0.1:9"\n'
    )
    code = live_main(
        ["record", "--out", str(tmp_path / "cli.rec"), "--config", str(config), "--duration", "30", "--quiet"]
    )
    assert code == 1
    assert "no venue connected within 1 s (okx-swap:" in capsys.readouterr().out


def test_one_venue_up_is_a_start(tmp_path: Path) -> None:
    """Binance answers, OKX does not: the start succeeds and the run lasts its duration."""
    with FakeBinance() as fake:
        fake.books["BTCUSDT"] = SimBook(seed=5)
        live = LiveConfig(
            venues=["binance", "okx"],
            backoff=FAST_BACKOFF,
            startup_timeout_s=0.5,
            rest_timeout_s=0.5,
            okx=DOWN,
            binance=VenueConfig(
                ws_url=fake.ws_url("/market/stream"),
                ws_book_url=fake.ws_url("/public/stream"),
                rest_url=fake.rest_url,
                symbols=["BTCUSDT"],
            ),
        )
        summary = record(live, tmp_path / "out.rec", duration_s=1.5, serve_metrics=False)
    assert summary.frames["binance-usdm!conn"] >= 2
