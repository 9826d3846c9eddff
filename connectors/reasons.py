"""Why a frame became a dead letter: :class:`Reason`, the one list of dead-letter reasons.

A reason is a short machine-readable token; it is what ``deadletters.jsonl`` says in
``reason``, what the summary and the ``cascadewatch_feed_dead_letters_total{reason}`` metric
count, and what a :class:`~cascadewatch.connectors.venues.base.ParseError` carries. The
README's "Dead letters" section lists every value with its meaning (tests/test_docs.py checks
the two agree).

>>> Reason.BAD_PRICE == "bad_price", f"{Reason.SEQUENCE_GAP}"
(True, 'sequence_gap')
"""

from __future__ import annotations

import enum


class Reason(enum.StrEnum):
    """Dead-letter reasons; the value is the token written to the outputs."""

    MALFORMED_LINE = "malformed_line"
    """A recording line that is not ``<recv_ns> <source> <payload>``."""
    UNKNOWN_SOURCE = "unknown_source"
    """A source token that no registered venue has."""
    MALFORMED_ENVELOPE = "malformed_envelope"
    """A ``<venue>!rest`` / ``<venue>!conn`` frame whose wrapper object is unreadable."""
    UNKNOWN_CONN_EVENT = "unknown_conn_event"
    """A ``<venue>!conn`` event other than open, close, error, stale, oversize."""
    OVERSIZE = "oversize"
    """Live only: a websocket frame over ``[live] max_frame_bytes``, not handed over (size and head kept)."""
    MALFORMED_JSON = "malformed_json"
    """The frame is not JSON, or nests deeper than the decoder follows."""
    SCHEMA = "schema"
    """JSON of the wrong shape: a missing or mistyped field, a symbol that contradicts its topic."""
    UNKNOWN_CHANNEL = "unknown_channel"
    """A channel, topic or event type the venue parser does not know."""
    UNKNOWN_REST_PATH = "unknown_rest_path"
    """A REST body of a path the venue parser does not read."""
    VENUE_ERROR = "venue_error"
    """An error reply of the venue on the websocket (Binance ``{"error": ...}``)."""
    CONTROL_ERROR = "control_error"
    """A refused subscription or other failed control request (Bybit ``success: false``)."""
    REST_ERROR = "rest_error"
    """A REST reply carrying the venue's error code."""
    BAD_PRICE = "bad_price"
    """A price that is not finite and > 0."""
    BAD_QTY = "bad_qty"
    """A quantity that is not finite and >= 0."""
    BAD_NUMBER = "bad_number"
    """A number that does not parse or is out of float range."""
    BAD_LEVEL = "bad_level"
    """A book level with fewer than two fields."""
    UNKNOWN_INSTRUMENT = "unknown_instrument"
    """A symbol that cannot be mapped to a canonical instrument."""
    SEQUENCE_GAP = "sequence_gap"
    """The book delta that broke the venue's sequence rule (kept as event JSON)."""
    QUEUE_FULL = "queue_full"
    """Live only: a frame dropped because the dataflow fell behind the venue."""
    PARSER_EXCEPTION = "parser_exception"
    """The one catch-all: a parser raised an unexpected exception (a bug; the detail names its type)."""
