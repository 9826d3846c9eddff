from __future__ import annotations

from pathlib import Path

import pytest

from cascadewatch.connectors.recording import (
    Frame,
    RecordingError,
    RecordingReader,
    RecordingWriter,
    parse_line,
)


@pytest.mark.parametrize("suffix", ["", ".gz", ".zst"])
def test_round_trip_keeps_every_frame_exactly(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"r.rec{suffix}"
    frames = [
        (1_700_000_000_000_000_000 + i, "okx-swap", '{"arg":{"channel":"trades"},"i":%d}' % i) for i in range(2500)
    ]
    with RecordingWriter(path, comment="test", flush_every=100) as writer:
        for recv, source, payload in frames:
            writer.write(recv, source, payload)
    read = list(RecordingReader(path))
    assert [(f.recv, f.source, f.payload.decode()) for f in read] == frames
    assert read[0].line_no == 2  # line 1 is the header


@pytest.mark.parametrize("suffix", ["", ".gz", ".zst"])
def test_killed_writer_reads_up_to_last_whole_line(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"r.rec{suffix}"
    writer = RecordingWriter(path, flush_every=10)
    for i in range(100):
        writer.write(i, "bybit-linear", '{"n":%d}' % i)
    writer.flush()
    writer.write(100, "bybit-linear", '{"n":100}')  # never flushed: lost in the "kill"
    # What a kill -9 leaves: the flushed bytes only (the unflushed line is still in memory).
    on_disk = tmp_path / f"killed.rec{suffix}"
    on_disk.write_bytes(path.read_bytes())
    frames = list(RecordingReader(on_disk))
    assert [f.recv for f in frames] == list(range(100))
    writer.close()


def test_cut_mid_line_is_dropped_and_flagged(tmp_path: Path) -> None:
    path = tmp_path / "r.rec"
    path.write_bytes(b'# cascadewatch-recording v1\n1 okx-swap {}\n2 okx-swap {"partial')
    reader = RecordingReader(path)
    assert [f.recv for f in reader] == [1]
    assert reader.truncated is True


def test_malformed_line_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.rec"
    path.write_bytes(b"# cascadewatch-recording v1\n1 okx-swap {}\nnot-a-time okx-swap {}\n")
    with pytest.raises(RecordingError) as excinfo:
        list(RecordingReader(path))
    assert str(excinfo.value).startswith(f"{path}:3: receive time")
    assert excinfo.value.line_no == 3


def test_parse_line_rules() -> None:
    assert parse_line(b"# meta\n", "f", 1) is None
    assert parse_line(b"\n", "f", 1) is None
    assert parse_line(b'5 binance-usdm!rest {"a": 1}\n', "f", 9) == Frame(5, "binance-usdm!rest", b'{"a": 1}', 9)
    with pytest.raises(RecordingError, match="f:4: expected"):
        parse_line(b"5 binance-usdm\n", "f", 4)


def test_writer_refuses_newlines_and_spaces(tmp_path: Path) -> None:
    with RecordingWriter(tmp_path / "w.rec") as writer:
        with pytest.raises(ValueError, match="newline"):
            writer.write(1, "okx-swap", "a\nb")
        with pytest.raises(ValueError, match="without spaces"):
            writer.write(1, "okx swap", "{}")


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="recording not found"):
        RecordingReader(tmp_path / "nope.rec")


def test_real_sessions_read_whole(okx_session: Path, binance_session: Path) -> None:
    okx = list(RecordingReader(okx_session))
    binance = list(RecordingReader(binance_session))
    assert len(okx) == 416 and len(binance) == 101
    assert okx[0].source == "okx-swap!rest" and okx[0].channel == "rest" and okx[0].venue == "okx-swap"
    assert all(a.recv <= b.recv for a, b in zip(binance, binance[1:], strict=False))
