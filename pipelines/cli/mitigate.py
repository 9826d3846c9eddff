"""``cascadewatch mitigate``: the mitigation lab on the command line.

    cascadewatch mitigate --scenarios long-squeeze liquidity-drain --seeds 1 2 3 [--levers ...] [--json]

Runs each scenario and seed without a lever and with each lever
(:mod:`cascadewatch.pipelines.simulate.lab`) and prints, per scenario and lever, the mean and
the spread over seeds of the forced notional, the price move, the time in cascades and the
procyclicality costs; ``--json`` prints ``{"runs": [...], "summary": [...]}`` instead. One
progress line per run on stderr (``--quiet``: none).
"""

from __future__ import annotations

import argparse
import json
import sys

from cascadewatch.pipelines.cli.simulate import add_lever_arguments, levers_from_args
from cascadewatch.pipelines.simulate import LEVERS, SCENARIOS
from cascadewatch.pipelines.simulate.lab import run_lab, summarize

__all__ = ["add_arguments", "run", "main", "DESCRIPTION", "format_table"]

DESCRIPTION = (
    "Run simulated scenarios with and without each mitigation lever (circuit breaker, dynamic margin, "
    "liquidity injection) and compare forced notional, price move, time in cascades and the levers' "
    "procyclicality costs, over seeds."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``mitigate`` options to ``parser``."""
    parser.add_argument(
        "--scenarios",
        nargs="+",
        required=True,
        choices=sorted(SCENARIOS),
        metavar="NAME",
        help=f"scenario families: {', '.join(SCENARIOS)}",
    )
    parser.add_argument("--seeds", nargs="+", type=int, required=True, metavar="N", help="seeds of each scenario")
    parser.add_argument(
        "--levers", nargs="+", choices=LEVERS, default=list(LEVERS), metavar="LEVER", help="default: all three"
    )
    parser.add_argument(
        "--duration", type=float, default=None, metavar="S", help="simulated seconds (default: each scenario's)"
    )
    add_lever_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print {runs, summary} as one JSON object")
    parser.add_argument("--quiet", action="store_true", help="no progress on stderr")


def _cell(stat: dict, scale: float, digits: int) -> str:
    return f"{stat['mean'] / scale:.{digits}f} ± {stat['sd'] / scale:.{digits}f}"


def format_table(summary: list[dict]) -> str:
    """The summary as a Markdown table (mean ± sd over seeds)."""
    head = (
        "| scenario | lever | seeds | forced M$ | vs none | move bps | in cascade s | "
        "margin-liquidated M$ | injector loss k$ | breaker s |"
    )
    lines = [head, "|" + "---|" * 10]
    for e in summary:
        vs = "" if e["lever"] == "none" or e["forced_vs_none"] is None else f"{100 * e['forced_vs_none']:+.0f} %"
        lines.append(
            f"| {e['scenario']} | {e['lever']} | {e['seeds']} | {_cell(e['forced_usd'], 1e6, 1)} | {vs} | "
            f"{_cell(e['move_bps'], 1, 0)} | {_cell(e['cascade_s'], 1, 0)} | "
            f"{_cell(e['margin_liquidated_usd'], 1e6, 1)} | {_cell(e['injector_loss_usd'], 1e3, 0)} | "
            f"{_cell(e['tripped_s'], 1, 0)} |"
        )
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Run the lab from parsed arguments; prints the table (or JSON); returns the exit code."""
    levers = levers_from_args(args, list(dict.fromkeys(args.levers)))

    def progress(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    rows = run_lab(args.scenarios, args.seeds, levers, args.duration, None if args.quiet else progress)
    summary = summarize(rows)
    if args.json:
        print(json.dumps({"runs": rows, "summary": summary}))
    else:
        print(format_table(summary))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run ``cascadewatch mitigate`` from ``argv``; returns the exit status."""
    parser = argparse.ArgumentParser(prog="cascadewatch mitigate", description=DESCRIPTION)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
