"""The output contract (``connectors/outputs.py``): README's field tables list exactly the
structs' fields, in output order, and the structs encode as the JSONL lines do."""

from __future__ import annotations

import re
from pathlib import Path

import msgspec
import pytest

from cascadewatch.connectors.outputs import ALERT_HEADER, Alert, DirectionRisk, RiskSnapshot, alert_id
from cascadewatch.pipelines.cli.main import main

ROOT = Path(__file__).parents[1]
README = (ROOT / "README.md").read_text()
RECORDINGS = [
    ROOT / "tests" / "fixtures" / "bad" / "hand-made.rec",  # cascade and feed alerts
    ROOT / "tests" / "fixtures" / "recordings" / "binance-usdm-2021-07-22-head.rec",  # seconds with no price
]


def _table_after(heading: str) -> list[str]:
    """Field names of the first table after ``heading``: the backticked names of the first
    column, top to bottom."""
    section = README[README.index(heading) :]
    rows = re.search(r"\| field \| meaning \|\n\|---\|---\|\n((?:\|.*\n)+)", section)
    assert rows is not None, f"no field table after {heading!r}"
    names = []
    for row in rows.group(1).splitlines():
        first_cell = row.split("|")[1]
        names += re.findall(r"`([a-z_0-9]+)`", first_cell)
    return names


def _encoded(struct: type[msgspec.Struct]) -> list[str]:
    tag = [struct.__struct_config__.tag_field] if struct.__struct_config__.tag_field else []
    return tag + [f.encode_name for f in msgspec.structs.fields(struct)]


@pytest.mark.parametrize(
    ("heading", "struct"),
    [
        ("### Snapshot fields", RiskSnapshot),
        ("Per direction (`down`", DirectionRisk),
        ("### Alert fields", Alert),
    ],
)
def test_readme_tables_list_exactly_the_struct_fields_in_output_order(heading: str, struct: type) -> None:
    assert _table_after(heading) == _encoded(struct)


def test_alert_header_is_the_identity_and_absent_evidence_is_left_out() -> None:
    assert ALERT_HEADER == (
        "type",
        "id",
        "dedup_key",
        "action",
        "severity",
        "kind",
        "asset",
        "direction",
        "ts",
        "summary",
    )
    test = Alert(
        id="test-1-trigger",
        dedup_key="TEST:test:desk",
        action="trigger",
        severity="info",
        kind="test",
        asset="TEST",
        direction="down",
        ts=1,
        summary="s",
        price=100.0,
        liq_usd_60s=0.0,
        venues=[],
    )
    assert msgspec.json.encode(test.to_dict()) == (
        b'{"type":"alert","id":"test-1-trigger","dedup_key":"TEST:test:desk","action":"trigger","severity":"info",'
        b'"kind":"test","asset":"TEST","direction":"down","ts":1,"summary":"s","price":100.0,"liq_usd_60s":0.0,'
        b'"venues":[]}'
    )


def test_alert_id_is_the_documented_sha1_prefix() -> None:
    # echo -n 'BTC-USDT:cascade:down|1000|resolve|critical' | sha1sum
    assert alert_id("BTC-USDT:cascade:down", 1000, "resolve", "critical") == "a15fa0c5e95bd42284dd"


def test_every_line_of_a_replay_decodes_into_the_structs_and_encodes_back_to_the_same_bytes(tmp_path: Path) -> None:
    """The structs describe the output exactly: no key missing, none extra, same order."""
    alerts, snapshots = tmp_path / "alerts.jsonl", tmp_path / "snapshots.jsonl"
    argv = ["replay", *map(str, RECORDINGS), "--alerts-out", str(alerts), "--snapshots-out", str(snapshots), "--quiet"]
    assert main(argv) == 0
    lines = alerts.read_bytes().splitlines() + snapshots.read_bytes().splitlines()
    decoded = [msgspec.json.decode(line, type=RiskSnapshot | Alert) for line in lines]
    assert [msgspec.json.encode(item.to_dict()) for item in decoded] == lines
    kinds = sorted({(type(item).__name__, getattr(item, "kind", None)) for item in decoded})
    assert kinds == [("Alert", "cascade"), ("Alert", "feed"), ("RiskSnapshot", None)]
    # snapshots with and without the detectors' fields both occur
    assert {isinstance(item.down, DirectionRisk) for item in decoded if isinstance(item, RiskSnapshot)} == {True, False}
    # every alert ends with its audit manifest (added last: the keys before it are unchanged)
    audits = [item.audit for item in decoded if isinstance(item, Alert)]
    assert all(list(audit) == ["code", "config", "model", "second", "inputs"] for audit in audits)
    assert [a.audit["second"] for a in decoded if isinstance(a, Alert)] == [
        a.ts for a in decoded if isinstance(a, Alert)
    ]
    assert {tuple(i["recording"] for i in audit["inputs"]) for audit in audits} == {
        ("hand-made.rec", "binance-usdm-2021-07-22-head.rec")
    }
    for line in alerts.read_bytes().splitlines():
        assert line.index(b',"audit":{"code":') == line.rindex(b',"audit":')
        assert line.endswith(b"]}}")


def test_the_mitigation_readouts_come_last_and_lines_written_before_them_still_decode() -> None:
    """The readouts were added after the contract: at the end of ``DirectionRisk`` and of
    ``Alert``, with defaults, so a line written before them decodes and only gains fields."""
    added = ["defence_usd", "margin_mmr", "leverage_cap", "margin_pushed_usd", "breaker", "breaker_since"]
    assert _encoded(DirectionRisk)[-6:] == added
    # on Alert they come right before ``provisional`` and the contagion group's ``assets`` (added
    # after them) and the fields the output steps append last (exposure, audit)
    assert _encoded(Alert)[-9:] == [name for name in added if name != "breaker"] + [
        "provisional",
        "assets",
        "exposure",
        "audit",
    ]
    old = (
        b'{"prob":0.1,"p_struct":0.05,"p_touch":0.2,"cascade":null,"cluster_price":64150.0,"cluster_bps":130.8,'
        b'"cluster_usd":48200000.0,"at_risk_usd":120000000.0,"depth_ratio":0.45,"reach_usd":31000000.0,"reach_bps":212.3}'
    )
    risk = msgspec.json.decode(old, type=DirectionRisk)
    assert [getattr(risk, name) for name in added] == [None] * 6
    assert msgspec.json.encode(risk).startswith(old[:-1] + b',"defence_usd":null')
