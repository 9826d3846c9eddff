"""A dense, exponentially decaying array of notional on an absolute log-price grid.

Shared by the liquidation maps. Bucket ``k`` covers the prices

    [exp(k * delta), exp((k + 1) * delta)),   delta = bucket_bps * 1e-4

so a bucket is about ``bucket_bps`` basis points wide at any price and its
index does not change when the price moves. Bucket ``k`` is represented by
its geometric centre ``exp((k + 0.5) * delta)``.

Decay. A deposit ``x`` made at time ``s`` (seconds) is worth
``x * 2 ** (-(t - s) / half_life_s)`` at time ``t``. Values are stored
*inflated*, relative to a reference time ``t_ref``::

    stored = x * 2 ** ((s - t_ref) / half_life_s)
    value(t) = stored * 2 ** (-(t - t_ref) / half_life_s)

so a deposit is O(1) and the whole map decays without touching it. ``t_ref``
sits on a fixed grid of epochs (multiples of ``EPOCH_HALF_LIVES`` half-lives)
and only moves forward; the state after a sequence of deposits is therefore
the same whether they came one by one or in batches (the epoch of every
deposit is decided by the running maximum of the event times, as it would be
one event at a time). Readouts do not mutate the state.

Speed. Bucket indices of single prices take ``math.log`` (no array) unless
``ln(price) / delta`` lies within a relative ``1e-9`` of an integer, where NumPy's
``log`` (which may differ from ``math.log`` in the last bit) decides, so a
bucket is always the one :meth:`DecayingLogGrid.bucket_of` gives. The grid
keeps bounds ``[lo, hi]`` outside which every bucket is zero, so taking or
clearing buckets that are known to be empty touches no array.
"""

from __future__ import annotations

import math

import numpy as np

EPOCH_HALF_LIVES = 16.0
"""Length of an epoch of ``t_ref``, in half-lives (inflation factor at most 2**16)."""

_PAD = 64

_EDGE = 1e-9
"""Relative distance of ``ln(price) / delta`` from an integer below which NumPy decides the bucket."""

_EMPTY = (1 << 62, -(1 << 62))
"""``(lo, hi)`` bounds of a grid with no non-zero bucket."""


class DecayingLogGrid:
    """Decaying notional per log-price bucket (see the module docstring).

    Parameters
    ----------
    bucket_bps
        Bucket width in basis points of price (log-price width ``bucket_bps * 1e-4``).
    half_life_s
        Half-life of a deposit in seconds; ``None`` or ``inf`` disables decay.
    max_buckets
        Hard cap on the dense array length; when the prices seen span more, the
        buckets farthest from the newest deposits are dropped.
    """

    _lo, _hi = -_EMPTY[0], -_EMPTY[1]
    """Non-zero bounds of a state pickled before they existed: any bucket may be non-zero."""

    def __init__(self, bucket_bps: float, half_life_s: float | None, max_buckets: int = 1 << 16) -> None:
        if bucket_bps <= 0:
            raise ValueError("bucket_bps must be > 0")
        if half_life_s is not None and not half_life_s > 0:
            raise ValueError("half_life_s must be > 0 or None")
        self.bucket_bps = float(bucket_bps)
        self.delta = float(bucket_bps) * 1e-4
        self.half_life_s = None if half_life_s is None or math.isinf(half_life_s) else float(half_life_s)
        self.max_buckets = int(max_buckets)
        self._k0 = 0
        self._v = np.zeros(0, dtype=np.float64)
        self._t_ref: float | None = None
        self._lo, self._hi = _EMPTY  # buckets outside [lo, hi] are zero

    # ------------------------------------------------------------------ grid
    def bucket_of(self, prices: np.ndarray | float) -> np.ndarray:
        """Bucket index ``floor(ln(price) / delta)`` (vectorized, int64)."""
        return np.floor(np.log(np.asarray(prices, dtype=np.float64)) / self.delta).astype(np.int64)

    def bucket_of_one(self, price: float) -> int:
        """:meth:`bucket_of` of one positive finite price, as an ``int`` (the same bucket, faster)."""
        q = math.log(price) / self.delta
        k = math.floor(q)
        edge = _EDGE * max(abs(q), 1.0)
        if edge < q - k < 1.0 - edge:
            return k
        return int(self.bucket_of(price))

    def center(self, k: np.ndarray | int) -> np.ndarray:
        """Geometric centre price ``exp((k + 0.5) * delta)`` of bucket(s) ``k``."""
        return np.exp((np.asarray(k, dtype=np.float64) + 0.5) * self.delta)

    # ------------------------------------------------------------------ time
    def _rebase_to(self, ref: float) -> None:
        """Move ``t_ref`` forward to ``ref`` (never backward), rescaling the stored values."""
        assert self.half_life_s is not None
        if self._t_ref is None:
            self._t_ref = ref
        elif ref > self._t_ref:
            self._v *= 2.0 ** (-(ref - self._t_ref) / self.half_life_s)
            self._t_ref = ref

    def factor(self, t: float) -> float:
        """Multiplier from stored to actual values at time ``t``."""
        if self.half_life_s is None or self._t_ref is None:
            return 1.0
        return 2.0 ** (-(t - self._t_ref) / self.half_life_s)

    # --------------------------------------------------------------- storage
    def _ensure(self, k_lo: int, k_hi: int) -> None:
        """Grow the dense array so that buckets ``k_lo..k_hi`` are addressable."""
        n = self._v.size
        if n and self._k0 <= k_lo and k_hi < self._k0 + n:
            return
        lo = k_lo if not n else min(k_lo, self._k0)
        hi = k_hi if not n else max(k_hi, self._k0 + n - 1)
        lo -= _PAD
        hi += _PAD
        if hi - lo + 1 > self.max_buckets:
            mid = (k_lo + k_hi) // 2
            lo = mid - self.max_buckets // 2
            hi = lo + self.max_buckets - 1
        new = np.zeros(hi - lo + 1, dtype=np.float64)
        if n:
            a, b = max(lo, self._k0), min(hi, self._k0 + n - 1)
            if a <= b:
                new[a - lo : b - lo + 1] = self._v[a - self._k0 : b - self._k0 + 1]
        self._k0, self._v = lo, new

    def _touch(self, k_lo: int, k_hi: int) -> None:
        """Widen the non-zero bounds to cover buckets ``k_lo..k_hi``."""
        self._lo = min(self._lo, k_lo)
        self._hi = max(self._hi, k_hi)

    def add(self, prices: np.ndarray, values: np.ndarray, t: np.ndarray | float) -> None:
        """Deposit ``values[i]`` at the bucket of ``prices[i]`` at time ``t`` (scalar or per item).

        Non-finite or non-positive prices and non-finite values are ignored.
        """
        p = np.asarray(prices, dtype=np.float64).ravel()
        x = np.asarray(values, dtype=np.float64).ravel()
        if np.ndim(t) == 0:
            self._add_at(p, x, float(t))
            return
        tt = np.broadcast_to(np.asarray(t, dtype=np.float64), p.shape)
        ok = np.isfinite(p) & (p > 0) & np.isfinite(x) & np.isfinite(tt)
        if not ok.all():
            p, x, tt = p[ok], x[ok], tt[ok]
        if p.size == 0:
            return
        k = self.bucket_of(p)
        self._ensure(int(k.min()), int(k.max()))
        inside = (k >= self._k0) & (k < self._k0 + self._v.size)
        if not inside.all():  # only when max_buckets is hit
            k, x, tt = k[inside], x[inside], tt[inside]
            if k.size == 0:
                return
        self._touch(int(k.min()), int(k.max()))
        if self.half_life_s is None:
            np.add.at(self._v, k - self._k0, x)
            return
        # Epochs as a one-by-one loop would see them: the running max of event times.
        span = EPOCH_HALF_LIVES * self.half_life_s
        ep = np.maximum.accumulate(np.floor(tt / span))
        starts = np.r_[0, np.flatnonzero(np.diff(ep)) + 1]
        ends = np.r_[starts[1:], k.size]
        for a, b in zip(starts.tolist(), ends.tolist(), strict=True):
            self._rebase_to(float(ep[a]) * span)
            assert self._t_ref is not None  # set by the rebase
            w = x[a:b] * 2.0 ** ((tt[a:b] - self._t_ref) / self.half_life_s)
            np.add.at(self._v, k[a:b] - self._k0, w)

    def _add_at(self, p: np.ndarray, x: np.ndarray, t: float) -> None:
        """:meth:`add` with one time ``t`` for all deposits: a single epoch, the loop's single run."""
        if not math.isfinite(t) or p.size == 0:
            return
        if not (0 < p.min() and p.max() < math.inf and np.isfinite(x).all()):  # (a NaN fails the comparisons)
            ok = np.isfinite(p) & (p > 0) & np.isfinite(x)
            p, x = p[ok], x[ok]
            if p.size == 0:
                return
        k = self.bucket_of(p)
        self._add_buckets(k, k.tolist(), x, t)

    def _add_buckets(self, k: np.ndarray, ks: list[int], x: np.ndarray, t: float) -> None:
        """The rest of :meth:`_add_at` once the buckets ``k`` (``ks`` as a list, not empty) of the
        valid deposits ``x`` are known."""
        k_lo, k_hi = min(ks), max(ks)
        self._ensure(k_lo, k_hi)
        if k_lo < self._k0 or k_hi >= self._k0 + self._v.size:  # only when max_buckets is hit
            inside = (k >= self._k0) & (k < self._k0 + self._v.size)
            k, x = k[inside], x[inside]
            if k.size == 0:
                return
            k_lo, k_hi = int(k.min()), int(k.max())
        self._touch(k_lo, k_hi)
        if self.half_life_s is not None:
            self._rebase_to(self._epoch(t))
            x = x * self._inflation(t)
        np.add.at(self._v, k - self._k0, x)

    def _epoch(self, t: float) -> float:
        """Start of the epoch of time ``t``: ``floor(t / span) * span``, ``span`` = EPOCH_HALF_LIVES half-lives."""
        assert self.half_life_s is not None  # only a decaying grid has epochs
        span = EPOCH_HALF_LIVES * self.half_life_s
        return float(math.floor(t / span)) * span

    def _inflation(self, t: float) -> np.float64:
        """``2 ** ((t - t_ref) / half_life_s)``, by NumPy's ``power`` like the batched path."""
        assert self.half_life_s is not None and self._t_ref is not None  # a decaying grid after its first rebase
        return np.power(2.0, (t - self._t_ref) / self.half_life_s)

    def add_one(self, price: float, value: float, t: float) -> None:
        """:meth:`add` of a single deposit (the same state), without building arrays."""
        price, value, t = float(price), float(value), float(t)
        if not (math.isfinite(price) and price > 0 and math.isfinite(value) and math.isfinite(t)):
            return
        k = self.bucket_of_one(price)
        self._ensure(k, k)
        i = k - self._k0
        if not 0 <= i < self._v.size:  # only when max_buckets is hit
            return
        self._touch(k, k)
        if self.half_life_s is None:
            self._v[i] += value
            return
        self._rebase_to(self._epoch(t))
        self._v[i] += value * self._inflation(t)

    def scale(self, f: float) -> None:
        """Multiply every bucket by ``f`` (e.g. a share of positions closed)."""
        if self._lo > self._hi and math.isfinite(f):  # all zero, and stays so
            return
        self._v *= f
        if f == 0:
            self._lo, self._hi = _EMPTY
        elif not math.isfinite(f):
            self._lo, self._hi = -_EMPTY[0], -_EMPTY[1]

    def values(self, k_lo: int, k_hi: int, t: float, out: np.ndarray | None = None) -> np.ndarray:
        """Actual values at time ``t`` of buckets ``k_lo..k_hi`` inclusive (zeros where empty).

        ``out``: a zero-filled array of ``k_hi - k_lo + 1`` to write them into (returned).
        """
        n = self._v.size
        if out is None:
            out = np.zeros(max(k_hi - k_lo + 1, 0), dtype=np.float64)
        if not n or out.size == 0:
            return out
        f = self.factor(t)
        a, b = max(k_lo, self._k0), min(k_hi, self._k0 + n - 1)
        if not math.isfinite(f):  # zeros times f are not zeros
            out[a - k_lo : b - k_lo + 1] = self._v[a - self._k0 : b - self._k0 + 1] if a <= b else 0.0
            out *= f
        elif a <= b:  # (zeros times a finite factor stay zeros)
            np.multiply(self._v[a - self._k0 : b - self._k0 + 1], f, out=out[a - k_lo : b - k_lo + 1])
        return out

    def add_weighted_values(self, k_lo: int, k_hi: int, t: float, weight: float, out: np.ndarray) -> np.ndarray:
        """``out += weight * values(k_lo, k_hi, t)``, the same floats, touching only the buckets
        that can be non-zero (``out``: ``k_hi - k_lo + 1`` values, returned).

        Outside the non-zero bounds the term is ``weight * 0.0 = +0.0`` for a finite ``weight``
        and a finite factor, which leaves ``out`` as it was (``out`` holds no ``-0.0``: it starts
        from zeros and only sums are added); otherwise (an infinite weight or factor) every bucket
        is computed as :meth:`values` does.

        >>> g = DecayingLogGrid(10.0, None)
        >>> g.add_one(100.0, 5.0, 0.0)
        >>> k = g.bucket_of_one(100.0)
        >>> g.add_weighted_values(k - 1, k + 1, 0.0, 0.5, np.array([1.0, 1.0, 1.0])).tolist()
        [1.0, 3.5, 1.0]
        """
        return self._add_weighted(k_lo, k_hi, t, weight, self.factor(t), out)

    def _add_weighted(self, k_lo: int, k_hi: int, t: float, weight: float, f: float, out: np.ndarray) -> np.ndarray:
        """:meth:`add_weighted_values` given this grid's decay factor ``f`` at ``t`` (:meth:`factor`)."""
        if not (math.isfinite(f) and math.isfinite(weight)):
            out += weight * self.values(k_lo, k_hi, t)
            return out
        a = max(k_lo, self._k0, self._lo)
        b = min(k_hi, self._k0 + self._v.size - 1, self._hi)
        if a <= b:
            segment = out[a - k_lo : b - k_lo + 1]
            segment += weight * (self._v[a - self._k0 : b - self._k0 + 1] * f)
        return out

    def take_ge(self, k: int, t: float) -> float:
        """Remove buckets with index ``>= k``; return their value at time ``t``."""
        if k > self._hi:  # nothing there
            return 0.0 * self.factor(t)
        i = min(max(k - self._k0, 0), self._v.size)
        s = float(self._v[i:].sum())
        self._v[i:] = 0.0
        self._hi = min(self._hi, k - 1)
        return s * self.factor(t)

    def take_le(self, k: int, t: float) -> float:
        """Remove buckets with index ``<= k``; return their value at time ``t``."""
        if k < self._lo:  # nothing there
            return 0.0 * self.factor(t)
        i = min(max(k - self._k0 + 1, 0), self._v.size)
        s = float(self._v[:i].sum())
        self._v[:i] = 0.0
        self._lo = max(self._lo, k + 1)
        return s * self.factor(t)

    def total(self, t: float) -> float:
        """Sum of all buckets at time ``t``."""
        if self._lo > self._hi:  # all zero
            return 0.0 * self.factor(t)
        return float(self._v.sum()) * self.factor(t)

    def nonzero(self, t: float) -> tuple[np.ndarray, np.ndarray]:
        """``(bucket indices, values at t)`` of the non-empty buckets, ascending."""
        idx = np.flatnonzero(self._v)
        return idx + self._k0, self._v[idx] * self.factor(t)


def add_rows(grids: list[DecayingLogGrid], prices: np.ndarray, values: np.ndarray, t: float) -> None:
    """``grids[i].add(prices[i], values[i], t)`` for each row ``i`` of the ``(len(grids), n)``
    arrays ``prices`` and ``values`` (the same states), with one time ``t`` for all: the buckets
    of every row in one :meth:`~DecayingLogGrid.bucket_of` call. The grids share ``bucket_bps``.

    >>> a, b = DecayingLogGrid(10.0, None), DecayingLogGrid(10.0, None)
    >>> add_rows([a, b], np.array([[100.0, 101.0], [90.0, 91.0]]), np.array([[1.0, 2.0], [3.0, 4.0]]), 0.0)
    >>> float(a.total(0.0)), float(b.total(0.0)), a.bucket_of_one(100.0) in a.nonzero(0.0)[0].tolist()
    (3.0, 7.0, True)
    """
    if not math.isfinite(t) or prices.size == 0:
        return
    if not (0 < prices.min() and prices.max() < math.inf and np.isfinite(values).all()):  # (a NaN fails them)
        for grid, p, x in zip(grids, prices, values, strict=True):
            grid.add(p, x, t)
        return
    k = grids[0].bucket_of(prices)
    for grid, k_row, ks, x in zip(grids, k, k.tolist(), values, strict=True):
        grid._add_buckets(k_row, ks, x, t)


def add_weighted_sum(
    grids: list[DecayingLogGrid], weights: list[float], k_lo: int, k_hi: int, t: float, out: np.ndarray
) -> np.ndarray:
    """``grids[i].add_weighted_values(k_lo, k_hi, t, weights[i], out)`` for each grid ``i`` in order
    whose weight is positive (the same floats), in one loop: the decay factor is computed once for
    grids that share their reference time and half-life (``2 ** (-(t - t_ref) / half_life_s)``, the
    same number), and only the buckets that can be non-zero are touched (``out``: ``k_hi - k_lo +
    1`` values, returned).

    >>> a, b = DecayingLogGrid(10.0, 3600.0), DecayingLogGrid(10.0, 3600.0)
    >>> a.add_one(100.0, 4.0, 0.0); b.add_one(100.0, 2.0, 0.0)
    >>> k = a.bucket_of_one(100.0)
    >>> add_weighted_sum([a, b], [0.5, 2.0], k, k + 1, 3600.0, np.zeros(2)).tolist()
    [3.0, 0.0]
    """
    key: tuple[float | None, float | None] | None = None
    f = 1.0
    for weight, grid in zip(weights, grids, strict=True):
        if not weight > 0:
            continue
        if (grid._t_ref, grid.half_life_s) != key:
            key = (grid._t_ref, grid.half_life_s)
            f = grid.factor(t)
        grid._add_weighted(k_lo, k_hi, t, weight, f, out)
    return out
