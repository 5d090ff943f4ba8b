"""``pcapip live`` on a real origin interface while HAProxy sends PROXY v1 and v2.

The authority is HAProxy's own log (``%bi:%bp`` -> ``%ci:%cp``): every
connection it logged must appear in pcapip's rolling output *while the
capture runs*, with the logged client, and again in the final summary, which
must be byte for byte what ``pcapip analyze`` prints for the ``-w`` copy.
The capture runs inside the origin's network namespace, on its veth, exactly
as an operator would run it on a server.
"""

from __future__ import annotations

import ipaddress
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import peers
import pytest
from live_run import REPO, LiveRun, read_csv
from peers import Header
from tools import require_tool

pytestmark = [pytest.mark.system, pytest.mark.slow]

ROUTES = ["v1", "v2", "v2-crc-uid", "noheader"]
CONNECTIONS = 3
DURATION = 2.5


@dataclass
class Env:
    topo: peers.Topology
    haproxy: peers.HAProxy


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> Iterator[Env]:
    peers.require_peers("dumpcap", "tshark")
    with peers.Topology(tmp_path_factory.mktemp("live-peers")) as topo:
        peers.start_origins(topo, family=4)
        haproxy = peers.start_haproxy(topo, ROUTES, origin_family=4)
        yield Env(topo, haproxy)


def drive(env: Env, family: int) -> tuple[list[peers.HAProxyRecord], float]:
    """Connections on every route; returns HAProxy's records of them and when they were done."""
    clients: list[peers.ClientResult] = []
    # only this phase's records: an earlier phase may have used the same client address and port
    before = len(env.haproxy.records())
    for name in ROUTES:
        clients += peers.drive_clients(env.topo, name, CONNECTIONS, family=family)
    assert all(c.error is None for c in clients), clients
    done = time.monotonic()
    ends = {(_ip(c.local_ip), c.local_port) for c in clients}
    deadline = time.monotonic() + 5
    while True:
        mine = [
            r for r in env.haproxy.records()[before:] if (_ip(r.client_ip), r.client_port) in ends
        ]
        if len(mine) == len(clients) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert len(mine) == len(clients), "HAProxy did not log every connection"
    return mine, done


def descendants(pid: int) -> list[int]:
    """Pids of all processes below ``pid`` (from /proc)."""
    out: list[int] = []
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            kids = Path(f"/proc/{p}/task/{p}/children").read_text().split()
        except OSError:
            continue
        out += [int(k) for k in kids]
        todo += [int(k) for k in kids]
    return out


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _ip(text: str | None):
    return ipaddress.ip_address(text) if text else None


def check_row(row: dict, rec: peers.HAProxyRecord) -> None:
    """One output row (rolling or final) against HAProxy's record of the connection."""
    route = peers.ROUTES[rec.route]
    assert int(row["origin_port"]) == rec.server_port
    if route.header is Header.NONE:
        assert row["method"] == "none" and row["status"] == "absent", row
        assert not row["client_ip"], row
        return
    assert row["method"] == ("ppv1" if route.header is Header.V1 else "ppv2"), row
    assert row["status"] == "ok", row
    assert _ip(row["client_ip"]) == _ip(rec.client_ip), row
    assert int(row["client_port"]) == rec.client_port, row
    assert _ip(row["proxy_ip"]) == _ip(rec.frontend_ip), row
    assert int(row["proxy_port"]) == rec.frontend_port, row
    if route.header is Header.V2_CRC_UID:
        tlvs = dict(t.split("=", 1) for t in row["tlvs"].split(";"))
        assert tlvs["crc32c"] == "ok" and tlvs["unique_id"] == rec.unique_id, row


def by_egress(rows: list[dict]) -> dict[tuple, dict]:
    """Rows by (egress address, egress port, origin port): HAProxy may give one egress
    port to connections towards two servers."""
    out: dict[tuple, dict] = {}
    for r in rows:
        key = (_ip(r["egress_ip"]), int(r["egress_port"]), int(r["origin_port"]))
        assert key not in out, f"two rows for egress {key}"
        out[key] = r
    return out


def check_against_log(rows: list[dict], records: list[peers.HAProxyRecord]) -> None:
    index = by_egress(rows)
    for rec in records:
        key = (_ip(rec.egress_ip), rec.egress_port, rec.server_port)
        assert key in index, f"{rec.route}: egress {key} missing from pcapip's output"
        check_row(index[key], rec)


def analyze_text(path: Path, fmt: str, *extra: str) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "pcapip", "analyze", str(path), "--format", fmt, *extra],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def tshark_tcp_frames(path: Path) -> int:
    out = subprocess.run(
        ["tshark", "-r", str(path), "-Y", "tcp", "-T", "fields", "-e", "frame.number"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    return len(out.stdout.split())


#: the lab's frontends as forwarding rules, the v2 one misdescribed as ppv1
RULES = (
    "tcp:8001 10.77.2.2 9001 off ppv1\ntcp:8002 10.77.2.2 9001 off ppv1\n"
    "tcp:8003 10.77.2.2 9001 off ppv2\ntcp:8004 10.77.2.2 9080 off off\n"
)


def check_rules(rows: list[dict], records: list[peers.HAProxyRecord]) -> None:
    """``--rules``: each logged connection has its frontend's rule; only v2's are flagged."""
    index = by_egress(rows)
    lines = {int(line.split()[0].split(":")[1]): n for n, line in enumerate(RULES.splitlines(), 1)}
    for rec in records:
        row = index[(_ip(rec.egress_ip), rec.egress_port, rec.server_port)]
        assert row["rule"].startswith(f"{lines[rec.frontend_port]}: "), row
        codes = row["findings"].split(";")
        assert ("rule.mismatch" in codes) == (rec.route == "v2"), row
        assert "rule.unmatched" not in codes, row


def test_live_csv_maps_every_logged_connection(env: Env, tmp_path: Path) -> None:
    """dumpcap on the origin's veth: rolling CSV while HAProxy works, then the summary;
    with --rules, each line judged against the forwarding rules as analyze judges it."""
    pcapng = tmp_path / "live.pcapng"
    rules = tmp_path / "edge.rules"
    rules.write_text(RULES)
    args = [
        "-i",
        peers.ORIGIN_IF,
        "--duration",
        str(DURATION),
        "--format",
        "csv",
        "-w",
        str(pcapng),
        "-o",
        str(tmp_path / "summary.csv"),
        "--rules",
        str(rules),
    ]
    with LiveRun(args, prefix=env.topo.command("origin", [])) as run:
        run.wait_ready()
        records, done = drive(env, family=4)
        assert run.wait(timeout=DURATION + 15) == 0, run.stderr
    assert "with dumpcap (pcapng)" in run.stderr
    rolling = run.csv_rows()
    final_text = (tmp_path / "summary.csv").read_text()
    final = read_csv(final_text)
    check_against_log([r for _, r in rolling], records)
    check_against_log(final, records)
    check_rules([r for _, r in rolling], records)
    check_rules(final, records)
    # every flow is announced once while capturing, none is left out, and each line has
    # the number the flow has in the summary (and in analyze / show of the -w file)
    assert len(rolling) == len(final)
    by_number = {r["flow"]: r for r in final}
    for _, row in rolling:
        same = by_number[row["flow"]]
        for k in ("egress_ip", "egress_port", "origin_port", "start", "client_ip", "method", "rule"):
            assert row[k] == same[k], (k, row, same)
    # ... promptly: lines arrive while the capture still runs, not at its end
    assert run.ended_at is not None
    mine = {(_ip(r.egress_ip), r.egress_port, r.server_port) for r in records}
    for t, row in rolling:
        if (_ip(row["egress_ip"]), int(row["egress_port"]), int(row["origin_port"])) in mine:
            assert t < run.ended_at - 0.5, "a rolling line was held back until the end"
            assert t < done + 2.0, "a rolling line arrived long after its connection"
    # the -w copy: tshark reads it, and pcapip analyze prints the very same summary
    assert pcapng.read_bytes()[:4] == b"\x0a\x0d\x0d\x0a"
    assert analyze_text(pcapng, "csv", "--rules", str(rules)) == final_text
    tcp_packets = sum(int(r["packets"]) for r in final if r["transport"] == "tcp")
    assert tshark_tcp_frames(pcapng) == tcp_packets


def test_live_json_with_tcpdump_and_ipv6_clients(env: Env, tmp_path: Path) -> None:
    """The tcpdump fallback, JSON lines, and PROXY TCP6/INET6 headers inside IPv4."""
    require_tool("tcpdump")
    pcap = tmp_path / "live.pcap"
    args = [
        "-i",
        peers.ORIGIN_IF,
        "--duration",
        "2",
        "--format",
        "json",
        "--tool",
        "tcpdump",
        "-w",
        str(pcap),
        "--trusted",
        "192.0.2.0/24",
        "-o",
        str(tmp_path / "summary.jsonl"),
    ]
    with LiveRun(args, prefix=env.topo.command("origin", [])) as run:
        run.wait_ready()
        records, _ = drive(env, family=6)
        assert run.wait(timeout=20) == 0, run.stderr
    assert "with tcpdump (pcap)" in run.stderr
    rolling = run.json_rows()
    summary_text = (tmp_path / "summary.jsonl").read_text()
    final = [json.loads(line) for line in summary_text.splitlines()]
    for rows in ([r for _, r in rolling], final):
        as_text = [{k: ("" if v is None else str(v)) for k, v in r.items()} for r in rows]
        check_against_log(as_text, records)
    assert len(rolling) == len(final)
    # the egress 10.77.2.1 is outside --trusted: every header is flagged, rolling and final
    for rows in ([r for _, r in rolling], final):
        for r in rows:
            codes = (r["findings"] or "").split(";")
            assert ("client.untrusted" in codes) == (r["method"] != "none"), r
    assert pcap.read_bytes()[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1")  # tcpdump: pcap
    assert analyze_text(pcap, "json", "--trusted", "192.0.2.0/24") == summary_text


def test_tcpdump_piped_into_analyze(env: Env, tmp_path: Path) -> None:
    """``tcpdump -w - | pcapip analyze -`` on the origin: the pipe is read as it flows."""
    require_tool("tcpdump")
    log = tmp_path / "tcpdump.log"
    out_path = tmp_path / "analyze.csv"
    script = (
        f"tcpdump -i {peers.ORIGIN_IF} -n -U --immediate-mode -w - 2>{log} | "
        f"{sys.executable} -m pcapip analyze - --format csv > {out_path}"
    )
    proc = env.topo.spawn("origin", ["sh", "-c", script], log=tmp_path / "sh.log")
    try:
        peers._wait_for(
            lambda: "listening on" in log.read_text() if log.exists() else False,
            10,
            "tcpdump to listen",
            proc,
            log,
        )
        records, _ = drive(env, family=4)
        time.sleep(0.3)
        # stop tcpdump only: analyze must then see the end of the pipe and print
        (tcpdump,) = [pid for pid in descendants(proc.pid) if _comm(pid) == "tcpdump"]
        os.kill(tcpdump, signal.SIGINT)
        proc.wait(timeout=20)
    finally:
        peers.stop_process(proc)
    assert proc.returncode == 0, (tmp_path / "sh.log").read_text()
    check_against_log(read_csv(out_path.read_text()), records)
