"""Book depth near the price, and its thinning against a trailing median.

For a book with bids ``(p_i, q_i)`` sorted best-first (descending prices) and
asks sorted best-first (ascending), the reference price is the mid
``m = (best_bid + best_ask) / 2`` (or the only side present), and the resting
notional within ``b`` basis points is, in quote currency,

    D_bid(b) = sum_{i: p_i >= m (1 - b/1e4)} p_i q_i
    D_ask(b) = sum_{i: p_i <= m (1 + b/1e4)} p_i q_i

computed with one ``cumsum`` and one ``searchsorted`` per side for all bands.

Thinning: :class:`DepthMonitor` keeps one sample per event-time second (the
last book seen in that second; seconds without an update repeat the previous
sample, since the book did not change) in a fixed-size ring buffer, and
reports

    ratio(b) = D(b) / median(D(b) over the previous window_s seconds)

(the current second excluded). A ratio of 0.4 means the book in front holds
40 % of its usual notional. It is NaN until ``min_samples`` past seconds exist.

The median is kept incrementally: one sorted list per side and band holds the
history (a sample enters when the next second starts and leaves when the ring
buffer overwrites it), so a readout is O(1) and equals ``numpy.median`` of the
history: the middle value, or ``(a + b) / 2`` of the two middle values; NaN
when a NaN is in the history.
"""

from __future__ import annotations

import bisect
import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["DepthMonitor", "DepthReadout", "depth_within", "DEFAULT_BANDS_BPS"]

DEFAULT_BANDS_BPS: tuple[int, ...] = (10, 25, 50, 100)


def _side(levels) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(levels, dtype=np.float64)
    if a.size == 0:
        return np.zeros(0), np.zeros(0)
    if a.ndim != 2 or a.shape[1] != 2:
        raise ValueError(f"book side must be (n, 2) pairs of (price, qty), got shape {a.shape}")
    return a[:, 0], a[:, 1]


_accumulate = np.add.accumulate
"""``np.cumsum`` of a 1-D array without its Python wrapper (the same call)."""


@functools.cache
def _bands(bands_bps: tuple[float, ...]) -> np.ndarray:
    """The band half-widths as fractions, ``bands_bps * 1e-4`` (read-only, shared)."""
    bands = np.asarray(bands_bps, dtype=np.float64) * 1e-4
    bands.flags.writeable = False
    return bands


def depth_within(bids, asks, bands_bps: Sequence[float] = DEFAULT_BANDS_BPS, ref: float | None = None):
    """Resting notional within each band of ``ref`` (default: the mid), per side.

    ``bids``/``asks``: ``(n, 2)`` arrays or sequences of ``(price, qty)``, best
    first. Returns ``(bid_usd, ask_usd, ref)`` with one value per band.

    >>> bids = [(99.95, 1.0), (99.8, 2.0), (99.0, 10.0)]
    >>> asks = [(100.05, 1.0), (100.3, 3.0)]
    >>> b, a, mid = depth_within(bids, asks, (10, 25, 100))
    >>> mid, b.tolist(), a.tolist()
    (100.0, [99.95, 299.55, 1289.55], [100.05, 100.05, 400.95])
    """
    bp, bq = _side(bids)
    ap, aq = _side(asks)
    if ref is None:
        if bp.size and ap.size:
            ref = 0.5 * (bp[0] + ap[0])
        elif bp.size:
            ref = float(bp[0])
        elif ap.size:
            ref = float(ap[0])
        else:
            ref = math.nan
    bands = _bands(tuple(bands_bps)) if type(bands_bps) is tuple else np.asarray(bands_bps, dtype=np.float64) * 1e-4
    bid_cum, ask_cum = np.zeros(bp.size + 1), np.zeros(ap.size + 1)  # 0, then the cumulative notional
    _accumulate(bp * bq, out=bid_cum[1:])  # (np.cumsum's own call)
    _accumulate(ap * aq, out=ask_cum[1:])
    nb = (-bp).searchsorted(-(ref * (1.0 - bands)), side="right")
    na = ap.searchsorted(ref * (1.0 + bands), side="right")
    return bid_cum[nb], ask_cum[na], float(ref)


@dataclass(frozen=True, slots=True)
class DepthReadout:
    """Depth per band (quote currency) and its ratio to the trailing median (NaN while warming up)."""

    mid: float
    bands_bps: tuple[int, ...]
    bid_usd: np.ndarray
    ask_usd: np.ndarray
    bid_ratio: np.ndarray
    ask_ratio: np.ndarray
    samples: int

    def to_dict(self) -> dict[str, dict[str, float | None]]:
        """Snapshot keys ``depth_bid_usd``, ``depth_ask_usd``, ``depth_bid_ratio``, ``depth_ask_ratio``."""

        def d(v: np.ndarray) -> dict[str, float | None]:
            return {
                str(b): (float(x) if math.isfinite(x) else None)
                for b, x in zip(self.bands_bps, v.tolist(), strict=True)
            }

        return {
            "depth_bid_usd": d(self.bid_usd),
            "depth_ask_usd": d(self.ask_usd),
            "depth_bid_ratio": d(self.bid_ratio),
            "depth_ask_ratio": d(self.ask_ratio),
        }


def _sorted_median(values: list[float]) -> float:
    """Median of an ascending list, as ``numpy.median`` computes it."""
    n = len(values)
    if n % 2:
        return values[n // 2]
    return (values[n // 2 - 1] + values[n // 2]) / 2


class DepthMonitor:
    """Depth within bands of the mid, and its ratio to a trailing per-second median.

    Parameters
    ----------
    bands_bps
        Band half-widths in basis points of the mid.
    window_s
        Length of the trailing window, seconds (ring buffer of per-second samples).
    min_samples
        Past seconds needed before the ratio is reported.

    Time arguments ``t`` are seconds since the epoch as floats; the sample of
    second ``floor(t)`` is the last book passed during that second.

    Examples
    --------
    >>> dm = DepthMonitor(bands_bps=(10, 100), window_s=60, min_samples=3)
    >>> thick = ([(99.95, 10.0)], [(100.05, 10.0)])
    >>> for s in range(5):
    ...     r = dm.update(*thick, t=float(s))
    >>> r = dm.update([(99.95, 2.5)], [(100.05, 10.0)], t=5.0)
    >>> r.bid_ratio.tolist(), r.ask_ratio.tolist()
    ([0.25, 0.25], [1.0, 1.0])
    """

    _hist: tuple[list[list[float]], list[int]] | None = None
    """History per side and band: ``2 * bands`` ascending lists without NaN, and the NaN count of
    each; ``None`` (a state pickled without it): rebuilt from the buffer."""

    def __init__(
        self, bands_bps: Sequence[int] = DEFAULT_BANDS_BPS, window_s: int = 600, min_samples: int = 30
    ) -> None:
        if window_s < 2:
            raise ValueError("window_s must be >= 2")
        self.bands_bps = tuple(int(b) for b in bands_bps)
        self.window_s = int(window_s)
        self.min_samples = int(min_samples)
        nb = len(self.bands_bps)
        self._buf = np.zeros((self.window_s, 2, nb), dtype=np.float64)
        self._n = 0  # filled slots
        self._pos = 0  # next slot to write
        self._sec: int | None = None  # second of the newest slot
        self._median: np.ndarray | None = None  # median of the slots before the newest
        self._median_sec: int | None = None
        self._last: DepthReadout | None = None
        self._hist = ([[] for _ in range(2 * nb)], [0] * (2 * nb))

    def _history_slots(self) -> np.ndarray:
        """Buffer slots of the history: the filled slots except the newest (the current second)."""
        newest = (self._pos - 1) % self.window_s
        return (newest - 1 - np.arange(max(self._n - 1, 0))) % self.window_s

    def _history(self) -> tuple[list[list[float]], list[int]]:
        """The sorted history lists and NaN counts (see ``_hist``)."""
        if self._hist is None:
            columns = self._buf[self._history_slots()].reshape(-1, 2 * len(self.bands_bps)).T.tolist()
            self._hist = (
                [sorted(x for x in col if not math.isnan(x)) for col in columns],
                [sum(math.isnan(x) for x in col) for col in columns],
            )
        return self._hist

    def _history_shift(self, enter: int, leave: int | None) -> None:
        """The sample of slot ``enter`` joins the history; that of slot ``leave`` (if any) leaves it."""
        lists, nans = self._history()
        entering = self._buf[enter].ravel().tolist()
        leaving = self._buf[leave].ravel().tolist() if leave is not None else None
        for j, values in enumerate(lists):
            x = entering[j]
            if math.isnan(x):
                nans[j] += 1
            else:
                bisect.insort(values, x)
            if leaving is not None:
                x = leaving[j]
                if math.isnan(x):
                    nans[j] -= 1
                else:
                    del values[bisect.bisect_left(values, x)]

    def _push(self, sample: np.ndarray) -> None:
        if self._n:  # the newest sample becomes history; the oldest leaves it when the ring is full
            full = self._n == self.window_s  # (window_s >= 2: the oldest is not the newest)
            self._history_shift((self._pos - 1) % self.window_s, self._pos if full else None)
        self._buf[self._pos] = sample
        self._pos = (self._pos + 1) % self.window_s
        self._n = min(self._n + 1, self.window_s)

    def _history_median(self) -> np.ndarray | None:
        """Median over the filled slots except the newest (the current second), cached per second."""
        if self._median_sec == self._sec:
            return self._median
        k = self._n - 1
        med = None
        if k >= max(self.min_samples, 1):
            lists, nans = self._history()
            med = np.array([_sorted_median(v) if not nan else math.nan for v, nan in zip(lists, nans, strict=True)])
            med = med.reshape(2, len(self.bands_bps))
        self._median, self._median_sec = med, self._sec
        return med

    def update(self, bids, asks, t: float) -> DepthReadout:
        """Measure the book at time ``t``, record it as the sample of second ``floor(t)``, return the readout.

        ``bids``/``asks`` as in :func:`depth_within` (best-first).
        """
        bid, ask, mid = depth_within(bids, asks, self.bands_bps)
        return self.update_values(bid, ask, mid, t)

    def update_values(self, bid_usd, ask_usd, mid: float, t: float) -> DepthReadout:
        """Record depth already measured (one value per band and side, quote currency) at time ``t``.

        For an asset on several venues: sum the venues' :func:`depth_within`
        values and feed the sum here, so the ratio is the asset's thinning.
        """
        nb = len(self.bands_bps)
        bid = np.asarray(bid_usd, dtype=np.float64).reshape(nb)
        ask = np.asarray(ask_usd, dtype=np.float64).reshape(nb)
        sample = np.array((bid, ask))
        sec = math.floor(t)
        if self._sec is None:
            self._push(sample)
            self._sec = sec
        elif sec == self._sec:
            self._buf[(self._pos - 1) % self.window_s] = sample
        elif sec > self._sec:
            prev = self._buf[(self._pos - 1) % self.window_s].copy()
            for _ in range(min(sec - self._sec - 1, self.window_s)):
                self._push(prev)
            self._push(sample)
            self._sec = sec
        # an older second than the newest one is measured but not recorded
        med = self._history_median()
        ratio = np.empty((2, nb))
        ratio.fill(math.nan)
        if med is not None:
            np.divide(sample, med, out=ratio, where=med > 0)
        self._last = DepthReadout(
            mid=mid,
            bands_bps=self.bands_bps,
            bid_usd=bid,
            ask_usd=ask,
            bid_ratio=ratio[0],
            ask_ratio=ratio[1],
            samples=max(self._n - 1, 0),
        )
        return self._last

    def readout(self) -> DepthReadout | None:
        """The readout of the last :meth:`update` (``None`` before the first)."""
        return self._last
