"""The multi-asset families' table (:mod:`.cross_margin`), without NumPy: the command line's
help lists them without loading the simulation."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from cascadewatch.pipelines.simulate.scenarios import Phase, Plan, Scenario, _crowd, _squeeze, _u

__all__ = ["CROSS_MARGIN_SCENARIOS", "CrossMarginScenario", "START_MS"]


@dataclass(frozen=True)
class CrossMarginScenario:
    """A multi-asset family: ``origin(rng)`` draws the origin's plan, ``others(rng, anchor)``
    each other asset's plan before its sales are added (``anchor``: the origin plan's anchor,
    a fraction of the run); ``buffer``: the accounts' margin above maintenance (thin in a
    crowded market, about 10x leverage on an ordinary day)."""

    name: str
    description: str
    origin: Callable[[random.Random], Plan]
    others: Callable[[random.Random, float], Plan]
    duration_s: float = 900.0
    step_s: float = 0.25
    buffer: tuple[float, float] = (0.001, 0.012)
    """The accounts' buffers above maintenance (fractions of gross, :func:`draw_accounts`)."""


def _crowded(rng: random.Random, anchor: float) -> Plan:
    """Another asset's plan in ``contagion``: a build-up of longs like the origin's (anchor - 300..600 s
    to the anchor), and market makers that pull back to 30-60 % of their depth from the anchor (the
    origin's crash) for 5-10 minutes."""
    return Plan(
        anchor=anchor,
        direction="down",
        phases=(
            _crowd(rng, 1.0, -_u(rng, 300, 600), strength=_u(rng, 0.8, 1.2)),
            Phase(0, _u(rng, 300, 600), liquidity=_u(rng, 0.3, 0.6), ramp=0.2),
        ),
    )


def _calm(rng: random.Random, anchor: float = 0.5) -> Plan:
    return Plan(anchor=anchor)


START_MS = Scenario(name="", description="", build=_calm).start_ms
"""Where every run starts (the single-asset scenarios' default), epoch ms."""

CROSS_MARGIN_SCENARIOS: dict[str, CrossMarginScenario] = {
    "contagion": CrossMarginScenario(
        name="contagion",
        description=(
            "BTC, ETH and SOL with crowded leveraged longs and cross-margined accounts long all three; a "
            "long squeeze in BTC liquidates accounts whose pooled margin it drains, and their ETH and SOL "
            "sales cascade those markets 10-90 s later."
        ),
        origin=_squeeze("down"),
        others=_crowded,
    ),
    "contagion-calm": CrossMarginScenario(
        name="contagion-calm",
        description="The contagion scenario's markets and accounts on an ordinary day: no build-up, no shock.",
        origin=lambda rng: _calm(rng),
        others=_calm,
        duration_s=86_400.0,
        step_s=0.5,
        buffer=(0.02, 0.1),
    ),
}
"""The multi-asset families by name (``cascadewatch simulate --scenario``)."""
