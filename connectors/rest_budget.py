"""REST pacing of one venue: a priority queue under the venue's request-weight budget.

Pure (no I/O, an injected clock): :class:`~cascadewatch.connectors.rest_client.RestClient` asks
:meth:`RestScheduler.next_request` what to send and reports every answer to
:meth:`RestScheduler.on_reply`.

- **Budget.** Each request costs a weight (Binance ``/fapi/v1/depth`` at 1000 levels: 20). In
  any window of ``window_s`` seconds the weight sent plus the weight the venue reports as used
  by others on our IP (the ``weight_header`` of the last answer, e.g. Binance
  ``X-MBX-USED-WEIGHT-1m``, minus what we sent ourselves in that window, counted until a
  window after the report) stays within ``weight_per_window``. A request that does not fit
  waits: a throttle (metric ``cascadewatch_feed_rest_throttles_total{venue,reason="budget"}``
  and a log line).
- **Priority.** Ready requests go out by ``since`` (clock seconds since when the book that
  waits for the request has been invalid): the longest-invalid book first; polls and
  bootstrap calls come after every book.
- **Backoff per endpoint** (the path): capped exponential with jitter (the injected RNG) after
  a failure, a timeout or a stale answer (``retry``); a ``Retry-After`` is honoured, and a 418
  or 429 stops every request of the venue until then (reason ``retry_after``). A permanent
  error (401, 403, 451 and other 4xx) is retried on the slow schedule ``permanent_retry_s``.
- One request per path at a time: a path already queued or in flight is not queued twice.
"""

from __future__ import annotations

import heapq
import logging
import math
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from cascadewatch.connectors import live_metrics as metrics
from cascadewatch.connectors.live_config import BackoffConfig
from cascadewatch.connectors.rest import Reply
from cascadewatch.connectors.session import Backoff

log = logging.getLogger("cascadewatch.live")

PERMANENT = frozenset({401, 403, 451})
"""Statuses that asking again soon will not change (the slow schedule applies)."""


@dataclass(frozen=True)
class RestLimits:
    """A venue's REST limits: ``weight_per_window`` in any ``window_s`` seconds; the header
    that reports the weight used (``""``: none); the slow retry period of permanent errors."""

    weight_per_window: int
    window_s: float = 60.0
    weight_header: str = ""
    permanent_retry_s: float = 60.0


@dataclass(order=True)
class Request:
    """One queued request; ordered by ``(since, seq)`` (the longest-invalid book first)."""

    since: float
    seq: int
    path: str = field(compare=False)
    weight: int = field(compare=False, default=1)
    not_before: float = field(compare=False, default=0.0)
    attempts: int = field(compare=False, default=0)
    throttled: bool = field(compare=False, default=False)


def is_permanent(status: int) -> bool:
    """A 4xx other than 418/429: asking again soon will not change the answer."""
    return status in PERMANENT or (400 <= status < 500 and status not in (418, 429))


def cause_of(reply: Reply) -> str:
    """A short, secret-free cause of a failed answer: ``http_403``, ``timeout``, ``error``."""
    if reply.status:
        return f"http_{reply.status}"
    return "timeout" if "timeout" in reply.error.lower() or "timed out" in reply.error.lower() else "error"


class RestScheduler:
    """Queue, budget and backoff of one venue's REST requests (see the module docstring).

    :param source: the venue's source name (metric label, log lines).
    :param limits: the venue's :class:`RestLimits`.
    :param backoff: delays after failures, per path.
    :param rng: jitter of the backoff (seed it in tests).
    :param clock: monotonic seconds.
    """

    def __init__(
        self,
        source: str,
        limits: RestLimits,
        backoff: BackoffConfig,
        rng: random.Random | None = None,
        clock: Callable[[], float] = lambda: 0.0,
    ) -> None:
        self.source = source
        self.limits = limits
        self._backoff_config = backoff
        self._rng = rng or random.Random()
        self._clock = clock
        self._queue: list[Request] = []
        self._seq = 0
        self._busy: set[str] = set()  # paths queued or in flight
        self._backoff: dict[str, Backoff] = {}
        self._sent: deque[tuple[float, int]] = deque()  # (time, weight) within the window
        self._others: tuple[float, int] = (-math.inf, 0)  # (reported at, weight used by others)
        self._blocked_until = -math.inf
        self.failures: dict[str, str] = {}
        """path -> cause of its last failure (cleared by a 200): what a feed alert names."""
        self.throttles = 0
        self._m_budget = metrics.REST_THROTTLES.labels(source, "budget")
        self._m_retry_after = metrics.REST_THROTTLES.labels(source, "retry_after")

    def __len__(self) -> int:
        return len(self._queue)

    def pending(self, path: str) -> bool:
        """Whether ``path`` is queued or in flight."""
        return path in self._busy

    def submit(self, path: str, weight: int = 1, since: float = math.inf, retry: bool = False) -> bool:
        """Queue a GET of ``path``; ``False`` if that path is already queued or in flight.

        ``retry``: the last answer for this path could not be used: wait its backoff first.
        """
        if path in self._busy:
            return False
        now = self._clock()
        backoff = self._backoff.setdefault(path, Backoff(self._backoff_config, self._rng))
        if retry:
            not_before = now + backoff.next_delay()
        else:
            backoff.reset()
            not_before = now
        self._push(Request(since, self._seq, path, weight, not_before))
        return True

    def _push(self, request: Request) -> None:
        self._seq += 1
        self._busy.add(request.path)
        heapq.heappush(self._queue, request)

    def used(self, now: float) -> int:
        """Weight counted against the budget at ``now``: ours in the window plus others' reported."""
        start = now - self.limits.window_s
        reported_at, others = self._others
        return sum(w for t, w in self._sent if t > start) + (others if now < reported_at + self.limits.window_s else 0)

    def next_request(self) -> tuple[Request | None, float]:
        """The request to send now (counted as sent), else ``(None, seconds to wait)``.

        ``math.inf`` to wait means an empty queue.
        """
        if not self._queue:
            return None, math.inf
        now = self._clock()
        while self._sent and self._sent[0][0] <= now - self.limits.window_s:  # out of the window
            self._sent.popleft()
        ready = [r for r in self._queue if r.not_before <= now]
        if now < self._blocked_until:
            self._throttle(ready, "retry_after", self._blocked_until - now)
            return None, self._blocked_until - now
        if not ready:
            return None, min(r.not_before for r in self._queue) - now
        request = min(ready)
        if self.used(now) + request.weight > self.limits.weight_per_window:
            wait = self._budget_wait(now, request.weight)
            self._throttle(ready, "budget", wait)
            return None, wait
        self._queue.remove(request)
        heapq.heapify(self._queue)
        self._sent.append((now, request.weight))
        request.attempts += 1
        return request, 0.0

    def _budget_wait(self, now: float, weight: int) -> float:
        """Seconds until ``weight`` more fits (the oldest requests leave the window)."""
        window = self.limits.window_s
        reported_at, others = self._others
        points = sorted({t + window for t, _ in self._sent} | {reported_at + window})
        for point in points:
            if point > now and self.used(point) + weight <= self.limits.weight_per_window:
                return point - now
        return window  # larger than the budget on its own: try again after a window

    def _throttle(self, ready: list[Request], reason: str, wait: float) -> None:
        """Count every ready request held back (once each) and log the ones newly held."""
        held = [r for r in ready if not r.throttled]
        if not held:
            return
        for request in held:
            request.throttled = True
        self.throttles += len(held)
        (self._m_budget if reason == "budget" else self._m_retry_after).inc(len(held))
        log.warning(
            "%s: %d REST request(s) throttled (%s), first %s: used %d of %d weight; waiting %.1fs",
            self.source,
            len(held),
            reason,
            min(held).path,
            self.used(self._clock()),
            self.limits.weight_per_window,
            wait,
        )

    def on_reply(self, request: Request, reply: Reply) -> bool:
        """Account an answer; ``True`` when done (a 200), else the request is queued again."""
        now = self._clock()
        reported = reply.header_int(self.limits.weight_header) if self.limits.weight_header else None
        if reported is not None:
            ours = sum(w for t, w in self._sent if t > now - self.limits.window_s)
            self._others = (now, max(0, reported - ours))
        if reply.status == 200:
            self._busy.discard(request.path)
            self.failures.pop(request.path, None)
            return True
        self.failures[request.path] = cause_of(reply)
        backoff = self._backoff.setdefault(request.path, Backoff(self._backoff_config, self._rng))
        if is_permanent(reply.status):
            delay = max(self.limits.permanent_retry_s, reply.retry_after or 0.0)
        else:
            delay = max(backoff.next_delay(), reply.retry_after or 0.0)
            if reply.status in (418, 429):
                self._blocked_until = max(self._blocked_until, now + delay)
        request.not_before = now + delay
        request.throttled = False
        heapq.heappush(self._queue, request)
        return False

    def give_up(self, request: Request) -> None:
        """Drop a request that failed (its caller allows no more attempts)."""
        if request in self._queue:
            self._queue.remove(request)
            heapq.heapify(self._queue)
        self._busy.discard(request.path)
