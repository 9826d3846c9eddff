from __future__ import annotations

import numpy as np
import pytest

from cascadewatch.connectors.book import BookKeeper, OrderBook, depth_within
from cascadewatch.connectors.events import BookDelta, BookSnapshot, FeedStatus
from cascadewatch.connectors.venues.base import SequenceRule, Verdict


def snap(seq: int, bids=((100.0, 1.0),), asks=((101.0, 1.0),)) -> BookSnapshot:
    return BookSnapshot(
        venue="v", symbol="S", instrument="S-USDT-PERP", ts=seq, recv=seq, bids=bids, asks=asks, seq=seq
    )


def delta(seq: int, prev: int | None, bids=(), asks=()) -> BookDelta:
    return BookDelta(
        venue="v", symbol="S", instrument="S-USDT-PERP", ts=seq, recv=seq, bids=bids, asks=asks, seq=seq, prev_seq=prev
    )


class PrevSeqRule(SequenceRule):
    """prev_seq must equal the last seq (the OKX/Binance-style chain) - a test double."""

    def check(self, d: BookDelta) -> Verdict:
        if self.last_seq is None:
            return Verdict.SKIP
        if d.prev_seq != self.last_seq:
            return Verdict.GAP
        self.last_seq = d.seq
        return Verdict.APPLY


def test_update_deletes_zero_levels_and_finds_best() -> None:
    book = OrderBook()
    book.replace([(99.0, 2.0), (98.0, 1.0), (97.0, 0.0)], [(101.0, 3.0), (102.0, 1.0)])
    assert book.bids == {99.0: 2.0, 98.0: 1.0}
    book.update([(99.0, 0.0), (98.5, 4.0)], [(101.0, 0.0), (100.5, 1.0)])
    assert (book.best_bid(), book.best_ask()) == (98.5, 100.5)
    bids, asks = book.sides()
    assert bids.tolist() == [[98.5, 4.0], [98.0, 1.0]]
    assert asks.tolist() == [[100.5, 1.0], [102.0, 1.0]]


def test_depth_within_bands_known_answer() -> None:
    bids = np.array([[99.95, 2.0], [99.8, 1.0], [99.0, 10.0], [98.0, 5.0]])
    # reference 100: 10 bps -> >= 99.9; 25 -> >= 99.75; 100 -> >= 99.0; 150 -> >= 98.5
    assert depth_within(bids, 100.0, [10, 25, 100, 150], is_bid=True) == pytest.approx(
        [199.9, 199.9 + 99.8, 199.9 + 99.8 + 990.0, 199.9 + 99.8 + 990.0]
    )
    assert depth_within(np.empty((0, 2)), 100.0, [10], is_bid=False) == [0.0]


def test_gap_invalidates_until_next_snapshot_then_resyncs() -> None:
    keeper = BookKeeper(PrevSeqRule())
    assert keeper.apply(delta(5, 4, bids=((100.0, 9.0),))) == []  # before any snapshot: skipped
    assert keeper.book.valid is False
    keeper.apply(snap(10))
    assert keeper.apply(delta(11, 10, bids=((100.0, 3.0),))) == []
    assert keeper.book.bids == {100.0: 3.0}
    statuses = keeper.apply(delta(13, 12, asks=((101.0, 0.0),)))
    assert [(s.state, s.detail) for s in statuses] == [
        ("gap", "expected continuation of seq=11, got prev_seq=12 seq=13")
    ]
    assert keeper.book.valid is False and keeper.book.mid() is None
    assert keeper.apply(delta(14, 13)) == []  # still invalid: no second gap report
    assert keeper.gaps == 1
    statuses = keeper.apply(snap(20, bids=((99.0, 1.0),)))
    assert [s.state for s in statuses] == ["resync"]
    assert keeper.book.valid and keeper.book.best_bid() == 99.0


def test_disconnect_invalidates_book() -> None:
    keeper = BookKeeper(PrevSeqRule())
    keeper.apply(snap(1))
    keeper.apply(FeedStatus(venue="v", symbol="", instrument="S-USDT-PERP", ts=2, recv=2, state="disconnect"))
    assert keeper.book.valid is False
    assert keeper.apply(delta(2, 1)) == []  # rule reset: skipped until a snapshot


def test_sides_and_depth_equal_the_plain_definitions() -> None:
    """Sorted sides, all bands in one ``searchsorted``: the same values as sorting the items and
    counting band by band."""
    rng = np.random.default_rng(5)
    book = OrderBook()
    book.replace(
        [(round(100 - 0.01 * i, 2), float(q)) for i, q in enumerate(rng.exponential(2, 400), 1)],
        [(round(100 + 0.01 * i, 2), float(q)) for i, q in enumerate(rng.exponential(2, 300), 1)],
    )
    book.update([(99.5, 0.0), (99.505, 1.5)], [(100.25, 0.0)])
    bids, asks = book.sides()
    assert bids.tolist() == [list(x) for x in sorted(book.bids.items(), reverse=True)]
    assert asks.tolist() == [list(x) for x in sorted(book.asks.items())]
    assert bids.flags.c_contiguous and bids.dtype == np.float64
    bands = (1, 10, 25, 50, 100, 400)
    for side, is_bid in ((bids, True), (asks, False)):
        notional = np.cumsum(side[:, 0] * side[:, 1])
        want = []
        for b in bands:
            limit = 100.0 * (1.0 - b / 10_000.0) if is_bid else 100.0 * (1.0 + b / 10_000.0)
            n = int((side[:, 0] >= limit).sum()) if is_bid else int((side[:, 0] <= limit).sum())
            want.append(float(notional[n - 1]) if n else 0.0)
        assert depth_within(side, 100.0, bands, is_bid) == want


def test_sides_kept_between_readouts_equal_a_fresh_sort() -> None:
    """Random deltas (new, changed, deleted and absent levels), snapshots, gaps, a pickle round
    trip and a NaN price: every readout equals sorting the dicts from scratch."""
    import copy
    import math
    import pickle
    import random

    rnd = random.Random(7)
    book = OrderBook()
    book.replace(
        [(round(100 - 0.5 * i, 1), 1.0) for i in range(1, 40)], [(round(100 + 0.5 * i, 1), 1.0) for i in range(40)]
    )

    def check(b: OrderBook) -> None:
        bids, asks = b.sides()
        if not b.valid:
            assert bids.shape == asks.shape == (0, 2)
            return
        assert bids.tolist() == [list(x) for x in sorted(b.bids.items(), reverse=True)]
        assert asks.tolist() == [list(x) for x in sorted(b.asks.items())]
        assert bids.flags.c_contiguous and asks.flags.c_contiguous

    for step in range(600):
        n = rnd.choice([0, 1, 3, 8, 60])
        levels = [(round(rnd.uniform(70, 130), 1), rnd.choice([0.0, 0.0, rnd.uniform(0.1, 5)])) for _ in range(2 * n)]
        book.update(levels[:n], levels[n:])
        if step % 97 == 0:
            book.replace([(99.0, 1.0), (98.5, 2.0)], [(101.0, 1.0)])
        if step % 151 == 0:
            book.invalidate()
            check(book)
            book.replace([(99.0, 1.0)], [(101.0, 1.0)])
        if step % 50 == 0:
            book = pickle.loads(pickle.dumps(book)) if step % 100 else copy.deepcopy(book)
        check(book)
        bids, _ = book.sides()
        bids[:] = 0.0  # readouts are the caller's
    book.update([(math.nan, 1.0)], [])
    bids, _ = book.sides()
    assert len(bids) == len(book.bids) and np.isnan(bids[:, 0]).any()


def test_readout_known_answer() -> None:
    """A small book about its mid 100: best prices, band sums, the levels within range, cover."""
    book = OrderBook()
    book.replace([(99.95, 2.0), (99.8, 1.0), (99.0, 10.0), (98.0, 5.0)], [(100.05, 1.0), (100.2, 2.0)])
    readout = book.readout(None, (10, 25, 100), 100)
    assert (readout.best_bid, readout.best_ask) == (99.95, 100.05)
    assert readout.depth_bid == pytest.approx((199.9, 299.7, 1289.7))
    assert readout.depth_ask == pytest.approx((100.05, 300.45, 300.45))
    assert readout.near_bids.tolist() == [[99.95, 2.0], [99.8, 1.0], [99.0, 10.0]]
    assert readout.near_asks.tolist() == [[100.05, 1.0], [100.2, 2.0]]
    assert readout.cover_bps == pytest.approx(20.0)  # the asks reach 20 bps, the bids 200
    empty_asks = OrderBook()
    empty_asks.replace([(99.0, 1.0)], [])
    assert empty_asks.readout(None, (10,), 100) == (99.0, None, (0.0,), (0.0,), None, None, None)
    fallback = empty_asks.readout(99.05, (10,), 100)  # the last trade stands for the mid
    assert fallback.depth_bid == (99.0,) and fallback.near_asks.shape == (0, 2) and fallback.cover_bps is None


def test_readout_equals_the_array_definition() -> None:
    """``OrderBook.readout`` (from the sorted prices kept between readouts) equals
    ``readout_of_sides`` on the sorted sides bit for bit, arrays byte for byte: random deltas,
    one-sided and invalid books, a fallback or none, bands wider than the range, a NaN price."""
    import math
    import random

    from cascadewatch.connectors.book import readout_of_sides

    def same(got: tuple, want: tuple) -> bool:
        for a, b in zip(got, want, strict=True):
            if isinstance(b, np.ndarray):
                if not (
                    a.shape == b.shape and a.dtype == b.dtype and a.flags.c_contiguous and a.tobytes() == b.tobytes()
                ):
                    return False
            elif a != b:
                return False
        return True

    rnd = random.Random(11)
    book = OrderBook()
    book.replace(
        [(round(100 - 0.1 * i, 1), 1.0) for i in range(1, 200)], [(round(100 + 0.1 * i, 1), 1.0) for i in range(200)]
    )
    bands = (10, 25, 50, 100, 1500)
    for step in range(500):
        n = rnd.choice([0, 1, 3, 8, 40])
        mid = 100 + rnd.uniform(-3, 3)
        bids = [(round(mid - rnd.expovariate(0.5), 1), rnd.choice([0.0, rnd.uniform(0.1, 5)])) for _ in range(n)]
        asks = [(round(mid + rnd.expovariate(0.5), 1), rnd.choice([0.0, rnd.uniform(0.1, 5)])) for _ in range(n)]
        book.update(bids, asks)
        if step % 41 == 0:
            book.replace(list(book.bids.items()), [])  # one-sided
        if step % 43 == 0:
            book.invalidate()
        if step % 47 == 0:
            book.replace([(99.0, 1.0), (98.0, 2.0)], [(101.0, 1.0)])
        fallback = rnd.choice([None, 99.5])
        for range_bps in (1000, 30):
            want = readout_of_sides(*book.sides(), fallback, bands, range_bps)
            assert same(book.readout(fallback, bands, range_bps), want), step
    book.update([(math.nan, 1.0)], [])
    want = readout_of_sides(*book.sides(), None, bands, 1000)
    got = book.readout(None, bands, 1000)
    assert got.depth_bid == want.depth_bid and got.near_bids.shape == want.near_bids.shape
