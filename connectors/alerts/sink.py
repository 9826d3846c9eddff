"""The Bytewax sink that puts alerts into the outbox (and runs the delivery worker).

Items are ``(stream, (stream, value))`` as for :class:`cascadewatch.connectors.sinks.JsonlSink`; only
``value``s that are alerts (``stream == "alerts"`` or ``value["type"] == "alert"``) are
kept, so the sink can sit on the same ordered stream as the JSONL sink. Each batch is
written in one SQLite transaction; enqueueing is idempotent on the alert id, so a resumed
or replayed flow never enqueues an alert twice, and the sink needs no resume state.

One partition, so the outbox lives in the process that runs it; with ``deliver=True``
(default) that partition also starts the :class:`DeliveryWorker` (unless another worker
already holds the outbox, e.g. ``cascadewatch alerts deliver``) and, on close, gives it
``drain_s`` seconds to send what is pending.
"""

from __future__ import annotations

import logging
from typing import Any

import msgspec
from bytewax.outputs import FixedPartitionedSink, StatefulSinkPartition

from cascadewatch.connectors.alerts import metrics
from cascadewatch.connectors.alerts.config import AlertsConfig
from cascadewatch.connectors.alerts.outbox import Outbox
from cascadewatch.connectors.alerts.routing import Router
from cascadewatch.connectors.alerts.worker import DeliveryWorker, WorkerLocked

log = logging.getLogger("cascadewatch.alerts")


def _as_alert(stream: str, value: Any) -> dict[str, Any] | None:
    if not isinstance(value, dict):
        value = msgspec.to_builtins(value)
    if not isinstance(value, dict):
        return None
    if stream == "alerts" or value.get("type") == "alert":
        return value if "id" in value else None
    return None


class _OutboxPartition(StatefulSinkPartition[tuple[str, Any], None]):
    def __init__(self, config: AlertsConfig, deliver: bool, drain_s: float) -> None:
        self.outbox = Outbox(config.outbox)
        self.route = Router(config.destinations)
        self.drain_s = drain_s
        self.worker: DeliveryWorker | None = None
        if deliver and config.destinations:
            worker = DeliveryWorker(config)
            try:
                self.worker = worker.start()
            except WorkerLocked as exc:
                worker.outbox.close()
                log.warning("%s: this process only enqueues alerts", exc)

    def write_batch(self, items: list[tuple[str, Any]]) -> None:
        alerts = [alert for stream, value in items if (alert := _as_alert(stream, value)) is not None]
        if not alerts:
            return
        for _alert_id, destinations in self.outbox.enqueue(alerts, self.route):
            for name in destinations:
                metrics.ENQUEUED.labels(name).inc()
        if self.worker is not None:
            self.worker.wake()

    def snapshot(self) -> None:
        return None

    def close(self) -> None:
        if self.worker is not None:
            self.worker.stop(drain_s=self.drain_s)
        self.outbox.close()


class AlertOutboxSink(FixedPartitionedSink[tuple[str, Any], None]):
    """Write alerts to the outbox of ``config`` (an :class:`AlertsConfig`).

    :param deliver: also run the delivery worker in this process (default True).
    :param drain_s: at the end of the flow, wait up to this long for pending deliveries.
    """

    def __init__(self, config: AlertsConfig, deliver: bool = True, drain_s: float = 5.0) -> None:
        self.config = config
        self.deliver = deliver
        self.drain_s = drain_s

    def list_parts(self) -> list[str]:
        """One partition: the outbox is a single SQLite file."""
        return ["alert_outbox"]

    def part_fn(self, item_key: str) -> int:
        """Every item goes to the one partition."""
        return 0

    def build_part(self, step_id: str, for_part: str, resume_state: None) -> _OutboxPartition:
        """The partition that writes alerts to the outbox (and delivers them when asked)."""
        return _OutboxPartition(self.config, self.deliver, self.drain_s)
