"""What ``pip install`` puts in site-packages: pcapip alone, with the Textual app as pcapip.tui.

The app's source is ``tui/`` at the top of the repository; pyproject.toml maps it
to ``pcapip.tui`` (``package-dir``), so no top-level module ``tui`` is installed to
clash with another package of that name. The wheel is built the way ``pip install
.`` builds it (an isolated build with the setuptools pyproject.toml asks for).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
SETUPTOOLS = PYPROJECT["tool"]["setuptools"]


def _folder(package: str) -> Path:
    """Where a package's source lives, following package-dir like setuptools does."""
    mapping = SETUPTOOLS.get("package-dir", {})
    parts = package.split(".")
    for i in range(len(parts), 0, -1):
        head = ".".join(parts[:i])
        if head in mapping:
            return ROOT.joinpath(mapping[head], *parts[i:])
    return ROOT.joinpath(*parts)


def _source_packages() -> dict[str, Path]:
    """Every package folder of pcapip/ and tui/, by the name it installs under."""
    found = {}
    for top, name in (("pcapip", "pcapip"), ("tui", "pcapip.tui")):
        for init in sorted((ROOT / top).rglob("__init__.py")):
            rel = init.parent.relative_to(ROOT / top).parts
            found[".".join((name, *rel))] = init.parent
    return found


def test_every_package_folder_is_listed_with_its_folder() -> None:
    listed = SETUPTOOLS["packages"]
    source = _source_packages()
    assert "pcapip.tui.widgets" in source
    assert sorted(listed) == sorted(source), "pyproject.toml's packages differ from the folders"
    for package in listed:
        assert _folder(package) == source[package], package
    assert not any(p == "tui" or p.startswith("tui.") for p in listed)


def _child_env() -> dict[str, str]:
    """This environment without PYTHONPATH: imports resolve through the installation."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


def test_installed_pcapip_has_tui_and_no_top_level_tui(tmp_path: Path) -> None:
    # run outside the repository, so its folders are not on sys.path
    probe = (
        "import importlib.util, pcapip, pcapip.tui.app, pcapip.tui.widgets.table;"
        "print(pcapip.tui.app.__file__);"
        "print(importlib.util.find_spec('tui'))"
    )
    r = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=tmp_path,
        env=_child_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, (
        f"pcapip.tui does not import from the installed pcapip; reinstall it "
        f"(pip install -e '.[dev]'):\n{r.stderr[-2000:]}"
    )
    app_file, tui_spec = r.stdout.split()
    assert Path(app_file).name == "app.py" and Path(app_file).parent.name == "tui"
    assert tui_spec == "None", "a top-level module 'tui' is importable"

    r = subprocess.run(
        [sys.executable, "-m", "pcapip", "tui", "--help"],
        cwd=tmp_path,
        env=_child_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.startswith("Usage: pcapip tui [OPTIONS] CAPTURE")


@pytest.mark.slow
def test_wheel_installs_pcapip_only(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    skip = shutil.ignore_patterns("__pycache__", "*.so", ".kernels-build-*")
    for top in ("pcapip", "tui"):
        shutil.copytree(ROOT / top, src / top, ignore=skip)
    r = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path), str(src)],
        env=_child_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    (wheel,) = tmp_path.glob("pcapip-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        info = next(n for n in names if n.endswith(".dist-info/RECORD")).rsplit("/", 1)[0]
        top_level = zf.read(f"{info}/top_level.txt").decode().split()
        entry_points = zf.read(f"{info}/entry_points.txt").decode()

    tops = {n.split("/", 1)[0] for n in names if not n.startswith(info)}
    assert tops == {"pcapip"}, f"the wheel installs more than pcapip: {sorted(tops)}"
    assert top_level == ["pcapip"]
    assert "pcapip = pcapip.cli.main:main" in entry_points

    expected = {
        f"pcapip/tui/{p.relative_to(ROOT / 'tui').as_posix()}"
        for p in (ROOT / "tui").rglob("*.py")
        if "__pycache__" not in p.parts
    }
    assert "pcapip/tui/widgets/table.py" in expected
    assert expected <= set(names), sorted(expected - set(names))
    pcapip_py = {
        p.relative_to(ROOT).as_posix()
        for p in (ROOT / "pcapip").rglob("*.py")
        if "__pycache__" not in p.parts
    }
    assert pcapip_py <= set(names), sorted(pcapip_py - set(names))
