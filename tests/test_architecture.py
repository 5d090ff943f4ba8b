"""The pipeline's stages import only earlier stages, no pcapip module is part of an import
circle, and pcapip never imports the TUI.

Data flows one way (sources -> decode -> dissect -> flows -> report -> front ends); an
import against that direction, or two modules that need each other, is the first step to
a tangle, so it fails here.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# stage -> rank; a module may import pcapip modules of its own rank or lower.
RANK = {
    "errors": 0,
    "sources": 1,
    "rules": 1,  # beside sources: an input read before any capture (--rules)
    "decode": 2,
    "dissect": 3,
    "flows": 4,
    "report": 5,
    "resolve": 5,  # beside report: Analysis.resolve is its join
    "live": 6,
    "cluster": 6,
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


# ---------------------------------------------------------------------- import circles



def _module(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _type_checking(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def _walk_run_time(tree: ast.AST) -> Iterator[ast.AST]:
    """Every node but those under ``if TYPE_CHECKING:`` (never imported when running)."""
    for child in ast.iter_child_nodes(tree):
        if _type_checking(child):
            yield from (n for e in child.orelse for n in [e, *_walk_run_time(e)])
            continue
        yield child
        yield from _walk_run_time(child)


def import_graph(*, type_hints: bool = False) -> dict[str, set[str]]:
    """pcapip module -> the pcapip modules it imports: at module level or inside a function
    (a lazy import still needs the other module, and a circle of lazy imports is a circle
    in the design), under ``if TYPE_CHECKING:`` only with ``type_hints`` (a module that
    names another's class in its annotations depends on it too, in the reader's mind). ``from pcapip.x import y`` is an edge
    to module ``pcapip.x.y`` when that is a module, else to ``pcapip.x``. The parent
    packages Python imports on the way (``pcapip``, ``pcapip.x``) are not edges: every
    module would otherwise be in a circle through ``pcapip/__init__.py``'s lazy
    ``pcapip.analyze``; an import naming a package itself is one."""
    files = {_module(p): p for p in sorted((ROOT / "pcapip").rglob("*.py"))}
    graph: dict[str, set[str]] = {}
    for mod, path in files.items():
        is_pkg = path.name == "__init__.py"
        pkg = mod if is_pkg else mod.rpartition(".")[0]
        out: set[str] = set()
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree) if type_hints else _walk_run_time(tree):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                    base = ".".join(up + ([node.module] if node.module else []))
                targets = [
                    f"{base}.{a.name}" if f"{base}.{a.name}" in files else base for a in node.names
                ]
            else:
                continue
            for t in targets:
                while t and t not in files:  # ``import pcapip.x.y`` names module pcapip.x.y
                    t = t.rpartition(".")[0]
                if t and t != mod:
                    out.add(t)
        graph[mod] = out
    return graph


def circles(graph: dict[str, set[str]]) -> list[set[str]]:
    """The strongly connected components of more than one module (Tarjan, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[set[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on.add(root)
        while work:
            v, it = work[-1]
            for w in it:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(graph.get(w, ())))))
                    break
                if w in on:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    comp = set()
                    while True:
                        w = stack.pop()
                        on.discard(w)
                        comp.add(w)
                        if w == v:
                            break
                    if len(comp) > 1:
                        out.append(comp)
    return out


def test_circle_finder_finds_circles() -> None:
    """The finder itself: a three-module ring and a pair are found, a chain is not."""
    g = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"f"}, "f": {"e"}, "g": {"a"}}
    assert sorted(sorted(c) for c in circles(g)) == [["a", "b", "c"], ["e", "f"]]
    assert circles({"a": {"b"}, "b": {"c"}, "c": set()}) == []


def test_graph_reads_lazy_imports_and_skips_type_checking() -> None:
    """The edges this test relies on are read from the real tree: a lazy import inside a
    function (pcapip.analyze -> report.analysis), a module-level one, and none from a
    ``TYPE_CHECKING`` block (report.render names Analysis only in annotations)."""
    g = import_graph()
    assert "pcapip.report.analysis" in g["pcapip"]  # lazy, inside analyze()
    assert "pcapip.flows.table" in g["pcapip.report.export"]  # module level
    assert "pcapip.report.analysis" not in g["pcapip.report.render"]  # TYPE_CHECKING only
    assert "pcapip.report.export" in g["pcapip.report.analysis"]  # lazy, inside to_csv
    typed = import_graph(type_hints=True)
    assert "pcapip.report.analysis" in typed["pcapip.report.render"]


@pytest.mark.parametrize("type_hints", [False, True], ids=["run-time", "with-type-hints"])
def test_no_import_circles(type_hints: bool) -> None:
    """No circle, not even one closed only by an ``if TYPE_CHECKING:`` import: a module
    that needs another's type to be read is above it, as one that calls it is."""
    found = circles(import_graph(type_hints=type_hints))
    assert not found, "import circles among pcapip modules:\n" + "\n".join(
        " <-> ".join(sorted(c)) for c in found
    )


def test_one_read_loop() -> None:
    """Captures go through the flow stage in one place (``pcapip.flows.run.read_captures``):
    no front end (analyze, live, the TUI) feeds a tracker, builds the table or turns the
    garbage collector off by itself. Trackers (``flows/tracker.py`` and its subclass in
    ``live/tracking.py``) feed themselves; ``flows/table.py`` defines finish_table;
    ``cli/collector.py`` pauses the collector while a command starts (no read loop)."""
    own = {"pcapip/flows/run.py", "pcapip/flows/tracker.py", "pcapip/flows/table.py",
           "pcapip/live/tracking.py", "pcapip/cli/collector.py"}
    bad = []
    for path in sorted([*(ROOT / "pcapip").rglob("*.py"), *(ROOT / "tui").rglob("*.py")]):
        rel = path.relative_to(ROOT).as_posix()
        if rel in own:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            f = node.func
            name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")
            if name in ("finish_table", "feed") or ast.unparse(f) == "gc.disable":
                bad.append(f"{rel}:{node.lineno} calls {ast.unparse(f)}")
    assert not bad, "a read loop outside pcapip.flows.run:\n" + "\n".join(bad)


MAX_FILE_LINES = 500  # a module is a small room named for its job
MAX_FUNCTION_LINES = 80  # a function fits on a screen (its docstring not counted)


def _product_files() -> list[Path]:
    """Every module of the product: the library and the TUI (whose folder is linked into
    the package as pcapip/tui in some checkouts: counted once)."""
    lib = [p for p in (ROOT / "pcapip").rglob("*.py") if "tui" not in p.relative_to(ROOT).parts[1:2]]
    return sorted([*lib, *(ROOT / "tui").rglob("*.py")])


def _code_lines(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    lines = node.end_lineno - node.lineno + 1
    doc = node.body[0]
    if isinstance(doc, ast.Expr) and isinstance(doc.value, ast.Constant) and isinstance(
        doc.value.value, str
    ):
        lines -= doc.end_lineno - doc.lineno + 1
    return lines


def test_modules_and_functions_are_small() -> None:
    """No module over MAX_FILE_LINES lines and no function over MAX_FUNCTION_LINES lines of
    code, in the library or the TUI: a longer one does two jobs (the compiled kernels are
    held to the same limit, and to short argument lists, in test_kernel_shape)."""
    big, long = [], []
    for path in _product_files():
        rel = path.relative_to(ROOT).as_posix()
        text = path.read_text()
        if text.count("\n") > MAX_FILE_LINES:
            big.append(f"{rel}: {text.count(chr(10))} lines")
        for node in ast.walk(ast.parse(text)):
            is_def = isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            if is_def and _code_lines(node) > MAX_FUNCTION_LINES:
                long.append(f"{rel}:{node.lineno} {node.name}: {_code_lines(node)} lines")
    assert not big and not long, "\n".join(big + long)
    assert len(_product_files()) > 150  # (the walk found the product)


def test_the_size_check_finds_a_long_function() -> None:
    src = "def f():\n    '''doc\n    more'''\n" + "    x = 1\n" * (MAX_FUNCTION_LINES)
    node = ast.parse(src).body[0]
    assert _code_lines(node) == MAX_FUNCTION_LINES + 1  # the def line and the body
