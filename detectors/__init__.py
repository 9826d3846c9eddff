"""Pure online estimators: no I/O, no clock, no Bytewax; time comes in as arguments.

Time arguments ``t`` are seconds since the UTC epoch as floats (``event.ts / 1e9``); the
alert policy and the cascade labeller work in event-time milliseconds, like the output
contract (:mod:`cascadewatch.connectors.outputs`). From outside this package a detector
imports only the event model (:mod:`cascadewatch.connectors.events`) and the output contract.

The detector protocol
---------------------
A *detector* is a public class of a module of this package with a learning verb (a method
named ``learn_*`` or ``update``). Detectors share these verbs, in the style of river:

- **learn**: fold in observations and return nothing: ``learn_one`` (one observation),
  ``learn_many`` (arrays of them), ``learn_event`` (one :mod:`~cascadewatch.connectors.events`
  event), or a name saying what is learned (``learn_trade``, ``learn_oi``, ``learn_mark``);
- **update**: fold in one time step and return what the detector says about it (the
  step-style detectors, whose input is a whole second);
- **advance** (where time alone changes the state): ``advance(t)`` moves to ``t`` without
  an observation (decay, labels coming due);
- **readout**: the current view, without changing the state: ``readout(...)`` (taking the
  time, and the price, where the view depends on them) or a named property.

=========================  ====================================  ===========  ==============================
detector                   learn / update                        advance      readout
=========================  ====================================  ===========  ==============================
ObservedLiquidationMap     learn_one, learn_many, learn_event                 readout(price, t), total
EstimatedLiquidationMap    learn_trade(s), learn_oi, learn_mark,              readout(price, t), levels,
                           learn_event                                        combine (several venues)
HawkesEstimator            learn_one, learn_many                 advance(t)   readout(t)
RealizedVolatility         learn_one, learn_many                              sigma
CascadeProbability         observe (predict, queue the sample),  advance(t)   predict_one, scores
                           add_cascade, learn_one, fit
DepthMonitor               update(bids, asks, t)                              readout()
CrowdingMonitor            update(t, oi, buy_usd, sell_usd)                   readout()
PrecursorMonitor           update(t, counts, price, sigma)                    readout()
RegimeDetector             update(t, price, liquidations, ...)                readout()
CascadeLabeler             update(ts_ms, price, forced notional)              window_forced, threshold;
                                                                              flush (end of data)
AlertPolicy                update(AssetReadout) -> alerts                     open_incidents
CircuitBreaker             update(t, price, liquidations)                     readout()
MitigationMonitor          update(t, price, liquidations, traded)             readout(direction, ...),
                                                                              volume_usd_s
ContagionMonitor           update(ts_ms, every asset's states)                episodes, groups
                           -> grouped alerts
=========================  ====================================  ===========  ==============================

Every detector (``tests/test_detectors_protocol.py`` finds them with :mod:`pkgutil` and
checks each; none is listed by hand):

- is constructible from defaults: with no arguments, or with the required ones its
  docstring names (``CascadeLabeler(asset)``);
- has a runnable example in its docstring (``>>>``) with a known answer, which the test
  runs twice: as written, and with every detector in it pickled and unpickled between
  examples, so a round trip gives the same readouts;
- keeps its state in plain data that pickles (Bytewax recovery snapshots it).

:class:`CascadeReach` is a configured calculation, not a detector: it learns nothing
(``readout`` of a book only). :mod:`._grid` holds the decaying price grid the maps share.

Contents
--------
- :class:`ObservedLiquidationMap`: realized liquidations by price bucket and side, decaying.
- :class:`EstimatedLiquidationMap`: liquidation levels of positions inferred from OI and flow,
  with the leverage mix learned from observed liquidations (:class:`MapLearning`).
- :class:`DepthMonitor` / :func:`depth_within`: resting notional near the mid and its thinning.
- :class:`CrowdingMonitor`: leverage build-up per direction from open interest and aggressor flow.
- :class:`PrecursorMonitor`: the liquidation trickle against its norm and the drift toward the
  levels, per direction.
- :func:`cascade_reach` / :class:`CascadeReach`: forced notional and travel of a cascade walk.
- :class:`HawkesEstimator`: Hawkes intensity and branching ratio of liquidations.
- :func:`touch_probability`, :class:`RealizedVolatility`, :func:`structural_estimate`,
  :class:`CascadeProbability`: structural and learned cascade probability.
- :class:`EvidenceModel` / :func:`fit_evidence_model`: the pre-trained model, each feature
  family's evidence capped; :class:`Driver` / :func:`describe`: why, in the desk's words.
- :class:`RegimeDetector`: cascade in progress and its type.
- :class:`~cascadewatch.detectors.labels.CascadeLabeler`: the cascade label definition, online.
- :class:`AlertPolicy` with :class:`AssetReadout`: when to page, escalate, resolve.
- :func:`defence_liquidity`, :class:`MarginRule`, :class:`CircuitBreaker`,
  :class:`MitigationMonitor`: what would stop a cascade (defence wall, suggested margin,
  breaker state).
- :class:`ContagionMonitor`: one grouped alert when cascades begin in several assets within a
  window (cross-margin and collateral contagion).
"""

from importlib import import_module
from typing import TYPE_CHECKING

# Public names and their modules. Imported on first access (PEP 562), so that
# ``import cascadewatch.detectors.labels`` does not pay for river.
_EXPORTS = {
    "crowding": ("CrowdingMonitor", "CrowdingReadout"),
    "depth": ("DepthMonitor", "DepthReadout", "depth_within"),
    "drivers": ("Driver", "describe"),
    "evidence": ("EvidenceModel", "fit_evidence_model"),
    "hawkes": ("HawkesEstimator", "HawkesReadout", "simulate_hawkes"),
    "liqmap_estimated": (
        "Cluster",
        "EstimatedLiquidationMap",
        "EstimatedMapReadout",
        "MapLearning",
        "MapLearning",
        "nearest_dense_cluster",
    ),
    "liqmap_observed": ("ObservedLiquidationMap", "ObservedMapReadout"),
    "mitigation": (
        "CircuitBreaker",
        "MarginRule",
        "MitigationConfig",
        "MitigationMonitor",
        "defence_liquidity",
        "next_dense_cluster",
    ),
    "policy": ("AlertPolicy", "AssetReadout", "DirectionReadout", "PAGE_KINDS"),
    "probability": (
        "CascadeProbability",
        "DEFAULT_FEATURES",
        "RealizedVolatility",
        "StructuralEstimate",
        "carry_probability",
        "cascade_features",
        "structural_estimate",
        "structural_probability",
        "touch_probability",
    ),
    "reach": ("CascadeReach", "Reach", "cascade_reach"),
    "regime": ("RegimeDetector", "RegimeState"),
}
_MODULE_OF = {name: mod for mod, names in _EXPORTS.items() for name in names}

if TYPE_CHECKING:  # pragma: no cover
    from cascadewatch.detectors.crowding import CrowdingMonitor, CrowdingReadout
    from cascadewatch.detectors.depth import DepthMonitor, DepthReadout, depth_within
    from cascadewatch.detectors.drivers import Driver, describe
    from cascadewatch.detectors.evidence import EvidenceModel, fit_evidence_model
    from cascadewatch.detectors.hawkes import (
        HawkesEstimator,
        HawkesReadout,
        simulate_hawkes,
    )
    from cascadewatch.detectors.liqmap_estimated import (
        Cluster,
        EstimatedLiquidationMap,
        EstimatedMapReadout,
        MapLearning,
        nearest_dense_cluster,
    )
    from cascadewatch.detectors.liqmap_observed import (
        ObservedLiquidationMap,
        ObservedMapReadout,
    )
    from cascadewatch.detectors.mitigation import (
        CircuitBreaker,
        MarginRule,
        MitigationConfig,
        MitigationMonitor,
        defence_liquidity,
        next_dense_cluster,
    )
    from cascadewatch.detectors.policy import (
        PAGE_KINDS,
        AlertPolicy,
        AssetReadout,
        DirectionReadout,
    )
    from cascadewatch.detectors.probability import (
        DEFAULT_FEATURES,
        CascadeProbability,
        RealizedVolatility,
        StructuralEstimate,
        carry_probability,
        cascade_features,
        structural_estimate,
        structural_probability,
        touch_probability,
    )
    from cascadewatch.detectors.reach import CascadeReach, Reach, cascade_reach
    from cascadewatch.detectors.regime import RegimeDetector, RegimeState


def __getattr__(name: str):
    mod = _MODULE_OF.get(name)
    if mod is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f"{__name__}.{mod}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_MODULE_OF))


__all__ = [
    "AlertPolicy",
    "AssetReadout",
    "CascadeProbability",
    "CascadeReach",
    "CircuitBreaker",
    "Cluster",
    "DEFAULT_FEATURES",
    "CrowdingMonitor",
    "CrowdingReadout",
    "DepthMonitor",
    "DepthReadout",
    "DirectionReadout",
    "Driver",
    "EstimatedLiquidationMap",
    "EstimatedMapReadout",
    "EvidenceModel",
    "MapLearning",
    "MarginRule",
    "MitigationConfig",
    "MitigationMonitor",
    "HawkesEstimator",
    "HawkesReadout",
    "PAGE_KINDS",
    "ObservedLiquidationMap",
    "ObservedMapReadout",
    "Reach",
    "RealizedVolatility",
    "RegimeDetector",
    "RegimeState",
    "StructuralEstimate",
    "carry_probability",
    "cascade_features",
    "cascade_reach",
    "defence_liquidity",
    "depth_within",
    "describe",
    "fit_evidence_model",
    "nearest_dense_cluster",
    "next_dense_cluster",
    "simulate_hawkes",
    "structural_estimate",
    "structural_probability",
    "touch_probability",
]
