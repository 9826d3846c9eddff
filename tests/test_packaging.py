"""One installed import package, ``cascadewatch``; files of release 0.1.0 still handled."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import tomllib
import venv
import zipfile
from pathlib import Path

import zstandard

from cascadewatch.detectors.probability import CascadeProbability
from cascadewatch.pipelines.model_file import load_model

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("connectors", "detectors", "pipelines")
LEGACY = ROOT / "tests" / "fixtures" / "legacy"
WEB_FILES = sorted(str(p.relative_to(ROOT / "connectors" / "web")) for p in (ROOT / "connectors" / "web").rglob("*.*"))
"""The web page's files (``connectors/web``): every one is package data, the vendored uPlot and its licence too."""


def _python_files() -> list[Path]:
    return sorted(p for top in (*PACKAGES, "tests") for p in (ROOT / top).rglob("*.py"))


def test_pyproject_lists_every_subpackage() -> None:
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    folders = sorted(
        "cascadewatch." + ".".join(init.parent.relative_to(ROOT).parts)
        for top in PACKAGES
        for init in (ROOT / top).rglob("__init__.py")
    )
    assert sorted(setuptools["packages"]) == folders
    assert setuptools["package-dir"] == {f"cascadewatch.{top}": top for top in PACKAGES}


def test_nothing_imports_the_bare_top_level_names() -> None:
    offenders = []
    for path in _python_files():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = (
                [alias.name for alias in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom) and node.level == 0
                else []
            )
            offenders += [f"{path.relative_to(ROOT)}:{node.lineno} {n}" for n in names if n.split(".")[0] in PACKAGES]
    assert offenders == []


def test_wheel_installs_one_package_and_the_demo_runs_from_it(tmp_path: Path) -> None:
    """Build the wheel, install it alone into a fresh venv, run ``cascadewatch demo`` outside the repo."""
    source = tmp_path / "source"  # a copy: setuptools' build/ in a checkout may hold stale modules
    source.mkdir()
    shutil.copy(ROOT / "pyproject.toml", source)
    shutil.copy(ROOT / "README.md", source)
    for name in PACKAGES:
        shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    pip_wheel = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path)]
    subprocess.run([*pip_wheel, str(source)], check=True, capture_output=True)
    (wheel,) = tmp_path.glob("cascadewatch-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        (top_level,) = [n for n in names if n.endswith(".dist-info/top_level.txt")]
        assert archive.read(top_level).decode().split() == ["cascadewatch"]
    assert {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")} == {"cascadewatch"}
    for data in (
        "cascadewatch/pipelines/data/demo.rec.zst",
        "cascadewatch/detectors/py.typed",
        "cascadewatch/connectors/venues/data/okx_instruments.json",
        *(f"cascadewatch/connectors/web/{name}" for name in WEB_FILES),
    ):
        assert data in names

    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=False)
    python = env_dir / "bin" / "python"
    # The dependencies come from this interpreter's site-packages (a .pth line adds the folder
    # without processing its .pth files, so this checkout's editable finder stays out).
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    deps = next(p for p in map(Path, sys.path) if p.name == "site-packages" and (p / "bytewax").is_dir())
    (Path(site) / "deps.pth").write_text(f"{deps}\n")
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)
    run = subprocess.run([python, "-I", "-c", "import connectors"], capture_output=True, text=True, cwd=tmp_path)
    assert "No module named 'connectors'" in run.stderr
    demo = subprocess.run(
        [python, "-I", "-m", "cascadewatch.pipelines.cli.main", "demo", "--out", str(tmp_path / "demo")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=240,
    )
    assert demo.returncode == 0, demo.stderr[-2000:]
    assert (tmp_path / "demo" / "alerts.jsonl").read_text().count('"type":"alert"') >= 1
    installed_demo = Path(site) / "cascadewatch" / "pipelines" / "data" / "demo.rec.zst"
    report = subprocess.run(
        [python, "-I", "-m", "cascadewatch.pipelines.cli.main", "report", str(installed_demo), "--out", "r.html"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=240,
    )
    assert report.returncode == 0, report.stderr[-2000:]
    assert "/*! https://github.com/leeoniya/uPlot (v1.6.32) */" in (tmp_path / "r.html").read_text()  # package data


def test_a_model_file_of_release_0_1_0_loads() -> None:
    assert b"detectors.probability" in (LEGACY / "model-0.1.0.pkl").read_bytes()  # the 0.1.0 module path
    payload = load_model(LEGACY / "model-0.1.0.pkl")
    x = {name: 0.5 for name in payload["features"]}
    for direction in ("down", "up"):
        model = payload["models"][direction]
        assert type(model) is CascadeProbability
        assert model.model_probability(x, 0.01) == 0.05514982286600967  # what 0.1.0 computed


def test_a_recovery_directory_of_release_0_1_0_is_refused_in_one_line(tmp_path: Path) -> None:
    store = tmp_path / "recovery"
    store.mkdir()
    compressed = (LEGACY / "recovery-0.1.0-part-0.sqlite3.zst").read_bytes()
    (store / "part-0.sqlite3").write_bytes(zstandard.ZstdDecompressor().decompress(compressed))
    demo = ROOT / "pipelines" / "data" / "demo.rec.zst"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "cascadewatch.pipelines.cli.main",
            "replay",
            str(demo),
            "--quiet",
            "--recovery-dir",
            str(store),
            "--alerts-out",
            str(tmp_path / "a.jsonl"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 2
    assert "Traceback" not in run.stdout + run.stderr
    lines = [line for line in (run.stdout + run.stderr).splitlines() if line.strip()]
    assert len(lines) == 1 and "state layout 1" in lines[0] and str(store) in " ".join(lines)
    assert not (tmp_path / "a.jsonl").exists()
