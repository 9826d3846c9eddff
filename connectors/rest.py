"""Blocking HTTP GET for REST bootstrap calls (run in a worker thread by the live runner).

Standard library only: bootstrap calls are few (instrument lists, book snapshots, polls), so
a client library would add a dependency for nothing.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from dataclasses import dataclass, field
from email.message import Message

USER_AGENT = "cascadewatch/0.1 (+https://github.com/cascadewatch)"


@dataclass(frozen=True)
class Reply:
    """``status`` 0 means no HTTP answer (``error`` says why); ``retry_after`` in seconds if sent;
    ``headers``: the answer's headers, names lower-cased (rate-limit reports are read there)."""

    status: int
    body: bytes = b""
    retry_after: float | None = None
    error: str = ""
    headers: dict[str, str] = field(default_factory=dict)

    def header_int(self, name: str) -> int | None:
        """Header ``name`` (any case) as an integer, ``None`` if absent or not a number."""
        value = self.headers.get(name.lower())
        try:
            return int(value) if value is not None else None
        except ValueError:
            return None


def _headers(message: Message | None) -> dict[str, str]:
    return {name.lower(): value for name, value in message.items()} if message is not None else {}


def http_get(url: str, timeout: float) -> Reply:
    """GET ``url``; never raises: network failures come back as ``Reply(status=0, error=...)``."""
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT, "Accept": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return Reply(response.status, response.read(), headers=_headers(response.headers))
    except urllib.error.HTTPError as exc:
        retry = exc.headers.get("Retry-After") if exc.headers else None
        try:
            retry_after = float(retry) if retry is not None else None
        except ValueError:
            retry_after = None
        try:
            body = exc.read()
        except Exception:
            body = b""
        return Reply(exc.code, body, retry_after, headers=_headers(exc.headers))
    except Exception as exc:
        return Reply(0, error=f"{type(exc).__name__}: {exc}"[:200])
