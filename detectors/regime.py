"""Cascade in progress and its type, per direction, from per-second aggregates.

Fed one row per event-time second: liquidations per liquidated side, aggressive
(taker) notional per side, the price, the depth ratio in front per side (from
:class:`cascadewatch.detectors.depth.DepthMonitor`, NaN when unknown) and auto-deleveraging
notional per direction where a venue publishes it. Over the trailing window
of ``W = window_s`` seconds, for direction ``down`` (``up`` mirrors it: short
liquidations, buy aggression, ask depth, a rising price):

- ``liq``      = long liquidation notional over W (quote currency);
- ``typ_liq``  = W * EWMA of the per-second liquidation notional (both sides),
                 half-life ``typical_half_life_s``, updated only while no
                 cascade is active (so a cascade does not raise its own bar);
- ``move_bps`` = 1e4 * (max price over W - price) / max price over W, the window's move;
- the cascade's start: a second ``s`` of W with a long liquidation from which the next
  ``onset_s`` seconds (up to now) carry at least ``onset_share`` of the liquidation threshold
  (the label's rule 4, :mod:`cascadewatch.detectors.labels`, whose start is the first such
  second; a later one starts a later wave); the move from the start =
  ``1e4 * (P_ref - min price since s) / P_ref``, ``P_ref`` the price of the second before
  ``s`` (the label's rule 7, its peak the lowest price so far), the largest over such ``s``
  and the episode's: while ``L`` holds the detector keeps the start it found when ``L`` began
  (the label's start of the episode, :attr:`RegimeDetector.episodes`) and the extreme since,
  so a slow cascade's move counts beyond the window, as the label counts it;
- ``aggr``     = aggressive sell notional over W, ``imbalance = (sell - buy) / (sell + buy)``;
- ``typ_aggr`` = W * EWMA of per-second aggressive notional (both sides) / 2;
- the depth collapse second: the first second of W whose bid depth ratio is
  below ``depth_collapse``; the liquidation onset second: the first second of W
  at which the cumulative long liquidations reach ``onset_share`` of the
  liquidation threshold.

Conditions: ``L``: ``liq >= max(liq_multiple * typ_liq, min_liq_usd)``;
``S``: ``imbalance >= stop_imbalance`` and ``aggr >= max(aggr_multiple * typ_aggr, min_aggr_usd)``;
``D``: ``L`` holds and a depth collapse second exists and precedes the liquidation
onset (a thin book that lets the price move without that side's liquidations reaching
``L``, e.g. the rebound after a crash, is no liquidation cascade); ``A``: deleveraging
notional over W is positive.

A cascade is in progress when one of them holds with its move of at least ``min_move_bps``;
its type, by priority: ``deleveraging`` (A, the window's move), ``liquidity`` (D: the book
went first, then the liquidations; the move from the start), ``liquidation`` (L, the move
from the start), ``stop_run`` (S without L, the window's move: one-sided aggression with no
liquidations behind it). Liquidation-driven kinds measure their move the label's way: a
price that fell from the window's high before the liquidations began, and little after,
is no cascade of those liquidations (the label would not call it one either).

The window lives in a column-major ring written twice (slots ``i`` and ``i + W``),
so the window is one contiguous slice per column and its sums are NumPy's
(pairwise) sums of the oldest-first column, one reduction for all columns.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

__all__ = ["RegimeDetector", "RegimeState", "KINDS"]

KINDS = ("deleveraging", "liquidity", "liquidation", "stop_run")

# columns of the ring buffer
_LL, _LS, _BUY, _SELL, _PX, _DB, _DA, _ADLD, _ADLU = range(9)
_FLOWS = [_LL, _LS, _BUY, _SELL, _ADLD, _ADLU]
"""Columns that are zero in a second without data (the others repeat the last second)."""


_Price = TypeVar("_Price", float, np.ndarray)


def move_bps(ref: _Price, extreme: _Price, down: bool) -> _Price:
    """The move from ``ref`` to ``extreme`` in bps, positive in the direction (down: a fall):
    ``(ref - extreme) / ref * 1e4`` down, ``(extreme - ref) / ref * 1e4`` up; floats or arrays
    (element by element). The label's rule 7, and the in-progress alerts' move (the per-second
    check here, the provisional fast path in ``pipelines/steps/provisional.py``)."""
    return (ref - extreme) / ref * 1e4 if down else (extreme - ref) / ref * 1e4


def _window_min(dr: np.ndarray, m: float) -> float:
    """``nanmin(dr)`` if ``dr`` has a finite value, else NaN (``RegimeState.depth_ratio``), given
    ``m = fmin.reduce(dr)`` (the minimum ignoring NaN)."""
    if math.isfinite(m):
        return m
    return float(np.nanmin(dr)) if np.isfinite(dr).any() else math.nan


@dataclass(frozen=True, slots=True)
class RegimeState:
    """State of one direction: ``active`` and ``kind`` (one of :data:`KINDS` or ``None``),
    ``since`` (s, first active second of the current episode) and the window measures
    (quote currency, bps, ratios) that decided it; ``move_bps`` is the move from the
    cascade's start while ``L`` holds, the window's move otherwise."""

    direction: str
    active: bool
    kind: str | None
    since: float | None
    liq_usd: float
    liq_threshold_usd: float
    aggr_usd: float
    imbalance: float
    move_bps: float
    depth_ratio: float


class RegimeDetector:
    """Cascade in progress and type, both directions, one asset.

    Parameters
    ----------
    window_s
        Trailing window ``W``, seconds.
    typical_half_life_s
        Half-life of the typical per-second levels, seconds.
    liq_multiple, min_liq_usd
        Liquidation-driven: window liquidations over ``liq_multiple`` typical windows and at least ``min_liq_usd``.
    min_move_bps
        Price move in the direction over the window, bps.
    stop_imbalance, aggr_multiple, min_aggr_usd
        Stop-run: aggression imbalance and size thresholds.
    depth_collapse
        Depth ratio in front below which the book has collapsed.
    onset_share
        Share of the liquidation threshold that marks the liquidation onset (cumulative, for
        ``D``) and the cascade's start (over ``onset_s`` seconds, for the move).
    onset_s
        Seconds from the cascade's start that must carry ``onset_share`` of the threshold.

    Time ``t`` is in seconds; one call per second, increasing (gaps are filled
    with empty seconds; a repeated or older second is ignored).

    Examples
    --------
    >>> rd = RegimeDetector(window_s=10, min_liq_usd=1e6, min_move_bps=30)
    >>> for s in range(30):                      # calm
    ...     st = rd.update(float(s), 100.0, 1e3, 1e3, 5e4, 5e4)
    >>> st["down"].active
    False
    >>> for s in range(30, 35):                  # longs liquidated, price falls 1 %
    ...     st = rd.update(float(s), 100.0 - 0.2 * (s - 29), 4e5, 0.0, 5e4, 3e5)
    >>> st["down"].kind, st["up"].active
    ('liquidation', False)
    """

    def __init__(  # noqa: PLR0913 - river-style estimator: each hyperparameter is a constructor keyword with a default
        self,
        window_s: int = 60,
        typical_half_life_s: float = 3600.0,
        liq_multiple: float = 5.0,
        min_liq_usd: float = 250_000.0,
        min_move_bps: float = 30.0,
        stop_imbalance: float = 0.6,
        aggr_multiple: float = 3.0,
        min_aggr_usd: float = 1_000_000.0,
        depth_collapse: float = 0.5,
        onset_share: float = 0.1,
        onset_s: int = 10,
    ) -> None:
        self.window_s = int(window_s)
        self.lam = 2.0 ** (-1.0 / float(typical_half_life_s))
        self.liq_multiple = float(liq_multiple)
        self.min_liq_usd = float(min_liq_usd)
        self.min_move_bps = float(min_move_bps)
        self.stop_imbalance = float(stop_imbalance)
        self.aggr_multiple = float(aggr_multiple)
        self.min_aggr_usd = float(min_aggr_usd)
        self.depth_collapse = float(depth_collapse)
        self.onset_share = float(onset_share)
        self.onset_s = int(onset_s)
        self._cols = np.zeros((9, 2 * self.window_s))  # column-major, each row written at pos and pos + W
        self._cols[[_PX, _DB, _DA]] = np.nan
        self._pos = 0
        self._n = 0
        self._px_before = math.nan  # price of the second just before the window
        self._sec: int | None = None
        self._typ_liq = 0.0  # per second, both sides
        self._typ_aggr = 0.0  # per second, both sides
        self._since: dict[str, float | None] = {"down": None, "up": None}
        self.episodes: dict[str, tuple[float, float] | None] = {"down": None, "up": None}
        """Per direction while ``L`` holds: the price before the episode's start and the extreme since."""
        self._state: dict[str, RegimeState] = {}

    def __setstate__(self, state: dict) -> None:
        """Unpickle; a state with the older row-major ring ``_buf`` is converted, one without
        the onset fields gets their defaults (``onset_s`` 10, no price before the window)."""
        state.setdefault("onset_s", 10)
        state.setdefault("_px_before", math.nan)
        state.setdefault("episodes", {"down": None, "up": None})
        if "_buf" in state:
            buf = state.pop("_buf")
            state["_cols"] = np.ascontiguousarray(np.concatenate((buf.T, buf.T), axis=1))  # C order: pairwise row sums
        self.__dict__.update(state)

    def _push(self, row: np.ndarray | list[float]) -> None:
        if self._n == self.window_s:  # the oldest second leaves the window
            self._px_before = float(self._cols[_PX, self._pos])
        self._cols[:, self._pos] = row
        self._cols[:, self._pos + self.window_s] = row
        self._pos = (self._pos + 1) % self.window_s
        self._n = min(self._n + 1, self.window_s)

    def _window(self) -> np.ndarray:
        """Window as ``(9, n)`` columns, oldest first (a view)."""
        end = self._pos + self.window_s
        return self._cols[:, end - self._n : end]

    def update(  # noqa: PLR0913 - one keyword per per-second input series, most optional (default: none seen)
        self,
        t: float,
        price: float,
        liq_long_usd: float = 0.0,
        liq_short_usd: float = 0.0,
        buy_usd: float = 0.0,
        sell_usd: float = 0.0,
        depth_ratio_bid: float = math.nan,
        depth_ratio_ask: float = math.nan,
        adl_down_usd: float = 0.0,
        adl_up_usd: float = 0.0,
    ) -> dict[str, RegimeState]:
        """Feed second ``floor(t)``; returns ``{"down": RegimeState, "up": RegimeState}``."""
        sec = math.floor(t)
        if self._sec is not None and sec <= self._sec:
            return self._state
        if self._sec is not None:
            gap = min(sec - self._sec - 1, self.window_s)
            if gap > 0:
                last = self._cols[:, self._pos + self.window_s - 1].copy()
                last[_FLOWS] = 0.0
                for _ in range(gap):
                    self._push(last)
                lg = self.lam ** (sec - self._sec - 1)
                self._typ_liq *= lg
                self._typ_aggr *= lg
        self._sec = sec
        row = [
            liq_long_usd,
            liq_short_usd,
            buy_usd,
            sell_usd,
            price,
            depth_ratio_bid,
            depth_ratio_ask,
            adl_down_usd,
            adl_up_usd,
        ]
        self._push(row)
        w = self._window()
        sums = np.add.reduce(w, axis=1).tolist()  # per column, as w[c].sum()
        typ_liq_w = self.window_s * self._typ_liq
        typ_aggr_w = self.window_s * self._typ_aggr / 2.0
        liq_thr = max(self.liq_multiple * typ_liq_w, self.min_liq_usd)
        aggr_thr = max(self.aggr_multiple * typ_aggr_w, self.min_aggr_usd)
        px = w[_PX]
        hi, lo = np.fmax.reduce(px), np.fmin.reduce(px)  # nanmax, nanmin
        depth = w[_DB : _DA + 1]  # bid and ask depth ratios
        depth_min = np.fmin.reduce(depth, axis=1).tolist()
        collapsed = depth < self.depth_collapse
        first_collapse = [
            i if c else None
            for i, c in zip(
                collapsed.argmax(axis=1).tolist(), np.logical_or.reduce(collapsed, axis=1).tolist(), strict=True
            )  # (np.any's own reduction)
        ]
        out = {}
        for d, liq_c, mine, other, depth_c, adl_c in (
            ("down", _LL, _SELL, _BUY, _DB, _ADLD),
            ("up", _LS, _BUY, _SELL, _DA, _ADLU),
        ):
            liq = sums[liq_c]
            aggr = sums[mine]
            tot = aggr + sums[other]
            imb = (aggr - sums[other]) / tot if tot > 0 else 0.0
            move = (hi - price) / hi * 1e4 if d == "down" else (price - lo) / lo * 1e4
            c_liq = liq >= liq_thr
            c_stop = imb >= self.stop_imbalance and aggr >= aggr_thr
            c_depth = c_liq and self._depth_first(first_collapse[depth_c - _DB], w[liq_c], liq_thr)
            c_adl = sums[adl_c] > 0
            liq_move = self._liquidation_move(d, w[liq_c], px, liq_thr) if c_liq else math.nan
            if not c_liq:
                self.episodes[d] = None
            kind = None
            if c_adl and move >= self.min_move_bps:
                kind = "deleveraging"
            elif c_liq:
                move = liq_move
                if move >= self.min_move_bps:
                    kind = "liquidity" if c_depth else "liquidation"
            elif c_stop and move >= self.min_move_bps:
                kind = "stop_run"
            active = kind is not None
            if active and self._since[d] is None:
                self._since[d] = float(sec)
            elif not active:
                self._since[d] = None
            out[d] = RegimeState(
                direction=d,
                active=active,
                kind=kind,
                since=self._since[d],
                liq_usd=liq,
                liq_threshold_usd=liq_thr,
                aggr_usd=aggr,
                imbalance=imb,
                move_bps=float(move),
                depth_ratio=_window_min(w[depth_c], depth_min[depth_c - _DB]),
            )
        if not (out["down"].active or out["up"].active):
            self._typ_liq = self.lam * self._typ_liq + (1.0 - self.lam) * (liq_long_usd + liq_short_usd)
            self._typ_aggr = self.lam * self._typ_aggr + (1.0 - self.lam) * (buy_usd + sell_usd)
        self._state = out
        return out

    def _depth_first(self, collapse: int | None, liq: np.ndarray, liq_thr: float) -> bool:
        """Condition ``D``: the first second of the window with collapsed depth (``collapse``,
        ``None`` if none) comes before the liquidation onset, which must exist."""
        if collapse is None:
            return False
        onset = np.cumsum(liq) >= self.onset_share * liq_thr
        return bool(onset.any()) and collapse < int(onset.argmax())

    def _liquidation_move(self, d: str, liq: np.ndarray, px: np.ndarray, liq_thr: float) -> float:
        """The move (bps, positive in direction ``d``) from the price before the cascade's start
        to the extreme since, the largest over the window's possible starts and the episode's
        (module docstring): the label's start and move (its rules 4 and 7) on the window ``liq``
        (this direction's liquidations) and ``px`` (prices), oldest first; called while ``L``
        holds, it opens the episode at its first call.

        A start exists whenever ``L`` holds (one of the ``W / onset_s`` slices of a window
        carrying the threshold carries ``onset_s / W`` of it); without one the move is 0. The
        price before the window's first second is the one that left it (its own price when
        unknown, as the label does at the start of its data)."""
        down = d == "down"
        c = np.concatenate(([0.0], np.cumsum(liq)))
        n = len(liq)
        ahead = c[np.minimum(np.arange(n) + self.onset_s, n)] - c[:n]
        starts = np.flatnonzero((liq > 0.0) & (ahead >= self.onset_share * liq_thr))
        episode = self.episodes[d]
        if episode is not None:  # the extreme since the episode's start, this second's price included
            ext = (np.fmin if down else np.fmax)(episode[1], px[-1])
            episode = self.episodes[d] = (episode[0], float(ext))
        if not starts.size:
            return 0.0 if episode is None else move_bps(episode[0], episode[1], down)
        before = np.concatenate(([self._px_before], px[:-1]))[starts]
        ref = np.where(np.isfinite(before), before, px[starts])
        # the extreme price from each start on
        ext = (np.fmin if down else np.fmax).accumulate(px[::-1])[::-1][starts]
        if episode is None:  # the label's start: the first
            episode = self.episodes[d] = (float(ref[0]), float(ext[0]))
        return float(np.fmax(np.fmax.reduce(move_bps(ref, ext, down)), move_bps(episode[0], episode[1], down)))

    def readout(self) -> dict[str, RegimeState]:
        """The states of the last :meth:`update` (empty before the first)."""
        return self._state
