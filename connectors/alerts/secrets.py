"""Secret redaction: every fragment of a secret is replaced by ``***`` wherever text leaves us.

A secret is a PagerDuty routing key, a webhook HMAC key, a risk feed token, or a URL that is
itself a secret (a Slack webhook URL, a webhook URL from ``url_env``). Errors rarely show a
secret whole: ``http.client`` quotes only the path of a bad URL, a proxy's 404 echoes the
path, a library cuts a long value. So redaction works on fragments:

- a plain secret is one fragment; a secret URL gives its user info and everything after
  the host (path, query, fragment), each also percent-encoded and percent-decoded (the
  scheme and host are not secret and stay readable);
- in a text, every substring of length >= :data:`MIN_FRAGMENT` of a fragment is replaced,
  and a fragment shorter than that only where it appears whole.

:data:`SECRETS` holds every secret registered by a destination (or the risk feed) in this
process; once it holds one, every log record of every logger is redacted when it is made
(message, arguments, exception text), so a traceback or an httpx request line cannot carry
a secret to a handler, a file or the terminal.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, unquote, urlsplit

MIN_FRAGMENT = 8
"""Substrings of a secret at least this long are redacted wherever they appear."""
MASK = "***"


def secret_fragments(value: str, url: bool = False) -> list[str]:
    """The parts of ``value`` that must never be shown.

    >>> secret_fragments("https://hooks.slack.com/services/T0/B0/abc?x=1", url=True)
    ['/services/T0/B0/abc?x=1']
    >>> secret_fragments("R0UT1NGKEY")
    ['R0UT1NGKEY']
    """
    if not value:
        return []
    if not url:
        return [value]
    try:
        parts = urlsplit(value)
    except ValueError:  # not a URL after all (an unbalanced "[" in the host): all of it is secret
        return [value]
    if not parts.scheme or not parts.netloc:
        return [value]
    fragments: list[str] = []
    if "@" in parts.netloc:
        fragments.append(parts.netloc.rsplit("@", 1)[0])
    tail = value.split(parts.netloc, 1)[1]
    for variant in (tail, quote(tail, safe="/?&=#%+"), unquote(tail)):
        if variant and variant not in fragments:
            fragments.append(variant)
    return fragments


def redact(text: str, fragments: Iterable[str]) -> str:
    """``text`` with every substring of length >= 8 of each fragment (short ones: whole) as ``***``.

    >>> redact("404 no route /services/T0/B0/SECRETPATH", ["/services/T0/B0/SECRETPATH"])
    '404 no route ***'
    >>> redact("cut: ...B0/SECRETP", ["/services/T0/B0/SECRETPATH"])
    'cut: ...***'
    """
    marked = bytearray(len(text))
    for fragment in fragments:
        if len(fragment) < MIN_FRAGMENT:
            start = text.find(fragment)
            while fragment and start >= 0:
                marked[start : start + len(fragment)] = b"\x01" * len(fragment)
                start = text.find(fragment, start + 1)
            continue
        grams = {fragment[i : i + MIN_FRAGMENT] for i in range(len(fragment) - MIN_FRAGMENT + 1)}
        for i in range(len(text) - MIN_FRAGMENT + 1):
            if text[i : i + MIN_FRAGMENT] in grams:
                marked[i : i + MIN_FRAGMENT] = b"\x01" * MIN_FRAGMENT
    if not any(marked):
        return text
    out: list[str] = []
    for i, char in enumerate(text):
        if not marked[i]:
            out.append(char)
        elif i == 0 or not marked[i - 1]:
            out.append(MASK)
    return "".join(out)


class SecretRegistry:
    """The secrets of this process, and the log record factory that redacts them."""

    def __init__(self) -> None:
        self._fragments: list[str] = []
        self._lock = threading.Lock()
        self._installed = False

    def add(self, value: str | None, url: bool = False) -> str | None:
        """Register a secret (``url``: a secret URL, see :func:`secret_fragments`); returns it."""
        if not value:
            return value
        with self._lock:
            for fragment in secret_fragments(value, url):
                if fragment not in self._fragments:
                    self._fragments.append(fragment)
            if not self._installed:
                self._install()
        return value

    def fragments(self) -> list[str]:
        """Every fragment registered so far."""
        with self._lock:
            return list(self._fragments)

    def redact(self, text: str) -> str:
        """``text`` with every registered secret fragment replaced by ``***``."""
        fragments = self.fragments()
        return redact(text, fragments) if fragments else text

    def _install(self) -> None:
        previous = logging.getLogRecordFactory()

        def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = previous(*args, **kwargs)
            self.redact_record(record)
            return record

        logging.setLogRecordFactory(factory)
        self._installed = True

    def redact_record(self, record: logging.LogRecord) -> None:
        """Redact a record's message, exception text and stack in place."""
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: logging reports it when the record is emitted
            return
        redacted = self.redact(message)
        if redacted != message:
            record.msg, record.args = redacted, ()
        if record.exc_info and not record.exc_text:
            record.exc_text = self.redact(logging.Formatter().formatException(record.exc_info))
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)


SECRETS = SecretRegistry()
