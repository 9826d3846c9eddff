"""The circuit breaker rule per direction (:mod:`cascadewatch.detectors.mitigation`, "Circuit
breaker"): :class:`CircuitBreaker` and its readout, :class:`BreakerState`.

Plain Python, no numpy at import: the simulator's circuit-breaker lever runs the same rule.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

__all__ = ["DIRECTIONS", "BreakerState", "CircuitBreaker"]

DIRECTIONS = ("down", "up")
"""The two directions of a move, each with its own breaker state."""


@dataclass(frozen=True, slots=True)
class BreakerState:
    """One direction's breaker: ``tripped``, ``since`` (the second it tripped, s; ``None`` when
    not tripped), ``cause`` (``"price"`` or ``"liquidations"``, the rule that tripped it)."""

    tripped: bool
    since: float | None = None
    cause: str | None = None


class CircuitBreaker:
    """The documented breaker rule per direction (:mod:`cascadewatch.detectors.mitigation`, "Circuit breaker").

    Parameters
    ----------
    band_bps
        Price move within the window that trips it, bps.
    window_s
        Window of the price band and of the liquidation sum, seconds.
    liq_usd
        Liquidations of the direction's side within the window that trip it, USD.
    halt_s
        How long it stays tripped after the rule last held, seconds.

    Examples
    --------
    >>> cb = CircuitBreaker(band_bps=250.0, window_s=60, liq_usd=1e9, halt_s=2)
    >>> [(s, cb.update(float(s), p)["down"].since) for s, p in enumerate([100.0, 99.0, 98.0, 97.0, 97.0])]
    [(0, None), (1, None), (2, None), (3, 3.0), (4, 3.0)]
    """

    def __init__(self, band_bps: float = 300.0, window_s: int = 300, liq_usd: float = 25e6, halt_s: float = 120.0):
        self.band_bps = float(band_bps)
        self.window_s = int(window_s)
        self.liq_usd = float(liq_usd)
        self.halt_s = float(halt_s)
        self._hi: deque[tuple[float, float]] = deque()  # window maximum candidates (t, price)
        self._lo: deque[tuple[float, float]] = deque()  # window minimum candidates
        self._liq: deque[tuple[float, float, float]] = deque()  # (t, down usd, up usd)
        self._liq_sum = [0.0, 0.0]
        self._since: list[float | None] = [None, None]
        self._last: list[float | None] = [None, None]  # last second the rule held
        self._cause: list[str | None] = [None, None]

    def update(self, t: float, price: float, liq_down_usd: float = 0.0, liq_up_usd: float = 0.0) -> dict:
        """The second ``t`` closed at ``price`` with these liquidations (longs for ``down``,
        shorts for ``up``); returns ``{"down": BreakerState, "up": BreakerState}``."""
        start = t - self.window_s
        hi, lo = self._hi, self._lo
        while hi and hi[-1][1] <= price:
            hi.pop()
        hi.append((t, price))
        while lo and lo[-1][1] >= price:
            lo.pop()
        lo.append((t, price))
        while hi[0][0] < start:
            hi.popleft()
        while lo[0][0] < start:
            lo.popleft()
        self._liq.append((t, liq_down_usd, liq_up_usd))
        self._liq_sum[0] += liq_down_usd
        self._liq_sum[1] += liq_up_usd
        while self._liq[0][0] <= start:
            _, a, b = self._liq.popleft()
            self._liq_sum[0] -= a
            self._liq_sum[1] -= b
        moves = ((1.0 - price / hi[0][1]) * 1e4, (price / lo[0][1] - 1.0) * 1e4)
        for i in range(2):
            cause = "price" if moves[i] >= self.band_bps else None
            if cause is None and self._liq_sum[i] >= self.liq_usd:
                cause = "liquidations"
            if cause is not None:
                if self._since[i] is None:
                    self._since[i], self._cause[i] = t, cause
                self._last[i] = t
            elif self._since[i] is not None and t - (self._last[i] or t) >= self.halt_s:
                self._since[i] = self._cause[i] = None
        self._states = None
        return self.readout()

    _states: dict[str, BreakerState] | None = None
    """The states of the last update, built by the first :meth:`readout` after it (``None``: not yet)."""

    def readout(self) -> dict:
        """``{"down": BreakerState, "up": BreakerState}`` as of the last update (a new dict of the
        same immutable states until the next update)."""
        states = self._states
        if states is None:
            states = self._states = {
                d: BreakerState(self._since[i] is not None, self._since[i], self._cause[i])
                for i, d in enumerate(DIRECTIONS)
            }
        return dict(states)
