"""``cascadewatch simulate``: an agent-based market that makes liquidation cascades.

Each seed draws its own market (:mod:`.market`: price level and notional scale, venues, leverage
mix, market-maker depth and nerve, arbitrage and engine speeds, volatility regime, funding) and
its family's episode (:mod:`.scenarios`: direction, timing, strengths). Leveraged traders open
positions (each with a liquidation price from its leverage and the venue's maintenance margin),
market makers quote books whose depth they pull under stress and restore with a lag,
arbitrageurs tie the venues to a spot index with a lag, value traders lean against large
moves, and a liquidation engine per venue takes over the positions its mark price (index +
smoothed basis) crosses and works them into the book over time, with an insurance fund and
auto-deleveraging. Stochastic volatility and news that liquidations excite give every run a
background of small liquidations and the odd small cascade. Cascades arise from that
mechanism; families only set conditions and exogenous triggers. The output is a recording in
exchange-native frames (Binance USD-M, Bybit v5, OKX v5), so the whole pipeline, parsers
included, runs on it as on a live feed, plus a truth file (JSONL) with the cascades (by the
label of :mod:`cascadewatch.detectors.labels`, from the *true* forced notional) and the true
liquidation levels over time.

The truth file, one JSON object per line, times in UTC epoch milliseconds; first the
``scenario`` line, then ``span``, then the rest in time order:

- ``{"type": "scenario", "name", "seed", "duration_s", "venues", "description", "faults", "plan",
  "market"}``: ``plan`` = ``{"direction", "anchor"}`` (the episode's direction, ``null`` for
  calm, and the anchor time), ``market`` = the drawn :class:`.market.Market`;
- ``{"type": "span", "asset", "start", "end"}``: the simulated time (what "days" are counted on);
- ``{"type": "cascade", "asset", "direction", "start", "peak", "end", "forced_notional",
  "move_bps"}``: by :mod:`cascadewatch.detectors.labels` (default :class:`~cascadewatch.detectors.labels.LabelConfig`)
  from the true per-second forced notional of all venues (every liquidation, including those
  the venues do not publish) and the scale-weighted mean mid price;
- ``{"type": "levels", "ts", "asset", "price", "bucket_bps", "long": [[price, usd], ...], "short":
  [...]}`` every ``levels_every_s`` (60 s): liquidation notional of all open positions by
  liquidation price, within 10 % of the price, summed over venues, in the buckets of the
  estimated map's grid (``bucket_bps`` = 10 bps of log-price, listed by centre price);
- ``{"type": "phase", "ts", "end", ...}``: a scenario phase and the parameters it changes
  (crowding, leverage, liquidity withdrawal, informed flow, index drift);
- ``{"type": "shock", "ts", "kind": "index", "bps", "over_s"}`` / ``{"type": "shock", "ts",
  "kind": "market", "venue", "usd", "over_s"}``: the family's exogenous triggers; ``{"type":
  "shock", "ts", "kind": "news", "bps", "over_s"}``: the background's news moves of the index;
  ``{"type": "adl", "ts", "venue", "side", "usd"}``: auto-deleveraging of a liquidated side; ``{"type": "stops", "side",
  "price", "usd"}``: a cluster of stop orders; ``{"type": "fault", "ts", "venue", "kind":
  "disconnect" | "gap", ...}`` with ``--faults``.

>>> from cascadewatch.pipelines.simulate import simulate, SCENARIOS      # doctest: +SKIP
>>> result = simulate(                                                    # doctest: +SKIP
...     "long-squeeze", seed=1, duration_s=900, out="ls.rec.zst", truth="ls.truth.jsonl"
... )

Modules: :mod:`~cascadewatch.pipelines.simulate.market` (the seed's market),
:mod:`~cascadewatch.pipelines.simulate.scenarios` (families),
:mod:`~cascadewatch.pipelines.simulate.facts` (stylized facts beside the real figures),
:mod:`~cascadewatch.pipelines.simulate.book` (order book and market makers),
:mod:`~cascadewatch.pipelines.simulate.agents` (traders and positions),
:mod:`~cascadewatch.pipelines.simulate.liquidation` (mark price and liquidation engine),
:mod:`~cascadewatch.pipelines.simulate.venues` (frame writers),
:mod:`~cascadewatch.pipelines.simulate.mitigation` (the what-if levers, opt-in),
:mod:`~cascadewatch.pipelines.simulate.runner` (the loop),
:mod:`~cascadewatch.pipelines.cli.simulate` (the command line).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from cascadewatch.pipelines.simulate.mitigation import LEVERS, Mitigation
from cascadewatch.pipelines.simulate.scenarios import SCENARIOS, Scenario

if TYPE_CHECKING:
    from cascadewatch.detectors.labels import LabelConfig
    from cascadewatch.pipelines.simulate.runner import SimulationResult

__all__ = ["simulate", "LEVERS", "Mitigation", "SCENARIOS", "Scenario", "SimulationResult"]


def __getattr__(name: str) -> Any:
    """``SimulationResult`` from the runner, loaded on first use: the CLI lists the scenarios
    (``cascadewatch --help``) without loading the market model."""
    if name == "SimulationResult":
        from cascadewatch.pipelines.simulate.runner import SimulationResult

        return SimulationResult
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def simulate(
    scenario: str | Scenario,
    seed: int,
    duration_s: float | None,
    out: str | Path | None,
    truth: str | Path | None = None,
    progress: bool = False,
    *,
    faults: bool = False,
    label_config: LabelConfig | None = None,
) -> SimulationResult:
    """Simulate ``scenario`` (a name in :data:`SCENARIOS` or a :class:`Scenario`) for ``duration_s``
    seconds (``None``: the scenario's default) with ``seed``; write the recording to ``out``
    (``.gz``/``.zst`` compress; ``None``: no recording, about twice as fast) and, when given, the
    truth JSONL to ``truth``. The seed draws the market (:func:`.market.draw_market`) and the
    family's plan (direction, timing, strengths): no two seeds share one market.

    Deterministic: the same arguments give byte-identical files. ``faults`` adds one disconnect
    (with reconnection and a fresh snapshot) and one lost book frame (with the resync) per venue.
    ``progress`` prints a line every 5 % to stderr. A what-if lever inside the venues rides on
    the scenario (:meth:`Scenario.with_mitigation`, :mod:`.mitigation`); without one the run is
    exactly the plain one.
    """
    from cascadewatch.pipelines.simulate.runner import run_scenario

    if isinstance(scenario, str):
        try:
            sc = SCENARIOS[scenario]
        except KeyError:
            raise ValueError(f"unknown scenario {scenario!r}; known: {', '.join(SCENARIOS)}") from None
    else:
        sc = scenario
    if duration_s is not None:
        if duration_s <= 0:
            raise ValueError("duration_s must be > 0")
        sc = sc.with_duration(float(duration_s))
    return run_scenario(sc, seed, out, truth, progress=progress, faults=faults, label_config=label_config)
