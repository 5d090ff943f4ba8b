"""Several captures are one recording in the order of time, not of names.

Real rotations (``tcpdump -C``, a ``-W`` ring) are named so that a shell's or pcapip's
own sorted glob puts them out of time order; read in that order, connections were cut at
every jump back and came out as extra mid-stream rows, with exit 0 and no word. The
reference is ``mergecap``, which merges files by time: pcapip over the rotated files must
give byte for byte what it gives over mergecap's merge (and over the unsplit capture).
Files that overlap in time (taken at once) cannot be put one after the other: that is said.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import pcapip
from pcapip.errors import CaptureWarning
from pcapip.sources.order import first_time, in_time_order

ROOT = Path(__file__).resolve().parent.parent
PCAPS = ROOT / "tests" / "pcaps"

pytestmark = pytest.mark.system


def _tool(name: str) -> str:
    exe = shutil.which(name)
    if exe is None:
        pytest.skip(f"{name} is not installed")
    return exe


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 20,000-packet capture (~17 MB, ~440 connections) rotated by tcpdump every 1 MB:
    ``cap``, ``cap1`` … ``cap17``."""
    tcpdump = _tool("tcpdump")
    d = tmp_path_factory.mktemp("rotation")
    big = d / "big.pcap"
    subprocess.run([sys.executable, str(ROOT / "bench" / "gen_capture.py"), "--packets", "20000",
                    str(big)], check=True, capture_output=True)
    (d / "rot").mkdir()
    (d / "ring").mkdir()
    for sub, extra in (("rot", []), ("ring", ["-W", "5"])):
        subprocess.run([tcpdump, "-Z", "root", "-r", str(big), "-w", str(d / sub / "cap"), "-C",
                        "1", *extra], check=True, capture_output=True)
    return d


def _csv(a: pcapip.Analysis) -> str:
    return a.flows.to_csv(index=False)


def _kinds(a: pcapip.Analysis) -> list[str]:
    return [w.kind for w in a.warnings]


def _merged(files: list[Path], out: Path) -> Path:
    subprocess.run([_tool("mergecap"), "-w", str(out), *map(str, files)], check=True,
                   capture_output=True)
    return out


def test_tcpdump_rotation_in_name_order_reads_as_the_whole(recording: Path) -> None:
    files = sorted((recording / "rot").iterdir())  # cap, cap1, cap10 … cap17, cap2 …
    assert len(files) > 10 and files[2].name == "cap10"
    whole = pcapip.analyze(recording / "big.pcap")
    merged = pcapip.analyze(_merged(files, recording / "rot-merged.pcap"))
    assert _csv(merged) == _csv(whole)
    for given in (str(recording / "rot" / "cap*"), [str(f) for f in files]):
        a = pcapip.analyze(given)
        assert _csv(a) == _csv(whole)
        said = [w for w in a.warnings if w.kind == "reordered"]
        assert len(said) == 1 and said[0].file.endswith("/cap2"), said
        assert f"before {recording / 'rot' / 'cap17'} given ahead of it" in said[0].message
        assert "overlap" not in _kinds(a)
    # a vantage point per directory reads a file per part: the same
    a = pcapip.analyze([str(f) for f in files], group_by_dir=True)
    assert _csv(a) == _csv(whole) and _kinds(a).count("reordered") == 1
    # in time order already (ls -v): nothing to say
    in_order = sorted(files, key=lambda f: int(f.name[3:] or 0))
    a = pcapip.analyze([str(f) for f in in_order])
    assert _csv(a) == _csv(whole) and "reordered" not in _kinds(a)


def test_ring_buffer_starts_at_its_oldest_file(recording: Path) -> None:
    files = sorted((recording / "ring").iterdir())
    assert [f.name for f in files] == [f"cap{k}" for k in range(5)]
    times = [first_time(str(f)) for f in files]
    assert times != sorted(times)  # the ring wrapped: cap0 is not the oldest
    merged = pcapip.analyze(_merged(files, recording / "ring-merged.pcap"))
    a = pcapip.analyze([str(f) for f in files])
    assert _csv(a) == _csv(merged)
    assert "reordered" in _kinds(a)
    ordered, _ = in_time_order([str(f) for f in files])
    assert [first_time(p) for p in ordered] == sorted(times)


def test_files_taken_at_the_same_time_are_said_to_overlap(tmp_path: Path) -> None:
    """Two captures of one moment (split by egress address with tshark): read one after
    the other, each side says so, in one read and read a file per part alike; kept apart
    as two vantage points (two directories, --group-by-dir) nothing is said."""
    tshark = _tool("tshark")
    src = PCAPS / "troubleshooting.pcap"
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a, b = tmp_path / "a" / "one.pcap", tmp_path / "b" / "two.pcap"
    for out, flt in ((a, "ip.addr==10.77.2.1"), (b, "!(ip.addr==10.77.2.1)")):
        subprocess.run([tshark, "-r", str(src), "-Y", flt, "-w", str(out)], check=True,
                       capture_output=True)
    one = pcapip.analyze([str(a), str(b)])
    over = [w for w in one.warnings if w.kind == "overlap"]
    assert len(over) == 1 and over[0].file == str(a), one.warnings  # b starts first: read first
    assert f"go back before the last of {b}" in over[0].message and "mergecap" in over[0].message
    together = tmp_path / "a" / "two.pcap"
    shutil.copy(b, together)
    parts = pcapip.analyze([str(a), str(together)], group_by_dir=True)  # one directory
    assert [str(w) for w in parts.warnings] == [
        str(w).replace(str(b), str(together)) for w in one.warnings]
    apart = pcapip.analyze([str(a), str(b)], group_by_dir=True)
    assert not {"overlap", "reordered"} & set(_kinds(apart)), apart.warnings


def test_standard_input_keeps_its_place_and_is_said_out_of_order(tmp_path: Path) -> None:
    """stdin cannot be looked at ahead: read where it is given, after a later file."""
    early = PCAPS / "troubleshooting.pcap"
    later = tmp_path / "later.pcap"
    subprocess.run([_tool("editcap"), "-t", "3600", str(early), str(later)], check=True,
                   capture_output=True)
    with open(early, "rb") as stdin:
        r = subprocess.run([str(Path(sys.executable).parent / "pcapip"), "analyze", "--format",
                            "csv", str(later), "-"], stdin=stdin, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("pcapip: warning: -:")]
    assert len(lines) == 1 and f"go back before the last of {later}" in lines[0], r.stderr
    assert "Traceback" not in r.stderr


def test_first_time_of_what_has_no_packet(tmp_path: Path) -> None:
    assert first_time("-") is None
    assert first_time(str(PCAPS / "empty.pcap")) is None
    assert first_time(str(tmp_path / "missing.pcap")) is None
    # files without a known first packet keep their places; the others are ordered
    late, early = str(PCAPS / "troubleshooting.pcap"), str(PCAPS / "flow-toa.pcap")
    assert first_time(late) > first_time(early)
    given = [late, str(PCAPS / "empty.pcap"), early]
    ordered, said = in_time_order(given)
    assert ordered == [early, str(PCAPS / "empty.pcap"), late]
    assert isinstance(said, CaptureWarning) and said.file == early


def test_a_pipe_is_not_looked_at_ahead(tmp_path: Path) -> None:
    """``<(zcat …)`` is a pipe: a look at its first packet would take those bytes from the
    read proper; it is read whole where it is given, and said to go back in time."""
    import os
    import threading

    early = PCAPS / "troubleshooting.pcap"
    later = tmp_path / "later.pcap"
    subprocess.run([_tool("editcap"), "-t", "3600", str(early), str(later)], check=True,
                   capture_output=True)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    writer = threading.Thread(target=lambda: fifo.write_bytes(early.read_bytes()))
    writer.start()
    try:
        a = pcapip.analyze([str(later), str(fifo)])
    finally:
        writer.join(timeout=30)
    alone = pcapip.analyze(str(early))
    assert a.stats["packets"] == 2 * alone.stats["packets"] and not a.errors
    assert [w.kind for w in a.warnings] == ["overlap"] and a.warnings[0].file == str(fifo)
