"""Configuration: one TOML file, every key optional, documented defaults.

Example (all keys shown with their defaults)::

    [replay]
    allowed_lag_s = 2.0       # how far exchange time may trail receive time (s)

    [detectors]               # see pipelines.assets.DetectorsConfig for every knob
    horizon_s = 300
    warn_enter = 0.3

    [alerts]                  # delivery: see docs/alerts.md
    [riskfeed]                # the websocket risk feed: see docs/alerts.md
    [live]                    # venues, symbols, endpoints, metrics: see docs/live.md
"""

from __future__ import annotations

import pickle
from pathlib import Path

import msgspec

from connectors.alerts.config import AlertsConfig, RiskFeedConfig
from connectors.live_config import LiveConfig
from pipelines.assets import DetectorsConfig
from pipelines.cascade_model import model_classifiers


class ReplayConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    allowed_lag_s: float = 2.0


class Config(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    replay: ReplayConfig = ReplayConfig()
    detectors: DetectorsConfig = DetectorsConfig()
    alerts: AlertsConfig = AlertsConfig()
    riskfeed: RiskFeedConfig = RiskFeedConfig()
    live: LiveConfig = LiveConfig()


class ConfigError(ValueError):
    """A config file that cannot be used; the message names the file and the problem."""


def load_config(path: str | Path | None) -> Config:
    """Read a TOML config; ``None`` gives the defaults.

    ``[detectors] model``, a relative path, is taken relative to the config file's directory;
    the model file is read and checked here, so a bad one fails before any replay or run.
    """
    if path is None:
        return Config()
    path = Path(path)
    try:
        config = msgspec.toml.decode(path.read_bytes(), type=Config)
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise ConfigError(f"{path}: {exc}") from None
    model = config.detectors.model
    if model is not None:
        model_path = Path(model).expanduser()
        if not model_path.is_absolute():
            model_path = path.parent / model_path
        try:
            model_classifiers(model_path, config.detectors.horizon_s)
        except (OSError, ValueError, pickle.UnpicklingError, EOFError, AttributeError, ImportError) as exc:
            raise ConfigError(f"{path}: [detectors] model: {exc}") from None
        detectors = msgspec.structs.replace(config.detectors, model=str(model_path))
        config = msgspec.structs.replace(config, detectors=detectors)
    return config
