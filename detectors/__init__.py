"""Pure online estimators: no I/O, no clock, no Bytewax; time comes in as arguments.

Each detector is a small class with an incremental update and a readout, in the
style of river, whose state is plain data that pickles. Time arguments ``t`` are
seconds since the UTC epoch as floats (``event.ts / 1e9``); the alert policy
works in event-time milliseconds, like the output contract.

- :class:`ObservedLiquidationMap`: realized liquidations by price bucket and side, decaying.
- :class:`EstimatedLiquidationMap`: liquidation levels of positions inferred from OI and flow,
  with the leverage mix learned from observed liquidations (:class:`MapLearning`).
- :class:`DepthMonitor` / :func:`depth_within`: resting notional near the mid and its thinning.
- :class:`CrowdingMonitor`: leverage build-up per direction from open interest and aggressor flow.
- :func:`cascade_reach` / :class:`CascadeReach`: forced notional and travel of a cascade walk.
- :class:`HawkesEstimator`: Hawkes intensity and branching ratio of liquidations.
- :func:`touch_probability`, :class:`RealizedVolatility`, :func:`structural_estimate`,
  :class:`CascadeProbability`: structural and learned cascade probability.
- :class:`RegimeDetector`: cascade in progress and its type.
- :class:`AlertPolicy` with :class:`AssetReadout`: when to page, escalate, resolve.
"""

from importlib import import_module
from typing import TYPE_CHECKING

# Public names and their modules. Imported on first access (PEP 562), so that
# ``import cascadewatch.detectors.labels`` does not pay for river.
_EXPORTS = {
    "crowding": ("CrowdingMonitor", "CrowdingReadout"),
    "depth": ("DepthMonitor", "DepthReadout", "depth_within"),
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
        raise AttributeError(f"module 'detectors' has no attribute {name!r}")
    value = getattr(import_module(f"detectors.{mod}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_MODULE_OF))


__all__ = [
    "AlertPolicy",
    "AssetReadout",
    "CascadeProbability",
    "CascadeReach",
    "Cluster",
    "DEFAULT_FEATURES",
    "CrowdingMonitor",
    "CrowdingReadout",
    "DepthMonitor",
    "DepthReadout",
    "DirectionReadout",
    "EstimatedLiquidationMap",
    "EstimatedMapReadout",
    "MapLearning",
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
    "depth_within",
    "nearest_dense_cluster",
    "simulate_hawkes",
    "structural_estimate",
    "structural_probability",
    "touch_probability",
]
