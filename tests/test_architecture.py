"""The pipeline's stages import only earlier stages, and pcapip never imports the TUI.

Data flows one way (sources -> decode -> dissect -> flows -> report -> front ends); an
import against that direction is the first step to a tangle, so it fails here.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# stage -> rank; a module may import pcapip modules of its own rank or lower.
RANK = {
    "errors": 0,
    "sources": 1,
    "decode": 2,
    "dissect": 3,
    "flows": 4,
    "report": 5,
    "live": 6,
    "wireshark": 6,
    "cli": 7,
}


def _stage(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "pcapip":
        return None
    return parts[1] if len(parts) > 1 else ""


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    out: list[str] = []
    pkg = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            out.append(mod)
            out += [f"{mod}.{a.name}" for a in node.names if mod == "pcapip"]
    return out


def test_stages_import_only_earlier_stages() -> None:
    bad = []
    for path in sorted((ROOT / "pcapip").rglob("*.py")):
        own = path.relative_to(ROOT / "pcapip").parts
        own_stage = own[0].removesuffix(".py") if len(own) > 1 else None
        if own_stage not in RANK:
            continue
        for mod in _imports(path):
            stage = _stage(mod)
            if stage in RANK and RANK[stage] > RANK[own_stage]:
                bad.append(f"{path.relative_to(ROOT)} imports {mod}")
    assert not bad, "\n".join(bad)


def _absolute_names(node: ast.AST, pkg: str) -> list[str]:
    """The modules an import statement may load, relative imports resolved against ``pkg``
    (``from pcapip import tui`` names pcapip.tui)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if not isinstance(node, ast.ImportFrom):
        return []
    mod = node.module or ""
    if node.level:
        parts = pkg.split(".")
        mod = ".".join(parts[: len(parts) - node.level + 1] + ([mod] if mod else []))
    return [mod] + [f"{mod}.{a.name}" for a in node.names]


def test_pcapip_never_imports_tui_except_lazily_from_cli() -> None:
    # the app installs as pcapip.tui (its source stays in tui/, see pyproject.toml)
    bad = []
    for path in sorted((ROOT / "pcapip").rglob("*.py")):
        tree = ast.parse(path.read_text())
        pkg = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
        for node in ast.walk(tree):
            names = _absolute_names(node, pkg)
            if not any(n == "pcapip.tui" or n.startswith("pcapip.tui.") for n in names):
                continue
            top_level = node in tree.body
            in_cli = path.relative_to(ROOT).parts[:2] == ("pcapip", "cli")
            if top_level or not in_cli:
                bad.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not bad, "pcapip imports pcapip.tui: " + ", ".join(bad)


def _code_files() -> list[tuple[str, str]]:
    """(name, Python source) of every module, script and notebook code cell in the repo."""
    out = []
    for top in ("pcapip", "tui", "tests", "bench", "scripts"):
        for path in sorted((ROOT / top).rglob("*.py")):
            out.append((str(path.relative_to(ROOT)), path.read_text()))
    for nb in sorted((ROOT / "notebooks").glob("*.ipynb")):
        cells = json.loads(nb.read_text())["cells"]
        for i, cell in enumerate(cells):
            if cell["cell_type"] == "code":
                src = "".join(cell["source"])
                # IPython magics and shell lines are not Python
                src = "\n".join(
                    "" if line.lstrip().startswith(("%", "!")) else line
                    for line in src.splitlines()
                )
                out.append((f"{nb.relative_to(ROOT)} cell {i}", src))
    return out


def test_nothing_imports_a_top_level_tui() -> None:
    # "tui" is not installed at the top level: such an import works only from the
    # repository's root, and would pick up any other package called tui
    files = _code_files()
    assert any(name.startswith("tui/") for name, _ in files)
    bad = []
    for name, source in files:
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.ImportFrom) and node.level:
                continue
            names = _absolute_names(node, "")
            if any(n == "tui" or n.startswith("tui.") for n in names):
                bad.append(f"{name}:{node.lineno}")
    assert not bad, "import tui instead of pcapip.tui: " + ", ".join(bad)
