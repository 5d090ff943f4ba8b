"""``--rules`` and ``pcapip rules`` on the command line: a bad rules file is an input error
(exit 2, one line per problem, before any packet is read), never skipped in silence."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from pcapip.rules import RuleSet

REPO = Path(__file__).resolve().parent.parent
PCAP = REPO / "tests" / "pcaps" / "haproxy-v1.pcap"
BAD = "tcp:8001 10.77.2.2 9001 off ppv1\nudp:53 a.example 53 off toa\ntcp:8001 b.example 1 on off\n"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pcapip", *args], capture_output=True,
                          text=True, timeout=60, cwd=REPO)


@pytest.mark.parametrize(
    "command",
    [
        ["analyze", str(PCAP), "--format", "csv", "--rules"],
        ["rules", "--capture", str(PCAP)],
        ["rules"],
        ["tui", str(PCAP), "--rules"],
        ["live", "-i", "lo", "--duration", "1", "--rules"],
    ],
    ids=["analyze", "rules-capture", "rules", "tui", "live"],
)
def test_a_bad_rules_file_is_an_input_error_naming_each_line(command, tmp_path: Path) -> None:
    bad = tmp_path / "edge.rules"
    bad.write_text(BAD)
    command = ["rules", str(bad), *command[1:]] if command[0] == "rules" else [*command, str(bad)]
    proc = run(*command)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.splitlines() == [
        f"pcapip: error: {bad}, line 2: toa is TCP only: a UDP rule passes the client by ppv2 or off",
        f"pcapip: error: {bad}, line 3: tcp port 8001 is already forwarded by line 1",
    ]


def test_by_rule_needs_rules() -> None:
    for cmd in (["analyze", str(PCAP), "--by", "rule"], ["live", "-i", "lo", "--by", "rule"]):
        proc = run(*cmd)
        assert proc.returncode == 2 and "--by rule needs the forwarding rules" in proc.stderr


def test_rules_without_a_capture_lists_them_as_read(tmp_path: Path) -> None:
    f = tmp_path / "edge.rules"
    f.write_text("# two rules\nTCP:80-90 Origin.Example 90-100 OFF TOA\nudp:5000;5001 og:g 6000;6001 on ppv2\n")
    proc = run("rules", str(f), "--format", "csv")
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.DictReader(io.StringIO(proc.stdout)))
    assert [(r["line"], r["transport"], r["forwarding"], r["origin"], r["origin_ports"],
             r["persistence"], r["method"]) for r in rows] == [
        ("2", "tcp", "80-90", "origin.example", "90-100", "off", "toa"),
        ("3", "udp", "5000;5001", "og:g", "6000;6001", "on", "ppv2"),
    ]
    assert len(RuleSet.load(f)) == len(rows)


def test_analyze_writes_the_rule_column_and_fails_on_mismatch(tmp_path: Path) -> None:
    f = tmp_path / "edge.rules"
    f.write_text("tcp:8001 10.77.2.2 9001 off ppv2\n")
    proc = run("analyze", str(PCAP), "--rules", str(f), "--format", "csv", "--fail-on", "error")
    assert proc.returncode == 1, proc.stderr
    rows = list(csv.DictReader(io.StringIO(proc.stdout)))
    assert rows and all(r["rule"] == "1: tcp:8001 10.77.2.2 9001 off ppv2" for r in rows)
    assert all("rule.mismatch" in r["findings"].split(";") for r in rows)
    f.write_text("tcp:8001 10.77.2.2 9001 off ppv1\n")
    assert run("analyze", str(PCAP), "--rules", str(f), "--fail-on", "warning").returncode == 0


def test_the_listing_output_file_picks_its_format_and_is_written_whole(tmp_path: Path) -> None:
    f = tmp_path / "edge.rules"
    f.write_text("tcp:80 a.example 8080 off ppv1\n")
    out = tmp_path / "rules.json"
    assert run("rules", str(f), "-o", str(out)).returncode == 0
    assert json.loads(out.read_text())["forwarding"] == "80"
    for name in ("rules.tsv", "rules.parquet", "rules.xlsx"):
        proc = run("rules", str(f), "-o", str(tmp_path / name))
        assert proc.returncode == 2 and not (tmp_path / name).exists(), proc.stderr
    planted = tmp_path / "planted.csv"
    planted.symlink_to(tmp_path / "elsewhere.csv")
    proc = run("rules", str(f), "-o", str(planted))
    assert proc.returncode == 2 and not (tmp_path / "elsewhere.csv").exists()
