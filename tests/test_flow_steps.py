"""The dataflow's steps one by one: the source-side trackers, the merge (release by watermark),
and the ordering of per-asset outputs. Exact expectations on hand-made items and a real session."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
from instrument_states import instrument_state

from cascadewatch.connectors.frames import DeadLetter
from cascadewatch.connectors.sources import (
    DEAD_LETTER_KEY,
    END_OF_TIME,
    STATS_KEY,
    ReplaySource,
    Watermark,
)
from cascadewatch.pipelines.steps.instrument_tracker import InstrumentTracker
from cascadewatch.pipelines.steps.items import (
    AssetOutput,
    AssetSecond,
    InstrumentState,
    SecondManifest,
)
from cascadewatch.pipelines.steps.output_ordering import IncompleteOutput, OutputOrderer
from cascadewatch.pipelines.steps.second_release import SecondReleaser
from cascadewatch.pipelines.steps.tracked_source import MERGE_KEY, TrackedSource

LAG_NS = 2_000_000_000
S = 1_000_000_000


def second(venue: str, instrument: str, second_ms: int) -> InstrumentState:
    return instrument_state(second_ms, venue, instrument)


def test_merge_releases_a_second_only_when_every_partition_has_passed_it() -> None:
    releaser = SecondReleaser(n_partitions=2)
    btc_a, eth_a = second("a", "ETH-USDT-PERP", 1000), second("a", "BTC-USDT-PERP", 1000)
    btc_b = second("b", "BTC-USDT-PERP", 1000)
    assert releaser.process([btc_a, eth_a, Watermark(0, 3 * S)]) == []
    # partition 1 has not passed 2 s yet: still nothing
    assert releaser.process([btc_b, Watermark(1, 1 * S + 999_999_999)]) == []
    out = releaser.process([Watermark(1, 2 * S)])
    assert out == [
        AssetSecond(1000, "BTC-USDT", (eth_a, btc_b)),  # sorted by (asset, venue, instrument)
        AssetSecond(1000, "ETH-USDT", (btc_a,)),
        SecondManifest(1000, ("BTC-USDT", "ETH-USDT")),
    ]
    assert releaser.released_before_ms == 2000
    late = second("b", "BTC-USDT-PERP", 1000)
    assert releaser.process([late]) == [] and releaser.late == 1
    assert releaser.flush() == [AssetSecond(2000, "BTC-USDT", (late,)), SecondManifest(2000, ("BTC-USDT",))]


def test_ordering_waits_for_every_asset_of_a_second_and_keeps_seconds_in_order() -> None:
    orderer = OutputOrderer()

    def snap(ts: int, asset: str) -> dict:
        return {"type": "snapshot", "ts": ts, "asset": asset}

    # second 2000 completes before 1000: nothing may overtake 1000
    assert (
        orderer.process(
            [
                SecondManifest(1000, ("BTC", "ETH")),
                SecondManifest(2000, ("BTC",)),
                AssetOutput(2000, "BTC", (snap(2000, "BTC"),)),
                AssetOutput(1000, "ETH", (snap(1000, "ETH"),)),
            ]
        )
        == []
    )
    assert orderer.process([AssetOutput(1000, "BTC", (snap(1000, "BTC"), {"type": "alert"}))]) == [
        snap(1000, "BTC"),
        {"type": "alert"},
        snap(1000, "ETH"),
        snap(2000, "BTC"),
    ]
    orderer.check_complete()
    orderer.process([SecondManifest(3000, ("BTC", "ETH")), AssetOutput(3000, "ETH", ())])
    with pytest.raises(IncompleteOutput, match="1 released second"):
        orderer.check_complete()


def _bytes(items: list) -> list[bytes]:
    """Items in a comparable form (their book arrays make ``==`` ambiguous)."""
    return [pickle.dumps(item) for item in items]


def _batches(partition) -> list[list[tuple[str, list]]]:
    batches = []
    while True:
        try:
            batches.append(partition.next_batch())
        except StopIteration:
            return batches


def _drain(partition) -> list[tuple[str, list]]:
    return [item for batch in _batches(partition) for item in batch]


def test_tracked_partition_emits_what_keyed_trackers_would(binance_session: Path) -> None:
    """Per-second state from the partition equals running one tracker per instrument key on
    the raw batches (the former keyed step), item for item, in order per instrument; each
    batch's list for the merge ends with that batch's watermark."""
    raw_batches = _batches(ReplaySource([binance_session], batch_size=50).build_part("s", f"0:{binance_session}", None))
    raw = [item for batch in raw_batches for item in batch]
    trackers: dict[str, InstrumentTracker] = {}
    expected: dict[str, list] = {}
    for key, values in raw:
        if not key.startswith("!"):
            tracker = trackers.setdefault(key, InstrumentTracker(LAG_NS))
            expected.setdefault(key, []).extend(item for item in tracker.process(values))
    tracked_batches = _batches(
        TrackedSource(ReplaySource([binance_session], batch_size=50), LAG_NS).build_part(
            "s", f"0:{binance_session}", None
        )
    )
    tracked = [item for batch in tracked_batches for item in batch]
    marks = [
        [values[-1] for key, values in batch if key == MERGE_KEY and isinstance(values[-1], Watermark)]
        for batch in tracked_batches
    ]
    raw_marks = [
        [values[-1] for key, values in batch if isinstance(values[-1], Watermark)][:1] for batch in raw_batches
    ]
    assert marks == raw_marks and marks[-1] == [Watermark(0, END_OF_TIME)]
    got: dict[str, list] = {}
    for key, values in tracked:
        if key == MERGE_KEY:
            for item in values:
                if isinstance(item, InstrumentState):
                    got.setdefault(f"{item.venue}|{item.instrument}", []).append(item)
                else:
                    assert item is values[-1]  # a watermark only closes the list
        elif key == DEAD_LETTER_KEY:
            got.setdefault("dead", []).extend(values)
    sequence_gaps = [item for items in expected.values() for item in items if isinstance(item, DeadLetter)]
    expected = {key: [i for i in items if not isinstance(i, DeadLetter)] for key, items in expected.items()}
    assert got.pop("dead", []) == sequence_gaps
    assert got.keys() == expected.keys()
    assert all(_bytes(got[key]) == _bytes(expected[key]) for key in got)
    assert sum(isinstance(i, InstrumentState) for items in got.values() for i in items) > 3
    assert [key for key, _ in tracked].count(STATS_KEY) == 1


def test_tracked_partition_resumes_from_its_snapshot(okx_session: Path) -> None:
    """Snapshot after some batches, rebuild from the pickled snapshot: the rest of the output
    equals an uninterrupted run's."""
    source = TrackedSource(ReplaySource([okx_session], batch_size=40), LAG_NS)
    part_name = source.list_parts()[0]
    whole = _drain(source.build_part("s", part_name, None))
    first = source.build_part("s", part_name, None)
    head = first.next_batch() + first.next_batch() + first.next_batch()
    state = pickle.loads(pickle.dumps(first.snapshot()))
    tail = _drain(source.build_part("s", part_name, state))
    assert _bytes(head + tail) == _bytes(whole)


@pytest.mark.parametrize(
    "name",
    [
        "cascadewatch.pipelines.steps.output_ordering",
        "cascadewatch.pipelines.steps.watermarks",
        "cascadewatch.pipelines.steps.contagion",
    ],
)
def test_step_doctests(name: str) -> None:
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(name))
    assert result.attempted > 0 and result.failed == 0
