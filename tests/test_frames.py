"""FrameDecoder: one decoder for every source token; every failure is a ParseError with a Reason."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from cascadewatch.connectors.frames import DeadLetter, FrameDecoder
from cascadewatch.connectors.reasons import Reason
from cascadewatch.connectors.recording import RecordingReader
from cascadewatch.connectors.venues.base import Parsed, ParseError
from cascadewatch.connectors.venues.okx import Parser as OkxParser

OKX_SESSION = Path(__file__).parent / "fixtures" / "recordings" / "okx-2022-05-13.rec"


def _first_okx_trade() -> tuple[str, bytes, int]:
    """The first websocket frame of the recorded OKX session that gives a trade event."""
    decoder = FrameDecoder()
    for frame in RecordingReader(OKX_SESSION):
        try:
            parsed = decoder.decode(frame.source, frame.payload, frame.recv)
        except ParseError:
            continue
        if parsed.kind == "trade":
            return frame.source, frame.payload, frame.recv
    raise AssertionError("no trade in the recorded session")


def test_a_recorded_frame_decodes_and_is_counted() -> None:
    source, payload, recv = _first_okx_trade()
    decoder = FrameDecoder()
    parsed = decoder.decode(source, payload, recv)
    assert parsed.kind == "trade" and parsed.events[0].instrument == "UNI-USD-PERP"
    assert decoder.frames == {("okx-swap", "trade"): 1}


@pytest.mark.parametrize(
    ("source", "payload", "reason"),
    [
        ("kraken-futures", b"{}", Reason.UNKNOWN_SOURCE),
        ("okx-swap!poll", b"{}", Reason.UNKNOWN_SOURCE),
        ("okx-swap!rest", b'{"path": 5}', Reason.MALFORMED_ENVELOPE),
        ("okx-swap!conn", b"{not json", Reason.MALFORMED_ENVELOPE),
        ("okx-swap!conn", b'{"event":"reboot"}', Reason.UNKNOWN_CONN_EVENT),
        ("okx-swap", b'{"arg":{"channel":"trades"', Reason.MALFORMED_JSON),
    ],
)
def test_decoder_failures_carry_their_reason(source: str, payload: bytes, reason: Reason) -> None:
    with pytest.raises(ParseError) as caught:
        FrameDecoder().decode(source, payload, 1)
    assert caught.value.reason is reason


class _BuggyParser(OkxParser):
    """The OKX parser with a bug: every websocket frame divides by zero."""

    def parse_ws(self, payload: bytes | str, recv: int) -> Parsed:
        return Parsed(f"trade:{recv // (recv - recv)}")


def test_the_one_catch_all_names_the_exception_type() -> None:
    source, payload, recv = _first_okx_trade()
    decoder = FrameDecoder()
    decoder.parsers["okx-swap"] = _BuggyParser()
    with pytest.raises(ParseError) as caught:
        decoder.decode(source, payload, recv)
    assert caught.value.reason is Reason.PARSER_EXCEPTION
    assert caught.value.detail == "ZeroDivisionError: integer division or modulo by zero"
    assert decoder.frames == {}


def test_dead_letter_json_writes_the_reason_string() -> None:
    letter = DeadLetter(Reason.QUEUE_FULL, "okx-swap", "{}", "queue of 5 frames full")
    assert msgspec.json.encode(letter) == (
        b'{"reason":"queue_full","source":"okx-swap","raw":"{}","detail":"queue of 5 frames full",'
        b'"line":null,"file":null}'
    )
