"""Configuration: one TOML file, every key optional, documented defaults.

Example (all keys shown with their defaults)::

    [replay]
    allowed_lag_s = 2.0       # how far exchange time may trail receive time (s)

    [policy]                  # placeholder threshold policy, USD liquidated per 60 s
    enter_usd = 1000000.0
    critical_usd = 5000000.0
    exit_usd = 250000.0
"""

from __future__ import annotations

from pathlib import Path

import msgspec

from pipelines.threshold_policy import ThresholdConfig


class ReplayConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    allowed_lag_s: float = 2.0


class Config(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    replay: ReplayConfig = ReplayConfig()
    policy: ThresholdConfig = ThresholdConfig()


class ConfigError(ValueError):
    """A config file that cannot be used; the message names the file and the problem."""


def load_config(path: str | Path | None) -> Config:
    """Read a TOML config; ``None`` gives the defaults."""
    if path is None:
        return Config()
    path = Path(path)
    try:
        return msgspec.toml.decode(path.read_bytes(), type=Config)
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise ConfigError(f"{path}: {exc}") from None
