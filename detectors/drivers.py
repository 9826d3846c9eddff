"""Why the probability is high, in the desk's words: one phrase per feature family that moved it.

:meth:`cascadewatch.detectors.evidence.EvidenceModel.drivers` says which families raise the
log-odds most; :func:`describe` turns each into a phrase from the readouts behind it, e.g. for a
fall (``down``):

- ``crowding``: "longs crowding: OI +1.9 % in 5 min on net buying" (the crowding window with
  the largest ``crowding_{W}_bps``; its OI growth and the sign of its aggressor imbalance);
- ``levels``: "$14M of long liquidation levels 80 bps below" (the nearest dense cluster);
- ``liquidity``: "bids within 100 bps thinned to 0.3x normal" (the depth ratio);
- ``liquidations``: "$2.1M of longs liquidated in 60 s, 6.2x the usual rate over 5 min" (the
  last minute's notional and the trickle: liquidation orders over the window against the norm);
- ``momentum``: "price down 2.3 sd in 5 min" (the drift toward the levels in standard deviations);
- ``volatility``: "volatility 2.4x its slow average".

:class:`Driver` carries the family, its log-odds contribution and the phrase (alert evidence).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import msgspec

__all__ = ["Driver", "describe", "usd"]


class Driver(msgspec.Struct, frozen=True):
    """One reason: feature ``family``, its contribution to the log-odds ``logit``, the ``text``."""

    family: str
    logit: float
    text: str


def usd(x: float | None) -> str:
    """``$14M``-style amounts: ``$1.2B`` / ``$14.0M`` / ``$250K`` / ``$12``; ``?`` when unknown.

    >>> usd(1.4e7), usd(2.5e5), usd(None)
    ('$14.0M', '$250.0K', '?')
    """
    if x is None or not math.isfinite(x):
        return "?"
    a = abs(x)
    for div, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if a >= div:
            return f"${x / div:.1f}{suffix}"
    return f"${x:.0f}"


def _window(seconds: int) -> str:
    return f"{seconds // 60} min" if seconds % 60 == 0 else f"{seconds} s"


def _largest(x: Mapping[str, float], prefix: str, suffix: str) -> int | None:
    """The window ``W`` whose feature ``{prefix}{W}{suffix}`` is largest (ties: the longer), or ``None``."""
    windows = [int(k[len(prefix) : len(k) - len(suffix)]) for k in x if k.startswith(prefix) and k.endswith(suffix)]
    return max(windows, key=lambda w: (x[f"{prefix}{w}{suffix}"], w)) if windows else None


def _crowding(direction: str, x: Mapping[str, float]) -> str:
    side = "longs" if direction == "down" else "shorts"
    w = _largest(x, "crowding_", "_bps")
    if w is None:
        return f"{side} crowding"
    growth = x.get(f"oi_growth_{w}_pct", 0.0)
    toward = x.get(f"imbalance_{w}", 0.0)  # + : aggressors lean toward the crowd of this direction
    buying = (toward >= 0) == (direction == "down")
    return f"{side} crowding: OI {growth:+.1f} % in {_window(w)} on net {'buying' if buying else 'selling'}"


def describe(family: str, direction: str, x: Mapping[str, float], readout: Mapping[str, float | None]) -> str:
    """The phrase of ``family`` for ``direction`` from the features ``x`` and the ``readout``
    values ``cluster_usd``, ``cluster_bps``, ``reach_usd``, ``liq_usd_60s`` (quote, bps).

    >>> x = {"crowding_300_bps": 40.0, "oi_growth_300_pct": 1.9, "imbalance_300": 0.3, "depth_ratio": 0.31}
    >>> describe("crowding", "down", x, {})
    'longs crowding: OI +1.9 % in 5 min on net buying'
    >>> describe("liquidity", "down", x, {})
    'bids within 100 bps thinned to 0.3x normal'
    >>> describe("levels", "down", x, {"cluster_usd": 1.4e7, "cluster_bps": 80.2})
    '$14.0M of long liquidation levels 80 bps below'
    >>> describe("liquidations", "up", x, {"liq_usd_60s": 2.1e6})
    '$2.1M of shorts liquidated in 60 s'
    >>> describe("liquidations", "down", {"trickle_60": 0.5, "trickle_300": math.log(6.2)}, {"liq_usd_60s": 3e5})
    '$300.0K of longs liquidated in 60 s, 6.2x the usual rate over 5 min'
    >>> describe("momentum", "down", {"drift_60_z": 1.1, "drift_300_z": 2.34}, {})
    'price down 2.3 sd in 5 min'
    """
    long_short = "long" if direction == "down" else "short"
    if family == "crowding":
        return _crowding(direction, x)
    if family == "levels":
        bps = readout.get("cluster_bps")
        if bps is None:
            return f"{usd(readout.get('reach_usd'))} of {long_short} liquidations within reach"
        where = "below" if direction == "down" else "above"
        return f"{usd(readout.get('cluster_usd'))} of {long_short} liquidation levels {bps:.0f} bps {where}"
    if family == "liquidity":
        book = "bids" if direction == "down" else "asks"
        ratio = x.get("depth_ratio", 1.0)
        return f"{book} within 100 bps {'thinned to' if ratio < 1 else 'at'} {ratio:.1f}x normal"
    if family == "liquidations":
        text = f"{usd(readout.get('liq_usd_60s'))} of {long_short}s liquidated in 60 s"
        trickle = _largest(x, "trickle_", "")
        if trickle is not None:
            text += f", {math.exp(x[f'trickle_{trickle}']):.1f}x the usual rate over {_window(trickle)}"
        return text
    if family == "momentum":
        w = _largest(x, "drift_", "_z")
        if w is None:
            return "price moving toward the levels"
        return f"price {'down' if direction == 'down' else 'up'} {x[f'drift_{w}_z']:.1f} sd in {_window(w)}"
    if family == "volatility":
        return f"volatility {math.exp(x.get('log_vol_ratio', 0.0)):.1f}x its slow average"
    return family
