"""``pcapip resolve`` on the command line: formats, -o, the summary and the unparseable
lines on stderr, records in log order, exit status 0/2 with one-line errors.

The log is written for tests/pcaps/haproxy-v1.pcap from its truth file (HAProxy's own
log of which egress port carried which client) in nginx's format, so the expected client
of each record comes from HAProxy, not from pcapip."""

from __future__ import annotations

import io
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from tools import require_tool

import pcapip
from pcapip.resolve.columns import ADDED_COLUMNS, added_table

ROOT = Path(__file__).resolve().parents[1]
PCAP = ROOT / "tests" / "pcaps" / "haproxy-v1.pcap"
TRUTH = json.loads((ROOT / "tests" / "pcaps" / "haproxy-v1.truth.json").read_text())
FORMAT = '$remote_addr:$remote_port [$time_local] "$request" $status'


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pcapip", *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=60)


@pytest.fixture(scope="module")
def log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Records in reverse connection order (times from the capture's packets, cut to the
    second and written at +0200), with a bad line between them."""
    flows = pcapip.analyze(PCAP).flows
    lines = []
    for rec in reversed(TRUTH["haproxy_records"]):
        f = flows[(flows.egress_ip == rec["egress_ip"]) & (flows.egress_port == rec["egress_port"])]
        t = f.start.iloc[0].tz_convert("+02:00").strftime("%d/%b/%Y:%H:%M:%S %z")
        lines.append(f'{rec["egress_ip"]}:{rec["egress_port"]} [{t}] "GET /{rec["client_port"]} HTTP/1.0" 200')
    lines.insert(2, "this is not a record")
    path = tmp_path_factory.mktemp("log") / "access.log"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_csv_keeps_log_order_and_reports_the_bad_line(log: Path) -> None:
    r = run("resolve", str(PCAP), "--log", str(log), "--nginx-format", FORMAT, "--format", "csv")
    assert r.returncode == 0, r.stderr
    out = pd.read_csv(io.StringIO(r.stdout), dtype=str)
    assert list(out.columns) == ["remote_addr", "remote_port", "time_local", "request", "status",
                                 "client_ip", "client_port", "method", "flow", "match", "candidates"]
    want = list(reversed(TRUTH["haproxy_records"]))
    assert list(out.remote_port) == [str(w["egress_port"]) for w in want]
    assert list(out.client_port) == [str(w["client_port"]) for w in want]
    assert set(out.client_ip) == {w["client_ip"] for w in want}
    assert set(out["match"]) == {"exact"}
    n = len(want)
    assert f"pcapip: resolve: {n} records: {n} exact, 0 by-address, 0 ambiguous, 0 none; " \
           "1 unparseable line" in r.stderr
    assert f"{log}, line 3: does not fit the log format: this is not a record" in r.stderr


def test_json_and_table_to_files(log: Path, tmp_path: Path) -> None:
    base = ["resolve", str(PCAP), "--log", str(log), "--nginx-format", FORMAT]
    assert run(*base, "-o", str(tmp_path / "out.jsonl")).returncode == 0
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [r["client_port"] for r in rows] == [
        w["client_port"] for w in reversed(TRUTH["haproxy_records"])]
    assert all(isinstance(r["flow"], int) and r["candidates"] == 1 for r in rows)
    assert run(*base, "-o", str(tmp_path / "out.txt")).returncode == 0
    table = (tmp_path / "out.txt").read_text()
    assert "client_ip" in table and TRUTH["haproxy_records"][0]["client_ip"] in table


def test_without_the_port_no_record_gets_a_client(log: Path) -> None:
    """The four connections are within one second: by address, every record is ambiguous."""
    r = run("resolve", str(PCAP), "--log", str(log), "--nginx-format", FORMAT, "--no-port",
            "--format", "json")
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert {(x["match"], x["candidates"], x["client_ip"]) for x in rows} == {("ambiguous", 4, None)}


def test_log_from_stdin_and_gzip(log: Path, tmp_path: Path) -> None:
    import gzip

    want = run("resolve", str(PCAP), "--log", str(log), "--nginx-format", FORMAT,
               "--format", "csv").stdout
    gz = tmp_path / "access.log.gz"
    gz.write_bytes(gzip.compress(log.read_bytes()))
    assert run("resolve", str(PCAP), "--log", str(gz), "--nginx-format", FORMAT,
               "--format", "csv").stdout == want
    piped = subprocess.run([sys.executable, "-m", "pcapip", "resolve", str(PCAP), "--log", "-",
                            "--nginx-format", FORMAT, "--format", "csv"], input=log.read_text(),
                           capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert piped.returncode == 0 and piped.stdout == want
    _one_error(run("resolve", "-", "--log", "-"), "standard input")
    closed = subprocess.run([sys.executable, "-m", "pcapip", "resolve", str(PCAP), "--log", "-",
                             "--nginx-format", FORMAT], stdin=subprocess.DEVNULL,
                            capture_output=True, text=True, cwd=ROOT, timeout=60,
                            preexec_fn=lambda: os.close(0))
    _one_error(closed, "--log -: no usable standard input")


@pytest.mark.parametrize("codec", ["zstd", "lz4", "gzip"])
def test_compressed_logs_are_read_by_content(codec: str, log: Path, tmp_path: Path) -> None:
    """A rotated log compressed by the ``zstd``, ``lz4`` or ``gzip`` tool resolves as the
    plain one, whatever its name, named by URL, and on standard input."""
    tool = require_tool(codec)
    want = run("resolve", str(PCAP), "--log", str(log), "--nginx-format", FORMAT,
               "--format", "csv").stdout
    packed = subprocess.run([tool, "-c", str(log)], capture_output=True, check=True).stdout
    named = tmp_path / "access.log.1"  # logrotate's name, no suffix to go by
    named.write_bytes(packed)
    for name in (str(named), f"file://{named}"):  # a path, or a URL fsspec reads
        assert run("resolve", str(PCAP), "--log", name, "--nginx-format", FORMAT,
                   "--format", "csv").stdout == want, name
    piped = subprocess.run([sys.executable, "-m", "pcapip", "resolve", str(PCAP), "--log", "-",
                            "--nginx-format", FORMAT, "--format", "csv"], input=packed,
                           capture_output=True, cwd=ROOT, timeout=60)
    assert piped.returncode == 0 and piped.stdout.decode() == want, piped.stderr


@pytest.mark.parametrize("codec", ["zstd", "lz4", "gzip"])
def test_a_cut_compressed_log_resolves_what_the_tool_recovers(
    codec: str, log: Path, tmp_path: Path
) -> None:
    """A compressed log cut short (rotation still writing it, a copy cut off): the records
    in what the codec's own tool recovers from it are resolved and written, as from that
    text, then one error names the log and the line the damage follows; exit 2."""
    tool = require_tool(codec)
    big = tmp_path / "big.log"  # each copy asks for other pages: blocks that compress
    rng = random.Random(7)
    big.write_text("".join(log.read_text().replace(" /", f" /{rng.getrandbits(64):x}/")
                           for _ in range(1500)))
    small_blocks = ["-B4"] if codec == "lz4" else []  # 64 KB blocks, so part decodes
    packed = subprocess.run([tool, *small_blocks, "-c", str(big)], capture_output=True,
                            check=True).stdout
    cut = tmp_path / "cut.log"
    cut.write_bytes(packed[: len(packed) * 2 // 3])
    recovered = subprocess.run([tool, "-d", "-c"], input=cut.read_bytes(),
                               capture_output=True).stdout
    assert 0 < len(recovered) < big.stat().st_size
    text = tmp_path / "recovered.log"
    text.write_bytes(recovered)
    want = run("resolve", str(PCAP), "--log", str(text), "--nginx-format", FORMAT,
               "--format", "csv")
    got = run("resolve", str(PCAP), "--log", str(cut), "--nginx-format", FORMAT,
              "--format", "csv")
    assert got.returncode == 2 and want.returncode == 0
    assert got.stdout == want.stdout and len(got.stdout.splitlines()) > 100
    last = got.stderr.strip().splitlines()[-1]
    lines = recovered.count(b"\n") + (not recovered.endswith(b"\n"))
    assert last.startswith(f"pcapip: error: --log {cut}: after line {lines}: "), last
    assert "Traceback" not in got.stderr
    from pcapip.resolve import LogSpec, resolve_log

    df = resolve_log(pcapip.analyze(PCAP), str(cut), LogSpec(kind="nginx", format=FORMAT))
    assert len(df) == len(want.stdout.splitlines()) - 1
    assert df.attrs["damage"].startswith(f"after line {lines}: ")


def _one_error(r: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert r.returncode == 2, (r.returncode, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(("pcapip: error: ", "Error: ")), r.stderr
    for n in needles:
        assert n in lines[0], (n, lines[0])


def test_errors_are_one_line_and_exit_2(log: Path, tmp_path: Path) -> None:
    pcap = str(PCAP)
    _one_error(run("resolve", pcap, "--log", str(tmp_path / "nope.log")), "nope.log", "no such file")
    _one_error(run("resolve", pcap, "--log", f"file://{tmp_path}/nope.log"),
               f"--log file://{tmp_path}/nope.log: cannot open: No such file")
    _one_error(run("resolve", pcap, "--log", str(log)), "none of its", "line 1")  # combined
    _one_error(run("resolve", pcap, "--log", str(log), "--jsonl", "--csv"), "one log format")
    _one_error(run("resolve", pcap, "--log", str(log), "--tz", "Nowhere/City"), "--tz")
    _one_error(run("resolve", pcap, "--log", str(log), "--nginx-format", "no variables"),
               "no $variable")
    _one_error(run("resolve", pcap, "--log", str(log), "--nginx-format", FORMAT, "-o",
                   str(tmp_path / "x.xlsx")), "unknown extension")
    _one_error(run("resolve", pcap, "--log", str(log), "--nginx-format", FORMAT, "--ip-field",
                   "addr"), "--ip-field 'addr'", "remote_addr")
    _one_error(run("resolve", str(tmp_path / "missing.pcap"), "--log", str(log)), "missing.pcap")
    _one_error(run("resolve", pcap, "--log", str(log), "--nginx-format", FORMAT,
                   "--duration-field", "took"), "--duration-field 'took'")
    import lzma

    xz = tmp_path / "access.log.xz"
    xz.write_bytes(lzma.compress(log.read_bytes()))
    _one_error(run("resolve", pcap, "--log", str(xz), "--nginx-format", FORMAT),
               "xz-compressed data (decompress it first")
    binary = tmp_path / "binary.log"  # a capture given as the log: breaks no error line
    binary.write_bytes(PCAP.read_bytes()[:3000] + "\x0b\x1c\u2028\x85 tail".encode())
    _one_error(run("resolve", pcap, "--log", str(binary), "--nginx-format", FORMAT),
               "none of its", "\\x00")
    js = tmp_path / "a.jsonl"
    js.write_text('{"when": 1, "who": "10.0.0.1"}\n')
    _one_error(run("resolve", pcap, "--log", str(js), "--jsonl"), "no ip field", "who")
    assert "Traceback" not in run("resolve", pcap, "--log", str(js), "--jsonl").stderr
    # a log none of whose lines parses: the error says how many did not, and quotes the first
    bad = tmp_path / "bad.jsonl"
    bad.write_text("".join(f"garbage {i}\n" for i in range(1200)))
    for fmt in ("--jsonl", "--csv"):
        _one_error(run("resolve", pcap, "--log", str(bad), fmt, "--ip-field", "ip"),
                   "--ip-field 'ip'", "no records" if fmt == "--jsonl" else "garbage 0")
    _one_error(run("resolve", pcap, "--log", str(bad), "--jsonl", "--ip-field", "ip"),
               "1,200 lines did not parse", "line 1: not JSON", "garbage 0")


def test_empty_log_is_zero_records(tmp_path: Path) -> None:
    empty = tmp_path / "empty.log"
    empty.write_text("")
    r = run("resolve", str(PCAP), "--log", str(empty), "--format", "csv")
    assert r.returncode == 0, r.stderr
    assert "0 records" in r.stderr


def test_readme_lists_the_added_columns() -> None:
    section = (ROOT / "README.md").read_text().split("\n## Who made this request?\n", 1)[1]
    section = section.split("\n## ", 1)[0]
    table = "".join(f"{line}\n" for line in section.splitlines() if line.startswith("|"))
    assert table == added_table()
    header = next(line for line in section.splitlines() if line.startswith("time_local "))
    assert header.split()[-len(ADDED_COLUMNS):] == list(ADDED_COLUMNS)  # the pasted run's


@pytest.mark.parametrize("mode", [[], ["--haproxy"], ["--jsonl"], ["--csv"],
                                  ["--jsonl", "--ip-field", "a", "--time-field", "t"]])
def test_garbage_logs_never_crash(mode: list[str], log: Path, tmp_path: Path) -> None:
    import random

    rng = random.Random(7)
    good = log.read_text().splitlines()
    lines = [
        bytes(rng.randrange(256) for _ in range(rng.randrange(1, 80))) for _ in range(20)
    ] + [
        b'{"a": "10.77.2.1", "t": 1e400, "x": [1, {"b": null}]}',
        b'{"a": ["10.77.2.1"], "t": "2026-13-45T99:99:99Z", "ip": 5, "time": true}',
        b'{"a": "10.77.2.1", "t": -1}', b"a,t\n10.77.2.1,", b"\x00\xff\xfe",
        good[0][:30].encode(), good[1].encode(), b"\r", b"\\", b'"unterminated',
    ]
    rng.shuffle(lines)
    bad = tmp_path / "garbage.log"
    bad.write_bytes(b"\n".join(lines))
    r = run("resolve", str(PCAP), "--log", str(bad), *mode, "--format", "json")
    assert r.returncode in (0, 2), r.stderr
    assert "Traceback" not in r.stderr
    assert all(line.startswith(("pcapip: ", "Error: ")) for line in r.stderr.splitlines()), r.stderr
    if r.returncode == 0:
        assert "unparseable line" in r.stderr


def test_same_egress_port_to_two_origins_notes_origin_port(tmp_path: Path) -> None:
    """One egress ip:port open to two origins at once: ambiguous, and stderr says which
    option settles it; with it, the record is exact (a capture built for the case)."""
    from test_resolve_match import EGRESS, ORIGIN, T0, _capture

    _capture(tmp_path, [(T0, 40000, ("203.0.113.1", 1111), ORIGIN, 1.0),
                        (T0 + 0.2, 40000, ("203.0.113.2", 2222), ("198.51.100.21", 8080), 1.0)])
    log = tmp_path / "app.jsonl"
    log.write_text(json.dumps({"ip": EGRESS, "port": 40000, "time": T0 + 0.5}) + "\n")
    args = ["resolve", str(tmp_path / "resolve.pcap"), "--log", str(log), "--jsonl",
            "--format", "json"]
    r = run(*args)
    assert json.loads(r.stdout)["match"] == "ambiguous"
    assert "--origin-port" in r.stderr
    r = run(*args, "--origin-port", "8080")
    assert json.loads(r.stdout)["client_ip"] == "203.0.113.2" and "note" not in r.stderr


def test_python_resolve_log_is_what_the_cli_writes(log: Path) -> None:
    from pcapip.resolve import LogSpec, resolve_log

    df = resolve_log(pcapip.analyze(PCAP), str(log), LogSpec(kind="nginx", format=FORMAT))
    cli = run("resolve", str(PCAP), "--log", str(log), "--nginx-format", FORMAT,
              "--format", "csv").stdout
    buf = io.StringIO()
    df.to_csv(buf, index=False, lineterminator="\n")
    assert buf.getvalue() == cli
    assert df.attrs["unparseable"] == 1 and df.attrs["examples"][0][0] == 3
    assert df.attrs["damage"] is None


@pytest.mark.parametrize("seed", range(5))
def test_csv_writer_writes_what_the_csv_module_writes(seed: int) -> None:
    """Differential: the column-at-a-time CSV writer against the csv module row by row, on
    text that needs quoting (commas, quotes, newlines; CR and U+2028 do not), missing
    values of every kind, numbers in text columns, Arrow-backed text columns (a log's own
    fields), and each kind of added column."""
    import csv
    import random

    import numpy as np

    from pcapip.resolve import write

    rng = random.Random(seed)
    n = 300
    alphabet = ['a', ' ', ',', '"', '\n', '\r', '\u2028', 'é', '', '1']
    text = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 4))) for _ in range(n)]
    plain = [rng.choice(["GET / HTTP/1.1", "10.0.0.1", "-", ""]) for _ in range(n)]
    mixed = [rng.choice([None, np.nan, pd.NA, 7, 2.5, "x,y", "z"]) for _ in range(n)]
    df = pd.DataFrame({
        "text": pd.Series(text, dtype=object),
        "plain": pd.Series(plain, dtype=object),
        "mixed": pd.Series(mixed, dtype=object),
        # a log's own fields, as the readers give them: Arrow-backed text, NaN missing
        "text_arrow": pd.Series([rng.choice([t, None]) for t in text],
                                dtype=pd.StringDtype("pyarrow", na_value=np.nan)),
        "plain_arrow": pd.Series(plain, dtype=pd.StringDtype("pyarrow", na_value=np.nan)),
        "client_ip": pd.array([rng.choice([None, "10.1.1.1", "::1"]) for _ in range(n)],
                              dtype="string"),
        "client_port": pd.array([rng.choice([None, 0, 65535, 443]) for _ in range(n)],
                                dtype="UInt16"),
        "flow": pd.array([rng.choice([None, 1, 2**40]) for _ in range(n)], dtype="Int64"),
        "match": pd.Categorical([rng.choice(["exact", "none"]) for _ in range(n)],
                                categories=["exact", "by-address", "ambiguous", "none"]),
        "candidates": np.array([rng.randint(0, 3) for _ in range(n)], dtype=np.int64),
        "ratio": [rng.choice([0.1, -0.0, 1e300, float("nan")]) for _ in range(n)],
    })
    want = io.StringIO()
    w = csv.writer(want, lineterminator="\n")
    w.writerow(df.columns)
    w.writerows(df.astype(object).where(df.notna(), None).itertuples(index=False))
    for frame, expected in ((df, want.getvalue()), (df[["text"]], None), (df.iloc[:0], None),
                            (df[["text_arrow"]], None), (df[["plain_arrow", "text_arrow"]], None)):
        got = io.StringIO()
        old = write.SLICE, write.SLICE_BYTES
        write.SLICE, write.SLICE_BYTES = 7, 300  # slices by rows and by bytes, a last short one
        try:
            write.write_csv(frame, got)
        finally:
            write.SLICE, write.SLICE_BYTES = old
        if expected is None:
            ref = io.StringIO()
            r = csv.writer(ref, lineterminator="\n")
            r.writerow(frame.columns)
            r.writerows(frame.astype(object).where(frame.notna(), None).itertuples(index=False))
            expected = ref.getvalue()
        assert got.getvalue() == expected


def test_troubleshooting_access_log_is_what_its_script_writes(tmp_path: Path) -> None:
    """tests/pcaps/troubleshooting.access.log (the notebook's) is derived, not hand-written:
    its generator, run on the committed capture and ground truth, writes the same bytes."""
    import shutil

    if shutil.which("tshark") is None:
        pytest.skip("tshark is not installed")
    pcaps = ROOT / "tests" / "pcaps"
    for name in ("troubleshooting.pcap", "troubleshooting.ground-truth.json"):
        shutil.copy(pcaps / name, tmp_path / name)
    sys.path.insert(0, str(ROOT / "tests" / "gen"))
    try:
        import troubleshooting_log
    finally:
        sys.path.remove(str(ROOT / "tests" / "gen"))
    written = troubleshooting_log.write(tmp_path)
    assert written.read_bytes() == (pcaps / "troubleshooting.access.log").read_bytes()
    assert len(written.read_text().splitlines()) == len(
        json.loads((pcaps / "troubleshooting.ground-truth.json").read_text())["origin_log"])
