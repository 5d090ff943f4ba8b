"""``pcapip live`` on real interfaces of test namespaces: stopping, -w, loopback, and every
error an operator can meet (unknown interface, no permission, no dumpcap, a bad filter, the
interface going away mid-capture).

Expected values come from outside pcapip: tshark reading the ``-w`` copy,
dumpcap's own words for a bad filter, the datagrams the test itself sent.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import peers
import pytest
from live_run import LiveRun, read_csv
from tools import require_tool

pytestmark = pytest.mark.system

PORT = 7777


@pytest.fixture(scope="module")
def topo(tmp_path_factory) -> Iterator[peers.Topology]:
    peers.require_peers("dumpcap", "tshark")
    with peers.Topology(tmp_path_factory.mktemp("live-capture")) as t:
        yield t


def prefix(topo: peers.Topology, node: peers.Node = "origin") -> list[str]:
    """``ip netns exec NS`` with an absolute path, so a test's own PATH cannot hide ``ip``."""
    return [shutil.which("ip") or "/usr/sbin/ip", "netns", "exec", topo.namespaces[node]]


SEND = r"""
import socket, sys
host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
payload = bytes.fromhex(sys.argv[4]) if len(sys.argv) > 4 else b""
for i in range(n):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # a new source port per datagram
    s.sendto(payload + b"dgram-%d" % i, (host, port))
    s.close()
"""


def send_udp(
    topo: peers.Topology, node: peers.Node, host: str, n: int, payload: bytes = b""
) -> None:
    out = topo.run(node, [sys.executable, "-c", SEND, host, str(PORT), str(n), payload.hex()])
    assert out.returncode == 0, out.stderr


def proxy_v2_udp(client: str, client_port: int, dst: str, dst_port: int) -> bytes:
    """A PROXY v2 header for a UDP datagram, packed from the spec (section 2.2)."""
    sig = b"\r\n\r\n\x00\r\nQUIT\n"
    addrs = socket.inet_aton(client) + socket.inet_aton(dst)
    addrs += client_port.to_bytes(2, "big") + dst_port.to_bytes(2, "big")
    return sig + bytes([0x21, 0x12]) + len(addrs).to_bytes(2, "big") + addrs


def tshark_fields(path: Path, display_filter: str, *fields: str) -> list[list[str]]:
    argv = ["tshark", "-r", str(path), "-Y", display_filter, "-T", "fields"]
    for f in fields:
        argv += ["-e", f]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return [line.split("\t") for line in out.stdout.splitlines()]


def error_line(run: LiveRun) -> str:
    """The error must be one line: ``pcapip: error: ...`` (no traceback)."""
    errors = [line for _, line in run.err if line.startswith("pcapip: error:")]
    assert len(errors) == 1, run.stderr
    assert "Traceback" not in run.stderr, run.stderr
    return errors[0]


# ---------------------------------------------------------------------- stopping and -w


def test_loopback_count_no_duplicates_and_flow_cap(topo: peers.Topology, tmp_path: Path) -> None:
    """On lo every frame exists twice for AF_PACKET (outgoing + incoming); dumpcap must
    deliver each once.  --count stops the capture; --max-flows bounds the flows held."""
    pcap = tmp_path / "lo.pcapng"
    args = [
        "-i",
        "lo",
        "-f",
        f"udp port {PORT}",
        "--count",
        "6",
        "--max-flows",
        "2",
        "--format",
        "csv",
        "-w",
        str(pcap),
        "-o",
        str(tmp_path / "summary.csv"),
    ]
    with LiveRun(args, prefix=prefix(topo)) as run:
        run.wait_ready()
        send_udp(topo, "origin", "127.0.0.1", 6)
        assert run.wait(timeout=15) == 0, run.stderr
    frames = tshark_fields(pcap, "udp", "udp.srcport", "data.data")
    payloads = sorted(bytes.fromhex(d).decode() for _, d in frames)
    assert payloads == [f"dgram-{i}" for i in range(6)]  # each datagram exactly once
    rolling = run.csv_rows()
    final = read_csv((tmp_path / "summary.csv").read_text())
    assert sorted(int(r["egress_port"]) for r in final) == sorted(int(p) for p, _ in frames)
    assert all(r["packets"] == "1" for r in final)
    assert len(rolling) == 6
    # six flows, at most two held at once: the four oldest were ended early, and say so
    limited = [r for r in final if "capture.flow_limit" in r["findings"].split(";")]
    assert len(limited) == 4
    assert "4 flows were ended early" in run.stderr


def test_ctrl_c_prints_summary_and_keeps_capture(topo: peers.Topology, tmp_path: Path) -> None:
    pcap = tmp_path / "ctrl-c.pcapng"
    client = ("192.0.2.7", 4242)
    header = proxy_v2_udp(*client, "127.0.0.1", PORT)
    summary = tmp_path / "summary.json"
    args = ["-i", "lo", "-f", f"udp port {PORT}", "--format", "json", "-w", str(pcap)]
    args += ["-o", str(summary)]
    with LiveRun(args, prefix=prefix(topo)) as run:
        run.wait_ready()
        send_udp(topo, "origin", "127.0.0.1", 1, header)
        # the rolling line comes while the capture runs on
        deadline = run.t0 + 15
        while not run.out and time.monotonic() < deadline and run.proc.poll() is None:
            time.sleep(0.02)
        assert run.out and run.proc.poll() is None, run.stderr
        run.interrupt()
        assert run.wait(timeout=15) == 0, run.stderr
    rolling = run.json_rows()
    final = [json.loads(line) for line in summary.read_text().splitlines()]
    assert len(rolling) == 1 and len(final) == 1
    for row in (rolling[0][1], final[0]):
        assert (row["client_ip"], row["client_port"], row["method"]) == (*client, "ppv2")
    (frame,) = tshark_fields(pcap, "udp", "proxy.src.ipv4", "proxy.srcport")
    assert frame == [client[0], str(client[1])]  # tshark agrees on the header


GRE_SEND = r"""
import socket, sys
n = int(sys.argv[1])
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, 47)  # GRE version 1 (PPTP): not opened
for i in range(n):
    ppp = b"\xff\x03\x00\x21" + b"not-an-ip-packet-%d" % i
    s.sendto(b"\x30\x01\x88\x0b" + len(ppp).to_bytes(2, "big") + b"\x00\x07"
             + i.to_bytes(4, "big") + ppp, ("127.0.0.1", 0))
"""


def test_undecoded_tunnel_is_a_warning_in_live_too(topo: peers.Topology, tmp_path: Path) -> None:
    """Live says what analyze says: packets it could not open are one warning line on
    stderr (with the count tshark sees in the -w copy), never silently dropped."""
    pcap = tmp_path / "gre.pcapng"
    args = ["-i", "lo", "-f", f"ip proto 47 or udp port {PORT}", "--format", "csv"]
    args += ["-w", str(pcap), "--duration", "3"]
    with LiveRun(args, prefix=prefix(topo)) as run:
        run.wait_ready()
        send_udp(topo, "origin", "127.0.0.1", 1)
        out = topo.run("origin", [sys.executable, "-c", GRE_SEND, "3"])
        assert out.returncode == 0, out.stderr
        assert run.wait(timeout=20) == 0, run.stderr
    gre = len(tshark_fields(pcap, "ip.proto == 47", "frame.number"))
    assert gre >= 3
    warnings = [line for _, line in run.err if line.startswith("pcapip: warning:")]
    assert len(warnings) == 1, run.stderr
    assert "GRE" in warnings[0] and f"{gre} of " in warnings[0], warnings[0]
    assert "Traceback" not in run.stderr


# ---------------------------------------------------------------------- errors


def test_unknown_interface(topo: peers.Topology) -> None:
    with LiveRun(["-i", "nosuch0", "--format", "csv"], prefix=prefix(topo)) as run:
        assert run.wait(timeout=15) == 2
    line = error_line(run)
    assert "no interface named 'nosuch0'" in line
    assert "There is no device named" in line  # dumpcap's own words
    listed = line.split("interfaces here: ", 1)[1].split(", ")
    assert peers.ORIGIN_IF in listed and "lo" in listed  # this namespace's interfaces
    assert run.stdout == ""


def test_bad_filter_shows_dumpcaps_message(topo: peers.Topology, tmp_path: Path) -> None:
    bad = "tcp port nonsense-port"
    earlier = tmp_path / "earlier.pcapng"
    earlier.write_bytes(b"an earlier capture")
    direct = subprocess.run(
        # -w - : dumpcap deletes its output file when it fails, whatever that file is
        [*prefix(topo), "dumpcap", "-i", "lo", "-f", bad, "-w", "-", "-q"],
        capture_output=True,
        text=True,
        timeout=15,
    )
    assert direct.returncode != 0
    said = next(ln for ln in direct.stderr.splitlines() if "valid capture filter (" in ln)
    args = ["-i", "lo", "-f", bad, "--format", "csv", "-w", str(earlier)]
    with LiveRun(args, prefix=prefix(topo)) as run:
        assert run.wait(timeout=15) == 2
    line = error_line(run)
    assert f"capture filter {bad!r} rejected by dumpcap" in line
    assert said.strip() in line
    assert earlier.read_bytes() == b"an earlier capture"  # a capture that never started


def test_no_permission(topo: peers.Topology, tmp_path: Path) -> None:
    """As an ordinary user: dumpcap without capabilities may not open the interface."""
    setpriv = require_tool("setpriv")
    dumpcap = shutil.which("dumpcap") or ""
    st = os.stat(dumpcap)
    caps = (
        subprocess.run(["getcap", dumpcap], capture_output=True, text=True).stdout
        if shutil.which("getcap")
        else ""
    )
    privileged = bool(st.st_mode & 0o4000) or "cap_net_raw" in caps
    nobody = [setpriv, "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
    args = ["-i", "lo", "--duration", "0.5", "--format", "csv"]
    with LiveRun(args, prefix=[*prefix(topo), *nobody], cwd=tmp_path) as run:
        rc = run.wait(timeout=15)
    if privileged:
        # the privilege-separated setup: pcapip as nobody captures through dumpcap
        assert rc == 0, run.stderr
        return
    assert rc == 2, run.stderr
    line = error_line(run)
    assert "no permission to capture on 'lo'" in line
    assert f"setcap cap_net_raw,cap_net_admin=eip {dumpcap}" in line


def test_without_dumpcap_falls_back_to_tcpdump(topo: peers.Topology, tmp_path: Path) -> None:
    tcpdump = require_tool("tcpdump")
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "tcpdump").symlink_to(tcpdump)
    env = {**os.environ, "PATH": str(bindir)}
    pcap = tmp_path / "fallback.pcap"
    args = [
        "-i",
        "lo",
        "-f",
        f"udp port {PORT}",
        "--count",
        "2",
        "--format",
        "csv",
        "-w",
        str(pcap),
        "-o",
        str(tmp_path / "summary.csv"),
    ]
    with LiveRun(args, prefix=prefix(topo), env=env, cwd=tmp_path) as run:
        run.wait_ready()
        send_udp(topo, "origin", "127.0.0.1", 2)
        assert run.wait(timeout=15) == 0, run.stderr
    assert "dumpcap not found, capturing with tcpdump" in run.stderr
    assert "with tcpdump (pcap)" in run.stderr
    assert len(tshark_fields(pcap, "udp", "frame.number")) == 2
    assert len(read_csv((tmp_path / "summary.csv").read_text())) == 2
    assert len(run.csv_rows()) == 2


def test_no_capture_tool_says_what_to_install(tmp_path: Path) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    env = {**os.environ, "PATH": str(empty)}
    with LiveRun(["-i", "lo", "--format", "csv"], env=env, cwd=tmp_path) as run:
        assert run.wait(timeout=15) == 2
    line = error_line(run)
    assert "no capture tool found" in line
    assert "apt install wireshark-common" in line and "tcpdump" in line


def test_interface_disappears_mid_capture(tmp_path: Path) -> None:
    """Set down, up, then deleted: notes for the first two; the third ends the capture,
    keeps what was captured (summary, -w file) and says what happened."""
    peers.require_peers("dumpcap", "tshark")
    pcap = tmp_path / "gone.pcapng"
    client = ("198.51.100.9", 5151)
    origin = peers.IPV4.origin
    with peers.Topology(tmp_path / "topo") as t:
        args = ["-i", peers.ORIGIN_IF, "--format", "csv", "-w", str(pcap)]
        args += ["-o", str(tmp_path / "summary.csv")]
        with LiveRun(args, prefix=prefix(t)) as run:
            run.wait_ready()
            send_udp(t, "proxy", origin, 3, proxy_v2_udp(*client, origin, PORT))
            t.run("origin", ["ip", "link", "set", peers.ORIGIN_IF, "down"])
            run.wait_stderr(f"interface {peers.ORIGIN_IF} was set down")
            t.run("origin", ["ip", "link", "set", peers.ORIGIN_IF, "up"])
            run.wait_stderr(f"interface {peers.ORIGIN_IF} is up again")
            t.run("proxy", ["ip", "link", "del", peers.PROXY_BACK_IF])  # takes its peer along
            assert run.wait(timeout=15) == 2
    line = error_line(run)
    assert f"capture on '{peers.ORIGIN_IF}' stopped: the interface disappeared" in line
    assert "no longer attached" in line  # dumpcap's words
    flows = [r for r in read_csv((tmp_path / "summary.csv").read_text()) if r["origin_port"] == str(PORT)]
    assert len(flows) == 3  # one datagram per source port
    for flow in flows:
        assert (flow["method"], flow["client_ip"], flow["client_port"]) == (
            "ppv2",
            *map(str, client),
        )
    assert len(tshark_fields(pcap, f"udp.dstport == {PORT} && !icmp", "frame.number")) == 3


# ---------------------------------------------------------------------- one schema on stdout

TCP_PORT = 7778
TCP = r"""
import socket, sys, threading
port = int(sys.argv[1])
srv = socket.create_server(("127.0.0.1", port))
def serve():
    for _ in range(2):
        c, _ = srv.accept()
        c.recv(4096)
        c.sendall(b"ok\n")
        c.close()
t = threading.Thread(target=serve)
t.start()
for first in (b"PROXY TCP4 192.0.2.7 127.0.0.1 4242 %d\r\nhello\n" % port, b"hello\n"):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(first)
    s.recv(16)
    s.close()
t.join()
"""


def analyze_json(path: Path) -> list[dict]:
    out = subprocess.run(
        [sys.executable, "-m", "pcapip", "analyze", str(path), "--format", "json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    return [json.loads(line) for line in out.stdout.splitlines()]


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_stdout_is_one_table_in_analyzes_columns(
    topo: peers.Topology, tmp_path: Path, fmt: str
) -> None:
    """``pcapip live --format csv > out.csv`` loads as one table: one header, analyze's
    columns and flow numbers (of the -w file), TCP and UDP; the summary is on stderr."""
    import io

    import pandas as pd

    from pcapip.flows.columns import COLUMNS

    pcap = tmp_path / "lo.pcapng"
    bpf = f"udp port {PORT} or tcp port {TCP_PORT}"
    args = ["-i", "lo", "-f", bpf, "--duration", "3", "--format", fmt, "-w", str(pcap)]
    with LiveRun(args, prefix=prefix(topo)) as run:
        run.wait_ready()
        send_udp(topo, "origin", "127.0.0.1", 2, proxy_v2_udp("192.0.2.8", 4343, "127.0.0.1", PORT))
        out = topo.run("origin", [sys.executable, "-c", TCP, str(TCP_PORT)])
        assert out.returncode == 0, out.stderr
        assert run.wait(timeout=20) == 0, run.stderr
    final = {r["flow"]: r for r in analyze_json(pcap)}
    assert len(final) == 4
    if fmt == "csv":
        df = pd.read_csv(io.StringIO(run.stdout), dtype=str, keep_default_na=False)
        assert list(df.columns) == list(COLUMNS)
        assert run.stdout.count("flow,transport,") == 1  # one header, no second table
        rows = df.to_dict("records")
    else:
        rows = [json.loads(line) for line in run.stdout.splitlines()]
        assert all(list(r) == list(COLUMNS) for r in rows)
    assert len(rows) == len(final)
    for r in rows:
        f = final[int(r["flow"])]  # the number analyze (and show --flow) gives the flow
        for k in ("transport", "start", "egress_ip", "egress_port", "origin_port", "method"):
            assert str(r[k]) == str(f[k]), (k, r, f)
        assert str(r["client_ip"] or "") == str(f["client_ip"] or "")
    assert {f["client_ip"] for f in final.values()} == {"192.0.2.7", "192.0.2.8", None}
    assert f"{len(final)} flows (" in run.stderr  # the summary, on stderr


def test_summary_file_takes_its_extensions_format(topo: peers.Topology, tmp_path: Path) -> None:
    """--format names the stream; -o summary.csv gets CSV whatever the stream is."""
    summary = tmp_path / "summary.csv"
    args = ["-i", "lo", "-f", f"udp port {PORT}", "--count", "2", "--format", "json"]
    args += ["-o", str(summary)]
    with LiveRun(args, prefix=prefix(topo)) as run:
        run.wait_ready()
        send_udp(topo, "origin", "127.0.0.1", 2)
        assert run.wait(timeout=15) == 0, run.stderr
    rolling = run.json_rows()
    final = read_csv(summary.read_text())
    assert summary.read_text().startswith("flow,transport,")
    assert [r["flow"] for _, r in rolling] == [int(r["flow"]) for r in final] == [1, 2]
    assert "flows (" not in run.stderr  # the summary went to -o only


@pytest.mark.parametrize("fmt", ["csv", "json", "table"])
def test_reader_closing_the_pipe_ends_live_with_0(
    topo: peers.Topology, tmp_path: Path, fmt: str
) -> None:
    """``pcapip live ... | head -1``: the capture stops, exit status 0, no traceback."""
    argv = [*prefix(topo), sys.executable, "-m", "pcapip", "live", "-i", "lo"]
    argv += ["-f", f"udp port {PORT}", "--duration", "8", "--format", fmt]
    t0 = time.monotonic()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout is not None and proc.stderr is not None
        said = proc.stderr.readline().decode()
        assert "capturing on" in said, said
        send_udp(topo, "origin", "127.0.0.1", 1)  # (json has no header: a first line)
        assert proc.stdout.readline()
        proc.stdout.close()
        for _ in range(3):  # lines (or redraws) for a pipe nobody reads any more
            send_udp(topo, "origin", "127.0.0.1", 2)
        rc = proc.wait(timeout=20)
        err = said + proc.stderr.read().decode()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert rc == 0, err
    assert "Traceback" not in err and "error" not in err, err
    if fmt != "table":  # (a live view off a terminal is drawn once, at the end)
        assert time.monotonic() - t0 < 7.5, "ran on after its reader had gone (--duration 8)"
