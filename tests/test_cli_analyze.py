"""``pcapip analyze`` and ``pcapip show`` as an operator runs them: a real process, real exit codes."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from pcapip import analyze
from pcapip.flows.columns import COLUMNS

ROOT = Path(__file__).resolve().parents[1]
PCAPS = ROOT / "tests" / "pcaps"
MISC = PCAPS / "flow-proxy-misc.pcap"


def run(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    env = dict(os.environ, COLUMNS="200")
    return subprocess.run(
        [sys.executable, "-m", "pcapip", *args],
        input=stdin,
        capture_output=True,
        cwd=ROOT,
        env=env,
        timeout=120,
    )


def _csv(text: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text.decode())))


def test_csv_is_the_default_off_a_terminal_and_has_the_schema() -> None:
    r = run("analyze", str(MISC))
    assert r.returncode == 0, r.stderr
    assert r.stdout.decode().splitlines()[0] == ",".join(COLUMNS)
    rows = _csv(r.stdout)
    f = analyze(MISC).flows
    assert len(rows) == len(f)
    for row, (_, ref) in zip(rows, f.iterrows(), strict=True):
        assert int(row["flow"]) == ref.flow
        assert row["egress_ip"] == ref.egress_ip and int(row["egress_port"]) == ref.egress_port
        assert row["client_ip"] == ("" if pd.isna(ref.client_ip) else ref.client_ip)
        assert row["method"] == ref.method and row["status"] == ref.status
        assert row["start"].endswith("Z") and row["start"][:19] == ref.start.strftime(
            "%Y-%m-%dT%H:%M:%S"
        )


def test_json_lines_match_csv() -> None:
    c = _csv(run("analyze", str(MISC), "--format", "csv").stdout)
    j = [
        json.loads(line)
        for line in run("analyze", str(MISC), "--format", "json").stdout.splitlines()
    ]
    assert len(c) == len(j)
    for a, b in zip(c, j, strict=True):
        assert list(b) == list(COLUMNS)
        for k in COLUMNS:
            assert a[k] == ("" if b[k] is None else str(b[k])), k


def test_parquet_output_by_extension_keeps_types(tmp_path: Path) -> None:
    out = tmp_path / "flows.parquet"
    r = run("analyze", str(MISC), "-o", str(out))
    assert r.returncode == 0, r.stderr
    t = pq.read_table(out)
    assert t.column_names == list(COLUMNS)
    assert str(t.schema.field("start").type) == "timestamp[ns, tz=UTC]"
    df = t.to_pandas()
    assert str(df["egress_port"].dtype) == "UInt16"
    assert df["method"].dtype.name == "category"
    assert len(df) == len(analyze(MISC).flows)


def test_table_format_prints_summary_and_advice() -> None:
    r = run("analyze", str(MISC), "--format", "table", "--explain")  # the advice in full
    assert r.returncode == 0, r.stderr
    out = r.stdout.decode()
    for text in ("syn_recv_sock_no_toa", "Findings", "origin.rejected", "Fix:", "Flows"):
        assert text in out, text


def test_by_egress_and_client() -> None:
    e = _csv(run("analyze", str(MISC), "--by", "egress", "--format", "csv").stdout)
    assert {r["egress_ip"] for r in e} == {"192.0.2.10", "192.0.2.11"}
    assert sum(int(r["flows"]) for r in e) == len(analyze(MISC).flows)
    c = _csv(run("analyze", str(MISC), "--by", "client", "--format", "csv").stdout)
    assert "100.64.2.1" in {r["client_ip"] for r in c}


@pytest.mark.parametrize(
    ("capture", "level", "code"),
    [
        ("flow-proxy-misc.pcap", "error", 1),  # origin.rejected, stacked ...
        ("haproxy-v2.pcap", "info", 0),  # clean
        ("haproxy-health-checks.pcap", "info", 1),  # proxy.local is info
        ("haproxy-health-checks.pcap", "warning", 0),
    ],
)
def test_fail_on(capture: str, level: str, code: int) -> None:
    r = run("analyze", str(PCAPS / capture), "--fail-on", level)
    assert r.returncode == code, r.stderr


def test_damaged_capture_reports_what_came_before_and_exits_2() -> None:
    r = run("analyze", str(PCAPS / "bad-truncated-last.pcap"))
    assert r.returncode == 2
    err = r.stderr.decode().strip().splitlines()
    assert len(err) == 1
    assert "bad-truncated-last.pcap" in err[0] and "packet 6" in err[0] and "byte offset" in err[0]
    assert len(_csv(r.stdout)) == 1  # the flow decoded before the damage


def test_stdin_reads_a_pipe() -> None:
    data = MISC.read_bytes()
    piped = run("analyze", "-", stdin=data)
    assert piped.returncode == 0, piped.stderr
    assert piped.stdout == run("analyze", str(MISC)).stdout


@pytest.mark.parametrize(
    "args",
    [
        ("analyze", "tests/pcaps/does-not-exist.pcap"),
        ("analyze", str(MISC), "--trusted", "10.0.0.300/8"),
        ("analyze", str(MISC), "--toa-kind", "abc"),
        ("analyze", str(MISC), "--format", "xml"),
        ("show", str(MISC)),
        ("show", str(MISC), "--flow", "999"),
    ],
)
def test_usage_errors_exit_2_with_one_line(args: tuple[str, ...]) -> None:
    r = run(*args)
    assert r.returncode == 2
    assert r.stderr.strip(), "an explanation on stderr"
    assert b"Traceback" not in r.stderr


def test_trusted_flag_marks_spoofed_header() -> None:
    rows = _csv(run("analyze", str(PCAPS / "flow-spoof.pcap"), "--trusted", "192.0.2.0/24").stdout)
    rogue = [r for r in rows if r["egress_ip"] == "203.0.113.66"]
    assert rogue and all("client.untrusted" in r["findings"].split(";") for r in rogue)
    ok = [r for r in rows if r["egress_ip"] == "192.0.2.10"]
    assert ok and all("client.untrusted" not in r["findings"] for r in ok)


def test_toa_kind_restricts_decoding() -> None:
    rows = _csv(run("analyze", str(PCAPS / "flow-toa.pcap"), "--toa-kind", "254").stdout)
    assert rows and all(r["method"] != "toa" for r in rows)
    rows = _csv(run("analyze", str(PCAPS / "flow-toa.pcap"), "--toa-kind", "200").stdout)
    assert any(r["method"] == "toa" for r in rows)


def test_show_packet_prints_tree_and_hexdump() -> None:
    # packet 4 of the misc capture is the first data segment of flow 1 (two stacked headers)
    r = run("show", str(MISC), "--packet", "4")
    assert r.returncode == 0, r.stderr
    out = r.stdout.decode()
    assert "PROXY" in out and "100.64.2.1" in out
    assert "0000  " in out  # hex dump offsets


def test_show_flow_prints_the_header_packets() -> None:
    r = run("show", str(PCAPS / "flow-proxy-split.pcap"), "--flow", "1")
    assert r.returncode == 0, r.stderr
    out = r.stdout.decode()
    assert "Flow 1" in out and "100.64.1.1" in out and "proxy.split" in out
    assert out.count("Packet ") >= 3  # the three segments holding the split header
    assert "Reassembled stream start" in out


def test_reader_closing_the_pipe_early_is_not_a_finding() -> None:
    """`pcapip analyze ... | head -1`: exit 0 and nothing on stderr, not click's exit 1."""
    import subprocess
    import sys

    captures = [str(PCAPS / "troubleshooting.pcap")] * 12  # > 64 KiB of CSV: the pipe fills
    proc = subprocess.Popen(
        [sys.executable, "-m", "pcapip", "analyze", "--format", "csv", *captures],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.readline().startswith(b"flow,transport,")
    proc.stdout.close()
    err = proc.stderr.read()
    assert proc.wait(timeout=60) == 0
    # nothing but (if said before the pipe closed) the warning that the one file, read 12
    # times, goes back in time 11 times
    assert [ln for ln in err.splitlines() if b" go back before the last of " not in ln] == []


@pytest.mark.parametrize(("fmt", "write"), [("csv", "to_csv"), ("json", "to_jsonl")])
def test_per_flow_text_goes_through_the_analysis_without_pandas(fmt: str, write: str) -> None:
    """One path: the CLI's per-flow CSV / JSON Lines come from the same Analysis object as
    the API's (``pcapip.report.analysis`` is loaded), and that costs no pandas import."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "pcapip", "analyze", "--format", fmt, str(MISC)],
        capture_output=True,
        cwd=ROOT,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    imported = {
        line.rsplit("|", 1)[-1].strip()
        for line in proc.stderr.decode().splitlines()
        if line.startswith("import time:")
    }
    assert "pcapip.report.analysis" in imported
    assert not {m for m in imported if m.split(".")[0] == "pandas"}
    assert proc.stdout.decode() == getattr(analyze(MISC), write)()
