"""Configuration: one TOML file, every key optional, documented defaults.

Example (all keys shown with their defaults)::

    [replay]
    allowed_lag_s = 2.0       # how far exchange time may trail receive time (s)

    [provisional]             # provisional cascade alerts at receive-time checkpoints
    enabled = true
    checkpoint_ms = 250
    confirm_s = 10.0

    [detectors]               # see DetectorsConfig below for every knob
    horizon_s = 300
    warn_enter = 0.035

    [alerts]                  # delivery: see docs/alerts.md
    [riskfeed]                # the websocket risk feed: see docs/alerts.md
    [live]                    # venues, symbols, endpoints, metrics: see docs/live.md
    [desk]                    # the desk's own exposure: see docs/desk.md
    [contagion]               # the grouped alert across assets: see docs/mitigation.md
    window_s = 300            # onsets at most this far after the group's first group together (s)
    min_assets = 2            # assets needed for a group
    enabled = true
"""

from __future__ import annotations

from pathlib import Path

import msgspec

from cascadewatch.connectors.alerts.config import AlertsConfig, RiskFeedConfig
from cascadewatch.connectors.live_config import LiveConfig
from cascadewatch.detectors.contagion import ContagionConfig
from cascadewatch.detectors.labels import LabelConfig
from cascadewatch.detectors.liqmap_estimated import DEFAULT_TIERS, MapLearning
from cascadewatch.detectors.mitigation import MitigationConfig
from cascadewatch.detectors.policy import PAGE_KINDS
from cascadewatch.pipelines.model_file import NO_MODEL, model_classifiers, resolve_model


class DetectorsConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Detector and policy knobs (``[detectors]`` in the config file); units in the names.

    ``leverage``: ``[[L, weight], ...]`` tiers new positions are spread over (the prior mix: the
    estimated map learns the weights from the liquidations it sees); ``mmr``: maintenance margin
    rate (fraction); ``map_seed_share``: share of the first open interest seen taken as leveraged
    positions opened before the start (per side), their entries spread ``map_seed_spread_bps``
    around the price. Probabilities are per direction within ``horizon_s``.
    ``vol_slow_half_life_s``: half-life of the slow volatility EWMA (the touch probability
    uses the larger of the two); ``crowding_windows_s``: windows of the crowding monitor;
    ``precursor_windows_s``: windows of the precursor monitor (liquidation trickle, drift);
    ``model``: path of a pre-trained classifier file (``cascadewatch train``); not set: the model
    shipped in the package (``make model``); ``"none"``: no model, the classifiers start empty and
    the probability is the structural estimate until they have labels; ``page_kinds``: cascade
    types in progress that page by themselves; ``mitigation``: the mitigation readouts' knobs
    (``[detectors.mitigation]``, :class:`~cascadewatch.detectors.mitigation.MitigationConfig`:
    defence band, margin rule, breaker rule); ``snapshot_levels``: snapshots carry the estimated
    map's levels per direction (``down.levels``, ``up.levels``: the web page's heatmap; always on
    while the risk feed is served).
    ``warn_enter`` / ``warn_exit``: the policy's warning threshold on the calibrated probability
    of a cascade within ``horizon_s`` and its hysteresis (``warn_exit`` = ``warn_enter / 2``).
    0.035 is about fifteen times the shipped model's median on a quiet market (0.0024 on training
    calm day 1), and the lowest threshold that gives at most two false warnings a day on the
    model's own training calm days (seeds 1-4, offline over their snapshots: 3.00 a day at 0.03,
    2.00 at 0.035 and at 0.04, 1.25 at 0.045, 1.00 at 0.05; none at 0.3, which the calibrated
    model reaches only inside a cascade).
    ``crit_enter``: the probability that pages by itself.
    """

    horizon_s: int = 300
    leverage: tuple[tuple[float, float], ...] = DEFAULT_TIERS
    mmr: float = 0.005
    map_seed_share: float = MapLearning().seed_share
    map_seed_spread_bps: float = MapLearning().seed_spread_bps
    map_range_pct: float = 10.0
    map_half_life_s: float = 8 * 3600.0
    dense_multiple: float = 3.0
    min_cluster_usd: float = 250_000.0
    observed_half_life_s: float = 900.0
    depth_window_s: int = 600
    vol_half_life_s: float = 600.0
    vol_slow_half_life_s: float = 4 * 3600.0
    crowding_windows_s: tuple[int, ...] = (60, 300, 900)
    precursor_windows_s: tuple[int, ...] = (60, 300)
    model: str | None = None
    hawkes_beta: float = 0.1
    hawkes_window_s: float = 1800.0
    regime_window_s: int = 60
    regime_min_liq_usd: float = 1_000_000.0
    regime_min_move_bps: float = 50.0
    warn_enter: float = 0.035
    warn_exit: float = 0.0175
    crit_enter: float = 0.6
    min_hold_s: float = 120.0
    calm_s: float = 60.0
    cooldown_s: float = 600.0
    page_kinds: tuple[str, ...] = PAGE_KINDS
    labels: LabelConfig = LabelConfig()
    mitigation: MitigationConfig = MitigationConfig()
    snapshot_levels: bool = False


class ReplayConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[replay]``: ``allowed_lag_s``, seconds a frame may arrive late before its second closes."""

    allowed_lag_s: float = 2.0


class ProvisionalConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[provisional]``: provisional cascade alerts (:mod:`cascadewatch.pipelines.steps.provisional`).

    ``enabled``: evaluate them; ``checkpoint_ms``: the receive-time checkpoints (ms apart) at
    which each venue instrument's liquidations over the last ``regime_window_s`` and the move
    since the cascade's start (the label's, ``[detectors.labels]`` ``onset_s`` and
    ``onset_share``) are checked against ``regime_min_liq_usd`` and ``regime_min_move_bps``
    (``[detectors]``);
    ``confirm_s``: event-time seconds the per-second check has to confirm a provisional alert
    (open its own incident on the same dedup key) before the provisional alert is resolved.
    """

    enabled: bool = True
    checkpoint_ms: int = 250
    confirm_s: float = 10.0

    def __post_init__(self) -> None:
        if self.checkpoint_ms <= 0:
            raise ValueError("provisional: checkpoint_ms must be > 0")
        if self.confirm_s <= 0:
            raise ValueError("provisional: confirm_s must be > 0")


class DeskConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[desk]``: the desk's exposure (docs/desk.md).

    ``exposure``: a TOML or CSV book of positions and resting orders (relative to the config
    file), re-read when it changes; ``port``: the HTTP endpoint that replaces it at run time
    (``cascadewatch run``; 0: none), on ``host``, with the bearer token from ``token_env``
    (required when ``port`` is set).
    """

    exposure: str | None = None
    host: str = "127.0.0.1"
    port: int = 0
    token_env: str | None = None

    def __post_init__(self) -> None:
        if not (0 <= self.port <= 65535):
            raise ValueError("desk: port must be within 0..65535")
        if self.port and not self.token_env:
            raise ValueError("desk: port needs token_env (the env var holding the bearer token)")
        if self.port and not self.exposure:
            raise ValueError("desk: port needs exposure (the file the endpoint replaces)")


class Config(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The whole TOML configuration: one table per part of the system."""

    replay: ReplayConfig = ReplayConfig()
    provisional: ProvisionalConfig = ProvisionalConfig()
    detectors: DetectorsConfig = DetectorsConfig()
    alerts: AlertsConfig = AlertsConfig()
    riskfeed: RiskFeedConfig = RiskFeedConfig()
    live: LiveConfig = LiveConfig()
    desk: DeskConfig = DeskConfig()
    contagion: ContagionConfig = ContagionConfig()


class ConfigError(ValueError):
    """A config file that cannot be used; the message names the file and the problem."""


def check_model(config: Config, where: str) -> None:
    """Read and check the model file ``config`` names (the bundled one when not set); a missing,
    corrupt or incompatible one raises :class:`ConfigError` naming ``where`` and the problem."""
    d = config.detectors
    model_path = resolve_model(d.model)
    if model_path is None:
        return
    try:
        model_classifiers(model_path, d.horizon_s, d.crowding_windows_s, d.precursor_windows_s)
    except (OSError, ValueError) as exc:
        hint = ' (set [detectors] model = "none" to run without one)' if d.model is None else ""
        raise ConfigError(f"{where}: [detectors] model: {exc}{hint}") from None


def load_config(path: str | Path | None) -> Config:
    """Read a TOML config; ``None`` gives the defaults.

    ``[detectors] model``, a relative path, is taken relative to the config file's directory;
    the model file (the bundled one when not set) is read and checked here, so a missing,
    corrupt or incompatible one fails before any replay or run.
    """
    if path is None:
        config = Config()
        check_model(config, "default configuration")
        return config
    path = Path(path)
    try:
        config = msgspec.toml.decode(path.read_bytes(), type=Config)
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file: {exc.strerror or exc}") from None
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise ConfigError(f"{path}: {exc}") from None
    model = config.detectors.model
    if model is not None and model != NO_MODEL:
        model_path = Path(model).expanduser()
        if not model_path.is_absolute():
            model_path = path.parent / model_path
        detectors = msgspec.structs.replace(config.detectors, model=str(model_path))
        config = msgspec.structs.replace(config, detectors=detectors)
    exposure = config.desk.exposure
    if exposure is not None and not Path(exposure).expanduser().is_absolute():
        desk = msgspec.structs.replace(config.desk, exposure=str(path.parent / Path(exposure).expanduser()))
        config = msgspec.structs.replace(config, desk=desk)
    check_model(config, str(path))
    return config
