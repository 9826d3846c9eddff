"""Live runs from Python: the pipeline on live feeds, and the recorder.

>>> config, live = load_live_config("deploy/config.example.toml")     # doctest: +SKIP
>>> run_live(config, live, LiveOptions(duration_s=60))                # doctest: +SKIP
>>> record(live, "capture.rec.zst", duration_s=3600, rotate_hours=1)  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import msgspec

from cascadewatch.connectors import live_metrics
from cascadewatch.connectors.alerts.secrets import SECRETS
from cascadewatch.connectors.exposure import ExposureFile
from cascadewatch.connectors.exposure_endpoint import ExposureEndpoint
from cascadewatch.connectors.live import FrameQueue, LiveSource, StartupWatch, VenueFeed, tap_path
from cascadewatch.connectors.live_config import FeedStartError, LiveConfig
from cascadewatch.connectors.recorder import RotatingRecorder
from cascadewatch.connectors.venues.registry import venue_module
from cascadewatch.pipelines.config import Config, ConfigError
from cascadewatch.pipelines.flow import FlowOptions, build_flow
from cascadewatch.pipelines.run.cluster import execute
from cascadewatch.pipelines.run.preflight import check_output, check_startup
from cascadewatch.pipelines.run.replay import ReplaySummary, exposure_overlay
from cascadewatch.pipelines.steps.audit import AuditStamp

log = logging.getLogger("cascadewatch.live")


def load_live_config(path: str | Path | None) -> tuple[Config, LiveConfig]:
    """Read a TOML config: the pipeline :class:`Config` and its ``[live]`` table (``config.live``)."""
    if path is None:
        return Config(), LiveConfig()
    path = Path(path)
    try:
        raw = msgspec.toml.decode(path.read_bytes())
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file: {exc.strerror or exc}") from None
    except msgspec.DecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    try:
        config = msgspec.convert(raw, Config)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    return config, config.live


@dataclass(frozen=True)
class LiveOptions:
    """How long :func:`run_live` runs, where it writes, and how it runs.

    ``duration_s``: seconds to run (``None``: until interrupted). Outputs default to
    ``[live] alerts_out``, ``snapshots_out``, ``dead_letters_out``; ``record`` (default
    ``[live] record``) also writes what the dataflow consumed, one file per venue.
    ``feed_options``: keyword arguments for every venue feed (tests: fake endpoints).
    ``serve_metrics``: serve Prometheus metrics on ``[live] metrics_port``.
    ``deliver_alerts`` (default: when ``[alerts]`` has destinations) pages through the outbox;
    ``serve_riskfeed`` (default: ``[riskfeed] enabled``) broadcasts on the risk feed.
    ``workers``, ``addresses``/``process_id``, ``recovery_dir``: see
    :mod:`cascadewatch.pipelines.run.cluster`. ``stop``: once set (SIGTERM, SIGINT), the run
    ends as at ``duration_s``: feeds closed, outputs flushed, the outbox drained for a few
    seconds and closed.
    """

    duration_s: float | None = None
    alerts_out: str | Path | None = None
    snapshots_out: str | Path | None = None
    dead_letters_out: str | Path | None = None
    record: str | None = None
    feed_options: dict[str, Any] | None = None
    serve_metrics: bool = True
    deliver_alerts: bool | None = None
    serve_riskfeed: bool | None = None
    workers: int = 1
    addresses: list[str] | None = None
    process_id: int = 0
    recovery_dir: str | Path | None = None
    stop: threading.Event | None = None


def run_live(config: Config, live: LiveConfig, options: LiveOptions | None = None) -> ReplaySummary:
    """Run the dataflow on the live feeds of ``live`` (``[live]``) with ``config``.

    Raises :class:`~cascadewatch.connectors.live_config.FeedStartError` when no venue connected
    within ``[live] startup_timeout_s`` (the run ends then, outputs flushed).

    ``options``: duration, outputs and how to run (:class:`LiveOptions`; default: until
    interrupted, one worker, outputs from ``[live]``).
    """
    opts = options or LiveOptions()
    deliver_alerts = bool(config.alerts.destinations) if opts.deliver_alerts is None else opts.deliver_alerts
    serve_riskfeed = config.riskfeed.enabled if opts.serve_riskfeed is None else opts.serve_riskfeed
    alerts = Path(opts.alerts_out or live.alerts_out)
    snapshots = Path(opts.snapshots_out or live.snapshots_out)
    dead = Path(opts.dead_letters_out or live.dead_letters_out)
    check_startup(
        config, deliver_alerts=deliver_alerts, serve_riskfeed=serve_riskfeed, outputs=(alerts, snapshots, dead)
    )
    if opts.serve_metrics:
        live_metrics.serve(live.metrics_port, live.metrics_addr)
    source = LiveSource(
        live,
        allowed_lag_s=config.replay.allowed_lag_s,
        duration_s=opts.duration_s,
        record=opts.record,
        feed_options=opts.feed_options,
        stop=opts.stop,
    )
    exposure = ExposureFile(config.desk.exposure, live.symbols) if config.desk.exposure else None
    with tempfile.TemporaryDirectory(prefix="cascadewatch-live-") as scratch:
        summary_path = Path(scratch) / "summary.json"
        flow = build_flow(
            source,
            len(source.list_parts()),
            config,
            FlowOptions(
                alerts,
                snapshots,
                dead,
                summary_path,
                deliver_alerts=deliver_alerts,
                serve_riskfeed=serve_riskfeed,
                export_metrics=opts.serve_metrics,
                primary=opts.process_id == 0,
                recovery=opts.recovery_dir is not None,
                audit=AuditStamp(
                    config,
                    live=[
                        {"live": token, "recording": tap_path(source.record, token).name if source.record else None}
                        for token in (venue_module(venue).SOURCE for venue in live.venues)
                    ],
                    exposure=exposure,
                ),
                exposure=exposure_overlay(exposure),
            ),
        )
        endpoint = _exposure_endpoint(config, exposure) if opts.process_id == 0 else None
        try:
            execute(
                flow,
                workers=opts.workers,
                addresses=opts.addresses,
                process_id=opts.process_id,
                epoch_interval=timedelta(seconds=1),
                recovery_dir=opts.recovery_dir,
            )
        finally:
            if endpoint is not None:
                endpoint.stop()
        if source.watch.error:  # the partitions ended: no venue ever connected
            raise FeedStartError(source.watch.error)
        return ReplaySummary.read(summary_path, alerts, snapshots)


def _exposure_endpoint(config: Config, exposure: ExposureFile | None) -> ExposureEndpoint | None:
    """The ``[desk]`` HTTP endpoint that replaces the exposure book, started (None without ``port``)."""
    desk = config.desk
    if exposure is None or not desk.port:
        return None
    token = os.environ.get(desk.token_env or "")
    if not token:
        raise ConfigError(f"[desk] token_env: environment variable {desk.token_env} (the endpoint's token) is not set")
    SECRETS.add(token)
    return ExposureEndpoint(exposure, token, desk.host, desk.port).start()


@dataclass
class RecordSummary:
    """What :func:`record` wrote: files, frames per source token, frames dropped (queue full)."""

    paths: list[Path] = field(default_factory=list)
    frames: Counter[str] = field(default_factory=Counter)
    dropped: int = 0


def record(
    live: LiveConfig,
    out: str | Path,
    duration_s: float | None = None,
    rotate_mb: float = 0.0,
    rotate_hours: float = 0.0,
    stop: threading.Event | None = None,
    feed_options: dict[str, Any] | None = None,
    serve_metrics: bool = True,
) -> RecordSummary:
    """Record the venues of ``live`` to ``out`` until ``duration_s`` passes or ``stop`` is set.

    Writes REST bootstraps, websocket frames and connection events in the recording format,
    flushing every second (safe to kill). With rotation, each new file starts with fresh
    instrument metadata and book snapshots, so it replays on its own. A file that cannot be
    written on (a full disk) stops the recording with :class:`RecordingFailed`.
    """
    check_output(Path(out))
    if serve_metrics:
        live_metrics.serve(live.metrics_port, live.metrics_addr)
    stop = stop or threading.Event()
    queues = [FrameQueue(live.queue_size, venue_module(name).SOURCE) for name in live.venues]
    feeds = [
        VenueFeed(name, live, queue, **(feed_options or {})) for name, queue in zip(live.venues, queues, strict=True)
    ]

    def rebootstrap_all() -> None:
        for feed in feeds:
            feed.rebootstrap()

    recorder = RotatingRecorder(
        out,
        comment=f"cascadewatch record venues={','.join(live.venues)} symbols={','.join(live.symbols)}",
        rotate_bytes=int(rotate_mb * 1_000_000),
        rotate_s=rotate_hours * 3600.0,
        on_rotate=rebootstrap_all,
    )
    summary = RecordSummary()
    deadline = None if duration_s is None else time.monotonic() + duration_s

    def drain() -> int:
        written = 0
        for queue in queues:
            for recv, source, payload in queue.drain(live.batch_max):
                recorder.write(recv, source, payload)
                summary.frames[source] += 1
                written += 1
            dropped, _ = queue.take_dropped()
            if dropped:
                summary.dropped += dropped
                log.warning("%s: %d frames dropped (queue full): the recorder is behind", queue.venue, dropped)
        return written

    watch = StartupWatch(live.startup_timeout_s)
    failure: OSError | None = None
    try:
        for feed in feeds:
            watch.add(feed.start())
        while not stop.is_set() and (deadline is None or time.monotonic() < deadline):
            if watch.check():
                raise FeedStartError(watch.error)
            if not drain():
                stop.wait(live.poll_ms / 1000.0)
            recorder.tick()
    except OSError as exc:  # the disk is full, the file went away: stop, keep what was written
        failure = exc
    finally:
        failure = _stop_recording(feeds, recorder, drain if failure is None else None) or failure
        summary.paths = list(recorder.paths)
    if failure is not None:
        where = summary.paths[-1] if summary.paths else out
        raise RecordingFailed(
            f"{where}: cannot write the recording ({failure.strerror or failure}); "
            "the file reads up to its last whole line"
        )
    return summary


def _stop_recording(
    feeds: list[VenueFeed], recorder: RotatingRecorder, drain: Callable[[], int] | None
) -> OSError | None:
    """Stop the feeds, write their last frames (the shutdown's close events) unless ``drain``
    is None (the file failed), close the file; the write error met on the way, if any."""
    for feed in feeds:
        feed.request_stop()
    end = time.monotonic() + 5.0
    try:
        while any(feed.alive for feed in feeds) and time.monotonic() < end:
            if drain is not None:
                drain()
            time.sleep(0.01)
        if drain is not None:
            drain()
        recorder.close()
    except OSError as exc:
        return exc
    return None


class RecordingFailed(OSError):
    """The recording could not be written on (a full disk...); the message names the file."""
