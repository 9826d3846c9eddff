"""One venue's REST client on the venue runner's event loop: requests go out as its
:class:`~cascadewatch.connectors.rest_budget.RestScheduler` allows (budget, priority, backoff),
each blocking GET in a worker thread, at most ``max_in_flight`` at a time.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable

from cascadewatch.connectors import live_metrics as metrics
from cascadewatch.connectors.rest import Reply
from cascadewatch.connectors.rest_budget import Request, RestScheduler, cause_of, is_permanent

log = logging.getLogger("cascadewatch.live")


class RestClient:
    """``await client.get(path, ...)`` -> ``(recv_ns, body)`` of a 200, or ``None`` after ``attempts``
    (or at once on a permanent error, when ``attempts`` is given; without it the scheduler
    keeps asking on its slow schedule).

    :meth:`run` must run on the same loop for anything to be sent. Callers asking for a path
    already queued or in flight share its answer.

    :param base_url: prefix of every path (the venue's ``rest_url``).
    :param scheduler: the venue's :class:`RestScheduler`.
    :param rest_get: blocking ``(url, timeout) -> Reply``.
    :param timeout: seconds per request.
    """

    def __init__(
        self,
        base_url: str,
        scheduler: RestScheduler,
        rest_get: Callable[[str, float], Reply],
        timeout: float,
        max_in_flight: int = 4,
    ) -> None:
        self.base_url = base_url
        self.scheduler = scheduler
        self._get = rest_get
        self._timeout = timeout
        self._max_in_flight = max(1, max_in_flight)
        self._in_flight = 0
        self._waiters: dict[str, list[asyncio.Future[tuple[int, bytes] | None]]] = {}
        self._attempts: dict[str, int | None] = {}
        self._wake: asyncio.Event | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.requests = 0

    async def get(
        self, path: str, *, weight: int = 1, since: float = math.inf, retry: bool = False, attempts: int | None = None
    ) -> tuple[int, bytes] | None:
        """Queue ``path`` (see :meth:`RestScheduler.submit`) and wait for its answer."""
        future: asyncio.Future[tuple[int, bytes] | None] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(path, []).append(future)
        if self.scheduler.submit(path, weight, since, retry):
            self._attempts[path] = attempts
        self._poke()
        return await future

    def _poke(self) -> None:
        if self._wake is not None:
            self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Send requests as the scheduler allows until ``stop``."""
        self._wake = asyncio.Event()
        try:
            while not stop.is_set():
                wait = math.inf
                while self._in_flight < self._max_in_flight:
                    request, wait = self.scheduler.next_request()
                    if request is None:
                        break
                    self._in_flight += 1
                    task = asyncio.get_running_loop().create_task(self._send(request))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout=min(wait, 1.0))
                except TimeoutError:
                    pass
        finally:
            for task in list(self._tasks):
                task.cancel()
            for path in list(self._waiters):  # stopped: nobody waits for an answer that will not come
                self._resolve(path, None)

    async def _send(self, request: Request) -> None:
        try:
            reply = await asyncio.to_thread(self._get, self.base_url + request.path, self._timeout)
            recv = time.time_ns()
            self.requests += 1
            outcome = "ok" if reply.status == 200 else (f"http_{reply.status}" if reply.status else "error")
            metrics.REST.labels(self.scheduler.source, outcome).inc()
            if reply.status != 200:
                log.warning(
                    "%s: GET %s failed (%s, attempt %d): %s",
                    self.scheduler.source,
                    request.path,
                    cause_of(reply),
                    request.attempts,
                    reply.error,
                )
            if self.scheduler.on_reply(request, reply):
                self._resolve(request.path, (recv, reply.body))
            else:
                limit = self._attempts.get(request.path)
                if limit is not None and (request.attempts >= limit or is_permanent(reply.status)):
                    self.scheduler.give_up(request)
                    self._resolve(request.path, None)
        finally:
            self._in_flight -= 1
            self._poke()

    def _resolve(self, path: str, result: tuple[int, bytes] | None) -> None:
        self._attempts.pop(path, None)
        for future in self._waiters.pop(path, []):
            if not future.done():
                future.set_result(result)
