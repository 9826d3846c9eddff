"""``cascadewatch simulate``: the argparse pair the main CLI mounts.

    cascadewatch simulate --scenario NAME --seed N --duration S --out REC [--truth T] [--faults] [--venues V1,V2]
                          [--mitigation LEVER [lever options]]

``pipelines/cli/main.py`` adds a ``simulate`` sub-command with :func:`add_arguments` and calls
:func:`run` with the parsed namespace; ``python -m cascadewatch.pipelines.cli.simulate`` runs it alone.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

from cascadewatch.detectors.margin import MarginRule
from cascadewatch.pipelines.simulate import LEVERS, SCENARIOS, Mitigation, simulate
from cascadewatch.pipelines.simulate.cross_margin_scenarios import CROSS_MARGIN_SCENARIOS
from cascadewatch.pipelines.simulate.market import SIMULATED_VENUES
from cascadewatch.pipelines.simulate.mitigation import BREAKER_MODES

if TYPE_CHECKING:
    from cascadewatch.pipelines.simulate.cross_margin import CrossMarginResult

__all__ = ["add_arguments", "add_lever_arguments", "levers_from_args", "run", "main", "DESCRIPTION"]

DESCRIPTION = (
    "Simulate leveraged traders, market makers and liquidation engines on Binance, Bybit and OKX; "
    "write a recording in the venues' own frames and, with --truth, the true cascades and liquidation levels. "
    "Each seed draws its own market (price level, notional scale, venues, leverage mix, market-maker depth "
    "and nerve, volatility regime, funding) and its own episode timing."
)


def _families() -> str:
    """The scenario families, one per line, for the help epilogue."""
    return (
        "scenario families:\n"
        + "\n".join(f"  {name} ({sc.duration_s:g} s): {sc.description}" for name, sc in SCENARIOS.items())
        + "\nmulti-asset families (one recording per asset, <stem>.<asset>.<suffix> beside --out):\n"
        + "\n".join(f"  {name} ({sc.duration_s:g} s): {sc.description}" for name, sc in CROSS_MARGIN_SCENARIOS.items())
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``simulate`` options to ``parser``."""
    durations = {n: sc.duration_s for n, sc in SCENARIOS.items()}
    durations.update({n: sc.duration_s for n, sc in CROSS_MARGIN_SCENARIOS.items()})
    names = ", ".join(f"{n} ({duration:g} s)" for n, duration in durations.items())
    parser.add_argument(
        "--scenario",
        required=True,
        choices=sorted([*SCENARIOS, *CROSS_MARGIN_SCENARIOS]),
        metavar="NAME",
        help=f"scenario (default duration): {names}",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed; same seed, same bytes (default 0)")
    parser.add_argument(
        "--duration", type=float, default=None, metavar="S", help="simulated seconds (default: the scenario's)"
    )
    parser.add_argument("--out", required=True, metavar="REC", help="recording to write (.gz/.zst compress)")
    parser.add_argument("--truth", default=None, metavar="T", help="truth JSONL: cascades, liquidation levels, shocks")
    parser.add_argument(
        "--faults",
        action="store_true",
        help="add one disconnect (with reconnect and fresh snapshot) and one lost book frame per venue",
    )
    parser.add_argument(
        "--venues",
        default=None,
        metavar="V1,V2",
        help=f"venues to simulate, by source token, first = largest (default: the scenario's); one of "
        f"{', '.join(SIMULATED_VENUES)}; bitmex, deribit and hyperliquid are written only when named here "
        "(deribit and hyperliquid also by multi-venue-wide)",
    )
    parser.add_argument(
        "--mitigation",
        choices=LEVERS,
        default=None,
        metavar="LEVER",
        help=f"apply a what-if lever inside the venues: {', '.join(LEVERS)} (see docs/mitigation.md); "
        "without it the output is the plain run's, byte for byte",
    )
    add_lever_arguments(parser)
    parser.add_argument("--quiet", action="store_true", help="no progress on stderr")
    parser.add_argument("--json", action="store_true", help="print the result summary as one JSON object")
    parser.epilog = _families()
    parser.formatter_class = argparse.RawDescriptionHelpFormatter


def add_lever_arguments(parser: argparse.ArgumentParser) -> None:
    """The levers' parameters (:class:`cascadewatch.pipelines.simulate.Mitigation`; defaults are its)."""
    d = Mitigation("circuit-breaker")
    g = parser.add_argument_group("lever parameters")
    g.add_argument("--breaker-band-bps", type=float, default=d.band_bps, metavar="BPS", help="breaker: price band")
    g.add_argument("--breaker-window-s", type=int, default=d.window_s, metavar="S", help="breaker: window (s)")
    g.add_argument(
        "--breaker-liq-usd", type=float, default=d.liq_usd, metavar="USD", help="breaker: forced notional in the window"
    )
    g.add_argument(
        "--breaker-halt-s", type=float, default=d.halt_s, metavar="S", help="breaker: halt after the rule last held"
    )
    g.add_argument(
        "--breaker-mode",
        choices=BREAKER_MODES,
        default=d.breaker_mode,
        help="breaker: halt matching, or band it (no trade beyond the price it tripped at)",
    )
    g.add_argument("--margin-every-s", type=int, default=d.every_s, metavar="S", help="dynamic margin: recalibration")
    g.add_argument("--margin-z", type=float, default=d.margin.z, metavar="Z", help="dynamic margin: sigmas covered")
    g.add_argument(
        "--margin-step", type=float, default=d.margin_step, metavar="F", help="dynamic margin: largest raise per step"
    )
    g.add_argument(
        "--margin-new-only",
        action="store_true",
        help="dynamic margin: open positions keep their rate; only new positions get the new one and the cap",
    )
    g.add_argument(
        "--injection-usd", type=float, default=d.usd, metavar="USD", help="injection: budget per unit of venue scale"
    )
    g.add_argument(
        "--injection-trigger-bps",
        type=float,
        default=d.trigger_bps,
        metavar="BPS",
        help="injection: move that starts it",
    )
    g.add_argument(
        "--injection-band-bps", type=float, default=d.injection_band_bps, metavar="BPS", help="injection: bid band"
    )


def levers_from_args(args: argparse.Namespace, names: list[str]) -> list[Mitigation]:
    """The levers ``names`` with the parameters of ``args`` (:func:`add_lever_arguments`)."""
    margin = MarginRule(z=args.margin_z)
    return [
        Mitigation(
            name,
            band_bps=args.breaker_band_bps,
            window_s=args.breaker_window_s,
            liq_usd=args.breaker_liq_usd,
            halt_s=args.breaker_halt_s,
            breaker_mode=args.breaker_mode,
            every_s=args.margin_every_s,
            margin=margin,
            margin_step=args.margin_step,
            margin_new_only=args.margin_new_only,
            trigger_bps=args.injection_trigger_bps,
            usd=args.injection_usd,
            injection_band_bps=args.injection_band_bps,
        )
        for name in names
    ]


def run(args: argparse.Namespace) -> int:
    """Run a simulation from parsed arguments; prints a summary; returns the exit code."""
    if args.scenario in CROSS_MARGIN_SCENARIOS:
        return _run_cross_margin(args)
    scenario = SCENARIOS[args.scenario]
    if args.venues:
        venues = tuple(v.strip() for v in args.venues.split(",") if v.strip())
        unknown = [v for v in venues if v not in SIMULATED_VENUES]
        if unknown or not venues or len(set(venues)) != len(venues):
            print(f"--venues: give distinct venues among {', '.join(SIMULATED_VENUES)}", file=sys.stderr)
            return 2
        scenario = scenario.with_venues(venues)
    if args.mitigation is not None:
        scenario = scenario.with_mitigation(levers_from_args(args, [args.mitigation])[0])
    result = simulate(
        scenario, args.seed, args.duration, args.out, args.truth, progress=not args.quiet, faults=args.faults
    )
    summary = {
        "scenario": result.scenario,
        "seed": result.seed,
        "duration_s": result.duration_s,
        "out": str(result.out),
        "truth": str(result.truth) if result.truth else None,
        "frames": result.frames,
        "cascades": result.cascades,
        "market": result.market,
        "plan": result.plan,
        "price": {
            "start": round(result.price_start, 2),
            "end": round(result.price_end, 2),
            "min": round(result.price_min, 2),
            "max": round(result.price_max, 2),
        },
        "venues": result.venues,
        "wall_s": round(result.wall_s, 2),
    }
    if result.mitigation:
        summary["mitigation"] = result.mitigation
    if args.json:
        print(json.dumps(summary))
        return 0
    print(
        f"{result.scenario} seed={result.seed}: {result.duration_s:g} s simulated in {result.wall_s:.1f} s, "
        f"{result.frames} frames -> {result.out}"
    )
    print(
        f"price {result.price_start:.1f} -> {result.price_end:.1f} "
        f"(low {result.price_min:.1f}, high {result.price_max:.1f})"
    )
    for name, v in result.venues.items():
        print(
            f"  {name:13s} liquidations {v['liquidations']:5d}  longs {v['liquidated_long_usd'] / 1e6:8.2f} M$  "
            f"shorts {v['liquidated_short_usd'] / 1e6:8.2f} M$"
        )
    if not result.cascades:
        print("no cascade")
    for c in result.cascades:
        print(
            f"  cascade {c['direction']:4s} start {c['start']} peak +{(c['peak'] - c['start']) / 1000:.0f}s "
            f"end +{(c['end'] - c['start']) / 1000:.0f}s  forced {c['forced_notional'] / 1e6:.1f} M$  "
            f"move {c['move_bps']:.0f} bps"
        )
    if result.mitigation:
        print("mitigation " + ", ".join(f"{k}={v}" for k, v in result.mitigation.items()))
    if result.truth:
        print(f"truth -> {result.truth}")
    return 0


def _run_cross_margin(args: argparse.Namespace) -> int:
    """A multi-asset family (:mod:`cascadewatch.pipelines.simulate.cross_margin`): one recording per asset."""
    if args.venues or args.mitigation or args.faults:
        print(f"{args.scenario}: --venues, --mitigation and --faults apply to single-asset scenarios", file=sys.stderr)
        return 2
    from cascadewatch.pipelines.simulate.cross_margin import simulate_cross_margin  # NumPy: only when it runs

    result = simulate_cross_margin(args.scenario, args.seed, args.duration, args.out, args.truth)
    if args.json:
        print(json.dumps(_cross_margin_summary(result)))
        return 0
    print(f"{result.scenario} seed={result.seed}: {result.duration_s:g} s simulated, assets replayed together:")
    print("  " + ",".join(str(p) for p in result.recordings))
    for c in result.cascades:
        print(
            f"  cascade {c['asset']:9s} {c['direction']:4s} start {c['start']}  forced "
            f"{c['forced_notional'] / 1e6:.1f} M$  move {c['move_bps']:.0f} bps"
        )
    sold = sum(m["usd"] for m in result.margin_calls)
    print(f"margin calls: {sum(m['accounts'] for m in result.margin_calls)} account sales, {sold / 1e6:.1f} M$ sold")
    for g in result.groups:
        onsets = ", ".join(f"{a['asset']} +{(a['start'] - g['start']) / 1000:.0f}s" for a in g["assets"])
        print(f"  contagion {g['direction']}: {onsets}")
    if result.truth:
        print(f"truth -> {result.truth}")
    return 0


def _cross_margin_summary(result: CrossMarginResult) -> dict:
    return {
        "scenario": result.scenario,
        "seed": result.seed,
        "duration_s": result.duration_s,
        "recordings": [str(p) for p in result.recordings],
        "truth": str(result.truth) if result.truth else None,
        "frames": result.frames,
        "cascades": result.cascades,
        "margin_calls": result.margin_calls,
        "groups": result.groups,
    }


def main(argv: list[str] | None = None) -> int:
    """Run ``cascadewatch simulate`` from ``argv``; returns the exit status."""
    parser = argparse.ArgumentParser(prog="cascadewatch simulate", description=DESCRIPTION)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
