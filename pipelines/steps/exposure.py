"""The exposure overlay: which of the desk's positions and orders lie inside the predicted reach.

The predicted reach of a direction is the price travel of its cascade walk (``reach_bps``),
from the price: ``[price x (1 - reach_bps / 10^4), price]`` down, ``[price, price x (1 +
reach_bps / 10^4)]`` up. Inside it, per direction:

- a position that loses that way (``long`` down, ``short`` up) whose stop or liquidation
  level lies in the range (the nearer of the two when both do): it would be stopped out or
  liquidated;
- a resting order that would fill that way (``buy`` down, ``sell`` up) whose price lies in it.

Each item: ``{"kind": "position"|"order", "side", "size", "level_kind": "stop"|"liquidation"|"limit",
"level", "bps"}`` (``bps``: the level's distance from the price, 1 decimal), nearest first.

:class:`ExposureOverlay` runs after the ordering step: each snapshot gets ``exposure``
(``{"down": [...], "up": [...]}``, from its own ``down``/``up`` reach), and each cascade
trigger gets ``exposure`` for its direction (from its own ``price`` and ``reach_bps``) and,
when that is not empty, a first sentence in its summary: ``your 3 BTC longs with stops at
93,100 are inside the predicted reach, 41 bps below · <summary>``.
"""

from __future__ import annotations

from typing import Any

from cascadewatch.connectors.exposure import Book, ExposureFile


def _within(level: float, price: float, edge: float, direction: str) -> bool:
    return edge <= level <= price if direction == "down" else price <= level <= edge


def _item(kind: str, side: str, size: float, level_kind: str, level: float, price: float) -> dict[str, Any]:
    return {
        "kind": kind,
        "side": side,
        "size": size,
        "level_kind": level_kind,
        "level": level,
        "bps": round((level / price - 1.0) * 1e4, 1),
    }


def inside_reach(book: Book, asset: str, price: Any, reach_bps: Any, direction: str) -> list[dict[str, Any]]:
    """The desk's items of ``asset`` inside the reach of ``direction`` (see the module doc), nearest first.

    >>> from cascadewatch.connectors.exposure import Position
    >>> book = Book(positions=(Position("BTC-USDT", "long", 3.0, 93100.0, 88000.0),))
    >>> inside_reach(book, "BTC-USDT", 93485.0, 100.0, "down")
    [{'kind': 'position', 'side': 'long', 'size': 3.0, 'level_kind': 'stop', 'level': 93100.0, 'bps': -41.2}]
    >>> inside_reach(book, "BTC-USDT", 93485.0, 100.0, "up")
    []
    """
    if not isinstance(price, (int, float)) or not isinstance(reach_bps, (int, float)) or price <= 0 or reach_bps <= 0:
        return []
    edge = price * (1.0 - reach_bps / 1e4) if direction == "down" else price * (1.0 + reach_bps / 1e4)
    positions, orders = book.for_asset(asset)
    items: list[dict[str, Any]] = []
    for p in positions:
        if (p.side == "long") != (direction == "down"):
            continue
        hits = [
            (abs(level - price), kind, level)
            for kind, level in (("stop", p.stop), ("liquidation", p.liquidation))
            if level is not None and _within(level, price, edge, direction)
        ]
        if hits:
            _, kind, level = min(hits)
            items.append(_item("position", p.side, p.size, kind, level, price))
    for o in orders:
        if (o.side == "buy") == (direction == "down") and _within(o.price, price, edge, direction):
            items.append(_item("order", o.side, o.size, "limit", o.price, price))
    return sorted(items, key=lambda item: (abs(item["bps"]), item["kind"], item["level"]))


def _phrase(item: dict[str, Any], base: str) -> str:
    size = f"{item['size']:g}"
    level = f"{item['level']:,.6g}"
    if item["kind"] == "order":
        return f"your {item['side']} order for {size} {base} at {level}"
    plural = "s" if item["size"] != 1 else ""
    what = {"stop": f"stop{plural}", "liquidation": "liquidation"}[item["level_kind"]]
    return f"your {size} {base} {item['side']}{plural} with {what} at {level}"


def exposure_sentence(items: list[dict[str, Any]], asset: str, direction: str) -> str:
    """``your 3 BTC longs with stops at 93,100 are inside the predicted reach, 41 bps below``.

    >>> exposure_sentence([{"kind": "order", "side": "sell", "size": 1.0, "level_kind": "limit",
    ...                     "level": 61000.0, "bps": 52.4}], "BTC-USDT", "up")
    'your sell order for 1 BTC at 61,000 is inside the predicted reach, 52 bps above'
    """
    base = asset.split("-")[0]
    where = "below" if direction == "down" else "above"
    if len(items) == 1:
        item = items[0]
        verb = "is" if item["kind"] == "order" or item["size"] == 1 else "are"
        return f"{_phrase(item, base)} {verb} inside the predicted reach, {abs(item['bps']):.0f} bps {where}"
    parts = [f"{_phrase(item, base)} ({abs(item['bps']):.0f} bps {where})" for item in items]
    return f"{', '.join(parts[:-1])} and {parts[-1]} are inside the predicted reach"


class ExposureOverlay:
    """Adds the desk's exposure to snapshots and cascade triggers (see the module doc)."""

    def __init__(self, exposure: ExposureFile) -> None:
        self.exposure = exposure

    def __call__(self, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """``items`` (one ordered batch of outputs) with the exposure added."""
        book = self.exposure.current()
        return [self._overlay(book, item) for item in items]

    @staticmethod
    def _overlay(book: Book, item: dict[str, Any]) -> dict[str, Any]:
        asset = str(item.get("asset", ""))
        if item.get("type") == "snapshot":
            exposure = {
                d: inside_reach(book, asset, item.get("price"), (item.get(d) or {}).get("reach_bps"), d)
                for d in ("down", "up")
            }
            return {**item, "exposure": exposure}
        if item.get("type") != "alert" or item.get("kind") != "cascade" or item.get("action") != "trigger":
            return item
        direction = str(item.get("direction"))
        inside = inside_reach(book, asset, item.get("price"), item.get("reach_bps"), direction)
        out = {**item, "exposure": inside}
        if inside:
            out["summary"] = f"{exposure_sentence(inside, asset, direction)} · {item['summary']}"
        return out
