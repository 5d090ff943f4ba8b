"""Exit statuses and one-line errors of every command, as an operator's shell sees them.

0 ok, 1 findings at --fail-on, 2 usage or input errors, never a traceback: an output
path that cannot be written is refused before any packet is read; a reader that closes
the pipe early (``| head``) is not an error; binary output never goes to a terminal.
"""

from __future__ import annotations

import csv
import io
import os
import pty
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from pcapip.flows.columns import COLUMNS
from pcapip.report.formats import EXTENSIONS

ROOT = Path(__file__).resolve().parents[1]
PCAPS = ROOT / "tests" / "pcaps"
MISC = PCAPS / "flow-proxy-misc.pcap"
BIG = PCAPS / "troubleshooting.pcap"


def run(*args: str, stdout=subprocess.PIPE) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pcapip", *args],
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        timeout=60,
        env=dict(os.environ, COLUMNS="200"),
    )


def one_error_line(r: subprocess.CompletedProcess[str], *needles: str) -> str:
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("pcapip: error: "), r.stderr
    for n in needles:
        assert n in lines[0], (n, lines[0])
    return lines[0]


# ---------------------------------------------------------------------- output targets


def bad_targets(tmp: Path, ext: str) -> dict[str, tuple[str, str]]:
    """name -> (path, what the message says); every one fails for root too."""
    (tmp / "afile").write_text("x")
    (tmp / f"adir{ext}").mkdir()
    return {
        "missing-dir": (str(tmp / "missing" / f"x{ext}"), "does not exist"),
        "a-directory": (str(tmp / f"adir{ext}"), "is a directory"),
        "under-a-file": (str(tmp / "afile" / f"x{ext}"), "is not a directory"),
        "pseudo-fs": (f"/sys/pcapip-test{ext}", "cannot write"),
    }


ANALYZE_FORMATS = [
    *((ext, None) for ext in (".csv", ".tsv", ".json", ".parquet", ".txt")),
    *((".out", f) for f in ("table", "csv", "tsv", "json", "parquet")),
]


@pytest.mark.parametrize("target", ["missing-dir", "a-directory", "under-a-file", "pseudo-fs"])
@pytest.mark.parametrize(("ext", "fmt"), ANALYZE_FORMATS)
def test_analyze_refuses_the_output_before_reading(
    tmp_path: Path, target: str, ext: str, fmt: str | None
) -> None:
    """The capture is standard input left open: reading it would never end, so an exit
    within the timeout proves the output was checked first."""
    path, says = bad_targets(tmp_path, ext)[target]
    args = ["analyze", "-", "-o", path, *(["--format", fmt] if fmt else [])]
    proc = subprocess.Popen(
        [sys.executable, "-m", "pcapip", *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        out, err = proc.communicate(timeout=30)  # (stdin stays open until then)
    finally:
        proc.kill()
    r = subprocess.CompletedProcess(args, proc.returncode, out, err)
    one_error_line(r, f"-o {path}", says)
    assert out == ""


@pytest.mark.parametrize("target", ["missing-dir", "a-directory", "under-a-file", "pseudo-fs"])
@pytest.mark.parametrize(
    ("option", "ext"), [("-o", ".csv"), ("-o", ".parquet"), ("-w", ".pcapng")]
)
def test_live_refuses_the_output_before_capturing(
    tmp_path: Path, target: str, option: str, ext: str
) -> None:
    path, says = bad_targets(tmp_path, ext)[target]
    r = run("live", "-i", "lo", "--format", "csv", option, path)
    one_error_line(r, f"{option} {path}", says)
    assert r.stdout == ""  # no capture started: nothing streamed


@pytest.mark.parametrize("target", ["missing-dir", "a-directory", "under-a-file", "pseudo-fs"])
def test_wireshark_plugin_refuses_the_output(tmp_path: Path, target: str) -> None:
    path, says = bad_targets(tmp_path, ".lua")[target]
    one_error_line(run("wireshark-plugin", "-o", path), f"-o {path}", says)


def test_probing_leaves_no_file_behind(tmp_path: Path) -> None:
    """The output is created to prove it can be, then removed: a refused run leaves nothing."""
    xlsx = tmp_path / "flows.xlsx"  # probed, then refused for its extension
    one_error_line(run("analyze", str(MISC), "-o", str(xlsx)), "'.xlsx'")
    csv_out = tmp_path / "flows.csv"  # probed, then the capture is missing
    one_error_line(run("analyze", str(tmp_path / "nope.pcap"), "-o", str(csv_out)), "nope.pcap")
    one_error_line(run("live", "-i", "lo", "-o", str(csv_out), "--trusted", "10.0.0.0/33"), "/33")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("fmt", ["table", "csv", "tsv", "json", "parquet"])
@pytest.mark.parametrize("by", ["flow", "egress"])
def test_a_write_that_fails_at_write_time_is_one_line(fmt: str, by: str) -> None:
    """/dev/full passes every check and fails on the first write (ENOSPC), like a full disk."""
    r = run("analyze", str(MISC), "--format", fmt, "--by", by, "-o", "/dev/full")
    one_error_line(r, "cannot write /dev/full", "No space left on device")
    with open("/dev/full", "w") as full:
        r = run("analyze", str(MISC), "--format", fmt, "--by", by, stdout=full)
    one_error_line(r, "standard output", "No space left on device")


@pytest.mark.parametrize("args", [
    ["analyze", str(MISC)], ["analyze", str(MISC), "--format", "parquet"],
    ["show", str(MISC), "--flow", "1"], ["wireshark-plugin"],
])
def test_standard_output_closed_is_one_line(args: list[str], tmp_path: Path) -> None:
    """Started with standard output closed (``>&-``): a command that writes to it says so in
    one line, exit 2 (Python leaves ``sys.stdout`` None: it was a traceback); one writing
    to ``-o FILE`` runs as usual."""
    closed = subprocess.run([sys.executable, "-m", "pcapip", *args], capture_output=True,
                            text=True, cwd=ROOT, timeout=60, preexec_fn=lambda: os.close(1))
    one_error_line(closed, "standard output: Bad file descriptor")
    if args[0] == "analyze":
        out = tmp_path / "flows.csv"
        r = subprocess.run([sys.executable, "-m", "pcapip", "analyze", str(MISC), "-o", str(out)],
                           capture_output=True, text=True, cwd=ROOT, timeout=60,
                           preexec_fn=lambda: os.close(1))
        assert r.returncode == 0 and r.stderr == "", r.stderr
        assert out.read_text() == run("analyze", str(MISC), "--format", "csv").stdout


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (("analyze", "{cap}", "-o", "{cap}"), "-o"),
        (("analyze", "--format", "csv", "{cap}", "-o", "{link}", "--force"), "-o"),
        (("extract", "{cap}", "--flow", "1", "-w", "{cap}", "--force"), "-w"),
        (("rules", "{rules}", "-o", "{rules}", "--force"), "-o"),
    ],
)
def test_an_output_that_is_an_input_is_refused(tmp_path: Path, args: tuple, option: str) -> None:
    """Writing over the file being read would lose it: refused even with --force, through
    another name (a hard link) too, and the file is left as it was."""
    cap = tmp_path / "in.pcap"
    cap.write_bytes(MISC.read_bytes())
    os.link(cap, tmp_path / "link.csv")
    rules = tmp_path / "rules.txt"
    rules.write_text("tcp:80 origin.example.com 80 off toa\n")
    names = {"cap": str(cap), "link": str(tmp_path / "link.csv"), "rules": str(rules)}
    before = {p: p.read_bytes() for p in (cap, rules)}
    r = run(*(a.format(**names) for a in args))
    one_error_line(r, option, "which this command reads")
    assert {p: p.read_bytes() for p in before} == before


def test_parquet_to_a_name_that_is_not_utf8(tmp_path: Path) -> None:
    """A file name in the file system's bytes (not UTF-8) is written like any other; a
    dataset folder of such a name, which pyarrow cannot take, is one line."""
    out = os.path.join(os.fsencode(tmp_path), b"out\xff.parquet")
    r = run("analyze", "-o", os.fsdecode(out), str(MISC))
    assert r.returncode == 0, r.stderr
    with open(out, "rb") as fh:
        assert len(pd.read_parquet(fh)) == len(pd.read_csv(io.StringIO(run(
            "analyze", "--format", "csv", str(MISC)).stdout)))
    folder = os.fsdecode(os.path.join(os.fsencode(tmp_path), b"dir\xff")) + "/"
    one_error_line(run("analyze", "--format", "parquet", "-o", folder, str(MISC)), "UTF-8")


@pytest.mark.parametrize(
    "args",
    [
        ("analyze", "{missing}"),
        ("analyze", "{dir}"),
        ("analyze", "{under_file}"),
        ("show", "{missing}", "--packet", "1"),
        ("show", "{dir}", "--packet", "1"),
        ("show", "{under_file}", "--flow", "1"),
        ("tui", "{missing}"),
        ("tui", "{dir}"),
        ("tui", "{under_file}"),
    ],
)
def test_missing_or_wrong_input_is_one_line(tmp_path: Path, args: tuple[str, ...]) -> None:
    (tmp_path / "afile").write_text("x")
    names = {
        "missing": str(tmp_path / "nope.pcap"),
        "dir": str(tmp_path),
        "under_file": str(tmp_path / "afile" / "x.pcap"),
    }
    argv = [a.format(**names) for a in args]
    path = argv[1]
    one_error_line(run(*argv), path)


# ---------------------------------------------------------------------- formats and rows


def test_unknown_extension_is_refused_unless_the_format_is_named(tmp_path: Path) -> None:
    out = tmp_path / "flows.xlsx"
    line = one_error_line(run("analyze", str(MISC), "-o", str(out)), "'.xlsx'")
    assert all(ext in line for ext in EXTENSIONS) and "--format" in line
    assert not out.exists()
    one_error_line(run("analyze", str(MISC), "-o", str(tmp_path / "flows")), "no extension")
    r = run("analyze", str(MISC), "-o", str(out), "--format", "csv")
    assert r.returncode == 0, r.stderr
    assert out.read_text().splitlines()[0] == ",".join(COLUMNS)


@pytest.mark.parametrize("by", ["flow", "egress", "client"])
def test_tsv_has_the_csv_cells_tab_separated(tmp_path: Path, by: str) -> None:
    out = tmp_path / "flows.tsv"
    r = run("analyze", str(BIG), "--by", by, "-o", str(out))
    assert r.returncode == 0, r.stderr
    c = run("analyze", str(BIG), "--by", by, "--format", "csv")
    s = run("analyze", str(BIG), "--by", by, "--format", "tsv")
    assert s.stdout == out.read_text()  # the same bytes to stdout and to -o
    cells = list(csv.reader(io.StringIO(c.stdout)))
    assert [line.split("\t") for line in out.read_text().splitlines()] == cells
    if by == "flow":
        assert cells[0] == list(COLUMNS)
    df = pd.read_csv(out, sep="\t", dtype=str, keep_default_na=False)
    assert df.equals(pd.read_csv(io.StringIO(c.stdout), dtype=str, keep_default_na=False))


def test_tsv_escapes_tab_newline_and_backslash() -> None:
    from pcapip.report.export import tsv_lines

    buf = io.StringIO()
    tsv_lines([["a\tb", "c\nd", "e\\f", "g\rh", None, 7]], buf)
    assert buf.getvalue() == "a\\tb\tc\\nd\te\\\\f\tg\\rh\t\t7\n"


@pytest.mark.parametrize("command", [("analyze", str(MISC)), ("live", "-i", "lo")])
def test_negative_max_rows_is_refused(command: tuple[str, ...]) -> None:
    one_error_line(run(*command, "--max-rows", "-5"), "--max-rows", "-5")


def run_on_terminal(*args: str) -> tuple[int, str]:
    """Run with stdout on a pseudo-terminal (stderr captured apart)."""
    master, slave = pty.openpty()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "pcapip", *args],
            stdout=slave,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            timeout=60,
        )
    finally:
        os.close(slave)
        os.close(master)
    return proc.returncode, proc.stderr


def test_parquet_is_refused_on_a_terminal_and_fine_in_a_pipe() -> None:
    rc, err = run_on_terminal("analyze", str(MISC), "--format", "parquet")
    r = subprocess.CompletedProcess([], rc, "", err)
    one_error_line(r, "-o FILE.parquet")
    piped = subprocess.run(
        [sys.executable, "-m", "pcapip", "analyze", str(MISC), "--format", "parquet"],
        capture_output=True,
        cwd=ROOT,
        timeout=60,
    )
    assert piped.returncode == 0 and piped.stdout[:4] == b"PAR1"
    import pyarrow.parquet as pq

    assert pq.read_table(io.BytesIO(piped.stdout)).column_names == list(COLUMNS)


# ---------------------------------------------------------------------- closed pipes


def close_early(args: list[str], first: int) -> tuple[int, bytes]:
    """Read ``first`` bytes of stdout, close it, wait: (exit status, stderr)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "pcapip", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
        env=dict(os.environ, COLUMNS="200"),
    )
    assert proc.stdout is not None and proc.stderr is not None
    assert len(proc.stdout.read(first)) == first
    proc.stdout.close()
    err = proc.stderr.read()
    return proc.wait(timeout=120), err


@pytest.mark.parametrize("fmt", ["table", "csv", "tsv", "json", "parquet"])
@pytest.mark.parametrize(("by", "copies"), [("flow", 1), ("flow", 12), ("egress", 1)])
def test_every_format_exits_0_when_the_reader_stops(fmt: str, by: str, copies: int) -> None:
    """``| head -1``: small outputs (closed before the first write) and big ones (> the
    64 KiB pipe buffer, closed mid-write)."""
    args = ["analyze", *[str(BIG)] * copies, "--format", fmt, "--by", by, "--max-rows", "0"]
    rc, err = close_early(args, 4)
    # one file read 12 times goes back in time 11 times: that one warning, nothing else
    said = [ln for ln in err.decode().splitlines() if " go back before the last of " not in ln]
    assert rc == 0 and said == [] and err.count(b"\n") <= (copies > 1), err.decode()


def test_show_exits_0_when_the_reader_stops() -> None:
    rc, err = close_early(["show", str(BIG), "--flow", "28"], 4)
    assert rc == 0 and err == b"", err.decode()
