"""Helpers for the live tests: configs pointing at the fakes, frame capture, book rebuild."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cascadewatch.connectors.book import BookKeeper
from cascadewatch.connectors.events import BookDelta, BookSnapshot, FeedStatus
from cascadewatch.connectors.frames import FrameDecoder
from cascadewatch.connectors.live import Frame, FrameQueue, VenueFeed
from cascadewatch.connectors.live_config import BackoffConfig, LiveConfig, VenueConfig
from cascadewatch.connectors.venues.registry import PARSERS, venue_module
from cascadewatch.pipelines.run.live import LiveOptions

FAST_BACKOFF = BackoffConfig(initial_s=0.05, max_s=0.2, factor=2.0, jitter=0.2, reset_after_s=5.0)


class FakeMonotonic:
    """The sessions' monotonic clock (``capture(..., clock=...)``), in seconds; it moves only
    when the test moves it, so staleness and heartbeats happen when the test says."""

    START_S = 1000.0

    def __init__(self) -> None:
        self.now = self.START_S

    def __call__(self) -> float:
        return self.now


def make_live(
    venue: str, fake: Any, symbols: list[str], ws_path: str, book_path: str | None = None, **overrides: Any
) -> LiveConfig:
    """A one-venue ``LiveConfig`` whose endpoints are the fake's."""
    venue_fields = {k: overrides.pop(k) for k in list(overrides) if k in VenueConfig.__struct_fields__}
    settings = VenueConfig(
        ws_url=fake.ws_url(ws_path),
        ws_book_url=fake.ws_url(book_path or ws_path),
        rest_url=fake.rest_url,
        symbols=symbols,
        **venue_fields,
    )
    base: dict[str, Any] = {"venues": [venue], "backoff": FAST_BACKOFF, "staleness_s": 5.0, "rest_timeout_s": 2.0}
    base.update(overrides)
    return LiveConfig(**base, **{venue: settings})


def capture(
    name: str,
    live: LiveConfig,
    until: Callable[[list[Frame]], bool],
    timeout: float = 6.0,
    **feed_options: Any,
) -> list[Frame]:
    """Run one venue feed until ``until(frames)`` holds (or ``timeout``); return every frame."""
    queue = FrameQueue(1_000_000, venue_module(name).SOURCE)
    feed = VenueFeed(name, live, queue, **feed_options).start()
    frames: list[Frame] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            frames.extend(queue.drain(100_000))
            if until(frames):
                break
            time.sleep(0.01)
    finally:
        feed.stop()
        frames.extend(queue.drain(1_000_000))
    return frames


def conn_events(frames: list[Frame]) -> list[dict[str, Any]]:
    return [json.loads(payload) for _, source, payload in frames if source.endswith("!conn")]


def ws_payloads(frames: list[Frame]) -> list[bytes]:
    return [payload for _, source, payload in frames if "!" not in source]


def rebuild_books(frames: list[Frame], stop_at_shutdown: bool = True) -> tuple[dict[str, BookKeeper], list[str]]:
    """Apply the handed-over frames to per-symbol books, as the dataflow does.

    Returns the books and the book statuses (``gap``/``resync``, a dropped book's upstream
    ``gap`` included) in order. Connection events apply too (a ``close`` drops the books it
    names, or all), except the final shutdown close.
    """
    decoder = FrameDecoder()
    books: dict[str, BookKeeper] = {}
    statuses: list[str] = []
    for recv, source, payload in frames:
        if stop_at_shutdown and source.endswith("!conn") and b'"shutdown"' in payload:
            break
        parsed = decoder.decode(source, payload, recv)
        for event in parsed.events:
            if isinstance(event, FeedStatus) and event.instrument:  # one book's status
                keeper = books.get(event.symbol)
                if keeper is not None:
                    if event.state == "gap" and keeper.book.valid:  # frames of a good book dropped
                        statuses.append("gap")
                    keeper.apply(event)
            elif isinstance(event, FeedStatus):
                for keeper in books.values():
                    keeper.apply(event)
            elif isinstance(event, (BookSnapshot, BookDelta)):
                keeper = books.get(event.symbol)
                if keeper is None:
                    keeper = books[event.symbol] = BookKeeper(PARSERS[event.venue].sequence_rule())
                statuses.extend(status.state for status in keeper.apply(event))
    return books, statuses


def tapped_options(out: Path, duration_s: float, tap: Path, **extra: Any) -> LiveOptions:
    """A live run for ``duration_s`` that writes its alerts, snapshots and dead letters under
    ``out``, records what it receives to ``tap`` and serves nothing (``extra``: other options)."""
    return LiveOptions(
        duration_s=duration_s,
        alerts_out=out / "alerts.jsonl",
        snapshots_out=out / "snapshots.jsonl",
        dead_letters_out=out / "dead.jsonl",
        record=str(tap),
        serve_metrics=False,
        serve_riskfeed=False,
        **extra,
    )
