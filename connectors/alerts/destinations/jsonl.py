"""Append alerts to a JSON-lines file (at least once: a crash mid-write may repeat a line)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from cascadewatch.connectors.alerts.config import DestinationConfig
from cascadewatch.connectors.alerts.destinations.base import Destination, Outcome


class JsonlDestination(Destination):
    """Append delivered alerts to a JSONL file (``path``, default ``alerts-delivered.jsonl``)."""

    def __init__(self, config: DestinationConfig) -> None:
        super().__init__(config)
        self.path = Path(config.path or "alerts-delivered.jsonl")
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def describe(self) -> str:
        """``jsonl <path>``, for logs and the CLI."""
        return f"jsonl {self.path}"

    def _send(self, alerts: list[dict[str, Any]]) -> Outcome:
        try:
            with open(self.path, "a", encoding="utf-8") as handle:
                for alert in alerts:
                    handle.write(json.dumps(alert, separators=(",", ":"), ensure_ascii=False) + "\n")
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as exc:
            return Outcome.retry(f"cannot write {self.path}: {exc.strerror or exc}")
        return Outcome.delivered()
