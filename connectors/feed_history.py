"""The risk feed's memory of the last hour per asset, for a web page that opens late.

A client that sends ``{"op": "history", "asset": "BTC-USDT"}`` gets one
``{"type": "history", "asset": ..., "fields": [...], "rows": [[...], ...], "levels": [...]}``
message: ``rows`` one per snapshot second of the last ``window_s`` seconds (the values of
:data:`FIELDS`, ``null`` where the snapshot has none), ``levels`` every ``levels_every_s``
seconds ``[ts, down levels, up levels]`` (the snapshots' ``levels``).

Rows and levels are kept as JSON text (about 150 bytes a row, 4 kB a levels sample): an hour of
50 assets is about 60 MB (measured with tracemalloc).
"""

from __future__ import annotations

import json
from collections import deque
from typing import Any

FIELDS = (
    "ts",
    "price",
    "prob_down",
    "prob_up",
    "down.cluster_price",
    "up.cluster_price",
    "down.reach_bps",
    "up.reach_bps",
    "liq_long_usd_1s",
    "liq_short_usd_1s",
    "depth_bid_usd.25",
    "depth_bid_usd.100",
    "depth_ask_usd.25",
    "depth_ask_usd.100",
)
"""The columns of a history row: snapshot keys, ``a.b`` for key ``b`` of object ``a``."""


def _value(snapshot: dict[str, Any], field: str) -> Any:
    outer, _, inner = field.partition(".")
    value = snapshot.get(outer)
    return value.get(inner) if inner and isinstance(value, dict) else (None if inner else value)


class FeedHistory:
    """The last ``window_s`` seconds of each asset's snapshots, compact.

    >>> h = FeedHistory(window_s=2, levels_every_s=60)
    >>> for ts in (1000, 2000, 3000):
    ...     h.add({"ts": ts, "asset": "BTC-USDT", "price": 10.0, "down": {"levels": [[9.0, 5.0]]}, "up": {}})
    >>> message = json.loads(h.message("BTC-USDT"))
    >>> [row[:2] for row in message["rows"]], message["levels"]
    ([[2000, 10.0], [3000, 10.0]], [])
    """

    def __init__(self, window_s: float = 3600.0, levels_every_s: float = 60.0) -> None:
        self.window_ms = int(window_s * 1000)
        self.levels_every_ms = int(levels_every_s * 1000)
        self._rows: dict[str, deque[tuple[int, str]]] = {}
        self._levels: dict[str, deque[tuple[int, str]]] = {}

    def add(self, snapshot: dict[str, Any]) -> None:
        """Keep one snapshot (a dict of the output contract); older rows leave the window."""
        asset, ts = snapshot.get("asset"), snapshot.get("ts")
        if not isinstance(asset, str) or not isinstance(ts, int):
            return
        rows = self._rows.setdefault(asset, deque())
        if rows and ts <= rows[-1][0]:
            return  # the same second again (or older): the history stays in time order
        rows.append((ts, json.dumps([_value(snapshot, f) for f in FIELDS], separators=(",", ":"))))
        levels = self._levels.setdefault(asset, deque())
        down, up = snapshot.get("down"), snapshot.get("up")
        if isinstance(down, dict) and isinstance(up, dict) and "levels" in down:
            if not levels or ts - levels[-1][0] >= self.levels_every_ms:
                levels.append((ts, json.dumps([ts, down["levels"], up.get("levels", [])], separators=(",", ":"))))
        for kept in (rows, levels):
            while kept and kept[0][0] <= ts - self.window_ms:
                kept.popleft()

    def assets(self) -> list[str]:
        """The assets with a history, sorted."""
        return sorted(self._rows)

    def message(self, asset: str) -> str:
        """The ``history`` message of ``asset`` (JSON text)."""
        rows = ",".join(text for _, text in self._rows.get(asset, ()))
        levels = ",".join(text for _, text in self._levels.get(asset, ()))
        head = json.dumps({"type": "history", "asset": asset, "fields": FIELDS})[:-1]
        return f'{head}, "rows": [{rows}], "levels": [{levels}]}}'
