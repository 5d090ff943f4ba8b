"""The notebooks in notebooks/ run top to bottom, and their own asserts pass.

Each notebook checks pcapip against the ground truth recorded next to
tests/pcaps/troubleshooting.pcap (HAProxy's and the relay's logs, the clients'
sockets), so running it is the test; this module runs them in a fresh kernel
of this interpreter with nbclient and fails on any cell error. The notebooks
are committed without outputs; they are executed in memory, never rewritten.
With root and the peers (HAProxy, nginx, tcpdump) available, the notebooks are
also run against a fresh recording: their asserts must hold for any run of the
generator, not only for the committed capture.
"""

from __future__ import annotations

import json
import os
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
PCAPS = ROOT / "tests" / "pcaps"
NAMES = ["01-getting-started.ipynb", "02-troubleshooting.ipynb"]
CELL_TIMEOUT = 120  # seconds; a whole notebook takes a few


def execute(nb: Any, env: dict[str, str] | None = None) -> float:
    """Run ``nb`` in a python3 kernel started from this interpreter; seconds taken.

    Raises nbclient's CellExecutionError (with the cell and its traceback) on
    the first failing cell.
    """
    old = {k: os.environ.get(k) for k in (env or {})}
    os.environ.update(env or {})
    os.environ.setdefault("MPLBACKEND", "Agg")
    try:
        client = nbclient.NotebookClient(
            nb,
            kernel_name="python3",
            timeout=CELL_TIMEOUT,
            resources={"metadata": {"path": str(NOTEBOOKS)}},
        )
        start = time.perf_counter()
        client.execute()
        return time.perf_counter() - start
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def outputs(nb: Any, output_type: str | None = None) -> list[Any]:
    return [
        o
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.get("outputs", [])
        if output_type is None or o.output_type == output_type
    ]


def test_kernel_is_this_interpreter() -> None:
    """``python3`` must resolve to the venv running the tests, not a system Python."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("import sys, pcapip; print(sys.prefix)")]
    execute(nb)
    (out,) = outputs(nb, "stream")
    assert Path(out.text.strip()).resolve() == Path(sys.prefix).resolve()


@pytest.mark.parametrize("name", NAMES)
def test_committed_without_outputs(name: str) -> None:
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code, "no code cells"
    stale = [i for i, c in enumerate(code) if c.outputs or c.execution_count is not None]
    assert not stale, f"{name}: code cells {stale} carry outputs; clear them before committing"
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3"


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_notebook_runs(name: str) -> None:
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    seconds = execute(nb)
    assert not outputs(nb, "error")
    asserts = sum(c.source.count("assert ") for c in nb.cells if c.cell_type == "code")
    assert asserts >= 5, f"{name} checks too little ({asserts} asserts)"
    if name.startswith("01-"):
        images = [o for o in outputs(nb) if "image/png" in o.get("data", {})]
        assert len(images) == 2, "the two plots did not render"
    print(f"{name}: {seconds:.1f} s")


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
    """Record the troubleshooting capture anew and run both notebooks on it."""
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
    for name in NAMES:
        nb = nbformat.read(NOTEBOOKS / name, as_version=4)
        execute(nb, {"PCAPIP_TROUBLESHOOTING_DIR": str(tmp_path)})
        assert not outputs(nb, "error")
