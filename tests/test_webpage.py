"""The web page's server side: static files and the token on the risk feed's own port."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect
from websockets.typing import Subprotocol

from cascadewatch.connectors.feed_history import FIELDS, FeedHistory
from cascadewatch.connectors.riskfeed import RECENT_ALERTS, RiskFeedServer
from cascadewatch.connectors.webpage import SUBPROTOCOL, TOKEN_PREFIX, web_file

TOKEN = "s3cret tøken"


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


@pytest.fixture
def server() -> Any:
    with RiskFeedServer(port=0, token=TOKEN, ping_interval_s=None) as feed:
        yield feed


def test_the_page_and_its_files_are_served_with_their_types(server: RiskFeedServer) -> None:
    base = f"http://127.0.0.1:{server.port}"
    status, headers, body = get(base + "/")
    assert (status, headers["Content-Type"]) == (200, "text/html; charset=utf-8")
    assert body == web_file("index.html") and b'<script src="live.js"></script>' in body
    status, headers, body = get(base + "/vendor/uPlot.iife.min.js")
    assert (status, headers["Content-Type"]) == (200, "text/javascript; charset=utf-8")
    assert body.startswith(b"/*! https://github.com/leeoniya/uPlot (v1.6.32) */")
    assert "connect-src 'self'" in headers["Content-Security-Policy"]
    assert get(base + "/style.css")[1]["Content-Type"] == "text/css; charset=utf-8"


@pytest.mark.parametrize(
    "path", ["/nope.js", "/../webpage.py", "/vendor/../../riskfeed.py", "/.hidden", "//etc/passwd"]
)
def test_anything_else_is_not_found(server: RiskFeedServer, path: str) -> None:
    assert get(f"http://127.0.0.1:{server.port}{path}")[0] == 404


def test_auth_endpoint_tells_a_wrong_token_from_a_right_one(server: RiskFeedServer) -> None:
    url = f"http://127.0.0.1:{server.port}/api/auth"
    assert get(url)[0] == 401
    assert get(url, {"Authorization": "Bearer wrong"})[0] == 401
    with RiskFeedServer(port=0, token=None, ping_interval_s=None) as open_feed:
        assert get(f"http://127.0.0.1:{open_feed.port}/api/auth")[0] == 204


def test_the_token_as_a_subprotocol_is_accepted_and_never_echoed(server: RiskFeedServer) -> None:
    url = f"ws://127.0.0.1:{server.port}/"
    token_protocol = TOKEN_PREFIX + TOKEN.encode().hex()
    with connect(url, subprotocols=[Subprotocol(SUBPROTOCOL), Subprotocol(token_protocol)], open_timeout=5) as ws:
        assert ws.subprotocol == SUBPROTOCOL
        assert json.loads(ws.recv(timeout=5))["type"] == "hello"
    for offered in ([SUBPROTOCOL], [SUBPROTOCOL, TOKEN_PREFIX + b"wrong".hex()]):
        with pytest.raises(InvalidStatus) as refused:
            connect(url, subprotocols=[Subprotocol(p) for p in offered], open_timeout=5)
        assert refused.value.response.status_code == 401
    assert server.stats.refused == 2


def test_hello_carries_the_page_info_and_recent_alerts_come_on_request() -> None:
    alerts = [
        {"type": "alert", "id": f"a{i}", "asset": "BTC-USDT" if i % 2 else "ETH-USDT", "ts": i}
        for i in range(RECENT_ALERTS + 2)
    ]
    with RiskFeedServer(port=0, ping_interval_s=None) as feed:
        feed.page = {"thresholds": {"warn_enter": 0.3}}
        with connect(f"ws://127.0.0.1:{feed.port}/", open_timeout=5) as first:
            assert json.loads(first.recv(timeout=5))["type"] == "hello"
            feed.publish_many(alerts)
            assert [json.loads(first.recv(timeout=5))["id"] for _ in alerts] == [a["id"] for a in alerts]
        with connect(f"ws://127.0.0.1:{feed.port}/?recent=1&assets=BTC", open_timeout=5) as late:
            hello = json.loads(late.recv(timeout=5))
            assert hello == {
                "type": "hello",
                "server": "cascadewatch-riskfeed",
                "assets": ["BTC"],
                "page": {"thresholds": {"warn_enter": 0.3}},
            }
            recent = [a["id"] for a in alerts[-RECENT_ALERTS:] if a["asset"] == "BTC-USDT"]
            assert [json.loads(late.recv(timeout=5))["id"] for _ in recent] == recent
        with connect(f"ws://127.0.0.1:{feed.port}/?assets=BTC", open_timeout=5) as plain:
            assert json.loads(plain.recv(timeout=5))["type"] == "hello"
            with pytest.raises(TimeoutError):
                plain.recv(timeout=0.3)  # no recent alerts without ?recent=1


def test_history_of_an_asset_on_request() -> None:
    def snap(ts: int, **extra: Any) -> dict[str, Any]:
        return {"type": "snapshot", "ts": ts, "asset": "BTC-USDT", "price": 100.0 + ts / 1000, **extra}

    levels = {"down": {"cluster_price": 90.0, "reach_bps": 12.5, "levels": [[90.0, 5.0]]}, "up": {"levels": []}}
    with RiskFeedServer(port=0, ping_interval_s=None) as feed:
        feed.history = FeedHistory(window_s=3, levels_every_s=2)
        with connect(f"ws://127.0.0.1:{feed.port}/", open_timeout=5) as ws:
            assert json.loads(ws.recv(timeout=5))["type"] == "hello"
            feed.publish_many([snap(1000, **levels), snap(2000, **levels), snap(3000, **levels), snap(4000)])
            for _ in range(4):
                ws.recv(timeout=5)
            ws.send(json.dumps({"op": "history", "asset": "BTC-USDT"}))
            history = json.loads(ws.recv(timeout=5))
            ws.send(json.dumps({"op": "history", "asset": "ETH-USDT"}))
            empty = json.loads(ws.recv(timeout=5))
    assert history["fields"] == list(FIELDS) and FIELDS[:4] == ("ts", "price", "prob_down", "prob_up")
    assert history["rows"] == [  # the last 3 s; 1000 left the window
        [2000, 102.0, None, None, 90.0, None, 12.5, None] + [None] * 6,
        [3000, 103.0, None, None, 90.0, None, 12.5, None] + [None] * 6,
        [4000, 104.0] + [None] * (len(FIELDS) - 2),
    ]
    assert history["levels"] == [[3000, [[90.0, 5.0]], []]]  # 1000 (left the window), 3000; not 2000 (< 2 s)
    assert empty == {"type": "history", "asset": "ETH-USDT", "fields": list(FIELDS), "rows": [], "levels": []}
