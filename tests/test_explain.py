"""The audit manifest and ``cascadewatch explain``: every alert of the demo replay is re-made
byte for byte from the prefix its manifest names; a changed config, input or code is named."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import zstandard

import cascadewatch.pipelines.run.explain as explain_module
import cascadewatch.pipelines.steps.audit as audit_module
from cascadewatch.connectors.recording_index import Prefix, index_recording, prefix_of
from cascadewatch.pipelines.cli.main import bundled_demo_recording, main
from cascadewatch.pipelines.config import Config
from cascadewatch.pipelines.run.explain import explain

DEMO = bundled_demo_recording()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def test_prefix_of_a_second_ends_before_the_first_frame_received_after_it(tmp_path: Path) -> None:
    lines = [
        b"# cascadewatch-recording v1 test\n",
        b"1700000000100000000 okx-swap {}\n",  # recv 00.1 s: belongs to seconds after 1699999997
        b"1700000003500000000 okx-swap {}\n",  # recv 03.5 s - 2 s lag = 01.5 s: after second 1700000000
        b"not a frame\n",
        b"1700000004000000000 okx-swap {}\n",  # 04.0 - 2 = 02.0: after second 1700000001
        b"1700000003900000000 okx-swap {}\n",  # received out of order: does not move the cut back
    ]
    path = tmp_path / "hand.rec"
    path.write_bytes(b"".join(lines))
    index = index_recording(path, allowed_lag_ns=2_000_000_000)
    expected = {
        1_699_999_996_000: 1,
        1_699_999_997_000: 1,
        1_699_999_998_000: 2,
        1_700_000_000_000: 2,
        1_700_000_001_000: 4,
        1_700_000_002_000: 6,
        1_800_000_000_000: 6,
    }
    for second, n in expected.items():
        assert index.prefix(second) == Prefix(n, _sha(b"".join(lines[:n]))), second
    assert index.name == "hand.rec"
    assert prefix_of(path, 4) == (b"".join(lines[:4]), Prefix(4, _sha(b"".join(lines[:4]))))


def test_prefixes_across_read_blocks_follow_the_definition(tmp_path: Path) -> None:
    # 9,000 frames of about 100 bytes, 3 ms apart (900 KB: the index reads it in several blocks),
    # every 97th received 1.5 s late and every 1000th line a comment: each second's prefix is
    # the lines before the first frame received at or after second + 1 s + lag (module doc)
    lag = 500_000_000
    start = 1_700_000_000_000_000_000
    lines: list[bytes] = []
    for i in range(9000):
        if i % 1000 == 999:
            lines.append(b"# a comment between frames\n")
        recv = start + i * 3_000_000 - (1_500_000_000 if i % 97 == 0 else 0)
        lines.append(b'%d binance-usdm {"n":%d,"pad":"%s"}\n' % (recv, i, b"x" * 60))
    path = tmp_path / "long.rec"
    path.write_bytes(b"".join(lines))
    recvs = [int(line.split(b" ", 1)[0]) if line[:1] != b"#" else None for line in lines]
    index = index_recording(path, allowed_lag_ns=lag)
    for second_s in range(1_699_999_996, 1_700_000_032):
        cutoff = (second_s + 1) * 1_000_000_000 + lag
        n = next((j for j, recv in enumerate(recvs) if recv is not None and recv >= cutoff), len(lines))
        assert index.prefix(second_s * 1000) == Prefix(n, _sha(b"".join(lines[:n]))), second_s


@pytest.fixture(scope="module")
def demo_alerts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    alerts = tmp_path_factory.mktemp("demo") / "alerts.jsonl"
    assert main(["replay", str(DEMO), "--alerts-out", str(alerts), "--quiet"]) == 0
    return alerts


def _ids(alerts: Path) -> list[str]:
    return [json.loads(line)["id"] for line in alerts.read_text().splitlines()]


def test_every_demo_alert_is_reproduced_byte_for_byte(demo_alerts: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ids = _ids(demo_alerts)
    assert ids  # the demo's cascade pages and resolves
    for alert_id in ids:
        assert main(["explain", alert_id, "--from", str(demo_alerts), "--recording", str(DEMO)]) == 0
        shown = capsys.readouterr().out
        assert f"alert {alert_id}:" in shown
        assert "reproduced byte for byte" in shown and "NOT reproduced" not in shown
        assert "evidence" in shown and "features: the BTC-USDT snapshot" in shown
    first = json.loads(demo_alerts.read_text().splitlines()[0])
    lines = first["audit"]["inputs"][0]["lines"]
    assert first["audit"]["inputs"] == [
        {"recording": "demo.rec.zst", "lines": lines, "sha256": prefix_of(DEMO, lines)[1].sha256}
    ]
    assert 0 < lines < prefix_of(DEMO, 10**9)[1].lines  # a prefix: the replay ran on past this alert


def test_a_changed_config_is_named(demo_alerts: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "changed.toml"
    config.write_text("[detectors]\nwarn_enter = 0.35\n")
    alert_id = _ids(demo_alerts)[0]
    code = main(["explain", alert_id, "--from", str(demo_alerts), "--recording", str(DEMO), "--config", str(config)])
    shown = capsys.readouterr().out
    assert code == 1
    assert "NOT reproduced" in shown or "the audit manifest differs" in shown
    assert "the config differs: the alert was made with config" in shown


def test_a_changed_input_is_named(demo_alerts: Path, tmp_path: Path) -> None:
    lines = zstandard.ZstdDecompressor().stream_reader(DEMO.open("rb")).read().splitlines(keepends=True)
    lines[0] = b"# an edited copy\n"  # a metadata line of the prefix: the replay reads the same frames
    changed = tmp_path / "demo.rec.zst"
    changed.write_bytes(zstandard.ZstdCompressor().compress(b"".join(lines)))
    alert_id = _ids(demo_alerts)[0]
    result = explain(alert_id, Config(), [changed], demo_alerts)
    assert result.differences[0].startswith("input demo.rec.zst differs: its first ")
    assert not result.identical


def test_changed_code_is_named_and_evidence_still_compared(demo_alerts: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(audit_module, "code_version", lambda: "0.1.0+000000000000")
    monkeypatch.setattr(explain_module, "code_version", lambda: "0.1.0+000000000000")
    alert_id = _ids(demo_alerts)[-1]
    result = explain(alert_id, Config(), [DEMO], demo_alerts)
    assert result.differences[0].startswith("the code differs: the alert was made by 0.1.0+")
    assert result.differences[0].endswith(", this is 0.1.0+000000000000")
    assert result.evidence_identical and not result.identical


def test_missing_alert_or_recording_exits_2(demo_alerts: Path, tmp_path: Path, capsys) -> None:
    assert main(["explain", "0000", "--from", str(demo_alerts)]) == 2
    assert f"{demo_alerts}: no alert with id 0000" in capsys.readouterr().out
    alert_id = _ids(demo_alerts)[0]
    assert main(["explain", alert_id, "--from", str(demo_alerts), "--recording", str(tmp_path / "x.rec")]) == 2
    assert "recording demo.rec.zst (named in the alert's audit) not found" in capsys.readouterr().out


def test_without_the_alerts_file_the_recordings_are_replayed_whole(
    demo_alerts: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    last = json.loads(demo_alerts.read_text().splitlines()[-1])
    assert main(["explain", last["id"], "--recording", str(DEMO)]) == 0
    shown = capsys.readouterr().out
    assert "replayed demo.rec.zst (whole)" in shown and "no alerts file given: nothing to compare with" in shown
    head = f"{last['asset']} {last['kind']} {last['direction']} {last['action']} {last['severity']}"
    assert f"alert {last['id']}: {head}" in shown
