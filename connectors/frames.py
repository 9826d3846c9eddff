"""Frame text -> normalized events, for any recorded or live source token.

:class:`FrameDecoder` owns one parser per venue and dispatches on the source token:
``<venue>`` websocket frames go to ``parse_ws``; ``<venue>!rest`` bodies to ``parse_rest``;
``<venue>!conn`` connection events become venue-wide :class:`FeedStatus` events
(``instrument == ""``), which the source fans out to that venue's instruments; an
``oversize`` event (a frame over ``[live] max_frame_bytes``) is an ``oversize`` dead letter
whose raw text holds the frame's size and head.

Every failure is a :class:`DeadLetter`: counted by venue and reason, kept with its raw text.

For replays, :meth:`FrameDecoder.hot_event` hands out a venue's fast path for its commonest
frames (a single trade, book delta or mark price); frames taken by it are counted with
:meth:`FrameDecoder.count`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec

from cascadewatch.connectors.events import AnyEvent, BookDelta, FeedState, FeedStatus, MarkPrice, Trade
from cascadewatch.connectors.reasons import Reason
from cascadewatch.connectors.venues.base import Parsed, ParseError, VenueParser
from cascadewatch.connectors.venues.registry import parser_for

HotPath = Callable[[bytes, int], Trade | BookDelta | MarkPrice | None]
"""A venue's fast path (:meth:`VenueParser.hot_event`): a frame's payload and receive time -> its event, or ``None``."""


class DeadLetter(msgspec.Struct, frozen=True):
    """A frame that could not become events: why, from where, and its raw text."""

    reason: Reason
    source: str
    raw: str
    detail: str = ""
    line: int | None = None
    file: str | None = None


class _RestEnvelope(msgspec.Struct, frozen=True):
    path: str
    body: msgspec.Raw


class _ConnEvent(msgspec.Struct, frozen=True):
    event: str
    url: str = ""
    reason: str = ""
    code: int | None = None
    books: list[str] | None = None  # close: the book symbols the connection carried; drop: books hit
    symbol: str = ""  # invalid: the book's venue-native symbol
    frames: int = 0  # drop: frames dropped
    size: int | None = None
    limit: int | None = None


_CONN_STATES: dict[str, FeedState] = {
    "open": "connect",
    "close": "disconnect",
    "error": "error",
    "stale": "stale",
    "invalid": "invalid",
    "drop": "interrupted",
}
_PER_BOOK: dict[str, FeedState] = {"close": "disconnect", "drop": "gap", "invalid": "invalid"}
_rest_decoder = msgspec.json.Decoder(_RestEnvelope)
_conn_decoder = msgspec.json.Decoder(_ConnEvent)


class FrameDecoder:
    """Decode frames of several venues; keeps per-(venue, kind) frame counts.

    >>> decoder = FrameDecoder()
    >>> decoder.decode("okx-swap!conn", b'{"event":"open","url":"wss://x"}', 5).events[0].state
    'connect'
    """

    def __init__(self) -> None:
        self.parsers: dict[str, VenueParser] = {}
        self.frames: dict[tuple[str, str], int] = {}
        """Frames parsed by ``(venue, kind)`` (a plain dict: counted on every frame)."""
        self._handlers: dict[str | bytes, tuple[str, Callable[[bytes, int], Parsed]]] = {}

    def __getstate__(self) -> dict[str, object]:
        return {"parsers": self.parsers, "frames": self.frames}

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__dict__.update(state)
        self._handlers = {}

    def parser(self, venue: str) -> VenueParser:
        """The parser of ``venue`` (a source token), made on first use; ``unknown_source`` if none."""
        parser = self.parsers.get(venue)
        if parser is None:
            try:
                parser = self.parsers[venue] = parser_for(venue)
            except KeyError:
                raise ParseError(Reason.UNKNOWN_SOURCE, venue) from None
        return parser

    def _handler(self, source: str | bytes) -> tuple[str, Callable[[bytes, int], Parsed]]:
        """``(venue, parse function)`` for a source token, built once per token."""
        text = source.decode("ascii", "replace") if isinstance(source, bytes) else source
        venue, _, channel = text.partition("!")

        def unknown(payload: bytes, recv: int) -> Parsed:
            raise ParseError(Reason.UNKNOWN_SOURCE, text)

        try:
            parser = self.parser(venue)
        except ParseError:
            return venue, unknown
        if not channel:
            return venue, parser.parse_ws

        def rest(payload: bytes, recv: int) -> Parsed:
            envelope = _envelope(_rest_decoder, payload)
            return parser.parse_rest(envelope.path, bytes(envelope.body), recv)

        def conn(payload: bytes, recv: int) -> Parsed:
            return _connection_event(parser, venue, _envelope(_conn_decoder, payload), recv)

        return venue, {"rest": rest, "conn": conn}.get(channel, unknown)

    def hot_event(self, source: str | bytes) -> HotPath | None:
        """The fast path of ``source``'s commonest frames (:meth:`VenueParser.hot_event`), or ``None``
        when the source has none (a REST or connection token, an unknown venue, a venue without one).

        A caller that takes an event from it counts the frame with :meth:`count` (its kind the
        event's :data:`~cascadewatch.connectors.venues.base.HOT_KINDS`).
        """
        text = source.decode("ascii", "replace") if isinstance(source, bytes) else source
        venue, _, channel = text.partition("!")
        if channel:
            return None
        try:
            parser = self.parser(venue)
        except ParseError:
            return None
        return parser.hot_event if parser.HAS_HOT_EVENT else None

    def count(self, venue: str, kind: str, frames: int) -> None:
        """Count ``frames`` frames of ``(venue, kind)`` parsed outside :meth:`decode` (a fast path)."""
        key = (venue, kind)
        self.frames[key] = self.frames.get(key, 0) + frames

    def decode(self, source: str | bytes, payload: bytes, recv: int) -> Parsed:
        """Parse one frame; raises :class:`ParseError` (never anything else) on bad input.

        This is the one catch-all: any other exception out of a parser is a bug, counted as
        ``parser_exception`` with the exception's type and message as the detail. The one
        exception that is not a bug is JSON nested deeper than the decoder follows
        (``[[[[...]]]]``): ``malformed_json``, whichever venue or channel.
        """
        entry = self._handlers.get(source)
        if entry is None:
            entry = self._handlers[source] = self._handler(source)
        venue, handler = entry
        try:
            parsed = handler(payload, recv)
        except ParseError:
            raise
        except RecursionError as exc:  # msgspec's depth limit: bad input, not a bug
            raise ParseError(Reason.MALFORMED_JSON, f"nested too deep to decode ({exc})"[:200]) from None
        except Exception as exc:  # a parser bug must not stop the flow: count it
            raise ParseError(Reason.PARSER_EXCEPTION, f"{type(exc).__name__}: {exc}"[:200]) from None
        frames = self.frames
        key = (venue, parsed.kind)
        frames[key] = frames.get(key, 0) + 1
        return parsed


def _envelope(decoder: msgspec.json.Decoder[Any], payload: bytes) -> Any:
    """The ``!rest`` / ``!conn`` wrapper object, else :class:`ParseError` ``malformed_envelope``."""
    try:
        return decoder.decode(payload)
    except msgspec.DecodeError as exc:  # ValidationError included
        raise ParseError(Reason.MALFORMED_ENVELOPE, str(exc)[:200]) from None


def _connection_event(parser: VenueParser, venue: str, event: _ConnEvent, recv: int) -> Parsed:
    """A ``<venue>!conn`` event -> feed statuses (see :func:`connection_statuses`)."""
    if event.event == "oversize":  # a frame the session would not hand over (its head is in raw)
        size = "?" if event.size is None else event.size
        why = f" ({event.reason})" if event.reason else ""
        raise ParseError(Reason.OVERSIZE, f"frame of {size} bytes over max_frame_bytes {event.limit}{why}")
    state = _CONN_STATES.get(event.event)
    if state is None:
        raise ParseError(Reason.UNKNOWN_CONN_EVENT, event.event)
    detail = " ".join(
        part
        for part in (
            event.url,
            event.reason,
            "" if event.code is None else f"code={event.code}",
            f"{event.frames} frames dropped" if event.frames else "",
        )
        if part
    )
    return Parsed(kind=f"conn:{event.event}", events=connection_statuses(parser, venue, event, state, detail, recv))


def connection_statuses(
    parser: VenueParser, venue: str, event: _ConnEvent, state: FeedState, detail: str, recv: int
) -> list[AnyEvent]:
    """Feed statuses of one connection event.

    Venue-wide (``instrument == ""``, fanned out by the source) unless the event names books:

    - ``close`` with ``books``: a ``disconnect`` for each instrument whose book the connection
      carried; with ``books == []`` (a connection without books) a venue-wide ``interrupted``
      (the books stand). Without ``books`` (recordings before 0.2): a venue-wide ``disconnect``;
    - ``drop`` (frames the hand-over queue dropped): a ``gap`` for each book in ``books`` and
      a venue-wide ``interrupted``;
    - ``invalid``: an ``invalid`` status for the book's instrument.

    A symbol the parser cannot map to an instrument makes the status venue-wide (safe: every
    book of the venue waits for a snapshot).
    """

    def status(state: FeedState, instrument: str = "", symbol: str = "") -> FeedStatus:
        return FeedStatus(
            venue=venue,
            symbol=symbol,
            instrument=instrument,
            ts=recv,
            recv=recv,
            state=state,
            detail=detail,
        )

    per_book = _PER_BOOK.get(event.event)
    symbols = [event.symbol] if event.event == "invalid" else event.books
    if per_book is None or symbols is None:
        return [status(state)]
    out: list[AnyEvent] = []
    for symbol in symbols:
        instrument = parser.instrument_of(symbol)
        if not instrument:
            return [status(per_book)]
        out.append(status(per_book, instrument, symbol))
    if event.event == "drop" or not symbols:
        out.append(status("interrupted"))
    return out
