"""A recording read in parts (``pcapip.flows.parts``) gives exactly what one read gives.

Captures are split by the tools operators rotate with (``editcap -c``, ``tcpdump -C``),
down to one packet per file, so connections, their PROXY headers included, are cut
between files everywhere; the joined output (CSV, JSON, the table report, errors,
warnings, counters) must be byte for byte that of ``read_captures`` over the same files,
and the per-flow CSV that of the unsplit capture too.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pcapip.flows.parts import Part, PartOptions, read_part, read_recording, take_frames
from pcapip.flows.run import read_captures
from pcapip.report.analysis import Analysis
from pcapip.report.write import write_analysis

ROOT = Path(__file__).resolve().parent.parent
PCAPS = ROOT / "tests" / "pcaps"


def _out(table, errors, fmt: str, tmp: Path) -> tuple:
    path = tmp / f"out.{fmt}"
    write_analysis(Analysis(table, errors), fmt, path)
    return (
        path.read_bytes(),
        [str(e) for e in errors],
        [str(w) for w in table.warnings],
        dict(table.stats),
    )


def _same(paths: list[str], tmp: Path, **kw) -> bytes:
    """Parts joined == one read, in every format; the CSV."""
    one = read_captures(paths, **kw)
    opts = PartOptions(
        tuple(kw.get("toa_kinds") or ()), kw.get("attempt_timeout"), tuple(kw.get("vxlan_ports", ()))
    )
    for most in (1, 3):  # a task per file, and three consecutive files a task
        parts = read_recording(
            paths, opts, trusted=kw.get("trusted"), rules=kw.get("rules"), files_per_part=most
        )
        for fmt in ("csv", "json", "table"):
            assert _out(*parts, fmt, tmp) == _out(*one, fmt, tmp), (fmt, most)
    return _out(*one, "csv", tmp)[0]


def _split(tool: list[str], src: Path, into: Path) -> list[str]:
    into.mkdir()
    subprocess.run([*tool, str(src), str(into / "part.pcap")], check=True, capture_output=True)
    return sorted(str(p) for p in into.iterdir())


@pytest.fixture(scope="module")
def bench20k(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """20,000 packets of the benchmark's traffic: ~400 connections, PROXY v1/v2 and TOA."""
    path = tmp_path_factory.mktemp("bench") / "b20k.pcap"
    subprocess.run(
        [sys.executable, str(ROOT / "bench" / "gen_capture.py"), "--packets", "20000", str(path)],
        check=True,
        capture_output=True,
    )
    return path


@pytest.mark.system
@pytest.mark.parametrize("count", [1, 97, 4999])
def test_editcap_splits_join_to_the_unsplit_capture(bench20k: Path, tmp_path: Path, count: int) -> None:
    if shutil.which("editcap") is None:
        pytest.skip("editcap missing")
    if count == 1:  # every packet its own file: the first 3,000 packets are enough
        head = tmp_path / "head.pcap"
        subprocess.run(["editcap", "-r", str(bench20k), str(head), "1-3000"], check=True)
        src = head
    else:
        src = bench20k
    files = _split(["editcap", "-c", str(count)], src, tmp_path / "split")
    assert len(files) > 3
    csv = _same(files, tmp_path)
    whole = read_captures([str(src)])
    assert csv == _out(*whole, "csv", tmp_path)[0]


@pytest.mark.system
def test_tcpdump_rotation_joins(bench20k: Path, tmp_path: Path) -> None:
    if shutil.which("tcpdump") is None:
        pytest.skip("tcpdump missing")
    (tmp_path / "rot").mkdir()
    subprocess.run(
        ["tcpdump", "-r", str(bench20k), "-w", str(tmp_path / "rot" / "cap"), "-C", "2", "-Z", "root"],
        check=True,
        capture_output=True,
    )
    files = sorted(str(p) for p in (tmp_path / "rot").iterdir())
    files.sort(key=lambda p: (len(p), p))  # cap, cap1, cap2, … cap10
    assert len(files) >= 5
    assert _same(files, tmp_path) == _out(*read_captures([str(bench20k)]), "csv", tmp_path)[0]


SPLIT = ["flow-proxy-split", "flow-attempts", "flow-capture-end", "flow-udp", "flow-toa",
         "flow-proxy-misc", "nginx-rejects-proxy", "tunnel-vxlan", "haproxy-v2"]


@pytest.mark.system
@pytest.mark.parametrize("name", SPLIT)
def test_one_packet_per_file(name: str, tmp_path: Path) -> None:
    """Every boundary cut: headers split between files, attempts timing out in a later
    file, flows open at the recording's end, UDP, tunnels."""
    if shutil.which("editcap") is None:
        pytest.skip("editcap missing")
    files = _split(["editcap", "-c", "1"], PCAPS / f"{name}.pcap", tmp_path / "one")
    _same(files, tmp_path)


@pytest.mark.system
def test_a_proxy_header_cut_between_files_is_joined(tmp_path: Path) -> None:
    """The PROXY header split over two segments, each in its own file: one flow, one client,
    its header packets in two captures."""
    files = _split(["editcap", "-c", "1"], PCAPS / "flow-proxy-split.pcap", tmp_path / "one")
    table, errors = read_recording(files, PartOptions())
    spans = [{c for c, _ in frames} for frames in table.header_frames.values()]
    assert any(len(caps) >= 2 for caps in spans), spans
    single = read_captures([str(PCAPS / "flow-proxy-split.pcap")])[0]
    assert table.columns["client_ip"] == single.columns["client_ip"]
    assert table.columns["status"] == single.columns["status"]


def test_damage_and_options_carry_over(tmp_path: Path) -> None:
    """Damaged and undecodable captures among the parts, --trusted, --toa-kind and
    --attempt-timeout: the same errors, warnings and rows."""
    names = ["flow-toa.pcap", "bad-truncated-last.pcap", "not-a-capture.pcap",
             "flow-attempts.pcap", "empty.pcap", "tunnel-gre.pcap", "flow-spoof.pcap"]
    paths = [str(PCAPS / n) for n in names]
    _same(paths, tmp_path, trusted="10.0.0.0/8", toa_kinds=["+201"], attempt_timeout=1.5)


@pytest.mark.system
def test_rules_judge_the_joined_recording(tmp_path: Path) -> None:
    """--rules on a recording cut a packet per file: the rule column and rule findings of
    one read, the PROXY header's destination port read from a header split across files."""
    from pcapip.rules import RuleSet, parse_rules

    if shutil.which("editcap") is None:
        pytest.skip("editcap missing")
    rules = RuleSet(parse_rules("tcp:8001 10.77.2.2 9001 off ppv1\ntcp:80 og:x 8080 off ppv2\n"))
    files = []
    for name in ("haproxy-v1", "flow-proxy-split", "haproxy-noheader"):
        files += _split(["editcap", "-c", "1"], PCAPS / f"{name}.pcap", tmp_path / name)
    csv = _same(files, tmp_path, rules=rules).decode()
    assert "rule.mismatch" in csv and "rule.unmatched" in csv and ",1: tcp:8001" in csv


def test_parts_are_sent_whole(tmp_path: Path) -> None:
    """A part crosses processes: it pickles with its rows in memory."""
    import pickle

    from pcapip.flows.parts import read_part

    part = read_part([str(PCAPS / "flow-proxy-misc.pcap")], 3, PartOptions())
    back = pickle.loads(pickle.dumps(part))
    assert isinstance(back, Part) and back.number == 3
    assert len(back.rows) == len(part.rows) > 0
    assert (back.rows.cols["capture"] == 3).all()
    assert back.groups.size == len(part.rows)


def test_a_second_read_of_a_pcap_starts_at_its_first_run(bench20k: Path, tmp_path: Path) -> None:
    """``skip_to``: a classic pcap read from a record's offset gives the frames a whole read
    gives from there (numbers, bytes, offsets); pcapng and gzip are read from the start."""
    import gzip as gz

    from pcapip.sources import open_capture

    with open_capture(str(bench20k), batch_size=1000) as src:
        whole = list(src)
    at = whole[7]
    frame, offset = at.first_frame + 3, int(at.file_offset[3])
    with open_capture(str(bench20k), batch_size=1000) as src:
        assert src.skip_to(offset, frame)
        part = list(src)
    assert part[0].first_frame == frame
    tail = [(b.numbers().tolist(), b.file_offset.tolist()) for b in part]
    assert sum(len(b) for b in part) == sum(len(b) for b in whole) - (frame - 1)
    assert tail[0][0][0] == frame and tail[0][1][0] == offset
    assert part[0].frame_bytes(0) == at.frame_bytes(3)
    assert part[-1].frame_bytes(len(part[-1]) - 1) == whole[-1].frame_bytes(len(whole[-1]) - 1)
    squeezed = tmp_path / "b20k.pcap.gz"
    squeezed.write_bytes(gz.compress(bench20k.read_bytes(), compresslevel=1))
    for other in (squeezed, PCAPS / "loopback-dumpcap.pcapng"):
        with open_capture(str(other)) as src:
            assert not src.skip_to(100, 2)
            assert next(iter(src)).first_frame == 1
    # the second pass of a recording: frames taken from the first run on == from the start
    part = read_part([str(bench20k)], 0, PartOptions())
    keys = np.asarray([k for k in part.open_groups if part.runs[0].runs_with(np.asarray([k]))[0][0] > 1])
    runs = part.runs[0].runs_with(keys)
    assert keys.size and runs[0][0] > 1
    starts = [part.runs[0].start_of(a) for a, _ in runs]
    seek = take_frames(str(bench20k), keys, runs, PartOptions(), starts)
    full = take_frames(str(bench20k), keys, runs, PartOptions())
    assert sum(len(b) for b in seek) > 0
    assert [b.numbers().tolist() for b in seek] == [b.numbers().tolist() for b in full]
    assert [bytes(b.data) for b in seek] == [bytes(b.data) for b in full]


def test_pcapng_skips_between_batches_only_where_no_block_intervenes(
    bench20k: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pcapng file skips forward between batches when the interfaces and sections known
    are those at the target; a skip across an interface block is refused; the frames after
    a skip are a whole read's, and the second pass with skips takes the same frames."""
    from pcapip.sources import open_capture
    from pcapip.sources.capture import CaptureSource

    ng = tmp_path / "b20k.pcapng"
    subprocess.run(["editcap", "-F", "pcapng", str(bench20k), str(ng)], check=True)
    with open_capture(str(ng), batch_size=1000) as src:
        whole = list(src)
        known = (len(src.interfaces), len(src.sections))
    target = whole[12]
    with open_capture(str(ng), batch_size=1000) as src:
        it = iter(src)
        next(it)
        assert not src.skip_to(int(target.file_offset[0]), target.first_frame, known[0] + 1, 1)
        assert src.skip_to(int(target.file_offset[0]), target.first_frame, *known)
        got = next(it)
        assert not src.skip_to(int(whole[1].file_offset[0]), whole[1].first_frame, *known)
    assert got.first_frame == target.first_frame
    assert [got.frame_bytes(i) for i in range(5)] == [target.frame_bytes(i) for i in range(5)]
    small = PartOptions(batch_size=1000)
    part = read_part([str(ng)], 0, small)
    keys = part.open_groups
    runs = part.runs[0].runs_with(keys)
    assert runs[0][0] > 1000  # past the first batch: a skip once the interfaces are known
    starts = [part.runs[0].start_of(a) for a, _ in runs]
    skipped = []
    real = CaptureSource.skip_to

    def spy(self, *a):
        skipped.append(real(self, *a))
        return skipped[-1]

    monkeypatch.setattr(CaptureSource, "skip_to", spy)
    seek = take_frames(str(ng), keys, runs, small, starts)
    assert True in skipped
    full = take_frames(str(ng), keys, runs, small)
    assert [b.numbers().tolist() for b in seek] == [b.numbers().tolist() for b in full]
    assert [bytes(b.data) for b in seek] == [bytes(b.data) for b in full]


def test_parts_span_consecutive_files_of_one_label() -> None:
    """A part reads at most N consecutive files and never files of two vantage points."""
    from pcapip.flows.parts import _spans

    assert _spans(["", "", "", "", ""], 2) == [(0, 2), (2, 4), (4, 5)]
    assert _spans(["a", "a", "b", "b", "b", "a"], 3) == [(0, 2), (2, 5), (5, 6)]
    assert _spans(["x"] * 3, 1) == [(0, 1), (1, 2), (2, 3)]
    assert _spans([], 4) == []
