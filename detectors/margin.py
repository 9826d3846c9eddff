"""The suggested maintenance margin (:mod:`cascadewatch.detectors.mitigation`, "Suggested margin"):
its parameters (:class:`MarginRule`) and one suggestion (:class:`Margin`).

Plain Python, no numpy at import: the simulator's what-if levers take a :class:`MarginRule` as
a default, and ``cascadewatch --help`` shows those levers without loading the detectors.
"""

from __future__ import annotations

import functools
import math

import msgspec

__all__ = ["Margin", "MarginRule"]


class MarginRule(msgspec.Struct, frozen=True, kw_only=True):
    """Parameters of the suggested maintenance margin (:mod:`cascadewatch.detectors.mitigation`, "Suggested margin").

    ``z``: standard deviations covered; ``liq_min_s``/``liq_max_s``: bounds of the time to work
    a forced position out, seconds; ``participation``: share of the traded volume the engine
    may take (0..1); ``impact_k``: multiple of the linear-book impact; ``floor``/``cap``: bounds
    of the rate (fractions); ``imr_multiple``: initial over maintenance margin (the cap's).
    """

    z: float = 3.0
    liq_min_s: float = 10.0
    liq_max_s: float = 600.0
    participation: float = 0.1
    impact_k: float = 1.0
    floor: float = 0.004
    cap: float = 0.25
    imr_multiple: float = 2.0

    def suggest(self, sigma: float, volume_usd_s: float, depth_usd: float, size_usd: float) -> Margin:
        """The suggested margin for ``sigma`` (per sqrt(s)), ``volume_usd_s`` (USD/s), ``depth_usd``
        (USD within 100 bps in front) and a forced position of ``size_usd`` (USD).

        >>> m = MarginRule(floor=0.001).suggest(sigma=2e-4, volume_usd_s=1e5, depth_usd=9e6, size_usd=9e5)
        >>> m.liq_s, round(m.mmr, 6), round(m.leverage_cap, 2), round(m.protected_bps, 1)
        (100.0, 0.007, 71.43, 70.0)
        """
        size = max(float(size_usd), 0.0)
        flow = self.participation * max(float(volume_usd_s), 0.0)
        tau = self.liq_max_s if size > 0 and not flow > 0 else self.liq_min_s + (size / flow if size > 0 else 0.0)
        tau = min(tau, self.liq_max_s)
        sig = float(sigma) if math.isfinite(sigma) and sigma > 0 else 0.0
        depth = float(depth_usd)
        impact = self.impact_k * 0.01 * size / depth if depth > 0 else 0.0
        mmr = min(max(self.z * sig * math.sqrt(tau) + impact, self.floor), self.cap)
        return Margin(mmr=mmr, leverage_cap=1.0 / (self.imr_multiple * mmr), liq_s=tau, imr_multiple=self.imr_multiple)


class Margin(msgspec.Struct, frozen=True):
    """A suggested margin: ``mmr`` (fraction), ``leverage_cap`` (``1 / (imr_multiple * mmr)``),
    ``liq_s`` (the time to work a forced position out, s)."""

    mmr: float
    leverage_cap: float
    liq_s: float
    imr_multiple: float

    @property
    def protected_bps(self) -> float:
        """``d* = (1 / L* - mmr) * 1e4``: how near to its entry a position under the cap can be
        liquidated, bps."""
        return (1.0 / self.leverage_cap - self.mmr) * 1e4

    def out_of_reach_usd(self, price: float, levels, direction: str) -> float:
        """Notional of the ``levels`` (``(price, usd)``, the direction's) nearer than
        :attr:`protected_bps` to ``price``: what the cap would have pushed away
        (:mod:`cascadewatch.detectors.mitigation`, "Suggested margin").

        >>> m = Margin(mmr=0.005, leverage_cap=100.0, liq_s=10.0, imr_multiple=2.0)   # d* = 50 bps
        >>> m.out_of_reach_usd(100.0, [(99.6, 1e6), (99.4, 2e6), (100.2, 5e6)], "down")
        1000000.0
        """
        as_levels, sum1 = _numpy_helpers()
        lp, lx = as_levels(levels)
        dist = (price - lp) / price * 1e4 if direction == "down" else (lp - price) / price * 1e4
        return float(sum1(lx[(dist > 0) & (dist < self.protected_bps)]))


@functools.cache
def _numpy_helpers():
    """The level parser of the reach walk and the 1-D sum, imported at the first call, not at this
    module's import (numpy: not for the levers' defaults); an import statement in the method
    costs more than its arithmetic."""
    from cascadewatch.detectors._reduce import sum1
    from cascadewatch.detectors.reach import _as_levels

    return _as_levels, sum1
