"""The notebooks in notebooks/ run top to bottom, their answers hold, and their outputs are current.

Each notebook is executed in a fresh kernel of this interpreter (nbclient), and
then its checks, ``tests/notebook_checks/<notebook>.py``, run in the same
kernel on the notebook's own variables: 01 and 02 are held to the ground truth
recorded next to tests/pcaps/troubleshooting.pcap (HAProxy's and the relay's
logs, the clients' sockets), 00 to pcapip itself and to that ground truth. The
checks live here, not in the notebooks, so a reader sees answers, not asserts.

The notebooks are committed with their outputs, so they read on GitHub. A fresh
run is compared with the committed outputs (their text: the HTML renderings of
tables, the images' bytes and object addresses aside); when they differ the test
fails and names the command that rewrites them::

    .venv/bin/python tests/test_notebooks.py

which runs every notebook and its checks the same way and writes back those whose
outputs changed. Failing rather than rewriting in the test keeps a CI run on a
fresh clone honest: it cannot commit, so a silent rewrite would check nothing.
With root and the peers (HAProxy, nginx, tcpdump) available, the notebooks are
also run against a fresh recording: their checks must hold for any run of the
generator, not only for the committed capture.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
CHECKS = ROOT / "tests" / "notebook_checks"
PCAPS = ROOT / "tests" / "pcaps"
NAMES = ["00-your-capture.ipynb", "01-getting-started.ipynb", "02-troubleshooting.ipynb"]
PLOTS = {"00-your-capture.ipynb": 2, "01-getting-started.ipynb": 2, "02-troubleshooting.ipynb": 0}
UPDATE_COMMAND = ".venv/bin/python tests/test_notebooks.py"
# the notebooks' own inputs: a developer's shell must not leak them into the committed outputs
NOTEBOOK_ENV = ("PCAPIP_CAPTURE", "PCAPIP_TRUSTED", "PCAPIP_TROUBLESHOOTING_DIR")
METADATA = {
    "kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"},
    "language_info": {"name": "python"},
}
CELL_TIMEOUT = 120  # seconds; a whole notebook takes a few


def execute(nb: Any, env: dict[str, str] | None = None, checks: str | None = None) -> float:
    """Run ``nb`` (then ``checks`` in the same kernel) in a python3 kernel; seconds taken.

    Raises nbclient's CellExecutionError (with the cell and its traceback) on the
    first failing cell. The checks' cell is not left in ``nb``.
    """
    # COLUMNS/LINES unset too: a terminal size inherited from the caller would rewrap tables
    quiet = {k: None for k in (*NOTEBOOK_ENV, "COLUMNS", "LINES")}
    env = {**quiet, "MPLBACKEND": "Agg", **(env or {})}
    old = {k: os.environ.get(k) for k in env}
    for k, v in env.items():
        _set_env(k, v)
    if checks is not None:
        nb.cells.append(nbformat.v4.new_code_cell(checks))
    try:
        client = nbclient.NotebookClient(
            nb,
            kernel_name="python3",
            timeout=CELL_TIMEOUT,
            record_timing=False,
            resources={"metadata": {"path": str(NOTEBOOKS)}},
        )
        start = time.perf_counter()
        client.execute()
        return time.perf_counter() - start
    finally:
        if checks is not None:
            nb.cells.pop()
        for k, v in old.items():
            _set_env(k, v)


def _set_env(key: str, value: str | None) -> None:
    if value is None:
        os.environ.pop(key, None)
    else:
        os.environ[key] = value


def run(name: str, env: dict[str, str] | None = None) -> Any:
    """The notebook executed with its checks, tidied as it is committed."""
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    execute(nb, env, (CHECKS / name.replace(".ipynb", ".py")).read_text())
    nb.metadata = json.loads(json.dumps(METADATA))
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
    return nb


def outputs(nb: Any, output_type: str | None = None) -> list[Any]:
    return [
        o
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.get("outputs", [])
        if output_type is None or o.output_type == output_type
    ]


def images(nb: Any) -> list[Any]:
    return [o for o in outputs(nb) if "image/png" in o.get("data", {})]


def _mask(text: Any) -> str:
    text = "".join(text) if isinstance(text, list) else str(text)
    return re.sub(r" at 0x[0-9a-f]{6,}", " at 0x…", text)  # object addresses


def comparable(nb: Any) -> list[tuple[str, str, list[Any]]]:
    """What a reader sees, without what changes from run to run or machine to machine."""
    cells = []
    for c in nb.cells:
        outs = []
        for o in c.get("outputs", []):
            if o.output_type == "stream":
                # the kernel flushes print() output on a timer: on a loaded machine one
                # cell's text can arrive as several stream messages; a reader sees one text
                if outs and outs[-1][:2] == ("stream", o.name):
                    outs[-1] = ("stream", o.name, outs[-1][2] + _mask(o.text))
                else:
                    outs.append((o.output_type, o.name, _mask(o.text)))
            elif o.output_type == "error":
                outs.append((o.output_type, o.ename, o.evalue))
            else:
                # text/plain carries what a table or value says; its HTML and the PNG bytes
                # are renderings that change with pandas or matplotlib, not with pcapip
                data = {
                    mime: "<image>" if mime.startswith("image/") else _mask(v)
                    for mime, v in o.get("data", {}).items()
                    if mime != "text/html"
                }
                outs.append((o.output_type, "", json.dumps(data, sort_keys=True)))
        cells.append((c.cell_type, c.source, [c.get("execution_count"), *outs]))
    return cells


def first_difference(committed: Any, fresh: Any) -> str:
    old, new = comparable(committed), comparable(fresh)
    if len(old) != len(new):
        return f"{len(old)} cells committed, {len(new)} now"
    for i, (a, b) in enumerate(zip(old, new, strict=True)):
        if a != b:
            x, y = str(a[2]), str(b[2])
            at = next((k for k, (p, q) in enumerate(zip(x, y, strict=False)) if p != q),
                      min(len(x), len(y)))
            at = max(0, at - 100)
            return f"cell {i}: committed …{x[at:at + 300]!r}\n    now …{y[at:at + 300]!r}"
    return ""


def machine_paths() -> list[str]:
    """Absolute paths of this machine that must never appear in a committed notebook."""
    import tempfile

    return sorted({str(ROOT), str(Path.home()), tempfile.gettempdir(), sys.prefix} - {"/"})


# --- tests --------------------------------------------------------------------------------


def test_kernel_is_this_interpreter() -> None:
    """``python3`` must resolve to the venv running the tests, not a system Python."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("import sys, pcapip; print(sys.prefix)")]
    execute(nb)
    (out,) = outputs(nb, "stream")
    assert Path(out.text.strip()).resolve() == Path(sys.prefix).resolve()


@pytest.mark.parametrize("name", NAMES)
def test_committed_with_outputs_of_a_full_run(name: str) -> None:
    """Committed as a reader sees it: every code cell run once, in order, no errors, the
    plots as PNGs, no path of the machine that ran it, no asserts (the checks are here)."""
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata == METADATA
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert [c.execution_count for c in code] == list(range(1, len(code) + 1)), (
        f"{name} was not committed from a full run; rewrite it with: {UPDATE_COMMAND}"
    )
    assert not outputs(nb, "error")
    warned = [o.text for o in outputs(nb, "stream") if o.name == "stderr"]
    assert not warned, f"{name} shows warnings: {warned}"
    assert len(images(nb)) == PLOTS[name]
    text = (NOTEBOOKS / name).read_text()
    leaked = [p for p in machine_paths() if p in text]
    assert not leaked, f"{name} shows absolute paths {leaked}"
    assert not [c.source for c in code if re.search(r"^\s*assert\b", c.source, re.M)]
    assert (CHECKS / name.replace(".ipynb", ".py")).read_text().count("assert") >= 5


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_committed_outputs_are_current(name: str) -> None:
    """A fresh run (checks included) shows what the committed notebook shows."""
    committed = nbformat.read(NOTEBOOKS / name, as_version=4)
    fresh = run(name)
    assert not outputs(fresh, "error")
    assert len(images(fresh)) == PLOTS[name], "the plots did not render"
    diff = first_difference(committed, fresh)
    assert not diff, (
        f"notebooks/{name}: the committed outputs are stale ({diff}).\n"
        f"Rewrite them with: {UPDATE_COMMAND}"
    )


@pytest.mark.slow
def test_your_capture_notebook_reads_PCAPIP_CAPTURE() -> None:
    """00 on another bundled capture, named by the environment: TOA flows, not the example."""
    nb = run(
        "00-your-capture.ipynb",
        {"PCAPIP_CAPTURE": str(PCAPS / "flow-toa.pcap"), "PCAPIP_TRUSTED": "192.0.2.10/31"},
    )
    text = "".join(_mask(o.get("text", "")) for o in outputs(nb, "stream"))
    assert "capture: flow-toa.pcap; trusted proxies: 192.0.2.10/31" in text
    assert "troubleshooting" not in json.dumps([c[2] for c in comparable(nb)])
    tables = [o["data"]["text/plain"] for o in outputs(nb) if "text/plain" in o.get("data", {})]
    assert any("toa" in t and "192.0.2.10" in t for t in tables)
    assert len(images(nb)) == 2


def test_ground_truth_matches_generator() -> None:
    """The committed ground truth is the generator's schedule, connection for connection."""
    sys.path.insert(0, str(ROOT / "tests" / "gen"))
    try:
        import troubleshooting_pcap as gen
    finally:
        sys.path.remove(str(ROOT / "tests" / "gen"))
    truth = json.loads((PCAPS / "troubleshooting.ground-truth.json").read_text())
    clients, rogue = gen.schedule()
    planned = Counter(j["service"] for j in clients + rogue)
    recorded = Counter(c["service"] for c in truth["connections"])
    assert recorded == planned
    keys = [(c["egress_ip"], c["egress_port"]) for c in truth["connections"]]
    assert len(set(keys)) == len(keys), "two recorded connections share an egress address:port"
    problems = Counter(c["problem"] for c in truth["connections"])
    assert set(problems) == {None, "missing-header", "origin-rejects", "spoofed", "crc-mismatch"}
    assert truth["trusted"] == gen.TRUSTED
    assert (PCAPS / truth["capture"]).stat().st_size <= gen.MAX_BYTES


@pytest.mark.system
@pytest.mark.slow
def test_notebooks_on_a_fresh_recording(tmp_path: Path) -> None:
    """Record the troubleshooting capture anew and run every notebook and its checks on it."""
    import peers

    peers.require_peers()
    sys.path.insert(0, str(ROOT / "tests" / "gen"))
    try:
        import troubleshooting_pcap as gen
    finally:
        sys.path.remove(str(ROOT / "tests" / "gen"))
    try:
        gen.record(tmp_path)
    except peers.PeerError as exc:
        if "record again" not in str(exc):
            raise
        # the recorder refuses a capture with kernel drops or a reused egress port; once more
        gen.record(tmp_path)
    sys.path.insert(0, str(ROOT / "tests" / "gen"))
    try:
        import troubleshooting_log
    finally:
        sys.path.remove(str(ROOT / "tests" / "gen"))
    troubleshooting_log.write(tmp_path)  # nginx's log with the new recording's times
    envs = {
        "00-your-capture.ipynb": {
            "PCAPIP_CAPTURE": str(tmp_path / "troubleshooting.pcap"),
            "PCAPIP_TRUSTED": gen.TRUSTED,
        },
    }
    for name in NAMES:
        nb = run(name, envs.get(name, {"PCAPIP_TROUBLESHOOTING_DIR": str(tmp_path)}))
        assert not outputs(nb, "error")


def main() -> int:
    """Run every notebook with its checks and write back those whose outputs changed."""
    for name in NAMES:
        start = time.perf_counter()
        committed = nbformat.read(NOTEBOOKS / name, as_version=4)
        fresh = run(name)
        if first_difference(committed, fresh) or committed.metadata != fresh.metadata:
            nbformat.write(fresh, NOTEBOOKS / name)
            verdict = "rewritten"
        else:
            verdict = "unchanged"
        print(f"notebooks/{name}: {verdict} ({time.perf_counter() - start:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
