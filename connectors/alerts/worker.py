"""The delivery worker: one thread per destination, sending what the outbox holds.

Each destination thread loops: wait for its rate limit, claim the due deliveries (up to
the destination's batch size: Slack coalesces a burst into one message), send, record the
outcome. A retryable outcome is due again after an exponential backoff with jitter
(``base * 2**(attempt-1)`` capped at ``backoff_max_s``, times a random factor in
[0.5, 1]) or after the destination's Retry-After, whichever is later; a Retry-After also
pauses every destination sharing that rate limit. After ``max_attempts`` a delivery is
failed for good. Nothing here blocks the pipeline: the sink only writes to SQLite.

A destination with ``resend_s`` (Alertmanager) also gets every alert still open there
(:meth:`Outbox.live_triggers`) again: when the worker starts, then every ``resend_s``
(after a failed resend, after ``backoff_base_s``).

Only one worker may deliver from an outbox at a time: it holds an exclusive ``flock`` on
``<outbox>.lock`` (released by the kernel even on ``kill -9``) and, on start, puts back
to pending whatever a dead predecessor left in flight.
"""

from __future__ import annotations

import fcntl
import logging
import os
import random
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from cascadewatch.connectors.alerts import metrics
from cascadewatch.connectors.alerts.config import AlertsConfig, SecretMissing
from cascadewatch.connectors.alerts.destinations import (
    Destination,
    Outcome,
    build_destination,
)
from cascadewatch.connectors.alerts.outbox import Delivery, Outbox

log = logging.getLogger("cascadewatch.alerts")


class WorkerLocked(RuntimeError):
    """Another delivery worker holds this outbox."""


class OutboxLock:
    """An exclusive, non-blocking ``flock`` on ``<real path of the outbox>.lock``.

    The real path (symlinks resolved), so an outbox reached through a symlink or another
    relative path is the same outbox and cannot get a second worker.
    """

    def __init__(self, outbox_path: str | Path) -> None:
        self.outbox = Path(os.path.realpath(outbox_path))
        self.path = Path(str(self.outbox) + ".lock")
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock, or raise :class:`WorkerLocked` at once if another process holds it."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise WorkerLocked(f"another delivery worker is running on {self.outbox}") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        """Let go of the lock (the kernel also does, when the process dies)."""
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


class RateLimiter:
    """At most ``rate`` sends per second, and nothing before a Retry-After has passed."""

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = 1.0 / rate
        self._clock = clock
        self._next = 0.0
        self._lock = threading.Lock()

    def wait_time(self) -> float:
        """Seconds until a send is allowed (0: now), without taking the slot."""
        with self._lock:
            return max(0.0, self._next - self._clock())

    def reserve(self) -> float:
        """0 and the slot is taken, or the seconds to wait before asking again."""
        with self._lock:
            now = self._clock()
            if now >= self._next:
                self._next = now + self.interval
                return 0.0
            return self._next - now

    def hold(self, seconds: float) -> None:
        """Send nothing for ``seconds`` (a Retry-After)."""
        with self._lock:
            self._next = max(self._next, self._clock() + seconds)


def backoff_delay(attempt: int, base: float, cap: float, rng: random.Random) -> float:
    """Exponential backoff with jitter: ``min(cap, base * 2**(attempt-1)) * U(0.5, 1)``."""
    return min(cap, base * 2 ** max(0, attempt - 1)) * rng.uniform(0.5, 1.0)


class DeliveryWorker:
    """Deliver from the outbox at ``config.outbox`` to ``config.destinations``.

    ``destinations`` overrides the built destinations (tests). A destination whose secret
    environment variable is unset is skipped with an error log; its deliveries stay
    pending until a worker with the secret runs.
    """

    def __init__(
        self,
        config: AlertsConfig,
        destinations: Mapping[str, Destination] | None = None,
        seed: int | None = None,
    ) -> None:
        self.config = config
        self.outbox = Outbox(config.outbox)
        self._lock = OutboxLock(config.outbox)
        self._rng = random.Random(seed)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.errors: dict[str, str] = {}
        """Destinations that could not be built, with the reason (no secrets in it)."""
        if destinations is None:
            destinations = {}
            for dest_config in config.destinations:
                try:
                    destinations[dest_config.name] = build_destination(dest_config)
                except (SecretMissing, ValueError) as exc:
                    self.errors[dest_config.name] = str(exc)
                    log.error("alert destination %s disabled: %s", dest_config.name, exc)
        self.destinations = dict(destinations)
        self._wake = {name: threading.Event() for name in self.destinations}
        self._limiters: dict[str, RateLimiter] = {}
        self._limiter_of: dict[str, RateLimiter] = {}
        for name, dest in self.destinations.items():
            limiter = self._limiters.setdefault(dest.rate_key, RateLimiter(dest.config.rate))
            self._limiter_of[name] = limiter

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> DeliveryWorker:
        """Take the outbox lock (or raise :class:`WorkerLocked`), recover, start threads."""
        self._lock.acquire()
        recovered = self.outbox.recover()
        if recovered:
            log.warning(
                "outbox %s: %d deliveries were in flight at the last stop; sending them again",
                self.config.outbox,
                recovered,
            )
        for name in self.destinations:
            thread = threading.Thread(target=self._loop, args=(name,), name=f"alerts-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def wake(self) -> None:
        """New alerts were enqueued: look now rather than at the next poll."""
        for event in self._wake.values():
            event.set()

    def wait_until_empty(self, timeout: float) -> bool:
        """Block until nothing is pending for a built destination (or ``timeout``); True if empty."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.unfinished() == 0:
                return True
            time.sleep(min(0.05, self.config.poll_s))
        return self.unfinished() == 0

    def unfinished(self) -> int:
        """Deliveries still pending or in flight for this worker's destinations."""
        counts = self.outbox.counts()
        return sum(
            counts.get(name, {}).get("pending", 0) + counts.get(name, {}).get("inflight", 0)
            for name in self.destinations
        )

    def stop(self, drain_s: float = 0.0) -> None:
        """Stop after at most ``drain_s`` seconds of trying to empty the outbox."""
        if drain_s > 0 and self._threads:
            self.wait_until_empty(drain_s)
        self._stop.set()
        self.wake()
        for thread in self._threads:
            thread.join(timeout=max(5.0, max((d.config.timeout_s for d in self.destinations.values()), default=0) + 1))
        self._threads.clear()
        for dest in self.destinations.values():
            dest.close()
        self._lock.release()
        self.outbox.close()

    def __enter__(self) -> DeliveryWorker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- one destination ---------------------------------------------------------------

    def _loop(self, name: str) -> None:
        dest = self.destinations[name]
        limiter = self._limiter_of[name]
        wake = self._wake[name]
        next_resend = time.monotonic() if dest.resend_s else float("inf")
        while not self._stop.is_set():
            try:
                if time.monotonic() >= next_resend:
                    next_resend = time.monotonic() + self._resend(dest, limiter)
                    continue
                wait = limiter.wait_time()
                if wait > 0:  # wait before claiming, so a burst arriving meanwhile is coalesced
                    self._stop.wait(wait)
                    continue
                batch = self.outbox.claim(name, dest.batch_size)
                if not batch:
                    self._refresh_pending(name)
                    wake.wait(min(self._idle_wait(name), max(0.0, next_resend - time.monotonic())))
                    wake.clear()
                    continue
                while (wait := limiter.reserve()) > 0 and not self._stop.is_set():
                    self._stop.wait(wait)  # another destination on the same webhook took the slot
                if self._stop.is_set():
                    self.outbox.mark_retry([d.seq for d in batch], time.time(), "worker stopped before sending")
                    break
                self._deliver(dest, batch, limiter)
                self._refresh_pending(name)
            except Exception:
                log.exception("alert delivery loop for %s", name)
                self._stop.wait(1.0)

    def _resend(self, dest: Destination, limiter: RateLimiter) -> float:
        """Send every alert still open at ``dest`` again; the seconds until the next resend.

        The first failure stops the round (the rest wait for the next one, after
        ``backoff_base_s``); a Retry-After pauses the destination as for deliveries.
        """
        interval = dest.resend_s or 0.0
        for alert in self.outbox.live_triggers(dest.name):
            while (wait := limiter.reserve()) > 0 and not self._stop.is_set():
                self._stop.wait(wait)
            if self._stop.is_set():
                break
            outcome = dest.send([alert])
            if outcome.kind != "delivered":
                if outcome.retry_after:
                    limiter.hold(outcome.retry_after)
                log.warning("alert %s to %s: resend failed: %s", alert.get("id"), dest.name, outcome.reason)
                return min(interval, dest.config.backoff_base_s)
            metrics.RESENT.labels(dest.name).inc()
        return interval

    def _idle_wait(self, name: str) -> float:
        due = self.outbox.next_due(name)
        if due is None:
            return self.config.poll_s
        return min(self.config.poll_s, max(0.0, due - time.time()))

    def _refresh_pending(self, name: str) -> None:
        counts = self.outbox.counts().get(name, {})
        metrics.PENDING.labels(name).set(counts.get("pending", 0) + counts.get("inflight", 0))

    def _deliver(self, dest: Destination, batch: list[Delivery], limiter: RateLimiter) -> Outcome:
        name = dest.name
        started = time.monotonic()
        outcome = dest.send([d.alert for d in batch])
        metrics.SEND_SECONDS.labels(name).observe(time.monotonic() - started)
        seqs = [d.seq for d in batch]
        ids = ",".join(d.alert_id for d in batch)
        if outcome.kind == "delivered":
            self.outbox.mark_delivered(seqs)
            metrics.SENT.labels(name).inc(len(batch))
            log.info("alert %s delivered to %s", ids, name)
            return outcome
        if outcome.kind == "failed" and len(batch) > 1:
            # one bad alert must not sink the others it was coalesced with: send each alone
            log.warning(
                "coalesced message of %d alerts to %s refused (%s); sending them one by one",
                len(batch),
                name,
                outcome.reason,
            )
            for delivery in batch:
                while (wait := limiter.reserve()) > 0:
                    time.sleep(wait)
                self._deliver(dest, [delivery], limiter)
            return outcome
        if outcome.kind == "failed":
            self.outbox.mark_failed(seqs, outcome.reason)
            metrics.FAILED.labels(name).inc(len(batch))
            log.error("alert %s to %s failed, not retried: %s", ids, name, outcome.reason)
            return outcome
        if outcome.retry_after:
            limiter.hold(outcome.retry_after)
        now = time.time()
        for delivery in batch:
            if delivery.attempts >= dest.config.max_attempts:
                reason = f"gave up after {delivery.attempts} attempts: {outcome.reason}"
                self.outbox.mark_failed([delivery.seq], reason)
                metrics.FAILED.labels(name).inc()
                log.error("alert %s to %s failed: %s", delivery.alert_id, name, reason)
                continue
            delay = backoff_delay(delivery.attempts, dest.config.backoff_base_s, dest.config.backoff_max_s, self._rng)
            delay = max(delay, outcome.retry_after or 0.0)
            self.outbox.mark_retry([delivery.seq], now + delay, outcome.reason)
            metrics.RETRIED.labels(name).inc()
            log.warning(
                "alert %s to %s: %s; retry %d in %.1fs",
                delivery.alert_id,
                name,
                outcome.reason,
                delivery.attempts + 1,
                delay,
            )
        return outcome
