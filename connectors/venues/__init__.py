"""One module per venue, shaped alike; :func:`parser_for` maps a recording source token to its parser."""

from __future__ import annotations

from cascadewatch.connectors.venues.base import VenueParser


def parser_classes() -> dict[str, type[VenueParser]]:
    """Source token -> parser class, for every supported venue."""
    from cascadewatch.connectors.venues import binance, bybit, okx

    return {module.SOURCE: module.Parser for module in (binance, bybit, okx)}


def parser_for(source: str) -> VenueParser:
    """A fresh parser for the recording source token ``source`` (e.g. ``okx-swap``)."""
    classes = parser_classes()
    try:
        return classes[source]()
    except KeyError:
        raise KeyError(f"unknown venue source {source!r}; known: {', '.join(sorted(classes))}") from None
