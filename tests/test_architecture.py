"""The pipeline's stages import only earlier stages, and pcapip never imports the TUI.

Data flows one way (sources -> decode -> dissect -> flows -> report -> front ends); an
import against that direction is the first step to a tangle, so it fails here.
"""

from __future__ import annotations

import ast
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


def test_pcapip_never_imports_tui_except_lazily_from_cli() -> None:
    bad = []
    for path in sorted((ROOT / "pcapip").rglob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                names = [node.module or ""]
            if not any(n == "tui" or n.startswith("tui.") for n in names):
                continue
            top_level = node in tree.body
            in_cli = path.relative_to(ROOT).parts[:2] == ("pcapip", "cli")
            if top_level or not in_cli:
                bad.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not bad, "pcapip imports tui: " + ", ".join(bad)
