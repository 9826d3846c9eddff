"""The venue registry: the one list of supported venues, and the shape of a venue module.

Every consumer looks venues up here: frame parsing (:func:`parser_for`, by recording source
token), live sessions and the ``[live]`` config (:func:`venue_module`, :data:`VENUE_NAMES`, by
config name) and the simulator's frame writers (keyed by the same names). A venue module
satisfies :class:`VenueModule`; mypy checks each entry of :data:`VENUES` against it and
``tests/test_venue_registry.py`` checks what a type cannot (callables, defaults, the parser's
sequence rule, the live book state machine).

Adding a venue: one module ``connectors/venues/<venue>.py`` shaped like :class:`VenueModule`,
its fixtures, and one line in :data:`VENUES` (the README's "How to add a venue").
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from cascadewatch.connectors.venues import binance, bitmex, bybit, deribit, hyperliquid, okx
from cascadewatch.connectors.venues.base import VenueParser
from cascadewatch.connectors.venues.live_common import (
    BookSync,
    ConnectionSpec,
    LiveDefaults,
    LiveSettings,
    VenueLive,
)


class VenueModule(VenueLive, Protocol):
    """What every venue module provides: its source token, parser and live section.

    The parser side: ``SOURCE`` (the recording source token, ``binance-usdm``...) and
    ``Parser`` (a :class:`VenueParser`; its ``sequence_rule()`` is the venue's book rule).
    The live side (see :mod:`cascadewatch.connectors.venues.live_common`): ``LIVE`` defaults,
    symbol mapping and discovery, connection plan, request frames (:class:`VenueLive`) and the
    ``LiveBooks`` state machine.
    """

    @property
    def SOURCE(self) -> str:
        """The recording source token (``binance-usdm``)."""
        ...

    @property
    def Parser(self) -> type[VenueParser]:
        """The frame parser class; ``Parser.sequence_rule()`` is the venue's book rule."""
        ...

    @property
    def LIVE(self) -> LiveDefaults:
        """Endpoints and limits, each overridable in ``[live.<venue>]``."""
        ...

    @property
    def LiveBooks(self) -> Callable[[Sequence[str], LiveSettings], BookSync]:
        """``LiveBooks(symbols, settings)``: the order-book bootstrap / resync state machine."""
        ...

    def native_symbol(self, asset: str, quote: str = "USDT") -> str:
        """``BTC`` -> the venue's perpetual symbol."""
        ...

    def instruments_paths(self, symbols: Sequence[str]) -> list[str]:
        """REST paths whose bodies bootstrap instrument metadata."""
        ...

    def listed_symbols(self, path: str, body: bytes) -> set[str]:
        """The perpetuals an instruments body lists as trading."""
        ...

    def poll_paths(self, symbols: Sequence[str]) -> list[str]:
        """REST paths polled every ``poll_s`` (or none)."""
        ...

    def connections(self, symbols: Sequence[str], settings: LiveSettings) -> list[ConnectionSpec]:
        """Which topics go on which websocket connection."""
        ...


VENUES: dict[str, VenueModule] = {
    "binance": binance,
    "bybit": bybit,
    "okx": okx,
    "bitmex": bitmex,
    "deribit": deribit,
    "hyperliquid": hyperliquid,
}
"""Config name -> venue module, in partition order. The one list of venues."""

VENUE_NAMES: tuple[str, ...] = tuple(VENUES)
"""Names used in the config and on the command line, in partition order."""

PARSERS: dict[str, type[VenueParser]] = {module.SOURCE: module.Parser for module in VENUES.values()}
"""Recording source token (``okx-swap``) -> parser class."""


def venue_module(name: str) -> VenueModule:
    """The venue module of config name ``name`` (``binance``, ``bybit``, ``okx``)."""
    try:
        return VENUES[name]
    except KeyError:
        raise KeyError(f"unknown venue {name!r}; known: {', '.join(VENUE_NAMES)}") from None


def venue_name(source: str) -> str:
    """The config name of the venue whose source token is ``source`` (``okx-swap`` -> ``okx``)."""
    for name, module in VENUES.items():
        if module.SOURCE == source:
            return name
    raise KeyError(f"unknown venue source {source!r}; known: {', '.join(sorted(PARSERS))}")


def parser_for(source: str) -> VenueParser:
    """A fresh parser for the recording source token ``source`` (e.g. ``okx-swap``)."""
    try:
        return PARSERS[source]()
    except KeyError:
        raise KeyError(f"unknown venue source {source!r}; known: {', '.join(sorted(PARSERS))}") from None
