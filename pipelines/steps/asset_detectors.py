"""Per-asset detector wiring: one :class:`AssetDetectors` per asset, fed each released second.

Inputs per second: the asset's :class:`~cascadewatch.pipelines.steps.items.InstrumentState` items of that second
(flow: trades, liquidations, OI, mark) and the latest live state of every venue instrument
(books). Outputs: the detector fields of the snapshot
(:class:`~cascadewatch.connectors.outputs.DetectorFields`) and the policy's alerts.

Order of work in a second ``t`` (seconds since the epoch, the second ``[t, t + 1)``):

1. per venue, the estimated liquidation map learns the second's aggressive flow (VWAP and
   quantity per side), the venue's liquidations (evidence for its leverage mix), the open
   interest and the mark (which consumes crossed levels);
   the crowding monitor learns the latest open interest of every live venue instrument and
   the second's voluntary aggressive flow summed over venues (aggressive buys less short
   liquidations, sells less long liquidations: forced orders close positions, they open none);
2. the observed map and the Hawkes estimator learn the liquidations, in time order across
   venues; realized volatility (a fast and a slow EWMA) learns the price; the precursor
   monitor learns the second's liquidation orders per direction and the price (the trickle
   against its norm, the drift in units of the slow volatility);
3. at ``t + 1``: depth of the combined book (venues' near books concatenated) and its
   thinning, the regime, the combined estimated map and its nearest dense clusters, the
   structural estimate (touch x carry, reach walked through the combined book; the touch
   uses the larger of the fast and slow volatility) and the classifier per direction on
   the features of :func:`cascadewatch.detectors.probability.cascade_features`, crowding and
   precursors included;
   with ``[detectors] model`` the classifiers start pre-trained (``cascadewatch train``);
4. the label definition (:mod:`cascadewatch.detectors.labels`) sees the second's realized liquidations
   and price; cascades it closes become delayed labels for the classifier;
5. the mitigation readouts per direction (:mod:`cascadewatch.detectors.mitigation`): the
   breaker sees the second's price and liquidations, the defence wall is solved from the
   nearest dense cluster (the trigger) to the next one, the suggested margin from the
   volatility, the traded volume of the last 60 s, the depth and the trigger's notional;
6. the alert policy turns the readout into alerts.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable

import numpy as np
from msgspec import UNSET

from cascadewatch.connectors.outputs import Alert, DetectorFields, DirectionRisk
from cascadewatch.connectors.units import ns_to_s
from cascadewatch.detectors.crowding import CrowdingMonitor
from cascadewatch.detectors.depth import DepthMonitor
from cascadewatch.detectors.drivers import Driver, describe
from cascadewatch.detectors.hawkes import HawkesEstimator
from cascadewatch.detectors.labels import CascadeLabeler
from cascadewatch.detectors.liqmap_estimated import EstimatedLiquidationMap, MapLearning
from cascadewatch.detectors.liqmap_observed import ObservedLiquidationMap
from cascadewatch.detectors.mitigation import MitigationMonitor
from cascadewatch.detectors.policy import (
    AlertPolicy,
    AssetReadout,
    DirectionReadout,
)
from cascadewatch.detectors.precursors import PrecursorMonitor
from cascadewatch.detectors.probability import (
    DEFAULT_FEATURES,
    CascadeProbability,
    RealizedVolatility,
    cascade_features,
    structural_estimate,
)
from cascadewatch.detectors.regime import RegimeDetector
from cascadewatch.pipelines.config import DetectorsConfig
from cascadewatch.pipelines.model_file import model_classifiers, model_version, resolve_model
from cascadewatch.pipelines.steps.items import InstrumentState

DIRECTIONS = ("down", "up")


def _round(value: float | None, digits: int) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return round(float(value), digits)


def _ms(t: float | None) -> int | None:
    return None if t is None else int(round(t * 1000))


def _levels(levels: np.ndarray) -> list[tuple[float, float]]:
    """The ``levels`` of a snapshot direction: ``(price to 10 significant digits, whole USD)`` rows."""
    return [(float(f"{price:.10g}"), float(round(usd))) for price, usd in levels.tolist()]


def _stack(books: list[np.ndarray]) -> np.ndarray:
    """The venues' book sides one after the other (one venue's: its own array, which no detector writes)."""
    if len(books) == 1:
        return books[0]
    return np.concatenate(books) if books else np.empty((0, 2))


class AssetDetectors:
    """All detectors of one asset; plain data that pickles (Bytewax recovery)."""

    def __init__(self, asset: str, config: DetectorsConfig, on_sample: Callable[[dict], None] | None = None) -> None:
        """``on_sample``: called with every classifier sample (``{"type": "sample", "asset",
        "direction", "t", "x", "p_struct"}``) and every cascade the online labeller closes
        (its dict), for ``cascadewatch train``; keep it ``None`` where the state must pickle."""
        self.asset = asset
        self.config = config
        self.on_sample = on_sample
        self.maps: dict[str, EstimatedLiquidationMap] = {}
        self.observed = ObservedLiquidationMap(half_life_s=config.observed_half_life_s)
        self.depth = DepthMonitor(window_s=config.depth_window_s)
        self.vol = RealizedVolatility(half_life_s=config.vol_half_life_s)
        self.vol_slow = RealizedVolatility(half_life_s=config.vol_slow_half_life_s)
        self.crowding = CrowdingMonitor(windows_s=config.crowding_windows_s)
        self.precursors = PrecursorMonitor(windows_s=config.precursor_windows_s)
        self.hawkes = HawkesEstimator(beta=config.hawkes_beta, window_s=config.hawkes_window_s)
        self.regime = RegimeDetector(
            window_s=config.regime_window_s,
            min_liq_usd=config.regime_min_liq_usd,
            min_move_bps=config.regime_min_move_bps,
            onset_share=config.labels.onset_share,
            onset_s=config.labels.onset_s,
        )
        model_path = resolve_model(config.model)
        self.model_version: str | None = None
        """First 12 hex of the model file's SHA-256 (:func:`~cascadewatch.pipelines.model_file.model_version`)."""
        if model_path is not None:
            self.probability = model_classifiers(
                model_path, config.horizon_s, config.crowding_windows_s, config.precursor_windows_s
            )
            self.model_version = model_version(model_path)
        else:
            self.probability = {
                d: CascadeProbability(horizon_s=config.horizon_s, features=DEFAULT_FEATURES) for d in DIRECTIONS
            }
        self.policy = AlertPolicy(
            warn_enter=config.warn_enter,
            warn_exit=config.warn_exit,
            crit_enter=config.crit_enter,
            min_hold_s=config.min_hold_s,
            calm_s=config.calm_s,
            cooldown_s=config.cooldown_s,
            page_kinds=config.page_kinds,
        )
        self.labeler = CascadeLabeler(asset, config.labels)
        self.liq_window: dict[str, deque[tuple[int, float]]] = {d: deque() for d in DIRECTIONS}
        """Per direction: (second_ms, realized liquidation USD) of the last 60 s."""
        self.liq_window_usd: dict[str, deque[float]] = {d: deque() for d in DIRECTIONS}
        """The USD column of ``liq_window`` (summed every second, oldest first)."""
        self.mitigation = MitigationMonitor(config.mitigation)

    def _map(self, venue: str) -> EstimatedLiquidationMap:
        estimated = self.maps.get(venue)
        if estimated is None:
            c = self.config
            estimated = self.maps[venue] = EstimatedLiquidationMap(
                leverage=c.leverage,
                mmr=c.mmr,
                range_pct=c.map_range_pct,
                half_life_s=c.map_half_life_s,
                dense_multiple=c.dense_multiple,
                min_cluster_usd=c.min_cluster_usd,
                learning=MapLearning(seed_share=c.map_seed_share, seed_spread_bps=c.map_seed_spread_bps),
            )
        return estimated

    def __setstate__(self, state: dict) -> None:
        """Unpickle; a state from before the crowding monitor and the slow volatility gets fresh ones."""
        self.__dict__.update(state)
        self.__dict__.setdefault("on_sample", None)
        self.__dict__.setdefault("model_version", None)
        if "crowding" not in state:
            self.crowding = CrowdingMonitor(windows_s=self.config.crowding_windows_s)
        if "precursors" not in state:
            self.precursors = PrecursorMonitor(windows_s=self.config.precursor_windows_s)
        if "vol_slow" not in state:
            self.vol_slow = RealizedVolatility(half_life_s=self.config.vol_slow_half_life_s)
        if "mitigation" not in state:
            self.mitigation = MitigationMonitor(self.config.mitigation)

    def update(
        self, second_ms: int, price: float, states: list[InstrumentState], live: list[InstrumentState]
    ) -> tuple[DetectorFields, list[Alert]]:
        """Feed one released second; return ``(snapshot fields, alerts)``."""
        t = second_ms / 1000.0
        end = t + 1.0
        liqs: list[tuple[int, float, float, str]] = []
        buy_usd = sell_usd = 0.0
        for state in states:
            self._learn_flow(state, t)
            liqs.extend(state.liqs)
            buy_usd += state.buy_usd
            sell_usd += state.sell_usd
        liq_usd = {"down": 0.0, "up": 0.0}
        liq_count = {"down": 0, "up": 0}
        for ts, liq_price, qty, side in sorted(liqs):
            notional = liq_price * qty
            self.observed.learn_one(liq_price, notional, side, ns_to_s(ts))
            self.hawkes.learn_one(ns_to_s(ts))
            d = "down" if side == "long" else "up"
            liq_usd[d] += notional
            liq_count[d] += 1
        self.vol.learn_one(price, t + 0.5)
        self.vol_slow.learn_one(price, t + 0.5)
        self.hawkes.advance(end)
        # forced orders close positions: the crowd is read from the voluntary flow only (a long
        # liquidation is an aggressive sell that must not read as shorts piling in)
        crowding = self.crowding.update(
            t,
            {f"{s.venue}|{s.instrument}": s.oi_qty for s in live},
            max(buy_usd - liq_usd["up"], 0.0),
            max(sell_usd - liq_usd["down"], 0.0),
        )
        sigma = max(self.vol.sigma, self.vol_slow.sigma)
        precursors = self.precursors.update(t, liq_count, price, self.vol_slow.sigma)

        bids = _stack([s.bids for s in live if s.bids is not None])
        asks = _stack([s.asks for s in live if s.asks is not None])
        depth = self.depth.update(bids, asks, end - 1e-6)
        hawkes = self.hawkes.readout(end)
        regime = self.regime.update(
            t, price, liq_usd["down"], liq_usd["up"], buy_usd, sell_usd, depth.bid_ratio[-1], depth.ask_ratio[-1]
        )
        emap = EstimatedLiquidationMap.combine(list(self.maps.values()), price, end) if self.maps else None

        for cascade in self.labeler.update(second_ms, price, liq_usd["down"], liq_usd["up"]):
            self.probability[cascade["direction"]].add_cascade(cascade["start"] / 1000.0)
            if self.on_sample is not None:
                self.on_sample(cascade)

        self.mitigation.update(t, price, liq_usd["down"], liq_usd["up"], buy_usd + sell_usd)
        directions: dict[str, DirectionReadout] = {}
        risk: dict[str, DirectionRisk] = {}
        for d, book, depth_usd, ratio in (
            ("down", bids, depth.bid_usd[-1], depth.bid_ratio[-1]),
            ("up", asks, depth.ask_usd[-1], depth.ask_ratio[-1]),
        ):
            liq_60s = self._liq_60s(d, second_ms, liq_usd[d])
            cluster = emap.cluster(d) if emap is not None else None
            levels = emap.levels(d) if emap is not None else np.empty((0, 2))
            estimate = structural_estimate(d, price, cluster, sigma, self.config.horizon_s, book, levels, depth_usd)
            target = emap.next_cluster(d) if emap is not None else None
            mitigation = self.mitigation.readout(d, price, book, levels, sigma, depth_usd, (cluster, target))
            features = cascade_features(
                p_struct=estimate.p,
                p_touch=estimate.p_touch,
                p_carry=estimate.p_carry,
                distance_bps=cluster.distance_bps if cluster else None,
                cluster_usd=cluster.notional_usd if cluster else 0.0,
                forced_usd=estimate.reach.forced_usd,
                depth_usd=depth_usd,
                depth_ratio=ratio,
                branching=hawkes.branching,
                intensity=hawkes.intensity,
                liq_usd_60s=liq_60s,
                sigma=sigma,
                horizon_s=self.config.horizon_s,
                in_cascade=regime[d].active,
                direction=d,
                crowding=crowding.features(d),
                precursors=precursors.features(d),
                vol_ratio=self.vol.sigma / self.vol_slow.sigma if self.vol_slow.sigma > 0 else 1.0,
            )
            if self.on_sample is not None:
                self.on_sample(
                    {
                        "type": "sample",
                        "asset": self.asset,
                        "direction": d,
                        "t": t,
                        "x": features,
                        "p_struct": estimate.p,
                    }
                )
            probability = self.probability[d].observe(t, features, estimate.p)
            self.probability[d].advance(t)
            at_risk = 0.0
            if emap is not None:
                at_risk = emap.long_total_usd if d == "down" else emap.short_total_usd
            drivers: tuple[Driver, ...] = ()
            if probability >= self.config.warn_exit:  # only an open or opening incident shows them
                values = {
                    "cluster_usd": cluster.notional_usd if cluster else None,
                    "cluster_bps": cluster.distance_bps if cluster else None,
                    "reach_usd": estimate.reach.forced_usd,
                    "liq_usd_60s": liq_60s,
                }
                drivers = tuple(
                    Driver(family, round(logit, 3), describe(family, d, features, values))
                    for family, logit in self.probability[d].drivers(features, estimate.p)
                )
            directions[d] = DirectionReadout(
                prob=probability,
                cascade=regime[d].kind,
                cluster_price=cluster.price if cluster else None,
                cluster_bps=cluster.distance_bps if cluster else None,
                cluster_usd=cluster.notional_usd if cluster else 0.0,
                at_risk_usd=at_risk,
                depth_usd=float(depth_usd),
                depth_ratio=None if math.isnan(ratio) else float(ratio),
                reach_usd=estimate.reach.forced_usd,
                reach_bps=estimate.reach.travel_bps,
                liq_usd_60s=liq_60s,
                drivers=drivers,
                defence_usd=mitigation.defence.usd,
                margin_mmr=mitigation.margin.mmr,
                leverage_cap=mitigation.margin.leverage_cap,
                margin_pushed_usd=mitigation.out_of_reach_usd,
                breaker_since=_ms(mitigation.breaker.since),
            )
            risk[d] = DirectionRisk(
                prob=_round(probability, 4),
                p_struct=_round(estimate.p, 4),
                p_touch=_round(estimate.p_touch, 4),
                cascade=regime[d].kind,
                cluster_price=_round(cluster.price, 8) if cluster else None,
                cluster_bps=_round(cluster.distance_bps, 1) if cluster else None,
                cluster_usd=_round(cluster.notional_usd, 2) if cluster else 0.0,
                at_risk_usd=_round(at_risk, 2),
                depth_ratio=_round(ratio, 4),
                reach_usd=_round(estimate.reach.forced_usd, 2),
                reach_bps=_round(estimate.reach.travel_bps, 1),
                defence_usd=_round(mitigation.defence.usd, 2),
                margin_mmr=_round(mitigation.margin.mmr, 6),
                leverage_cap=_round(mitigation.margin.leverage_cap, 2),
                margin_pushed_usd=_round(mitigation.out_of_reach_usd, 2),
                breaker=mitigation.breaker.tripped,
                breaker_since=_ms(mitigation.breaker.since),
                levels=_levels(levels) if self.config.snapshot_levels else UNSET,
            )
        readout = AssetReadout(
            asset=self.asset,
            ts=second_ms,
            price=price,
            venues=tuple(sorted({s.venue for s in live})),
            branching=hawkes.branching,
            horizon_s=self.config.horizon_s,
            model=self.model_version,
            **directions,
        )
        fields = DetectorFields(
            prob_down=risk["down"].prob,
            prob_up=risk["up"].prob,
            model=self.model_version,
            sigma_bps_1s=_round(self.vol.sigma * 1e4, 4),
            branching=_round(hawkes.branching, 4),
            hawkes_intensity=_round(hawkes.intensity, 6),
            observed_long_usd=_round(self.observed.total("long", end), 2),
            observed_short_usd=_round(self.observed.total("short", end), 2),
            down=risk["down"],
            up=risk["up"],
        )
        return fields, self.policy.update(readout)

    def _liq_60s(self, direction: str, second_ms: int, usd: float) -> float:
        """Add this second's realized liquidations of ``direction``; their sum over the last 60 s (oldest first)."""
        window, window_usd = self.liq_window[direction], self._window_usd(direction)
        window.append((second_ms, usd))
        window_usd.append(usd)
        while window[0][0] <= second_ms - 60_000:
            window.popleft()
            window_usd.popleft()
        return sum(window_usd)

    def _window_usd(self, direction: str) -> deque[float]:
        """``liq_window_usd[direction]``, rebuilt for a state pickled without it."""
        if "liq_window_usd" not in self.__dict__:
            self.liq_window_usd = {d: deque(usd for _, usd in self.liq_window[d]) for d in DIRECTIONS}
        return self.liq_window_usd[direction]

    def _learn_flow(self, state: InstrumentState, t: float) -> None:
        estimated = self._map(state.venue)
        # the second's aggressive flow per side at its VWAP, buys first
        if state.buy_qty > 0:
            estimated.learn_trade(state.buy_usd / state.buy_qty, state.buy_qty, "buy")
        if state.sell_qty > 0:
            estimated.learn_trade(state.sell_usd / state.sell_qty, state.sell_qty, "sell")
        # the second's liquidations on this venue, before the mark that crossed their levels
        for ts, liq_price, qty, side in state.liqs:
            estimated.learn_liquidation(liq_price, liq_price * qty, side, ns_to_s(ts))
        reference = state.mark or state.price
        if state.oi_qty is not None:
            estimated.learn_oi(state.oi_qty, t + 0.9, reference)
        if reference is not None:
            estimated.learn_mark(reference, t + 0.9)
