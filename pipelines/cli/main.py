"""The ``cascadewatch`` command line."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from importlib import resources
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from cascadewatch.pipelines.cli import alerts as alerts_cli
from cascadewatch.pipelines.cli import explain as explain_cli
from cascadewatch.pipelines.cli import live as live_cli
from cascadewatch.pipelines.cli import mitigate as mitigate_cli
from cascadewatch.pipelines.cli import simulate as simulate_cli
from cascadewatch.pipelines.run.cluster import add_cluster_arguments, positive_int

# Each command imports what it runs (the dataflow, detectors, river, scipy, numpy, Bytewax) when
# it runs: `cascadewatch --help` and `tail` start without them (tests/test_cli_imports.py).

DESCRIPTION = """\
cascadewatch: real-time early warning for liquidation cascades on crypto derivatives venues.

Recordings (see README, "Recording format") replay through the same parsers and dataflow
as live data; output depends on event time only, so a replay is byte-for-byte repeatable.
"""


def _speed(text: str) -> float | None:
    if text == "max":
        return None
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--speed takes 'max' or a positive number, not {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError("--speed must be > 0")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The ``cascadewatch`` argument parser with every command."""
    parser = argparse.ArgumentParser(
        prog="cascadewatch", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    replay = commands.add_parser(
        "replay",
        help="replay recordings through the dataflow and write alerts and snapshots as JSONL",
        description="Replay recordings (one source partition per file) through the dataflow. "
        "Writes alerts and per-asset per-second snapshots as JSONL, counts bad frames as dead letters, "
        "and prints a summary: frames by venue and kind, dead letters by reason, alerts.",
    )
    replay.add_argument("recordings", nargs="+", type=Path, metavar="RECORDING", help="recording files (.gz/.zst ok)")
    replay.add_argument("--alerts-out", type=Path, metavar="F", help="write alerts here (JSONL)")
    replay.add_argument("--snapshots-out", type=Path, metavar="F", help="write per-second risk snapshots here (JSONL)")
    replay.add_argument(
        "--dead-letters-out",
        type=Path,
        metavar="F",
        help="write dead letters here (default: deadletters.jsonl beside --alerts-out)",
    )
    replay.add_argument(
        "--batch-size", type=positive_int, default=1000, metavar="N", help="frames per source batch (default 1000)"
    )
    replay.add_argument(
        "--speed",
        type=_speed,
        default=None,
        metavar="max|N",
        help="'max' (default): as fast as possible; N: N times real time, by receive time",
    )
    replay.add_argument("--config", type=Path, metavar="F", help="TOML config (see README, 'Configuration')")
    replay.add_argument(
        "--deliver",
        action="store_true",
        help="also send alerts through the outbox to the [alerts] destinations of --config (default: JSONL only)",
    )
    replay.add_argument(
        "--riskfeed",
        action="store_true",
        help="serve the websocket risk feed ([riskfeed] of --config) while replaying, e.g. with --speed 10",
    )
    add_cluster_arguments(replay)
    replay.add_argument("--quiet", action="store_true", help="print nothing (exit status only)")

    demo = commands.add_parser(
        "demo",
        help="replay the bundled recording and show the alerts and the risk table",
        description="Replay the recording bundled with the package (a short simulated multi-venue "
        "liquidation cascade) and show the replay summary, the alerts and the per-asset risk table.",
    )
    demo.add_argument("--out", type=Path, metavar="DIR", help="keep alerts/snapshots JSONL in DIR")
    simulate = commands.add_parser(
        "simulate",
        help="simulate a market with leveraged traders and liquidation engines; write a recording and its truth",
        description=simulate_cli.DESCRIPTION,
    )
    simulate_cli.add_arguments(simulate)
    mitigate = commands.add_parser(
        "mitigate",
        help="simulate scenarios with and without each mitigation lever and compare (table or JSON)",
        description=mitigate_cli.DESCRIPTION,
    )
    mitigate_cli.add_arguments(mitigate)

    evaluate = commands.add_parser(
        "evaluate",
        help="replay recordings and score alerts and probabilities against the truth",
        description="Replay each recording through the pipeline and score it against its truth file "
        "(cascadewatch simulate --truth): cascades caught, lead time, false alarms per day, Brier score, "
        "and the liquidation map's error. A table by default; --json prints one JSON object.",
    )
    evaluate.add_argument(
        "recordings",
        nargs="+",
        type=Path,
        metavar="RECORDING",
        help="a recording, or several joined by commas replayed together as one run (the assets of one "
        "multi-asset simulation: simulate --scenario contagion prints the group)",
    )
    evaluate.add_argument(
        "--truth",
        nargs="+",
        type=Path,
        metavar="T",
        help="truth JSONL files, one per recording, in the same order (default: the cascades the "
        "online labeller finds in each recording's published liquidations)",
    )
    evaluate.add_argument("--config", type=Path, metavar="F", help="TOML config (detector and policy knobs)")
    evaluate.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    evaluate.add_argument(
        "--by-family",
        action="store_true",
        help="also score each scenario family (the truth's scenario name) on its own",
    )
    evaluate.add_argument(
        "--report",
        type=Path,
        metavar="HTML",
        help="also write the replay report (as cascadewatch report; the recordings are replayed once more)",
    )

    report = commands.add_parser(
        "report",
        help="replay recordings and write one self-contained HTML report (charts, alerts, truth)",
        description="Replay recordings and write one HTML file that opens without network: per asset the "
        "price over the estimated liquidation levels, P(cascade down/up) with the thresholds, depth, feed "
        "health and the alert log; with --truth the labelled cascades shaded and each first alert's lead.",
    )
    report.add_argument("recordings", nargs="+", type=Path, metavar="RECORDING")
    report.add_argument(
        "--truth", nargs="+", type=Path, metavar="T", help="truth JSONL files, one per recording, in the same order"
    )
    report.add_argument("--config", type=Path, metavar="F", help="TOML config (detector and policy knobs)")
    report.add_argument("--out", type=Path, required=True, metavar="HTML", help="the report file to write")
    report.add_argument(
        "--mitigate",
        type=Path,
        metavar="JSON",
        help="also show the mitigation lab's table: the output of cascadewatch mitigate --json saved to a file",
    )

    train = commands.add_parser(
        "train",
        help="pre-train the cascade classifier from recordings; [detectors] model loads it",
        description="Replay recordings through the pipeline, label every asset-second per direction "
        "(a cascade starts within the horizon: from --truth files, else from the online labeller on the "
        "published liquidations) and fit the classifier on the detectors' features. Writes MODEL; "
        "'[detectors] model = \"MODEL\"' in a --config makes replay, evaluate and run start from it.",
    )
    train.add_argument("recordings", nargs="+", type=Path, metavar="RECORDING")
    train.add_argument(
        "--truth",
        nargs="+",
        type=Path,
        metavar="T",
        help="truth JSONL files (cascadewatch simulate --truth), one per recording, in the same order",
    )
    train.add_argument("--out", type=Path, required=True, metavar="MODEL", help="model file to write")
    train.add_argument("--config", type=Path, metavar="F", help="TOML config (detector knobs, horizon)")
    train.add_argument(
        "--features",
        metavar="A,B,...",
        help="comma-separated feature names (default: the scale-free set of cascadewatch.pipelines.evaluation.train)",
    )
    train.add_argument(
        "--l2",
        type=float,
        default=None,
        help="L2 penalty on the standardised weights (default: cascadewatch.detectors.evidence.DEFAULT_L2)",
    )
    train.add_argument(
        "--cap",
        type=float,
        default=None,
        help="bound of each feature family's evidence, log-odds (default: cascadewatch.detectors.evidence."
        "DEFAULT_CAP; inf: none)",
    )

    explain = commands.add_parser(
        "explain",
        help="re-make an alert from its audit manifest, compare it byte for byte, show its evidence",
        description=explain_cli.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    explain_cli.add_arguments(explain)

    alerts_cli.add_commands(commands)
    live_cli.add_commands(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    """The ``cascadewatch`` command line; returns the exit status."""
    args = build_parser().parse_args(argv)
    console = Console()
    try:
        if args.command == "replay":
            return _replay(args, console)
        if args.command == "demo":
            return _demo(args, console)
        if args.command == "simulate":
            return simulate_cli.run(args)
        if args.command == "mitigate":
            return mitigate_cli.run(args)
        if args.command == "evaluate":
            return _evaluate(args, console)
        if args.command == "train":
            return _train(args)
        if args.command == "explain":
            return explain_cli.run(args, console)
        if args.command == "report":
            return _report(args, console)
        if args.command in alerts_cli.COMMANDS:
            return alerts_cli.run(args, console)
        if args.command in live_cli.COMMANDS:
            return live_cli.handle(args, console)
    except (FileNotFoundError, ValueError) as exc:  # ValueError includes the config's ConfigError
        console.print(f"[red]error:[/] {escape(str(exc))}", soft_wrap=True)
        return 2
    except OSError as exc:  # while running (an output on a full disk): one line naming the file
        console.print(f"[red]error:[/] {escape(str(exc))}", soft_wrap=True)
        return 1
    return 0  # pragma: no cover - argparse enforces a command


def _replay(args: argparse.Namespace, console: Console) -> int:
    from cascadewatch.pipelines.cli.display import alert_table, print_summary
    from cascadewatch.pipelines.config import load_config
    from cascadewatch.pipelines.run.replay import ReplayOptions, run_replay

    config = load_config(args.config)
    summary = run_replay(
        args.recordings,
        config,
        ReplayOptions(
            alerts_out=args.alerts_out,
            snapshots_out=args.snapshots_out,
            dead_letters_out=args.dead_letters_out,
            batch_size=args.batch_size,
            workers=args.workers,
            speed=args.speed,
            addresses=args.addresses.split(",") if args.addresses else None,
            process_id=args.process_id,
            deliver_alerts=args.deliver,
            serve_riskfeed=args.riskfeed,
            recovery_dir=args.recovery_dir,
        ),
    )
    if not args.quiet:
        print_summary(console, summary)
        if summary.alerts:
            console.print(alert_table(summary.alerts))
    return 0


def _evaluate(args: argparse.Namespace, console: Console) -> int:
    from cascadewatch.pipelines.config import load_config
    from cascadewatch.pipelines.evaluation.evaluate import contagion_table, evaluate, recording_group, score_table

    config = load_config(args.config)
    result = evaluate(
        args.recordings, args.truth, config, progress_console=Console(stderr=True), by_family=args.by_family
    )
    if args.json:
        print(json.dumps(result))
    else:
        console.print(score_table(result))
        for name, family in result.get("families", {}).items():
            console.print(score_table(family, title=name))
        if "contagion" in result:
            console.print(contagion_table(result["contagion"]))
    if args.report:
        from cascadewatch.pipelines.report.replay_report import write_report

        recordings = [path for recording in args.recordings for path in recording_group(recording)]
        write_report(recordings, args.truth, config, args.report)
    return 0


def _report(args: argparse.Namespace, console: Console) -> int:
    from cascadewatch.pipelines.config import load_config
    from cascadewatch.pipelines.report.replay_report import write_report

    try:
        data = write_report(args.recordings, args.truth, load_config(args.config), args.out, args.mitigate)
    except ValueError as exc:
        console.print(f"report: {exc}")
        return 2
    console.print(f"report: {len(data['snapshots'])} snapshots, {len(data['alerts'])} alerts -> {args.out}")
    return 0


def _train(args: argparse.Namespace) -> int:
    from cascadewatch.detectors.evidence import DEFAULT_CAP, DEFAULT_L2
    from cascadewatch.pipelines.config import load_config
    from cascadewatch.pipelines.evaluation.train import DEFAULT_FEATURES, train

    config = load_config(args.config)
    features = tuple(f.strip() for f in args.features.split(",") if f.strip()) if args.features else DEFAULT_FEATURES
    l2 = DEFAULT_L2 if args.l2 is None else args.l2
    cap = DEFAULT_CAP if args.cap is None else args.cap
    train(args.recordings, args.truth, config, args.out, features=features, l2=l2, cap=cap)
    return 0


def bundled_demo_recording() -> Path:
    """Path of the recording shipped in the package (``pipelines/data/demo.rec.zst``)."""
    return Path(str(resources.files("cascadewatch.pipelines") / "data" / "demo.rec.zst"))


def demo_lead_line(alerts: list[dict], truth: list[dict]) -> str:
    """How far ahead of the truth's first labelled cascade start its first warning came.

    >>> truth = [{"type": "cascade", "asset": "BTC-USDT", "direction": "down", "start": 100_000}]
    >>> demo_lead_line([{"action": "trigger", "asset": "BTC-USDT", "direction": "down", "ts": 40_000,
    ...                  "severity": "warning"}], truth)
    'first warning 60 s before the labelled cascade start (BTC-USDT down)'
    >>> demo_lead_line([], truth)
    'no alert for the labelled cascade (BTC-USDT down)'
    """
    cascades = sorted((c for c in truth if c.get("type") == "cascade"), key=lambda c: int(c["start"]))
    if not cascades:
        return "the demo's truth holds no labelled cascade"
    c = cascades[0]
    what = f"({c['asset']} {c['direction']})"
    triggers = [
        a
        for a in alerts
        if a.get("action") == "trigger" and (a.get("asset"), a.get("direction")) == (c["asset"], c["direction"])
    ]
    if not triggers:
        return f"no alert for the labelled cascade {what}"
    lead = (int(c["start"]) - int(triggers[0]["ts"])) / 1000.0
    when = "before" if lead >= 0 else "after"
    kind = "warning" if triggers[0].get("severity") == "warning" else f"alert ({triggers[0].get('severity')})"
    return f"first {kind} {abs(lead):.0f} s {when} the labelled cascade start {what}"


def _demo(args: argparse.Namespace, console: Console) -> int:
    from cascadewatch.pipelines.cli.display import (
        alert_table,
        print_summary,
        risk_table,
    )
    from cascadewatch.pipelines.run.replay import ReplayOptions, run_replay

    recording = bundled_demo_recording()
    from cascadewatch.pipelines.config import load_config

    config = load_config(None)
    with tempfile.TemporaryDirectory(prefix="cascadewatch-demo-") as scratch:
        out = args.out or Path(scratch)
        out.mkdir(parents=True, exist_ok=True)
        console.print(f"replaying [bold]{recording.name}[/] ...")
        summary = run_replay(
            [recording],
            config,
            ReplayOptions(alerts_out=out / "alerts.jsonl", snapshots_out=out / "snapshots.jsonl"),
        )
        print_summary(console, summary)
        console.print(alert_table(summary.alerts))
        with open(recording.with_name("demo.truth.jsonl")) as lines:
            truth = [json.loads(line) for line in lines if line.strip()]
        console.print(demo_lead_line(summary.alerts, truth))
        with open(out / "snapshots.jsonl") as lines:
            console.print(risk_table(json.loads(line) for line in lines))
        if args.out:
            console.print(f"outputs kept in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
