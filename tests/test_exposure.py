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


def _alerts(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _desk_book(trigger: dict, stop_share: float = 0.25) -> tuple[str, list[dict], str]:
    """A book around the demo's first cascade trigger (its price P and reach R bps, direction d):
    levels placed at shares of the reach from P, so which lie inside is known by construction.
    Returns the book, the items inside (computed here by hand) and the sentence they make."""
    price, reach, direction = trigger["price"], trigger["reach_bps"], trigger["direction"]
    sign = -1 if direction == "down" else 1
    lose, other, fill = ("long", "short", "buy") if direction == "down" else ("short", "long", "sell")

    def at(share: float) -> float:  # a price `share` of the reach away from P, that way
        return round(price * (1 + sign * share * reach / 1e4), 2)

    book = (
        f'[[position]]\nasset = "BTC-USDT"\nside = "{lose}"\nsize = 2.0\nstop = {at(stop_share)}\n'
        f"liquidation = {at(1.5)}\n\n"  # the stop is inside, the liquidation beyond the reach
        f'[[position]]\nasset = "BTC-USDT"\nside = "{lose}"\nsize = 1.0\nstop = {at(1.2)}\n\n'  # beyond
        f'[[position]]\nasset = "BTC-USDT"\nside = "{other}"\nsize = 3.0\nstop = {at(-0.1)}\n\n'  # loses the other way
        f'[[order]]\nasset = "BTC-USDT"\nside = "{fill}"\nsize = 0.5\nprice = {at(0.6)}\n\n'  # fills
        f'[[order]]\nasset = "BTC-USDT"\nside = "{fill}"\nsize = 1.0\nprice = {at(1.1)}\n\n'  # beyond
        f'[[position]]\nasset = "ETH-USDT"\nside = "{lose}"\nsize = 10.0\nstop = 3000.0\n'  # another asset
    )
    bps = [round((at(share) / price - 1) * 1e4, 1) for share in (stop_share, 0.6)]
    inside = [
        {"kind": "position", "side": lose, "size": 2.0, "level_kind": "stop", "level": at(stop_share), "bps": bps[0]},
        {"kind": "order", "side": fill, "size": 0.5, "level_kind": "limit", "level": at(0.6), "bps": bps[1]},
    ]
    where = "below" if direction == "down" else "above"
    sentence = (
        f"your 2 BTC {lose}s with stops at {at(stop_share):,.6g} ({abs(bps[0]):.0f} bps {where}) and your {fill} "
        f"order for 0.5 BTC at {at(0.6):,.6g} ({abs(bps[1]):.0f} bps {where}) are inside the predicted reach"
    )
    return book, inside, sentence


@pytest.fixture(scope="module")
def desk_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, list[dict], str]:
    folder = tmp_path_factory.mktemp("desk")
    assert main(["replay", str(DEMO), "--alerts-out", str(folder / "plain.jsonl"), "--quiet"]) == 0
    plain = _alerts(folder / "plain.jsonl")
    trigger = next(a for a in plain if a["kind"] == "cascade" and a["action"] == "trigger")
    book, inside, sentence = _desk_book(trigger)
    (folder / "book.toml").write_text(book)
    (folder / "cw.toml").write_text('[desk]\nexposure = "book.toml"\n')
    argv = ["replay", str(DEMO), "--config", str(folder / "cw.toml"), "--quiet"]
    assert main([*argv, "--alerts-out", str(folder / "alerts.jsonl"), "--snapshots-out", str(folder / "s.jsonl")]) == 0
    return folder, trigger, inside, sentence


def test_demo_alerts_name_exactly_the_positions_inside_the_reach(desk_run: tuple) -> None:
    folder, plain_trigger, inside, sentence = desk_run
    alerts = _alerts(folder / "alerts.jsonl")
    mine = next(a for a in alerts if a["id"] == plain_trigger["id"])
    assert mine["exposure"] == inside
    assert mine["summary"] == f"{sentence} · {plain_trigger['summary']}"
    # the book changes nothing else: the same alerts, the same evidence
    assert [a["id"] for a in alerts] == [a["id"] for a in _alerts(folder / "plain.jsonl")]
    assert {k: v for k, v in mine.items() if k not in ("summary", "exposure", "audit")} == {
        k: v for k, v in plain_trigger.items() if k not in ("summary", "audit")
    }
    assert all("exposure" not in a for a in alerts if a["action"] == "resolve")
    assert list(mine)[-2:] == ["exposure", "audit"] and len(mine["audit"]["exposure"]) == 16
    snapshots = [json.loads(line) for line in (folder / "s.jsonl").read_text().splitlines()]
    at_trigger = next(s for s in snapshots if s["ts"] == mine["ts"] and s["asset"] == mine["asset"])
    assert at_trigger["exposure"][mine["direction"]] == inside


def test_explain_with_the_book_and_with_a_changed_book(desk_run: tuple, tmp_path: Path) -> None:
    folder, trigger, _, _ = desk_run
    same = explain(trigger["id"], load_config(folder / "cw.toml"), [DEMO], folder / "alerts.jsonl")
    assert same.identical and same.differences == []
    (tmp_path / "book.toml").write_text(_desk_book(trigger, stop_share=0.3)[0])
    (tmp_path / "cw.toml").write_text('[desk]\nexposure = "book.toml"\n')
    changed = explain(trigger["id"], load_config(tmp_path / "cw.toml"), [DEMO], folder / "alerts.jsonl")
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
