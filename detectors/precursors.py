"""Precursors of a cascade per direction: the liquidation trickle and the drift toward the levels.

A cascade rarely starts from nothing. Before the dense part, the price drifts toward the
liquidation levels and the first, thinnest levels go: on BitMEX XBTUSD (2020-04/05, every
liquidation order published) the five minutes before the 39 labelled cascades held a median
0.24 liquidations a minute, against 0.01 at random calm times. Both readouts are
scale-free (counts against the market's own norm, moves in units of its own volatility), so
what a model learns from them carries from one market to another.

Fed once per event-time second ``s`` with, per direction ``d`` (``down``: long liquidations,
forced sells; ``up``: short liquidations), the number of liquidation orders the venues
published in that second ``n_d(s)`` and the price ``P(s)``. For a window ``W``:

- **trickle**: ``N_W = sum_{u in (s - W, s]} n_d(u)``, against the expected count
  ``E_W = W * lambda_d`` with ``lambda_d`` the background rate (an EWMA of ``n_d`` per second
  with half-life ``baseline_half_life_s``, started from ``prior_rate`` and updated with the
  second that leaves the window, so the window under test never raises its own baseline):

      trickle_W = ln((N_W + 1) / (E_W + 1))

  0 at the norm, ``ln 2`` for twice the norm plus one, and it cannot blow up on a quiet
  market (``+1`` on both sides: one stray liquidation on a dead market is not a signal);
- **drift**: the log-return over the window toward the direction in standard deviations of
  the move over it, with ``sigma`` the slow realized volatility per sqrt(second):

      drift_W(down) = -ln(P(s) / P(s - W)) / (sigma sqrt W),   drift_W(up) = -drift_W(down)

  (0 while the window has not filled, or without volatility).

Units: counts, seconds, dimensionless outputs. State: a ring of ``max(W) + 1`` seconds of
counts and prices per direction, O(windows) per update.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["PrecursorMonitor", "PrecursorReadout"]

DIRECTIONS = ("down", "up")


@dataclass(frozen=True, slots=True)
class PrecursorReadout:
    """Per direction and window (s): the trickle (log count ratio) and the drift (sd)."""

    trickle: dict[str, dict[int, float]]
    drift: dict[str, dict[int, float]]

    def features(self, direction: str) -> dict[str, float]:
        """``trickle_{W}`` and ``drift_{W}_z`` of ``direction`` for every window ``W``."""
        out: dict[str, float] = {}
        for w, value in self.trickle[direction].items():
            out[f"trickle_{w}"] = value
        for w, value in self.drift[direction].items():
            out[f"drift_{w}_z"] = value
        return out


class PrecursorMonitor:
    """Liquidation trickle and drift per direction over trailing windows (module docstring).

    Parameters
    ----------
    windows_s
        Window lengths ``W``, seconds.
    baseline_half_life_s
        Half-life of the background liquidation rate, seconds (default 6 h).
    prior_rate
        Background rate before any data, liquidation orders per second per direction
        (default 1/600: one every ten minutes).

    One call per second, increasing; skipped seconds count as seconds without liquidations
    and with the last price; a repeated or older second is ignored.

    Examples
    --------
    >>> pm = PrecursorMonitor(windows_s=(60,), prior_rate=0.0, baseline_half_life_s=1e12)
    >>> for s in range(120):        # one long liquidation every 10 s, the price falling 1 bp a second
    ...     r = pm.update(s, {"down": int(s % 10 == 0), "up": 0}, 100.0 * math.exp(-1e-4 * s), sigma=1e-4)
    >>> round(r.features("down")["trickle_60"], 4)      # N = 6, baseline still 0 (half-life 1e12 s)
    1.9459
    >>> round(r.features("down")["drift_60_z"], 4)      # 60 bp in 1e-4 * sqrt(60)
    7.746
    >>> round(r.features("up")["drift_60_z"], 4), r.features("up")["trickle_60"]
    (-7.746, 0.0)
    """

    def __init__(
        self,
        windows_s: tuple[int, ...] = (60, 300),
        baseline_half_life_s: float = 6 * 3600.0,
        prior_rate: float = 1.0 / 600.0,
    ) -> None:
        self.windows_s = tuple(sorted({int(w) for w in windows_s}))
        if not self.windows_s or self.windows_s[0] < 1:
            raise ValueError("windows_s must be positive")
        self._n = self.windows_s[-1] + 1
        self._lam = 2.0 ** (-1.0 / float(baseline_half_life_s))
        self._rate = {d: float(prior_rate) for d in DIRECTIONS}
        self._count = {d: [0] * self._n for d in DIRECTIONS}
        self._cum = {d: [0] * self._n for d in DIRECTIONS}  # cumulative counts at the end of each second
        self._total = {d: 0 for d in DIRECTIONS}
        self._price = [math.nan] * self._n
        self._start: int | None = None
        self._sec: int | None = None
        self._last_price = math.nan
        self._readout = PrecursorReadout({d: {} for d in DIRECTIONS}, {d: {} for d in DIRECTIONS})

    def _step(self, sec: int, counts: Mapping[str, int], price: float) -> None:
        i = sec % self._n
        leaving = sec - self.windows_s[-1]  # the oldest second of the longest window leaves it
        for d in DIRECTIONS:
            if self._start is not None and leaving > self._start:
                old = self._count[d][(leaving - 1) % self._n]
                self._rate[d] = self._lam * self._rate[d] + (1.0 - self._lam) * old
            n = max(int(counts.get(d, 0)), 0)
            self._count[d][i] = n
            self._total[d] += n
            self._cum[d][i] = self._total[d]
        if price > 0 and math.isfinite(price):
            self._last_price = price
        self._price[i] = self._last_price
        self._sec = sec

    def update(self, t: float, counts: Mapping[str, int], price: float, sigma: float) -> PrecursorReadout:
        """Feed second ``floor(t)``: liquidation orders per direction, the price and the slow volatility
        (per sqrt(second))."""
        sec = math.floor(t)
        if self._sec is not None and sec <= self._sec:
            return self._readout
        if self._start is None:
            self._start = sec
        if self._sec is not None:
            for gap in range(max(self._sec + 1, sec - self._n + 1), sec):
                self._step(gap, {}, math.nan)
        self._step(sec, counts, float(price))
        trickle: dict[str, dict[int, float]] = {d: {} for d in DIRECTIONS}
        drift: dict[str, dict[int, float]] = {d: {} for d in DIRECTIONS}
        now = self._price[sec % self._n]
        for w in self.windows_s:
            for d in DIRECTIONS:
                cum = self._cum[d]
                past = cum[(sec - w) % self._n] if sec - w >= self._start else 0
                n_w = cum[sec % self._n] - past
                trickle[d][w] = math.log((n_w + 1.0) / (w * self._rate[d] + 1.0))
            then = self._price[(sec - w) % self._n] if sec - w >= self._start else math.nan
            z = 0.0
            if sigma > 0 and math.isfinite(sigma) and then > 0 and now > 0:
                z = -math.log(now / then) / (sigma * math.sqrt(w))
            drift["down"][w] = z
            drift["up"][w] = -z
        self._readout = PrecursorReadout(trickle, drift)
        return self._readout

    def readout(self) -> PrecursorReadout:
        """The readout of the last :meth:`update` (empty before the first)."""
        return self._readout
