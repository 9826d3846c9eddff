"""Time units, in one place: every timestamp in cascadewatch is integer nanoseconds.

Event ``ts`` and ``recv`` (see :mod:`cascadewatch.connectors.events`) are nanoseconds since the
UTC epoch; venues send milliseconds, configs say seconds, outputs say milliseconds. These
constants and converters are the only place the factors are written. Detectors may import this
module (it does no I/O and has no state).

>>> 1_626_912_000_123 * NS_PER_MS, s_to_ns(2.5), ns_to_s(1_500_000_000)
(1626912000123000000, 2500000000, 1.5)
"""

from __future__ import annotations

NS_PER_S = 1_000_000_000
"""Nanoseconds per second."""
NS_PER_MS = 1_000_000
"""Nanoseconds per millisecond."""
MS_PER_S = 1_000
"""Milliseconds per second."""


def s_to_ns(seconds: float) -> int:
    """Seconds (a config value) -> integer nanoseconds, truncated: ``int(seconds * NS_PER_S)``."""
    return int(seconds * NS_PER_S)


def ns_to_s(ns: int) -> float:
    """Nanoseconds -> float seconds: ``ns / NS_PER_S``."""
    return ns / NS_PER_S
