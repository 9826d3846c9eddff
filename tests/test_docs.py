"""The README's configuration example is a valid config."""

from __future__ import annotations

import re
from pathlib import Path

from cascadewatch.detectors.liqmap_estimated import DEFAULT_TIERS
from cascadewatch.pipelines.config import load_config

ROOT = Path(__file__).parents[1]


def test_readme_config_example_loads(tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Configuration") :]
    example = re.search(r"```toml\n(.*?)```", section, re.S).group(1)
    path = tmp_path / "config.toml"
    path.write_text(example)
    config = load_config(path)
    assert config.detectors.horizon_s == 300
    assert config.detectors.labels.floor_usd == 1_000_000.0
    assert config.detectors.leverage == DEFAULT_TIERS  # the README shows the default tiers
    assert config.detectors.map_seed_share == 0.08


def test_readme_dead_letter_reasons_are_the_reason_enum() -> None:
    """The README's "Dead letters" table lists exactly the values of ``Reason``, in its order."""
    from cascadewatch.connectors.reasons import Reason

    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("### Dead letters") :]
    section = section[: section.index("\n## ")]
    listed = re.findall(r"^\| `(\w+)` \|", section, re.M)
    assert listed == [reason.value for reason in Reason]


def test_every_file_the_readme_names_exists() -> None:
    """File names in README.md (``flow.py``, ``connectors/outputs.py``, ``steps/``...) are real
    files of the tree: a rename that forgets the README fails here."""
    readme = (ROOT / "README.md").read_text()
    files = {p.name for top in ("connectors", "detectors", "pipelines", "tests") for p in (ROOT / top).rglob("*.py")}
    folders = {
        p.name for top in ("connectors", "detectors", "pipelines") for p in (ROOT / top).rglob("*") if p.is_dir()
    }
    named = set(re.findall(r"\b([a-z_0-9]+\.py)\b", readme))
    assert named and sorted(named - files) == []
    paths = set(re.findall(r"\b((?:connectors|detectors|pipelines)/[a-z_0-9/]*(?:\.py)?)", readme))
    assert sorted(p for p in paths if not (ROOT / p).exists()) == []
    named_folders = set(re.findall(r"\b([a-z_]+)/(?=[\s`)])", readme))
    assert (
        {"steps", "run", "cli", "evaluation", "bench", "simulate", "venues", "alerts"}
        <= named_folders
        <= (folders | {"connectors", "detectors", "pipelines", "tests", "docs", "deploy", "fixtures", "recordings"})
    )
