"""Multi-asset markets with cross-margined accounts: a cascade in one asset spreads to others.

The scenarios here (:data:`CROSS_MARGIN_SCENARIOS`, opt-in: not in
:data:`~cascadewatch.pipelines.simulate.SCENARIOS`, so the single-asset families and the corpus
are untouched) run one market per asset (:data:`ASSETS`, each the single-asset simulation of
:mod:`.runner` with its own seed, on :data:`VENUES`) and a shared population of
**cross-margined accounts** that hold a leveraged long in every asset against one pool of
margin.

Account ``j`` (:func:`draw_accounts`) holds notional ``g_j * w_jk`` in asset ``k`` (USD per unit
of that market's notional scale ``S_k``, so positions are in proportion to each market's size;
``w_j`` sums to 1), opened at the assets' first prices ``P_k(0)``. With ``r_k = P_k(t) / P_k(0)``
and ``m`` the maintenance margin rate (:data:`MMR`), in USD::

    equity_j(t)      = g_j * sum_k w_jk S_k * (m + b_j + r_k - 1)
    maintenance_j(t) = g_j * sum_k w_jk S_k * m * r_k

``b_j``, the account's buffer above maintenance at the start (a fraction of its gross
notional). The account is liquidated at the first whole second at which ``equity <
maintenance``: **all** its positions are sold, whichever asset drained the pool. The sale of
asset ``k`` starts :data:`SALE_DELAY_S` later: a market sell of ``g_j * w_jk`` (per unit of
scale) spread over :data:`SALE_OVER_S`, and, as the sellers also hedge spot, the asset's spot
index moves by ``-IMPACT_BPS_PER_MUSD * usd / 1e6`` bps over :data:`IMPACT_OVER_S` from
:data:`IMPACT_DELAY_S` after the sale starts (accounts liquidated in the same second are
summed).

The assets run in order (:data:`ASSETS`, the first is the origin): asset ``i`` sees the sales
of every account that the price paths of assets ``0 .. i-1`` liquidate (the later assets at
``r = 1``). The coupling is one-way in that order: an asset's own later moves do not feed
back into the runs before it (the origin's run does not receive the sales it causes, its own
liquidation engine already works that side). Each asset's run is otherwise the plain
single-asset simulation (its own market draw, traders, engines and background).

- ``contagion``: every asset has a crowded, leveraged build-up of longs over the same window
  (the market is long everything); the origin gets the long-squeeze shock (a market sell and
  a spot dip); accounts fail and their sales cascade the other assets 10-90 s later (seeds 1-10).
- ``contagion-calm``: the same markets and accounts (buffers of 2-10 % instead of 0.1-1.2 %:
  no crowd), no build-up and no shock: a day of background, where only large ordinary moves
  can liquidate an account.

Outputs: one recording per asset (``<stem>.<asset>.rec.zst`` beside ``out``, the frames of
:mod:`.venues` with the symbol renamed: ``BTCUSDT`` -> ``ETHUSDT``, ``BTC-USDT-SWAP`` ->
``ETH-USDT-SWAP``; prices keep the simulator's scale), replayed together as one run
(``cascadewatch replay a b c``; ``cascadewatch evaluate a,b,c --truth t``), and one truth file:
the single-asset truth lines of each asset (with ``asset`` set), a ``scenario`` line with
``assets`` and ``recordings``, ``{"type": "margin_call", "ts", "asset", "accounts", "usd"}``
per second and asset whose sale begins then (USD sold in that asset), and the true groups
(:func:`true_groups`): ``{"type": "contagion", "direction", "start", "end", "assets":
[{"asset", "start"}]}``.
"""

from __future__ import annotations

import random
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from cascadewatch.connectors.recording import RecordingReader, RecordingWriter
from cascadewatch.detectors.labels import LabelConfig
from cascadewatch.pipelines.simulate.cross_margin_scenarios import (
    CROSS_MARGIN_SCENARIOS,
    START_MS,
    CrossMarginScenario,
)
from cascadewatch.pipelines.simulate.market import draw_market
from cascadewatch.pipelines.simulate.runner import run_scenario
from cascadewatch.pipelines.simulate.scenarios import Plan, Scenario, Shock

__all__ = [
    "ASSETS",
    "CROSS_MARGIN_SCENARIOS",
    "CrossMarginScenario",
    "Accounts",
    "draw_accounts",
    "liquidation_seconds",
    "true_groups",
    "recording_paths",
    "simulate_cross_margin",
]

ASSETS = ("BTC-USDT", "ETH-USDT", "SOL-USDT")
"""The markets, in run order; the first is the origin of the ``contagion`` scenario's shock."""
VENUES = ("bybit-linear", "binance-usdm", "okx-swap")
MMR = 0.005
"""Maintenance margin rate of the cross-margined accounts (fraction of notional)."""
SALE_DELAY_S = 3
SALE_OVER_S = 10.0
IMPACT_BPS_PER_MUSD = 4.0
"""Spot move per million USD (per unit of scale) of an asset's forced selling, bps."""
IMPACT_DELAY_S = 5
IMPACT_OVER_S = 30.0
GROUP_WINDOW_S = 300
"""True groups: cascades whose starts are at most this far after the group's first (as ``[contagion] window_s``)."""
_ACCOUNT_MIX = 0x5EED_C0DE_7A11


@dataclass(frozen=True)
class Accounts:
    """The cross-margined accounts: ``gross`` (USD per unit of scale, shape ``(n,)``),
    ``weights`` (shape ``(n, assets)``, rows sum to 1) and ``buffer`` (fraction of gross above
    maintenance at the start, shape ``(n,)``)."""

    gross: np.ndarray
    weights: np.ndarray
    buffer: np.ndarray


def draw_accounts(
    seed: int, n_assets: int, n: int = 400, total_usd: float = 300e6, buffer: tuple[float, float] = (0.001, 0.012)
) -> Accounts:
    """Draw ``n`` accounts: gross notional lognormal (sigma 1) scaled to ``total_usd`` in all
    (USD per unit of scale), weights uniform on the simplex (normalised exponentials),
    buffers uniform in ``buffer`` (fractions of gross)."""
    rng = np.random.default_rng(seed ^ _ACCOUNT_MIX)
    gross = rng.lognormal(0.0, 1.0, n)
    gross *= total_usd / gross.sum()
    weights = rng.exponential(1.0, (n, n_assets))
    weights /= weights.sum(axis=1, keepdims=True)
    return Accounts(gross, weights, rng.uniform(buffer[0], buffer[1], n))


def liquidation_seconds(accounts: Accounts, ratios: np.ndarray, scales: Sequence[float]) -> np.ndarray:
    """Per account, the first second at which its equity falls below maintenance (module doc),
    ``-1`` if never. ``ratios``: ``P_k(t) / P_k(0)``, shape ``(seconds, assets)`` (1 for assets
    not run yet); ``scales``: ``S_k`` per asset.

    >>> acc = Accounts(np.array([1.0, 1.0]), np.array([[1.0, 0.0], [0.5, 0.5]]), np.array([0.01, 0.01]))
    >>> ratios = np.array([[1.0, 1.0], [0.995, 1.0], [0.985, 1.0], [0.975, 1.0]])
    >>> liquidation_seconds(acc, ratios, [1.0, 1.0]).tolist()
    [2, 3]
    """
    exposure = accounts.weights * np.asarray(scales)[None, :]  # (n, k): USD per unit of gross
    equity = exposure @ (MMR - 1.0 + ratios.T) + (exposure.sum(axis=1) * accounts.buffer)[:, None]
    maintenance = MMR * exposure @ ratios.T
    below = equity < maintenance  # (n, seconds)
    first = below.argmax(axis=1)
    return np.where(below.any(axis=1), first, -1)


def true_groups(cascades: Sequence[dict[str, Any]], window_s: int = GROUP_WINDOW_S) -> list[dict[str, Any]]:
    """The true contagion groups: per direction, cascades of at least two assets whose starts
    are at most ``window_s`` after the group's first (an asset counts once, by its first
    cascade; a cascade after the window starts the search again).

    >>> cs = [{"asset": "A", "direction": "down", "start": 0, "end": 60_000},
    ...       {"asset": "B", "direction": "down", "start": 300_000, "end": 400_000},
    ...       {"asset": "C", "direction": "down", "start": 301_000, "end": 350_000}]
    >>> [(g["start"], g["end"], [a["asset"] for a in g["assets"]]) for g in true_groups(cs)]
    [(0, 400000, ['A', 'B'])]
    """
    groups = []
    for direction in ("down", "up"):
        pending = sorted(
            (int(c["start"]), str(c["asset"]), int(c["end"])) for c in cascades if c["direction"] == direction
        )
        while pending:
            origin = pending[0][0]
            members: dict[str, tuple[int, int]] = {}
            for start, asset, end in pending:
                if start - origin <= window_s * 1000 and asset not in members:
                    members[asset] = (start, end)
            used = {(s, a) for a, (s, _) in members.items()}
            pending = [p for p in pending[1:] if p[0] - origin > window_s * 1000 and (p[0], p[1]) not in used]
            if len(members) >= 2:
                groups.append(
                    {
                        "type": "contagion",
                        "direction": direction,
                        "start": origin,
                        "end": max(e for _, e in members.values()),
                        "assets": [
                            {"asset": a, "start": s} for a, (s, _) in sorted(members.items(), key=lambda m: m[1])
                        ],
                    }
                )
    return sorted(groups, key=lambda g: (g["start"], g["direction"]))


def recording_paths(out: str | Path, assets: Sequence[str] = ASSETS) -> list[Path]:
    """``run.rec.zst`` -> ``[run.BTC-USDT.rec.zst, ...]``: one recording per asset beside ``out``."""
    out = Path(out)
    name = out.name
    stem, dot, suffix = name.partition(".")
    return [out.with_name(f"{stem}.{asset}{dot}{suffix}") for asset in assets]


def _rename(payload: bytes, asset: str) -> bytes:
    """The simulator's BTC-USDT frames as ``asset``'s: every symbol spelling the venues use."""
    base = asset.split("-")[0]
    for old, new in (
        (b"BTCUSDT", f"{base}USDT"),
        (b"btcusdt", f"{base.lower()}usdt"),
        (b"BTC-USDT", f"{base}-USDT"),
        (b'"BTC"', f'"{base}"'),
    ):
        payload = payload.replace(old, new.encode())
    return payload


def _copy_renamed(src: Path, dst: Path, asset: str, comment: str) -> int:
    """Write ``src`` (a recording) to ``dst`` with the symbols renamed; returns the frames written."""
    with RecordingWriter(dst, comment=comment) as writer:
        for frame in RecordingReader(src):
            writer.write(frame.recv, frame.source, _rename(frame.payload, asset))
        return writer.lines_written


def _ratios(trace: list[dict[str, Any]], seconds: int) -> np.ndarray:
    """``P(t) / P(0)`` per second from a run's trace, padded to ``seconds`` with the last value."""
    prices = np.array([row["price"] for row in trace], dtype=float)
    out = np.ones(seconds)
    if prices.size:
        n = min(seconds, prices.size)
        out[:n] = prices[:n] / prices[0]
        out[n:] = out[n - 1]
    return out


def _sales(accounts: Accounts, failed_at: np.ndarray, asset_index: int) -> list[tuple[int, float, int]]:
    """Per second with failures, the gross of asset ``asset_index`` the failed accounts sell."""
    per: dict[int, list[float]] = {}
    for j in np.flatnonzero(failed_at >= 0):
        acc = per.setdefault(int(failed_at[j]), [0.0, 0.0])
        acc[0] += float(accounts.gross[j] * accounts.weights[j, asset_index])
        acc[1] += 1
    return [(s, usd, int(n)) for s, (usd, n) in sorted(per.items())]


def _with_sales(plan: Plan, sales: list[tuple[int, float, int]], anchor_s: float) -> Plan:
    """``plan`` plus the market sells and spot moves of ``sales`` (seconds from the run's start)."""
    shocks = list(plan.shocks)
    for second, usd, _ in sales:
        at = second + SALE_DELAY_S - anchor_s
        shocks.append(Shock(at, "market", usd=-usd, over_s=SALE_OVER_S, slices=5))
        bps = IMPACT_BPS_PER_MUSD * usd / 1e6
        shocks.append(Shock(at + IMPACT_DELAY_S, "index", bps=-bps, over_s=IMPACT_OVER_S, slices=6))
    return replace(plan, shocks=tuple(shocks))


@dataclass
class CrossMarginResult:
    """What a multi-asset run produced: per asset its recording, cascades and single-asset
    result facts, the margin calls, the true groups and the truth path."""

    scenario: str
    seed: int
    duration_s: float
    recordings: list[Path]
    truth: Path | None
    cascades: list[dict]
    margin_calls: list[dict]
    groups: list[dict]
    frames: dict[str, int]


def simulate_cross_margin(
    name: str,
    seed: int,
    duration_s: float | None,
    out: str | Path | None,
    truth: str | Path | None = None,
    label_config: LabelConfig | None = None,
) -> CrossMarginResult:
    """Run the multi-asset family ``name`` (:data:`CROSS_MARGIN_SCENARIOS`) with ``seed`` for
    ``duration_s`` (``None``: the family's); write the recordings (:func:`recording_paths` of
    ``out``; ``None``: none) and the truth. Deterministic per seed (module doc)."""
    try:
        family = CROSS_MARGIN_SCENARIOS[name]
    except KeyError:
        raise ValueError(f"unknown multi-asset scenario {name!r}; known: {', '.join(CROSS_MARGIN_SCENARIOS)}") from None
    duration = float(duration_s if duration_s is not None else family.duration_s)
    if duration <= 0:
        raise ValueError("duration_s must be > 0")
    seconds = int(duration)
    seeds = [seed * len(ASSETS) + i for i in range(len(ASSETS))]
    scales = [_scale(s) for s in seeds]
    origin_plan = family.origin(random.Random(seed ^ 0x0A1C))
    anchor_s = origin_plan.anchor * duration
    accounts = draw_accounts(seed, len(ASSETS), buffer=family.buffer)
    paths: list[Path | None] = list(recording_paths(out)) if out is not None else [None] * len(ASSETS)
    ratios = np.ones((seconds, len(ASSETS)))
    lines: list[dict[str, Any]] = []
    cascades: list[dict] = []
    margin_calls: list[dict] = []
    frames: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix="cascadewatch-xm-") as scratch:
        for i, asset in enumerate(ASSETS):
            if i == 0:
                plan = origin_plan
            else:
                failed_at = liquidation_seconds(accounts, ratios, scales)
                sales = _sales(accounts, failed_at, i)
                margin_calls.extend(
                    {
                        "type": "margin_call",
                        "ts": _ms(s + SALE_DELAY_S),
                        "asset": asset,
                        "accounts": n,
                        "usd": round(usd * scales[i], 2),
                    }
                    for s, usd, n in sales
                    if s + SALE_DELAY_S < seconds
                )
                plan = _with_sales(
                    family.others(random.Random(seed ^ (0x0A1C + i)), origin_plan.anchor), sales, anchor_s
                )
            sc = Scenario(
                name=f"{family.name}/{asset}",
                description=family.description,
                build=_fixed(plan),
                duration_s=duration,
                venues=VENUES,
                step_s=family.step_s,
            )
            target = paths[i]
            raw = Path(scratch) / f"{i}.rec" if target is not None else None
            truth_i = Path(scratch) / f"{i}.truth.jsonl"
            trace: list[dict] = []
            result = run_scenario(sc, seeds[i], raw, truth_i, label_config=label_config, trace=trace)
            ratios[:, i] = _ratios(trace, seconds)
            if raw is not None and target is not None:
                comment = f"simulated scenario={family.name} asset={asset} seed={seed} duration_s={duration:g}"
                frames[asset] = _copy_renamed(raw, target, asset, comment)
            lines.extend({**line, "asset": asset} for line in _read(truth_i)[1:])
            cascades.extend({**c, "asset": asset} for c in result.cascades)
    groups = true_groups(cascades)
    head = {
        "type": "scenario",
        "name": family.name,
        "seed": seed,
        "duration_s": duration,
        "venues": list(VENUES),
        "description": family.description,
        "assets": list(ASSETS),
        "recordings": [p.name for p in paths if p is not None],
        "plan": {"direction": origin_plan.direction, "anchor": _ms(anchor_s), "origin": ASSETS[0]},
    }
    truth_path = Path(truth) if truth is not None else None
    if truth_path is not None:
        _write_truth(truth_path, head, lines + margin_calls + groups)
    return CrossMarginResult(
        scenario=family.name,
        seed=seed,
        duration_s=duration,
        recordings=[p for p in paths if p is not None],
        truth=truth_path,
        cascades=sorted(cascades, key=lambda c: (c["start"], c["asset"], c["direction"])),
        margin_calls=margin_calls,
        groups=groups,
        frames=frames,
    )


def _fixed(plan: Plan) -> Callable[[random.Random], Plan]:
    """A plan drawer that always returns ``plan`` (the plan is drawn here, before the run)."""
    return lambda _rng: plan


def _scale(seed: int) -> float:
    """``S_k``: the market's total notional scale (its venues' scales times its notional)."""
    m = draw_market(seed, VENUES)
    return float(sum(v.scale for v in m.venues) * m.notional)


def _ms(seconds: float) -> int:
    """Epoch ms of ``seconds`` into a run (the single-asset runs' start)."""
    return START_MS + int(seconds * 1000)


def _read(path: Path) -> list[dict[str, Any]]:
    with open(path, "rb") as fh:
        return [msgspec.json.decode(line) for line in fh if line.strip()]


def _write_truth(path: Path, head: dict[str, Any], lines: list[dict[str, Any]]) -> None:
    """The scenario line, the spans, then every line in time order (ties by type, then asset)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    spans = [line for line in lines if line["type"] == "span"]
    rest = [line for line in lines if line["type"] != "span"]
    rest.sort(key=lambda d: (d.get("ts", d.get("start", 0)), d["type"], d.get("asset", "")))
    with open(path, "wb") as fh:
        for line in [head, *spans, *rest]:
            fh.write(msgspec.json.encode(line) + b"\n")
