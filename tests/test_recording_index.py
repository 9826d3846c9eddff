"""The recording index passes over most lines by comparing bytes: the same index as reading every
line's receive time, on real recordings and on lines made to trip a byte comparison."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from cascadewatch.connectors.recording import RecordingReader
from cascadewatch.connectors.recording_index import (
    DIGEST_HEX,
    Prefix,
    RecordingIndex,
    first_later_second,
    index_recording,
)
from cascadewatch.connectors.units import NS_PER_S

ROOT = Path(__file__).parents[1]
LAG = 2 * NS_PER_S


def reference_index(path: Path, allowed_lag_ns: int) -> RecordingIndex:
    """The index by its definition, line by line: every line's receive time read as a number."""
    index = RecordingIndex(path.name)
    digest = hashlib.sha256()
    due: int | None = None
    lines = 0
    for _, line in RecordingReader(path).lines():
        head = line.split(b" ", 1)[0]
        if not line.startswith(b"#") and head.isdigit() and (due is None or int(head) >= due):
            later = first_later_second(int(head), allowed_lag_ns)
            index.seconds.append(later)
            index.prefixes.append(Prefix(lines, digest.hexdigest()[:DIGEST_HEX]))
            due = (later // 1000 + 2) * NS_PER_S + allowed_lag_ns
        digest.update(line)
        lines += 1
    index.whole = Prefix(lines, digest.hexdigest()[:DIGEST_HEX])
    return index


@pytest.mark.parametrize(
    "path",
    [
        ROOT / "pipelines" / "data" / "demo.rec.zst",
        ROOT / "tests" / "fixtures" / "recordings" / "binance-usdm-2021-07-22-head.rec",
        ROOT / "tests" / "fixtures" / "okx" / "okx-2022-05-13.rec",
        ROOT / "tests" / "fixtures" / "bitmex" / "bins-cascade.rec",
        ROOT / "tests" / "fixtures" / "bad" / "hand-made.rec",
    ],
)
def test_index_of_recordings_is_the_reference(path: Path) -> None:
    got = index_recording(path, LAG)
    assert got == reference_index(path, LAG)
    assert len(got.seconds) > 1


def test_lines_that_trip_a_byte_comparison(tmp_path: Path) -> None:
    """Receive times of 20 digits that sort before 19 ("1000..." < "17..."), with leading zeros,
    short ones, going back in time, metadata, blank and malformed lines, tabs: every frame that
    opens a later second is found where reading the numbers finds it."""
    base = 1_700_000_000_000_000_000
    lines = [
        b"# cascadewatch-recording v1 tricky",
        b"%d binance-usdm {}" % base,
        b"%d binance-usdm {}" % (base + 500_000_000),
        b"#%d comment that sorts low" % (base + 9 * NS_PER_S),
        b"",
        b"%d binance-usdm {}" % (base + 2_900_000_000),
        b"%d binance-usdm {}" % (base + 3_000_000_000),
        b"%d binance-usdm {}" % (base + 1_000_000_000),  # back in time
        b"0%d binance-usdm {}" % (base + 4_100_000_000),  # leading zero: 20 bytes, numerically due
        b"123 binance-usdm {}",  # short: numerically small
        b"10000000000000000000 binance-usdm {}",  # 20 digits: sorts low, numerically huge
        b"%d\tbinance-usdm {}" % (base + 9_000_000_000),  # a tab: not a frame
        b"garbage line",
        b"%d binance-usdm {}" % (base + 5_000_000_000),
        b"%d okx-swap {}" % (base + 5_000_000_000),
        b"%d binance-usdm {}" % (base + 30_000_000_000),
    ]
    path = tmp_path / "tricky.rec"
    path.write_bytes(b"\n".join(lines) + b"\n")
    got = index_recording(path, LAG)
    assert got == reference_index(path, LAG)
    # known answers, as prefix lengths (the 0-based line of the frame that opens a later second):
    # line 1 (any frame first; due then base + 1 s), line 5 (base + 2.9 s; due base + 3 s), line 6
    # (due base + 4 s), line 8 (leading zero, base + 4.1 s; due base + 5 s), line 10 (20 digits,
    # 1e19: every later line is before its due)
    assert [p.lines for p in got.prefixes] == [1, 5, 6, 8, 10]
    assert got.whole.lines == len(lines)
