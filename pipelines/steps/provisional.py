"""Provisional cascade alerts: the cascade trigger checked on what has arrived, at receive-time checkpoints.

The per-second path pages when an event-time second closes, ``allowed_lag_s`` after its end
(2-3 s after the exchange event, by design: late frames still count). A liquidation cascade
does not wait, so each source partition also checks, per venue instrument, the liquidation
trigger on the frames it has read so far, at fixed checkpoints of *receive* time
(``[provisional] checkpoint_ms``, 250 ms by default: ``c = k * checkpoint``):

- the window is the ``regime_window_s`` of receive time up to ``c`` (frames with ``recv <= c``),
  in checkpoint buckets;
- ``liq``: liquidation notional of the long (down) or short (up) side over the window (quote);
- ``move_bps``: measured the label's way (:mod:`cascadewatch.detectors.labels`, rules 4 and
  7), from the cascade's start: a bucket of the window with a liquidation of that side from
  which the next ``onset_s`` seconds carry at least ``onset_share`` of ``regime_min_liq_usd``
  (``[detectors.labels]``); down ``1e4 * (P_ref - lowest trade price since) / P_ref``, up
  ``1e4 * (highest since - P_ref) / P_ref``, ``P_ref`` the last trade price before the start
  bucket's frames (the extreme inside that bucket when none was seen); the largest over the
  window's possible starts (the label's is the first; a later one starts a later wave). A
  price that slid before the liquidations began does not count: the per-second check
  (:class:`~cascadewatch.detectors.regime.RegimeDetector`) measures it the same way, and
  also keeps an episode's start past the window (a slow cascade), which this fast path does not;
- the trigger holds when ``liq >= regime_min_liq_usd`` and ``move_bps >= regime_min_move_bps``
  (``[detectors]``, the liquidation cascade's own thresholds; without the per-second check's
  ``liq_multiple`` of the typical liquidations, which the per-second path adds when it confirms).

Checkpoint ``c`` is checked when the instrument's first frame received after ``c`` is read
(its frames arrive in receive order: nothing received by ``c`` can come later), so the check
sees exactly the frames with ``recv <= c`` whatever the batch size, and a replay of the
recording (which keeps the receive times) gives the same alerts as the live run. At 10,000
frames/s that frame follows within a millisecond; a silent instrument is checked at its next
frame, and its per-second alert is not held back. Once the trigger has fired for a direction it
fires again only after it has not held at any check for a whole window (one provisional alert
per instrument and episode: a cascade's price bounces and its liquidations come in waves).

A provisional alert is a cascade ``trigger`` with ``provisional: true``, severity ``critical``,
on the per-second path's dedup key ``{asset}:cascade:{direction}``, ``ts`` and ``opened_ts``
the checkpoint (receive time, ms), the venue and instrument that saw it; its id is derived
from the key, venue, instrument and checkpoint. It goes two ways:

- straight to the alert outbox (live runs that deliver alerts): the page does not wait for
  the event-time second to close;
- with the instrument's state of the open event-time second (:class:`ProvisionalAlert`'s
  ``second``) through the merge step to its asset's step, which writes it into the ordered
  output (JSONL, risk feed, and the outbox again: enqueueing is idempotent on the id) and
  watches it: if the per-second policy has not opened its own incident on the key within
  ``[provisional] confirm_s``, the asset's step resolves the provisional alert
  (:class:`ProvisionalWatch`). The outbox does not page a trigger on a key whose last page
  to a destination is an open trigger of the same or a higher severity, so the per-second
  trigger that confirms a provisional one does not page twice
  (:meth:`cascadewatch.connectors.alerts.outbox.Outbox.enqueue`).
"""

from __future__ import annotations

from collections import deque
from itertools import islice
from typing import Any

import msgspec

from cascadewatch.connectors.events import Liquidation, Trade, asset_of
from cascadewatch.connectors.outputs import Alert, alert_id
from cascadewatch.connectors.sources import Watermark
from cascadewatch.connectors.units import NS_PER_MS, NS_PER_S, s_to_ns
from cascadewatch.detectors.drivers import usd
from cascadewatch.detectors.regime import move_bps
from cascadewatch.pipelines.steps.items import ProvisionalAlert

DIRECTIONS = ("down", "up")
KIND = "cascade"
"""The per-second policy's alert kind: provisional alerts share its dedup keys."""


class ProvisionalRule(msgspec.Struct, frozen=True):
    """The trigger and its clock: ``checkpoint_ns`` apart, over ``window_ns`` of receive time,
    ``min_liq_usd`` (quote) and ``min_move_bps``; ``lag_ns``: the run's allowed lag (to place
    an alert in the event-time second of the frame that closed its checkpoint); ``onset_ns`` and
    ``onset_share``: the cascade's start (the label's ``onset_s`` and ``onset_share``)."""

    checkpoint_ns: int
    window_ns: int
    min_liq_usd: float
    min_move_bps: float
    lag_ns: int
    onset_ns: int = 10 * NS_PER_S
    onset_share: float = 0.1

    @classmethod
    def of(
        cls,
        checkpoint_ms: int,
        window_s: float,
        min_liq_usd: float,
        min_move_bps: float,
        lag_s: float,
        onset_s: float = 10.0,
        onset_share: float = 0.1,
    ) -> ProvisionalRule:
        """The rule from config units (ms, s, quote, bps, s, s, share)."""
        return cls(
            checkpoint_ms * NS_PER_MS,
            s_to_ns(window_s),
            min_liq_usd,
            min_move_bps,
            s_to_ns(lag_s),
            s_to_ns(onset_s),
            onset_share,
        )


class InstrumentTrigger:
    """The provisional trigger of one venue instrument (see the module docstring); pickles.

    ``buckets``: per checkpoint ``c`` of the window, ``[c, max price, min price, long liq USD,
    short liq USD, liquidations, open price]`` of the frames with ``c - checkpoint < recv <= c``
    (max and min include the open, the last trade price before them, ``None`` if none yet);
    ``liquidations``: how many the window holds (a check without any is skipped).
    """

    def __init__(self, rule: ProvisionalRule) -> None:
        self.rule = rule
        self.venue = self.instrument = self.asset = ""
        self.checkpoint: int | None = None
        """The checkpoint the frames read last belong to (ns); checked at the next later frame."""
        self.latest_ts = -(2**63)
        """The latest exchange time of the instrument's frames (ns)."""
        self.second = -(2**63)
        """The instrument's open event-time second (s) when the last check was made."""
        self.price: float | None = None
        self.buckets: deque[list[Any]] = deque()
        self.liquidations = 0
        self.quiet_since: dict[str, int | None] = dict.fromkeys(DIRECTIONS, -(2**63))
        """Per direction, the first checkpoint of the run of checks at which the trigger has not
        held (``None`` while it holds); it fires again once that run is a window long."""

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Unpickle; buckets of a state from before the open price get ``None`` (unknown)."""
        for bucket in state["buckets"]:
            if len(bucket) == 6:
                bucket.append(None)
        self.__dict__.update(state)

    def process(self, values: list[Any]) -> list[ProvisionalAlert]:
        """Read a batch of the instrument's events (watermarks are skipped); return the alerts of
        the checkpoints it closed."""
        out: list[ProvisionalAlert] = []
        rule = self.rule
        step = rule.checkpoint_ns
        latest_ts = self.latest_ts
        checkpoint = self.checkpoint
        buckets = self.buckets
        bucket = buckets[-1] if buckets and buckets[-1][0] == checkpoint else None  # the checkpoint's, if open
        for value in values:
            cls = value.__class__
            if cls is Watermark:
                continue
            recv = value.recv
            if value.ts > latest_ts:
                latest_ts = value.ts
            if checkpoint is None:
                self.venue, self.instrument = value.venue, value.instrument
                self.asset = asset_of(value.instrument)
                checkpoint = self.checkpoint = -(-recv // step) * step
            elif recv > checkpoint:
                # the instrument's open second: the latest effective second, max(ts, recv - lag),
                # of its frames, this frame's included (a frame after the checkpoint: the latest recv)
                floor = recv - rule.lag_ns
                self.second = (latest_ts if latest_ts > floor else floor) // NS_PER_S
                self._check(checkpoint, out)
                checkpoint = self.checkpoint = -(-recv // step) * step
                bucket = None
            if cls is Trade:
                if bucket is None:
                    bucket = self._bucket()  # opened with the price before this trade
                price = self.price = value.price
                if bucket[1] is None or price > bucket[1]:
                    bucket[1] = price
                if bucket[2] is None or price < bucket[2]:
                    bucket[2] = price
            elif cls is Liquidation:
                bucket = self._bucket()
                bucket[3 if value.side == "long" else 4] += value.notional
                bucket[5] += 1
                self.liquidations += 1
        self.latest_ts = latest_ts
        return out

    def _bucket(self) -> list[Any]:
        """The bucket of the current checkpoint (opened with the last price)."""
        buckets = self.buckets
        if not buckets or buckets[-1][0] != self.checkpoint:
            price = self.price
            buckets.append([self.checkpoint, price, price, 0.0, 0.0, 0, price])
        return buckets[-1]

    def _check(self, checkpoint: int, out: list[ProvisionalAlert]) -> None:
        """Check the trigger at ``checkpoint`` (frames with ``recv <= checkpoint``)."""
        rule = self.rule
        buckets = self.buckets
        while buckets and buckets[0][0] <= checkpoint - rule.window_ns:
            self.liquidations -= buckets.popleft()[5]
        price = self.price
        if not self.liquidations or price is None:
            for d in DIRECTIONS:  # no liquidations: the trigger does not hold
                self._quiet(d, checkpoint)
            return
        for d, col in (("down", 3), ("up", 4)):
            liq = sum(b[col] for b in buckets)
            move = self._move_from_start(col) if liq >= rule.min_liq_usd else 0.0
            if move < rule.min_move_bps:
                self._quiet(d, checkpoint)
                continue
            since = self.quiet_since[d]
            if since is not None and checkpoint - since >= rule.window_ns:
                out.append(self._alert(d, checkpoint, liq, move))
            self.quiet_since[d] = None

    def _move_from_start(self, col: int) -> float:
        """The window's move (bps, in the direction of the liquidations in bucket column ``col``:
        3 long, down; 4 short, up) from the price before the cascade's start to the extreme since,
        the largest over the possible starts (module docstring); 0 without a start or a price."""
        rule = self.rule
        buckets = list(self.buckets)
        need = rule.onset_share * rule.min_liq_usd
        down = col == 3
        best = 0.0
        extreme: float | None = None  # the lowest (down) or highest (up) price from bucket i on
        for i in range(len(buckets) - 1, -1, -1):
            b = buckets[i]
            price = b[2] if down else b[1]
            if price is not None:
                extreme = price if extreme is None else min(extreme, price) if down else max(extreme, price)
            if b[col] <= 0.0:
                continue
            horizon, ahead = b[0] + rule.onset_ns, 0.0
            for x in islice(buckets, i, None):  # the liquidations of the next onset_s from bucket i
                if x[0] >= horizon:
                    break
                ahead += x[col]
            if ahead < need:
                continue
            ref = b[6] if b[6] is not None else (b[1] if down else b[2])
            if ref is None or extreme is None:
                continue
            best = max(best, move_bps(ref, extreme, down))
        return best

    def _quiet(self, direction: str, checkpoint: int) -> None:
        """The trigger of ``direction`` does not hold at ``checkpoint``."""
        if self.quiet_since[direction] is None:
            self.quiet_since[direction] = checkpoint

    def _alert(self, direction: str, checkpoint: int, liq_usd: float, move_bps: float) -> ProvisionalAlert:
        """The provisional trigger of ``direction`` at ``checkpoint``."""
        key = f"{self.asset}:{KIND}:{direction}"
        at_ms = checkpoint // NS_PER_MS
        side = "longs" if direction == "down" else "shorts"
        window_s = self.rule.window_ns // NS_PER_S
        assert self.price is not None
        alert = Alert(
            id=alert_id(f"{key}|{self.venue}|{self.instrument}", at_ms, "trigger", "provisional"),
            dedup_key=key,
            action="trigger",
            severity="critical",
            kind=KIND,
            asset=self.asset,
            direction=direction,
            ts=at_ms,
            summary=(
                f"{self.asset} {direction.upper()}: liquidation cascade starting (provisional, {self.venue} "
                f"{self.instrument}): {usd(liq_usd)} {side} liquidated and {move_bps:.0f} bps in {window_s}s"
            ),
            opened_ts=at_ms,
            price=float(f"{self.price:.10g}"),
            liq_usd_60s=float(round(liq_usd)),
            cascade="liquidation",
            venues=[self.venue],
            venue=self.venue,
            instrument=self.instrument,
            provisional=True,
        )
        return ProvisionalAlert(self.second * 1000, self.asset, self.venue, self.instrument, alert.to_dict())


class ProvisionalWatch:
    """One asset's provisional alerts in the per-second path: confirmed or resolved; pickles.

    A provisional alert is *confirmed* when the per-second policy has an open incident on its
    dedup key (the policy's own trigger pages nothing more at a destination that got the
    provisional one); unconfirmed ``confirm_s`` after its second, it is resolved: a
    ``resolve`` with ``provisional: true`` on the key, id from the key and the provisional
    alert's checkpoint.
    """

    def __init__(self, confirm_s: float) -> None:
        self.confirm_ms = int(confirm_s * 1000)
        self.waiting: dict[str, tuple[int, dict[str, Any]]] = {}
        """dedup key -> (second ms, the first unconfirmed provisional alert of the key)."""

    def update(
        self, second_ms: int, provisional: tuple[ProvisionalAlert, ...], open_keys: dict[str, str]
    ) -> list[dict]:
        """Take the second's provisional alerts and the policy's open incidents after the second
        (``{dedup_key: severity}``); return the resolves of the alerts that expired unconfirmed."""
        for item in provisional:
            key = item.alert["dedup_key"]
            if key not in self.waiting and key not in open_keys:
                self.waiting[key] = (second_ms, item.alert)
        out: list[dict[str, Any]] = []
        for key in sorted(self.waiting):
            since, alert = self.waiting[key]
            if key in open_keys:
                del self.waiting[key]
            elif second_ms - since >= self.confirm_ms:
                del self.waiting[key]
                out.append(_resolve(alert, second_ms, self.confirm_ms // 1000))
        return out


def _resolve(alert: dict[str, Any], second_ms: int, confirm_s: int) -> dict[str, Any]:
    """The resolve of an unconfirmed provisional ``alert`` at ``second_ms``."""
    return Alert(
        id=alert_id(alert["dedup_key"], alert["opened_ts"], "resolve", "provisional"),
        dedup_key=alert["dedup_key"],
        action="resolve",
        severity=alert["severity"],
        kind=alert["kind"],
        asset=alert["asset"],
        direction=alert["direction"],
        ts=second_ms,
        summary=(
            f"{alert['asset']} {alert['direction'].upper()}: provisional cascade alert not confirmed "
            f"by the per-second check within {confirm_s}s: resolved"
        ),
        opened_ts=alert["opened_ts"],
        provisional=True,
    ).to_dict()
