"""``pcapip analyze --filter/--problems/--by origin/--explain`` as an operator runs them,
checked against the captures' recorded ground truth (nginx's and HAProxy's logs)."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pcapip.report.analysis import GROUP_COLUMNS

ROOT = Path(__file__).resolve().parents[1]
PCAPS = ROOT / "tests" / "pcaps"
TROUBLE = str(PCAPS / "troubleshooting.pcap")
NGINX = str(PCAPS / "nginx-rejects-proxy.pcap")
TRUTH = json.loads((PCAPS / "troubleshooting.ground-truth.json").read_text())
NGINX_TRUTH = json.loads((PCAPS / "nginx-rejects-proxy.truth.json").read_text())
REJECTED = {(c["egress_ip"], c["egress_port"]) for c in TRUTH["connections"] if c["reply_status"] == 400}


def run(*args: str, columns: int = 200) -> subprocess.CompletedProcess[bytes]:
    env = dict(os.environ, COLUMNS=str(columns))
    return subprocess.run(
        [sys.executable, "-m", "pcapip", *args],
        capture_output=True, cwd=ROOT, env=env, timeout=120,
    )


def _csv(text: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text.decode())))


def _keys(rows: list[dict]) -> set[tuple[str, int]]:
    return {(str(r["egress_ip"]), int(r["egress_port"])) for r in rows}


@pytest.mark.parametrize("fmt", ["csv", "json", "parquet", "table"])
def test_filter_origin_rejected_lists_what_nginx_answered_400(fmt: str, tmp_path: Path) -> None:
    out = tmp_path / f"out.{fmt}"
    args = ["analyze", TROUBLE, "--trusted", TRUTH["trusted"], "--format", fmt, "-o", str(out)]
    r = run(*args, "--filter", "finding:origin.rejected")
    assert r.returncode == 0, r.stderr
    if fmt == "csv":
        rows = _csv(out.read_bytes())
    elif fmt == "json":
        rows = [json.loads(x) for x in out.read_text().splitlines()]
    elif fmt == "parquet":
        rows = pq.read_table(out).to_pandas().to_dict("records")
    else:
        text = out.read_text()
        assert "2 of 71 flows" in text
        full = _csv(run("analyze", TROUBLE, "--trusted", TRUTH["trusted"], "--format", "csv").stdout)
        cells = [ln.replace("│", " ").split() for ln in text.split("\nFlows", 1)[1].splitlines()]
        listed = {c[0] for c in cells if c and c[0].isdigit()}
        rows = [r for r in full if r["flow"] in listed]
    assert _keys(rows) == REJECTED != set()


def test_filter_on_the_nginx_capture_matches_its_log() -> None:
    r = run("analyze", NGINX, "--format", "csv", "--filter", "finding:origin.rejected")
    assert r.returncode == 0, r.stderr
    logged = {(f[2], int(f[3])) for f in (x.split("\t") for x in NGINX_TRUTH["origin_log"])
              if f[6] == "400"}
    assert _keys(_csv(r.stdout)) == logged and len(logged) == 4


def test_filtered_csv_is_those_lines_of_the_unfiltered_export() -> None:
    full = run("analyze", TROUBLE, "--trusted", TRUTH["trusted"], "--format", "csv").stdout
    part = run("analyze", TROUBLE, "--trusted", TRUTH["trusted"], "--format", "csv",
               "--filter", "egress_ip==10.77.2.5 or method==ppv1").stdout
    lines = full.decode().splitlines()
    want = [lines[0]] + [ln for ln in lines[1:] if ",10.77.2.5," in ln or ",ppv1," in ln]
    assert part.decode().splitlines() == want and len(want) > 10


def test_problems_are_the_connections_with_a_recorded_problem() -> None:
    r = run("analyze", TROUBLE, "--trusted", TRUTH["trusted"], "--format", "csv", "--problems")
    assert r.returncode == 0
    assert _keys(_csv(r.stdout)) == {
        (c["egress_ip"], c["egress_port"]) for c in TRUTH["connections"] if c["problem"]
    }
    # --fail-on judges what was selected
    ok = run("analyze", TROUBLE, "--trusted", TRUTH["trusted"], "--format", "csv",
             "--filter", "not is:problem", "--fail-on", "warning")
    assert ok.returncode == 0 and len(_csv(ok.stdout)) == 71 - 26
    bad = run("analyze", TROUBLE, "--trusted", TRUTH["trusted"], "--format", "csv",
              "--problems", "--fail-on", "warning")
    assert bad.returncode == 1


def test_by_origin_and_egress_name_the_listener_and_the_proxy_without_send_proxy() -> None:
    r = run("analyze", TROUBLE, "--trusted", TRUTH["trusted"], "--format", "csv", "--by", "origin")
    rows = _csv(r.stdout)
    assert tuple(rows[0]) == GROUP_COLUMNS["origin"]
    api = [c for c in TRUTH["connections"] if c["service"] == "api"]
    listener = {str(c["origin_port"]) for c in api}
    (row,) = [x for x in rows if x["origin_port"] in listener]
    assert f"client.missing={len(api)}" in row["findings"].split(";")
    # per egress over the problem flows: the proxy whose backend lacks send-proxy
    r = run("analyze", TROUBLE, "--trusted", TRUTH["trusted"], "--format", "csv", "--by", "egress",
            "--filter", "finding:client.missing")
    rows = _csv(r.stdout)
    assert {x["egress_ip"] for x in rows} == {c["egress_ip"] for c in api}
    assert sum(int(x["problems"]) for x in rows) == len(api)
    # grouped over the filtered flows only
    r = run("analyze", TROUBLE, "--trusted", TRUTH["trusted"], "--format", "json", "--by", "client",
            "--filter", "egress_ip==10.77.2.200")
    rows = [json.loads(x) for x in r.stdout.decode().splitlines()]
    assert [(x["client_ip"], x["flows"], x["findings"]) for x in rows] == [
        ("10.77.1.10", 2, "client.untrusted=2")
    ]


@pytest.mark.parametrize(
    "expr, col",
    [("method==ppv2 and client_ip==10.0.0.x", 18), ("nosuch==1", 1), ("(method==toa", 1)],
)
def test_a_bad_filter_is_one_line_naming_the_column_and_exit_2(expr: str, col: int) -> None:
    r = run("analyze", TROUBLE, "--format", "csv", "--filter", expr)
    assert r.returncode == 2 and r.stdout == b""
    err = r.stderr.decode()
    assert err.count("\n") == 1 and err.startswith("pcapip: error: --filter:")
    assert f"column {col}" in err and "Traceback" not in err


def test_table_at_80_columns() -> None:
    r = run("analyze", TROUBLE, "--trusted", TRUTH["trusted"], "--format", "table", columns=80)
    text = r.stdout.decode()
    assert r.returncode == 0 and max(len(ln) for ln in text.splitlines()) <= 80
    flows = text.split("\nFlows", 1)[1]
    assert "findings" in flows.splitlines()[1].split()
    assert "origin.closed_silently" in flows and "proxy.v2.crc32c_bad" in flows
    first = next(ln.split() for ln in flows.splitlines() if ln.split()[:1] and ln.split()[0].isdigit())
    assert first[-1] in {"proxy.v2.crc32c_bad", "origin.rejected", "client.untrusted"}
    assert "Fix:" not in text
    full = run("analyze", TROUBLE, "--trusted", TRUTH["trusted"], "--format", "table", "--explain",
               columns=80).stdout.decode()
    assert "Fix:" in full and max(len(ln) for ln in full.splitlines()) <= 80
