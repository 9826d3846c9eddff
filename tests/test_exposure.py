"""The desk's exposure: the book's checks (errors name the line), reloading (a bad file keeps
the previous book), the HTTP endpoint, routing on it, and a replay of the demo whose alerts
name exactly the positions inside the predicted reach, computed here by hand."""

from __future__ import annotations

import json
import logging
import socket
import urllib.error
import urllib.request
from pathlib import Path

import msgspec
import pytest

from cascadewatch.connectors.alerts.config import DestinationConfig
from cascadewatch.connectors.alerts.routing import Router
from cascadewatch.connectors.exposure import Book, ExposureError, ExposureFile, Order, Position, parse_book
from cascadewatch.connectors.exposure_endpoint import ExposureEndpoint
from cascadewatch.pipelines.cli.main import bundled_demo_recording, main
from cascadewatch.pipelines.config import ConfigError, load_config
from cascadewatch.pipelines.run.explain import explain
from cascadewatch.pipelines.run.live import _exposure_endpoint

DEMO = bundled_demo_recording()
BOOK = """\
[[position]]
asset = "BTC-USDT"
side = "short"
size = 2.0
stop = 56000.0

[[position]]
asset = "BTC-USDT"
side = "short"
size = 1.0
stop = 60000.0            # beyond the reach up

[[position]]
asset = "BTC-USDT"
side = "long"
size = 3.0
stop = 54000.0
liquidation = 47000.0     # beyond the reach down

[[order]]
asset = "BTC-USDT"
side = "sell"
size = 0.5
price = 57000.0

[[position]]
asset = "ETH-USDT"        # another asset
side = "short"
size = 10.0
stop = 3000.0
"""


def test_a_good_book_in_toml_and_csv() -> None:
    book = parse_book(BOOK, "book.toml")
    assert book.positions[0] == Position("BTC-USDT", "short", 2.0, 56000.0, None)
    assert book.orders == (Order("BTC-USDT", "sell", 0.5, 57000.0),)
    csv_text = (
        "kind,asset,side,size,price,stop,liquidation\n"
        "position,BTC-USDT,long,3,,54000,47000\n"
        "order,BTC-USDT,buy,1,53000,,\n"
    )
    assert parse_book(csv_text, "book.csv") == Book(
        (Position("BTC-USDT", "long", 3.0, 54000.0, 47000.0),), (Order("BTC-USDT", "buy", 1.0, 53000.0),)
    )


@pytest.mark.parametrize(
    ("name", "text", "error"),
    [
        ("book.toml", BOOK.replace("size = 1.0", "size = -1.0"), "book.toml:7: position 2: size -1.0 must be > 0"),
        ("book.toml", BOOK.replace('"ETH-USDT"', '"DOGE"'), "book.toml:26: position 4: unknown asset 'DOGE'"),
        (
            "book.toml",
            BOOK.replace('side = "sell"', 'side = "sideways"'),
            "book.toml:20: order 1: order side 'sideways' must be buy or sell",
        ),
        ("book.toml", "[[position]]\nasset = \nsize = 1\n", "book.toml:2: malformed TOML"),
        ("book.toml", BOOK.replace("stop = 56000.0\n", ""), "book.toml:1: position 1: a position needs a stop"),
        (
            "book.csv",
            "kind,asset,side,size,price,stop,liquidation\nposition,BTC-USDT,long,x,,1,\n",
            "book.csv:2: size 'x'",
        ),
        ("book.csv", "kind,asset\n", "book.csv:1: the header must be kind,asset,side,size,price,stop,liquidation"),
    ],
)
def test_bad_input_is_an_error_naming_the_line(name: str, text: str, error: str) -> None:
    with pytest.raises(ExposureError) as caught:
        parse_book(text, name)
    assert str(caught.value).startswith(error)


def test_a_bad_file_at_run_time_keeps_the_previous_book(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "book.toml"
    path.write_text(BOOK)
    exposure = ExposureFile(path)
    good = exposure.current()
    assert len(good.positions) == 4
    path.write_text(BOOK.replace("size = 2.0", "size = -20.0"))
    with caplog.at_level(logging.ERROR, logger="cascadewatch.exposure"):
        assert exposure.current() is good
    assert exposure.error == "book.toml:1: position 1: size -20.0 must be > 0"
    assert "the previous one stays in force: book.toml:1: position 1: size -20.0 must be > 0" in caplog.text
    path.write_text(BOOK.replace("size = 2.0", "size = 4.0"))
    assert exposure.current().positions[0].size == 4.0 and exposure.error is None


def test_the_endpoint_replaces_the_book_with_a_token(tmp_path: Path) -> None:
    path = tmp_path / "book.toml"
    path.write_text(BOOK)
    exposure = ExposureFile(path)
    endpoint = ExposureEndpoint(exposure, "desk-token-0123456789").start()
    url = f"http://127.0.0.1:{endpoint.port}/exposure"

    def put(body: str, token: str | None) -> tuple[int, dict]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        request = urllib.request.Request(url, body.encode(), headers, method="PUT")
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    try:
        assert put(BOOK, None)[0] == 401
        assert put(BOOK, "wrong")[0] == 401
        status, body = put(BOOK.replace("size = 2.0", "size = 0"), "desk-token-0123456789")
        assert (status, body) == (400, {"error": "book.toml:1: position 1: size 0 must be > 0"})
        assert path.read_text() == BOOK and exposure.current().positions[0].size == 2.0
        new = '[[order]]\nasset = "BTC-USDT"\nside = "buy"\nsize = 1.5\nprice = 50000.0\n'
        assert put(new, "desk-token-0123456789") == (200, {"positions": 0, "orders": 1})
        assert path.read_text() == new
        assert exposure.current() == Book((), (Order("BTC-USDT", "buy", 1.5, 50000.0),))
    finally:
        endpoint.stop()


def test_routing_on_exposure() -> None:
    route = Router(
        [
            DestinationConfig(name="oncall", type="console", severities=["critical"], exposure_only=True),
            DestinationConfig(name="all", type="console"),
        ]
    )
    mine = {"severity": "critical", "kind": "cascade", "asset": "BTC-USDT", "action": "trigger", "exposure": [{}]}
    assert route(mine) == ["oncall", "all"]
    assert route({**mine, "exposure": []}) == ["all"]
    assert route({k: v for k, v in mine.items() if k != "exposure"}) == ["all"]


@pytest.fixture(scope="module")
def desk_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("desk")
    (folder / "book.toml").write_text(BOOK)
    (folder / "cw.toml").write_text('[desk]\nexposure = "book.toml"\n')
    argv = ["replay", str(DEMO), "--config", str(folder / "cw.toml"), "--quiet"]
    assert main([*argv, "--alerts-out", str(folder / "alerts.jsonl"), "--snapshots-out", str(folder / "s.jsonl")]) == 0
    return folder


def test_demo_alerts_name_exactly_the_positions_inside_the_reach(desk_run: Path) -> None:
    alerts = [json.loads(line) for line in (desk_run / "alerts.jsonl").read_text().splitlines()]
    up, down = alerts[0], alerts[1]
    # up: price 55,145.65, reach 496.9 bps -> 57,885.8; the 2 BTC short's stop (56,000) and the sell at
    # 57,000 are inside, the short stopped at 60,000 is beyond, the long and ETH are not this way.
    assert (up["direction"], up["price"], up["reach_bps"]) == ("up", 55145.65, 496.9)
    assert up["exposure"] == [
        {"kind": "position", "side": "short", "size": 2.0, "level_kind": "stop", "level": 56000.0, "bps": 154.9},
        {"kind": "order", "side": "sell", "size": 0.5, "level_kind": "limit", "level": 57000.0, "bps": 336.3},
    ]
    assert up["summary"].startswith(
        "your 2 BTC shorts with stops at 56,000 (155 bps above) and your sell order for 0.5 BTC at 57,000 "
        "(336 bps above) are inside the predicted reach · BTC-USDT UP: "
    )
    # down: price 54,537.05, reach 808.3 bps -> 50,128.8; the long's stop (54,000, -98.5 bps) is inside,
    # its liquidation (47,000) is not.
    assert (down["direction"], down["price"], down["reach_bps"]) == ("down", 54537.05, 808.3)
    assert down["exposure"] == [
        {"kind": "position", "side": "long", "size": 3.0, "level_kind": "stop", "level": 54000.0, "bps": -98.5}
    ]
    assert down["summary"].startswith(
        "your 3 BTC longs with stops at 54,000 are inside the predicted reach, 98 bps below · BTC-USDT DOWN: "
    )
    assert [a.get("exposure") for a in alerts[2:]] == [None, None]  # resolves
    assert list(up)[-2:] == ["exposure", "audit"] and len(up["audit"]["exposure"]) == 16
    snapshots = [json.loads(line) for line in (desk_run / "s.jsonl").read_text().splitlines()]
    at_up = next(s for s in snapshots if s["ts"] == up["ts"])
    assert at_up["exposure"]["up"] == up["exposure"]


def test_explain_with_the_book_and_with_a_changed_book(desk_run: Path, tmp_path: Path) -> None:
    alert_id = json.loads((desk_run / "alerts.jsonl").read_text().splitlines()[1])["id"]
    same = explain(alert_id, load_config(desk_run / "cw.toml"), [DEMO], desk_run / "alerts.jsonl")
    assert same.identical and same.differences == []
    (tmp_path / "book.toml").write_text(BOOK.replace("stop = 54000.0", "stop = 54100.0"))
    (tmp_path / "cw.toml").write_text('[desk]\nexposure = "book.toml"\n')
    changed = explain(alert_id, load_config(tmp_path / "cw.toml"), [DEMO], desk_run / "alerts.jsonl")
    assert changed.differences[0].startswith("the exposure book differs: the alert was made with book ")
    assert any(d.startswith("field summary: the alert has") for d in changed.differences)
    assert not changed.identical and not changed.evidence_identical


def test_run_starts_the_endpoint_from_desk_config_and_needs_its_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "book.toml").write_text(BOOK)
    (tmp_path / "cw.toml").write_text('[desk]\nexposure = "book.toml"\nport = 1\ntoken_env = "CW_TEST_DESK_TOKEN"\n')
    config = load_config(tmp_path / "cw.toml")
    assert config.desk.exposure == str(tmp_path / "book.toml")  # relative to the config file
    exposure = ExposureFile(config.desk.exposure)
    monkeypatch.delenv("CW_TEST_DESK_TOKEN", raising=False)
    with pytest.raises(ConfigError, match="environment variable CW_TEST_DESK_TOKEN .* is not set"):
        _exposure_endpoint(config, exposure)
    monkeypatch.setenv("CW_TEST_DESK_TOKEN", "desk-token-abcdefgh")
    config = msgspec.structs.replace(config, desk=msgspec.structs.replace(config.desk, port=_free_port()))
    endpoint = _exposure_endpoint(config, exposure)
    assert endpoint is not None
    try:
        request = urllib.request.Request(
            f"http://127.0.0.1:{endpoint.port}/exposure", headers={"Authorization": "Bearer desk-token-abcdefgh"}
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            shown = json.loads(response.read())
        assert len(shown["positions"]) == 4 and shown["error"] is None
    finally:
        endpoint.stop()
    with pytest.raises(ValueError, match="desk: port needs token_env"):
        (tmp_path / "bad.toml").write_text('[desk]\nexposure = "book.toml"\nport = 8766\n')
        load_config(tmp_path / "bad.toml")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
