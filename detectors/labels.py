"""The cascade label: the one written definition of "a liquidation cascade happened".

Used by the simulator (to write the truth file from the *true* forced notional) and by
the live flow (to produce delayed labels for online training), so both agree by
construction. Pure: no I/O, no clock; time comes in with the data.

Input, per asset, one row per event-time second (UTC epoch milliseconds, second-aligned):

- ``price``: the asset's price at the *end* of that second (last trade, mid or mark);
- ``forced_long``: notional (quote currency, USD) of *long* positions liquidated during
  that second (forced sells, they push the price down);
- ``forced_short``: notional of *short* positions liquidated (forced buys, price up).

Definition, for direction ``d`` (``down`` uses ``forced_long`` and a falling price, ``up``
uses ``forced_short`` and a rising price), with ``W = window_s``:

1. ``F(t)`` = forced notional of direction ``d`` over the ``W`` seconds ``(t - W, t]``.
2. Typical minute ``M(t)`` = median of the total forced notional (both sides) of the last
   ``baseline_minutes`` *completed* UTC minutes before ``t``; 0 while fewer than
   ``min_baseline_minutes`` minutes have completed (the floor alone applies then).
   Threshold ``T(t) = max(k * M(t), floor_usd)``.
3. Second ``t`` is *active* when ``F(t) >= T(t)`` (and ``F(t) > 0``). Runs of active
   seconds separated by fewer than ``merge_gap_s`` inactive seconds form one episode
   ``[a, b]`` (``a`` = first, ``b`` = last active second).
4. ``start`` = the first second ``s`` of the window ``(a - W, a]`` with a liquidation
   (``forced(s) > 0``) from which the next ``onset_s`` seconds ``[s, s + onset_s)`` carry at
   least ``onset_share * T(a)``: the cascade starts with the first liquidation of its dense
   part, not when the trailing sum crosses the threshold (which lags), and a background
   trickle of small liquidations earlier in the window is not part of it. Such a second
   always exists (one of the six 10-second slices of a window holding ``T`` holds ``T/6``).
5. ``end`` = the last second ``e`` of the window ``(b - W, b]`` with a liquidation whose
   previous ``onset_s`` seconds ``(e - onset_s, e]`` carry at least ``onset_share * T(b)``
   (never before ``start``): the mirror image of ``start``.
6. ``peak`` = the first second in ``[start, end]`` whose price is the extreme in direction
   ``d`` (the lowest for ``down``, the highest for ``up``): the bottom of the move.
7. ``move_bps`` = ``1e4 * (P_ref - P_peak) / P_ref`` for ``down`` (``(P_peak - P_ref) / P_ref``
   for ``up``), ``P_ref`` = price at the second before ``start`` (the close before the first
   forced second). ``forced_notional`` = forced notional of ``d`` over ``[start, end]``.
8. The episode is a cascade when ``move_bps >= min_move_bps``; otherwise the forced flow
   was absorbed without a move and it is not one.

Output: ``{"type": "cascade", "asset", "direction", "start", "peak", "end",
"forced_notional", "move_bps"}`` with times in UTC epoch ms and the two floats rounded to
2 decimals (byte-stable JSON).

The online form (:class:`CascadeLabeler`) emits a cascade once it is closed: ``merge_gap_s``
seconds after its last active second. The offline form (:func:`label_series`) feeds the
online one and flushes at the end of the data, so the two cannot disagree.

Examples
--------
>>> cfg = LabelConfig(floor_usd=1e6, min_move_bps=50)
>>> t0 = 1_768_435_200_000          # 2026-01-15T00:00:00Z
>>> ts = [t0 + 1000 * i for i in range(200)]
>>> price = [100.0] * 100 + [99.0] * 100      # -100 bps at second 100
>>> fl = [0.0] * 100 + [300_000.0] * 5 + [0.0] * 95
>>> [(c["direction"], (c["start"] - t0) // 1000, (c["end"] - t0) // 1000, c["forced_notional"])
...  for c in label_series(ts, price, fl, [0.0] * 200, asset="BTC-USDT", config=cfg)]
[('down', 100, 104, 1500000.0)]
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Sequence
from statistics import median

import msgspec

__all__ = ["LabelConfig", "CascadeLabeler", "label_series", "label_rows", "DIRECTIONS"]

DIRECTIONS = ("down", "up")
_MS = 1000


class LabelConfig(msgspec.Struct, frozen=True, kw_only=True):
    """Thresholds of the cascade label (see the module docstring for the definition).

    - ``window_s``: length ``W`` of the trailing forced-notional window, seconds (60).
    - ``k_typical``: multiple of the typical minute the window must reach (10).
    - ``floor_usd``: absolute floor of the threshold, USD per window (1,000,000).
    - ``baseline_minutes``: completed minutes in the typical-minute median (1440 = 1 day).
    - ``min_baseline_minutes``: completed minutes needed before the median is used (30).
    - ``min_move_bps``: minimum price move in the cascade direction, basis points (50).
    - ``onset_s``, ``onset_share``: a second with a liquidation opens (closes) the cascade
      when the ``onset_s`` seconds from (up to) it carry ``onset_share`` of the threshold
      (10 s, 0.1).
    - ``merge_gap_s``: active runs closer than this many seconds are one cascade; also the
      delay after the last active second before the online form emits it (60).
    """

    window_s: int = 60
    k_typical: float = 10.0
    floor_usd: float = 1_000_000.0
    baseline_minutes: int = 1440
    min_baseline_minutes: int = 30
    min_move_bps: float = 50.0
    onset_s: int = 10
    onset_share: float = 0.1
    merge_gap_s: int = 60

    def __post_init__(self) -> None:
        if self.window_s < 1 or self.merge_gap_s < 1 or self.baseline_minutes < 1:
            raise ValueError("window_s, merge_gap_s and baseline_minutes must be >= 1")
        if self.onset_s < 1 or not 0.0 < self.onset_share <= 1.0 / 6.0:
            raise ValueError("onset_s must be >= 1 and onset_share in (0, 1/6]")
        if self.floor_usd <= 0 or self.k_typical < 0 or self.min_move_bps < 0:
            raise ValueError("floor_usd must be > 0, k_typical and min_move_bps >= 0")


class _Episode:
    """An open episode of one direction: rows from ``a - W`` (one before the window) on."""

    __slots__ = ("a", "b", "rows", "idx_a", "idx_b", "thr_a", "thr_b")

    def __init__(self, rows: list[tuple[int, float, float]], a: int, threshold: float) -> None:
        self.rows = rows  # (ts_ms, price, forced of this direction)
        self.a = a
        self.b = a
        self.idx_a = len(rows) - 1
        self.idx_b = self.idx_a
        self.thr_a = threshold
        self.thr_b = threshold


class CascadeLabeler:
    """Online cascade labeller for one asset: feed seconds in order, get closed cascades.

    ``update(ts_ms, price, forced_long, forced_short)`` takes one second (ts second-aligned,
    strictly increasing; missing seconds in between are filled with no liquidations and the
    last price, gaps longer than an hour restart the window state) and returns the cascades
    that closed with it (usually none). ``flush()`` closes what is still open at the end
    of the data. State is plain data and pickles.

    ``asset`` (required) names the asset in the cascades it emits; ``config`` defaults to
    :class:`LabelConfig` ``()``.

    Examples
    --------
    Five seconds of 300k USD of longs liquidated from second 100 while the price falls 1%:
    the 60 s window reaches the 1M floor at second 103 and stays above it until second
    160, when the burst starts leaving the window; the cascade (start 100, end 104: the
    dense part) is emitted ``merge_gap_s`` = 60 s after that last active second.

    >>> lab = CascadeLabeler("BTC-USDT", LabelConfig(floor_usd=1e6, min_move_bps=50))
    >>> t0 = 1_768_435_200_000  # 2026-01-15T00:00:00Z
    >>> def feed(seconds):
    ...     closed = {}
    ...     for i in seconds:
    ...         price, forced_long = (100.0 if i < 100 else 99.0), (300_000.0 if 100 <= i < 105 else 0.0)
    ...         for c in lab.update(t0 + 1000 * i, price, forced_long):
    ...             start, end = (c["start"] - t0) // 1000, (c["end"] - t0) // 1000
    ...             closed[i] = (start, end, c["forced_notional"], c["move_bps"])
    ...     return closed
    >>> feed(range(0, 150)), lab.window_forced(), lab.threshold
    ({}, (1500000.0, 0.0), 1000000.0)
    >>> feed(range(150, 300))
    {220: (100, 104, 1500000.0, 100.0)}
    >>> lab.window_forced()
    (0.0, 0.0)
    """

    #: longer data gaps than this restart the window state instead of filling seconds
    MAX_FILL_S = 3600

    def __init__(self, asset: str, config: LabelConfig | None = None) -> None:
        self.asset = asset
        self.config = config or LabelConfig()
        w = self.config.window_s
        self._rows: deque[tuple[int, float, float, float]] = deque(maxlen=w + 1)
        self._fl: deque[float] = deque(maxlen=w)
        self._fs: deque[float] = deque(maxlen=w)
        self._minutes: deque[float] = deque(maxlen=self.config.baseline_minutes)
        self._typical = 0.0
        self._minute: int | None = None
        self._minute_total = 0.0
        self._last_ts: int | None = None
        self._last_price = math.nan
        self._episodes: dict[str, _Episode | None] = {"down": None, "up": None}

    # ------------------------------------------------------------------ readouts
    @property
    def typical_minute(self) -> float:
        """Median total forced notional of the completed baseline minutes (USD)."""
        return self._typical

    @property
    def threshold(self) -> float:
        """Current window threshold ``max(k * typical minute, floor)`` (USD)."""
        return max(self.config.k_typical * self._typical, self.config.floor_usd)

    def window_forced(self) -> tuple[float, float]:
        """Forced notional of longs and shorts over the trailing window (USD)."""
        return sum(self._fl), sum(self._fs)

    # ------------------------------------------------------------------ feeding
    def update(
        self, ts_ms: int, price: float | None, forced_long: float = 0.0, forced_short: float = 0.0
    ) -> list[dict]:
        """Feed one second; returns the cascades closed by it (see class docstring)."""
        ts_ms = int(ts_ms)
        if ts_ms % _MS:
            raise ValueError(f"ts_ms must be second-aligned, got {ts_ms}")
        out: list[dict] = []
        last = self._last_ts
        if last is not None:
            if ts_ms <= last:
                raise ValueError(f"seconds must increase: {ts_ms} after {last}")
            gap = (ts_ms - last) // _MS - 1
            if gap > self.MAX_FILL_S:
                out.extend(self.flush())
                self._restart()
            else:
                for i in range(1, gap + 1):
                    out.extend(self._step(last + i * _MS, self._last_price, 0.0, 0.0))
        if price is not None and math.isfinite(price) and price > 0:
            self._last_price = float(price)
        out.extend(self._step(ts_ms, self._last_price, max(float(forced_long), 0.0), max(float(forced_short), 0.0)))
        self._last_ts = ts_ms
        return out

    def flush(self) -> list[dict]:
        """Close the open episodes at the end of the data; returns those that are cascades."""
        out = []
        for d in DIRECTIONS:
            ep = self._episodes[d]
            if ep is not None:
                self._episodes[d] = None
                label = self._close(d, ep)
                if label is not None:
                    out.append(label)
        return out

    # ------------------------------------------------------------------ internals
    def _restart(self) -> None:
        self._rows.clear()
        self._fl.clear()
        self._fs.clear()
        self._minute = None
        self._minute_total = 0.0

    def _step(self, ts: int, price: float, fl: float, fs: float) -> list[dict]:
        cfg = self.config
        minute = ts // 60_000
        if minute != self._minute:
            if self._minute is not None:
                self._minutes.append(self._minute_total)
                if len(self._minutes) >= cfg.min_baseline_minutes:
                    self._typical = median(self._minutes)
            self._minute = minute
            self._minute_total = 0.0
        threshold = max(cfg.k_typical * self._typical, cfg.floor_usd)
        self._minute_total += fl + fs
        self._rows.append((ts, price, fl, fs))
        self._fl.append(fl)
        self._fs.append(fs)
        out: list[dict] = []
        for d, forced, window in (("down", fl, self._fl), ("up", fs, self._fs)):
            total = sum(window)
            active = total > 0.0 and total >= threshold
            ep = self._episodes[d]
            if ep is None:
                if active:
                    col = 2 if d == "down" else 3
                    rows = [(r[0], r[1], r[col]) for r in self._rows]
                    self._episodes[d] = _Episode(rows, ts, threshold)
                continue
            ep.rows.append((ts, price, forced))
            if active:
                ep.b = ts
                ep.idx_b = len(ep.rows) - 1
                ep.thr_b = threshold
            elif ts - ep.b >= cfg.merge_gap_s * _MS:
                self._episodes[d] = None
                label = self._close(d, ep)
                if label is not None:
                    out.append(label)
        return out

    def _start_index(self, rows: list[tuple[int, float, float]], last: int, threshold: float) -> int:
        """First second of the window ending at ``last`` that opens a dense onset (rule 4)."""
        cfg = self.config
        need = cfg.onset_share * threshold
        for i in range(max(last - cfg.window_s + 1, 0), last + 1):
            if rows[i][2] > 0.0 and sum(r[2] for r in rows[i : i + cfg.onset_s]) >= need:
                return i
        return last

    def _end_index(self, rows: list[tuple[int, float, float]], last: int, threshold: float) -> int:
        """Last second of the window ending at ``last`` that closes a dense stretch (rule 5)."""
        cfg = self.config
        need = cfg.onset_share * threshold
        first = max(last - cfg.window_s + 1, 0)
        for i in range(last, first - 1, -1):
            if rows[i][2] > 0.0 and sum(r[2] for r in rows[max(i - cfg.onset_s + 1, 0) : i + 1]) >= need:
                return i
        return last

    def _close(self, direction: str, ep: _Episode) -> dict | None:
        rows = ep.rows
        i_start = self._start_index(rows, ep.idx_a, ep.thr_a)
        i_end = max(self._end_index(rows, ep.idx_b, ep.thr_b), i_start)
        p_ref = rows[i_start - 1][1] if i_start > 0 else rows[i_start][1]
        down = direction == "down"
        i_peak = i_start
        for i in range(i_start, i_end + 1):
            p = rows[i][1]
            if (p < rows[i_peak][1]) if down else (p > rows[i_peak][1]):
                i_peak = i
        p_peak = rows[i_peak][1]
        if not (math.isfinite(p_ref) and math.isfinite(p_peak) and p_ref > 0):
            return None
        move = 1e4 * ((p_ref - p_peak) if down else (p_peak - p_ref)) / p_ref
        if move < self.config.min_move_bps:
            return None
        forced = sum(r[2] for r in rows[i_start : i_end + 1])
        return {
            "type": "cascade",
            "asset": self.asset,
            "direction": direction,
            "start": rows[i_start][0],
            "peak": rows[i_peak][0],
            "end": rows[i_end][0],
            "forced_notional": round(forced, 2),
            "move_bps": round(move, 2),
        }


def label_series(
    ts_ms: Sequence[int],
    price: Sequence[float],
    forced_long: Sequence[float],
    forced_short: Sequence[float],
    *,
    asset: str,
    config: LabelConfig | None = None,
) -> list[dict]:
    """All cascades of one asset's per-second series, sorted by ``(start, direction)``."""
    if not (len(ts_ms) == len(price) == len(forced_long) == len(forced_short)):
        raise ValueError("ts_ms, price, forced_long and forced_short must have the same length")
    return label_rows(zip(ts_ms, price, forced_long, forced_short, strict=True), asset=asset, config=config)


def label_rows(
    rows: Iterable[tuple[int, float, float, float]], *, asset: str, config: LabelConfig | None = None
) -> list[dict]:
    """Like :func:`label_series` from ``(ts_ms, price, forced_long, forced_short)`` rows."""
    labeler = CascadeLabeler(asset, config)
    out: list[dict] = []
    for ts, p, fl, fs in rows:
        out.extend(labeler.update(ts, p, fl, fs))
    out.extend(labeler.flush())
    out.sort(key=lambda c: (c["start"], c["direction"]))
    return out
