"""The contagion step: one key sees every asset's snapshot of each second and adds the
grouped alerts of :class:`~cascadewatch.detectors.contagion.ContagionMonitor`.

It runs after the ordering step (:mod:`.output_ordering`), whose lists hold whole seconds in
``(ts, asset)`` order, on that step's single key: each second's snapshots (their ``down`` /
``up`` ``prob`` and ``cascade``) go to the monitor, and its alerts (as output dicts) follow the
second's own items. The monitor sees the same sequence of seconds whatever the batch size,
worker or process count, so the output is identical for all of them; a second in which fewer
than ``min_assets`` assets qualify adds nothing, so single-asset outputs are unchanged.
"""

from __future__ import annotations

from typing import Any

from cascadewatch.detectors.contagion import DIRECTIONS, AssetState, ContagionConfig, ContagionMonitor
from cascadewatch.pipelines.config import DetectorsConfig


def asset_states(snapshot: dict[str, Any]) -> list[AssetState]:
    """The monitor's input from one snapshot dict: per direction its ``prob`` and ``cascade``
    (``None`` where the snapshot has no detector fields yet).

    >>> [(s.direction, s.prob) for s in asset_states({"asset": "ETH-USDT", "down": {"prob": 0.4, "cascade": None}})]
    [('down', 0.4), ('up', None)]
    """
    out = []
    for d in DIRECTIONS:
        risk = snapshot.get(d) or {}
        out.append(AssetState(str(snapshot["asset"]), d, risk.get("prob"), risk.get("cascade")))
    return out


class ContagionStep:
    """Adds the grouped contagion alerts to ordered output lists (see the module doc)."""

    def __init__(self, config: ContagionConfig, detectors: DetectorsConfig) -> None:
        """``config``: ``[contagion]``; ``detectors``: the alert policy's thresholds
        (``warn_enter``, ``warn_exit``, ``calm_s``, ``page_kinds``)."""
        self.monitor = ContagionMonitor(
            config,
            warn_enter=detectors.warn_enter,
            warn_exit=detectors.warn_exit,
            calm_s=detectors.calm_s,
            page_kinds=detectors.page_kinds,
        )

    def __call__(self, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """``items`` (whole seconds, in ``(ts, asset)`` order) with each second's contagion
        alerts after that second's items (a second: a snapshot's ``ts`` and the items up to the
        next second's first snapshot)."""
        out: list[dict[str, Any]] = []
        second: int | None = None
        states: list[AssetState] = []
        for item in items:
            if item.get("type") == "snapshot":
                if second is not None and item["ts"] != second:
                    out.extend(alert.to_dict() for alert in self.monitor.update(second, states))
                    states = []
                second = item["ts"]
                states.extend(asset_states(item))
            out.append(item)
        if second is not None:
            out.extend(alert.to_dict() for alert in self.monitor.update(second, states))
        return out
