"""The peer of ``make bench`` (cryptofeed, the ``[bench]`` extra) normalizes the frames cascadewatch
replays: on a recorded Binance USD-M session both end with the same L2 books."""

from __future__ import annotations

from pathlib import Path

import pytest

from cascadewatch.connectors.book import BookKeeper
from cascadewatch.connectors.events import BookDelta, BookSnapshot, FeedStatus
from cascadewatch.connectors.frames import FrameDecoder
from cascadewatch.connectors.recording import RecordingReader
from cascadewatch.connectors.venues import binance
from cascadewatch.connectors.venues.base import ParseError
from cascadewatch.pipelines.bench.peer import run_peer

SESSION = Path(__file__).parent / "fixtures" / "recordings" / "binance-usdm-2021-07-22-head.rec"


def cascadewatch_books(path: Path) -> dict[str, tuple[dict[float, float], dict[float, float]]]:
    """Each symbol's book after replaying ``path`` through the venue parser and the book keeper."""
    decoder = FrameDecoder()
    keepers: dict[str, BookKeeper] = {}
    for frame in RecordingReader(path):
        try:
            parsed = decoder.decode(frame.source, frame.payload, frame.recv)
        except ParseError:
            continue
        for event in parsed.events:
            if isinstance(event, BookSnapshot | BookDelta | FeedStatus) and event.instrument:
                keepers.setdefault(event.symbol, BookKeeper(binance.Parser.sequence_rule())).apply(event)
    return {symbol: (k.book.bids, k.book.asks) for symbol, k in keepers.items() if k.book.valid}


def test_the_peer_ends_a_recorded_session_with_cascadewatchs_books() -> None:
    pytest.importorskip("cryptofeed", reason="the peer is in the bench extra: pip install -e '.[bench]'")
    run = run_peer(SESSION, symbols=("AKRO", "CTK", "KEEP", "SUSHI"))
    assert run is not None
    assert run.frames == sum(1 for _ in RecordingReader(SESSION)) == 101
    ours = cascadewatch_books(SESSION)
    assert sorted(run.books) == sorted(ours) == ["AKROUSDT", "CTKUSDT", "KEEPUSDT", "SUSHIUSDT"]
    for symbol, (bids, asks) in run.books.items():
        assert len(bids) > 100 and len(asks) > 100
        assert (bids, asks) == ours[symbol], symbol
