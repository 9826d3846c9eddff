"""Cascade reach: how far forced liquidations would carry the price through the book.

For a move ``down`` (``up`` is the mirror image: asks instead of bids, short
levels above the price instead of long levels below it). Inputs: the current
price ``P``, the bids in front ``(p_i, q_i)`` best-first, and the liquidation
levels ``(l_j, x_j)`` of long positions below ``P`` (price, notional in quote).
A move is assumed to reach the trigger price ``r_0`` (default ``P``; e.g. the
nearest dense cluster). Define

    B(X)  = the price of the first bid level at which the cumulative bid
            notional sum_{i<=k} p_i q_i reaches X (selling X sweeps the book
            down to that level)
    B_0   = sum of p_i q_i over bids above r_0 (taken by the move to r_0)
    F(r)  = sum of x_j over levels l_j >= r (liquidations triggered by price r)

and iterate, from ``r = r_0``,

    r_{k+1} = min(r_k, B(B_0 + F(r_k)))

until ``F(r_{k+1}) == F(r_k)`` (no new level triggered: the fixed point) or
``max_iter``. The readout is the forced notional ``F(r*)`` (quote currency),
the end price ``r*`` and the travel ``|r*/P - 1| * 1e4`` bps from the current
price. The book is static (no refill, no new orders): a deliberate worst case
for the visible book. When the forced flow exceeds the visible book
(``exhausted``), the end price is the last visible level and the travel is a
lower bound. Each iteration is two ``searchsorted`` calls over ``cumsum``
arrays. Levels on the wrong side of ``P`` (already crossed) are ignored.
"""

from __future__ import annotations

import msgspec
import numpy as np

from cascadewatch.detectors._reduce import all1

__all__ = ["CascadeReach", "Reach", "cascade_reach"]


class Reach(msgspec.Struct, frozen=True):
    """Outcome of the reach walk in one direction (see the module docstring)."""

    direction: str
    forced_usd: float
    travel_bps: float
    end_price: float
    start_price: float
    iterations: int
    exhausted: bool
    converged: bool


def _as_levels(levels) -> tuple[np.ndarray, np.ndarray]:
    """``(prices, sizes)`` from an ``(n, 2)`` array or a sequence of ``(price, size)`` pairs."""
    a = levels if type(levels) is np.ndarray and levels.dtype == np.float64 else np.asarray(levels, dtype=np.float64)
    if a.size == 0:
        return np.zeros(0), np.zeros(0)
    if a.ndim != 2 or a.shape[1] != 2:
        raise ValueError(f"levels must be (n, 2) pairs of (price, size), got shape {a.shape}")
    return a[:, 0], a[:, 1]


def _stable_order(a: np.ndarray) -> slice | np.ndarray:
    """``a.argsort(kind="stable")`` as an index: a slice when ``a`` is already non-decreasing
    (the identity) or strictly decreasing (the reversal), the two orders books and map levels
    come in; the argsort otherwise (a NaN makes ``a`` neither)."""
    if a.size < 2:
        return slice(None)
    head, tail = a[:-1], a[1:]
    if all1(tail >= head):
        return slice(None)
    if all1(tail < head):
        return slice(None, None, -1)
    return a.argsort(kind="stable")


def _walk_up(price, ap, an, lp, lx, r0, max_iter):
    """Core walk for a move up in a price domain where "up" means increasing values.

    ``ap`` ascending book prices and ``an`` their notionals; ``lp``/``lx`` the levels.
    Returns ``(forced, end, iterations, exhausted, converged)``.
    """
    cum = an.cumsum()
    total_book = float(cum[-1]) if cum.size else 0.0
    n0 = int(ap.searchsorted(r0, side="left"))  # book levels strictly before r0
    b0 = float(cum[n0 - 1]) if n0 > 0 else 0.0
    keep = lp >= price
    if not all1(keep):
        lp, lx = lp[keep], lx[keep]
    order = _stable_order(lp)
    lps = np.ascontiguousarray(lp[order])
    lcum = np.zeros(lps.size + 1)  # F at each level: 0, then the cumulative notional
    np.add.accumulate(lx[order], out=lcum[1:])  # (np.cumsum's own call)
    last = cum.size - 1

    r = r0
    f = float(lcum[lps.searchsorted(r, side="right")])  # F(r)
    iterations = 0
    converged = False
    while iterations < max_iter:
        iterations += 1
        x = b0 + f  # walk the book by x: B(x)
        if cum.size and not x <= 0:  # else B(x) = r0 <= r
            r = max(r, float(ap[min(int(cum.searchsorted(x, side="left")), last)]))
        f_new = float(lcum[lps.searchsorted(r, side="right")])
        if f_new == f:
            converged = True
            break
        f = f_new
    return f, r, iterations, b0 + f > total_book, converged


def cascade_reach(
    price: float,
    book,
    levels,
    direction: str,
    start_price: float | None = None,
    max_iter: int = 100,
) -> Reach:
    """Fixed point of the liquidation/book walk in one direction.

    Parameters
    ----------
    price
        Current price.
    book
        The side in front: bids for ``down``, asks for ``up``; ``(n, 2)`` array
        or sequence of ``(price, qty)`` (qty in base units), any order (it is
        sorted best-first, so books of several venues can be concatenated).
    levels
        Liquidation levels ``(price, notional)`` (notional in quote): long levels
        for ``down``, short levels for ``up``; any order.
    direction
        ``"down"`` or ``"up"``.
    start_price
        Trigger price the move is assumed to reach first (default ``price``).
    max_iter
        Iteration cap.

    Examples
    --------
    >>> bids = [(99.9, 10), (99.5, 20), (99.0, 50), (98.0, 100)]
    >>> longs = [(99.6, 1500), (99.5, 5000), (99.0, 2000), (98.5, 3000)]
    >>> r = cascade_reach(100.0, bids, longs, "down", start_price=99.6)
    >>> r.forced_usd, r.end_price, round(r.travel_bps, 6), r.iterations, r.converged
    (11500.0, 98.0, 200.0, 4, True)
    """
    bp, bq = _as_levels(book)
    lp, lx = _as_levels(levels)
    # the walk runs upwards: a move down walks negated prices
    ap = -bp if direction == "down" else bp
    if bp.size > 1:  # best-first whatever the input order (e.g. books of several venues concatenated)
        order = _stable_order(ap)
        if type(order) is not slice or order.step is not None:
            ap, bp, bq = ap[order], bp[order], bq[order]
    r0 = float(price if start_price is None else start_price)
    if direction == "up":
        f, end, it, ex, conv = _walk_up(price, ap, bp * bq, lp, lx, max(r0, price), max_iter)
        travel = (end / price - 1.0) * 1e4
    elif direction == "down":
        f, end, it, ex, conv = _walk_up(-price, ap, bp * bq, -lp, lx, -min(r0, price), max_iter)
        end = -end
        travel = (1.0 - end / price) * 1e4
    else:
        raise ValueError("direction must be 'down' or 'up'")
    return Reach(
        direction=direction,
        forced_usd=f,
        travel_bps=travel,
        end_price=end,
        start_price=r0,
        iterations=it,
        exhausted=ex,
        converged=conv,
    )


class CascadeReach:
    """Reach in both directions from one book and the two level sets.

    Stateless apart from its parameters; kept as a class for a uniform API.

    Parameters
    ----------
    max_iter
        Iteration cap of the walk.

    Examples
    --------
    >>> cr = CascadeReach()
    >>> out = cr.readout(100.0, bids=[(99.9, 10)], asks=[(100.1, 10)],
    ...                  down_levels=[(99.95, 500.0)], up_levels=[],
    ...                  start_down=99.95)
    >>> out["down"].forced_usd, out["down"].end_price, out["up"].forced_usd
    (500.0, 99.9, 0.0)
    """

    def __init__(self, max_iter: int = 100) -> None:
        self.max_iter = int(max_iter)

    def readout(
        self,
        price: float,
        bids,
        asks,
        down_levels,
        up_levels,
        start_down: float | None = None,
        start_up: float | None = None,
    ) -> dict[str, Reach]:
        """``{"down": Reach, "up": Reach}``; ``start_*`` are the trigger prices (default ``price``)."""
        return {
            "down": cascade_reach(price, bids, down_levels, "down", start_down, self.max_iter),
            "up": cascade_reach(price, asks, up_levels, "up", start_up, self.max_iter),
        }
