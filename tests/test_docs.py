"""The README's configuration example is a valid config."""

from __future__ import annotations

import re
from pathlib import Path

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
    assert config.detectors.leverage[0] == (5.0, 0.25)


def test_readme_dead_letter_reasons_are_the_reason_enum() -> None:
    """The README's "Dead letters" table lists exactly the values of ``Reason``, in its order."""
    from cascadewatch.connectors.reasons import Reason

    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("### Dead letters") :]
    section = section[: section.index("\n## ")]
    listed = re.findall(r"^\| `(\w+)` \|", section, re.M)
    assert listed == [reason.value for reason in Reason]
