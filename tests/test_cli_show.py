"""``pcapip show --flow`` on the flows an operator is told to inspect, checked against tshark.

The flows without a client address (``client.missing``, ``none``, a malformed UDP
header...) crashed ``show`` once; they must print what the origin actually received
(the handshake and the first data segment in each direction) and a Wireshark display
filter that selects exactly the flow's packets in real tshark.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from tools import require_tool

from pcapip import analyze
from pcapip.cli.show import flow_display_filter
from pcapip.decode.tunnels import tenant
from pcapip.flows.columns import COLUMNS

ROOT = Path(__file__).resolve().parents[1]
PCAPS = ROOT / "tests" / "pcaps"


def show(capture: Path, flow: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pcapip", "show", str(capture), "--flow", str(flow)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=dict(os.environ, COLUMNS="200"),
        timeout=120,
    )


def rows(capture: Path) -> list[dict]:
    t = analyze(capture).table
    return [{c: t.column(c, i, i + 1)[0] for c in COLUMNS} for i in range(len(t))]


def tshark_frames(capture: Path, display: str) -> list[int]:
    tshark = require_tool("tshark")
    out = subprocess.run(
        [tshark, "-n", "-r", str(capture), "-Y", display, "-T", "fields", "-e", "frame.number"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    return [int(x) for x in out.stdout.split()]


def no_client_flows() -> list[tuple[str, int]]:
    """Every flow without a client address in the captures that have some."""
    out = []
    for name in (
        "troubleshooting.pcap",
        "haproxy-noheader.pcap",
        "flow-proxy-misc.pcap",
        "flow-udp.pcap",
        "loopback-tcpdump.pcap",
    ):
        out += [(name, r["flow"]) for r in rows(PCAPS / name) if r["client_ip"] is None]
    return out


def header_frames(capture: Path, flow: int) -> list[int]:
    return [n for _, n in analyze(capture).header_frames(flow)]


NO_CLIENT = no_client_flows()


def test_the_issue_captures_have_flows_without_a_client() -> None:
    names = {n for n, _ in NO_CLIENT}
    assert len(NO_CLIENT) >= 15 and len(names) == 5


@pytest.mark.parametrize(("name", "flow"), NO_CLIENT)
def test_flow_without_client_shows_handshake_and_first_data(name: str, flow: int) -> None:
    cap = PCAPS / name
    r = show(cap, flow)
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr and r.stderr == ""
    out = r.stdout
    row = rows(cap)[flow - 1]
    assert out.startswith(f"Flow {flow}: {row['transport']} ")
    m = re.search(r"^Wireshark display filter: (.+)$", out, re.M)
    assert m, out[:500]
    f = m.group(1)
    assert f == flow_display_filter(analyze(cap), flow)
    carried = header_frames(cap, flow)
    if carried:  # a LOCAL or malformed header: the packets that carried it are shown
        assert [int(n) for n in re.findall(r"^Packet (\d+)$", out, re.M)][: len(carried)] == carried
        return
    shown = {role: int(n) for role, n in re.findall(r"^\[([^\]]+)\]\nPacket (\d+)$", out, re.M)}
    ip, l4 = ("ipv6" if ":" in row["egress_ip"] else "ip"), row["transport"]
    egress = f"{ip}.src=={row['egress_ip']} && {l4}.srcport=={row['egress_port']}"
    origin = f"{ip}.src=={row['origin_ip']} && {l4}.srcport=={row['origin_port']}"
    if row["transport"] == "udp":
        want = {
            "data from egress": tshark_frames(cap, f"{f} && {egress} && udp.length>8"),
            "data from origin": tshark_frames(cap, f"{f} && {origin} && udp.length>8"),
        }
    else:  # the same roles, picked by tshark from its own dissection of the flow's packets
        want = {
            "SYN": tshark_frames(cap, f"{f} && tcp.flags.syn==1 && tcp.flags.ack==0"),
            "SYN-ACK": tshark_frames(cap, f"{f} && tcp.flags.syn==1 && tcp.flags.ack==1"),
            "data from egress": tshark_frames(cap, f"{f} && {egress} && tcp.len>0"),
            "data from origin": tshark_frames(cap, f"{f} && {origin} && tcp.len>0"),
        }
    if want.get("SYN-ACK"):
        after = f"frame.number>{want['SYN-ACK'][0]}"
        pure_ack = f"{f} && {egress} && {after} && tcp.flags==0x010 && tcp.len==0"
        want["ACK"] = tshark_frames(cap, pure_ack)
    for role, frames in want.items():
        if frames:
            assert shown.get(role) == frames[0], (role, shown)
        else:
            assert role not in shown and role in out.split("Not in the capture: ", 1)[1]
    for n in shown.values():
        assert f"\nPacket {n}\n" in out
    assert "0000  " in out  # hex dumps


def _flows_for_filter_test() -> list[tuple[str, int]]:
    out = []
    for name in (
        "haproxy-ipv6.pcap",
        "haproxy-tcp6-over-ipv4.pcap",
        "flow-udp.pcap",
        "haproxy-health-checks.pcap",
        "flow-proxy-misc.pcap",
        *(f"tunnel-{t}.pcap" for t in ("vxlan", "gre", "erspan", "geneve", "pppoe", "mpls",
                                        "ipip", "vlan", "nested")),
    ):
        out += [(name, r["flow"]) for r in rows(PCAPS / name)]
    return out


@pytest.mark.parametrize(("name", "flow"), _flows_for_filter_test())
def test_display_filter_selects_exactly_the_flows_packets_in_tshark(name: str, flow: int) -> None:
    cap = PCAPS / name
    all_rows = rows(cap)
    row = all_rows[flow - 1]
    f = flow_display_filter(analyze(cap), flow)
    assert ("ipv6.addr==" in f) == (":" in row["egress_ip"])
    assert f"{row['transport']}.port=={row['egress_port']}" in f
    key = ("transport", "egress_ip", "egress_port", "origin_ip", "origin_port")
    reused = sum(
        all(r[k] == row[k] for k in key) and tenant(r["tunnel"]) == tenant(row["tunnel"])
        for r in all_rows
    ) > 1
    assert ("frame.time_epoch" in f) == reused  # the time span only where ports were reused
    assert len(tshark_frames(cap, f)) == row["packets"], f


def test_show_prints_the_filter_it_documents() -> None:
    cap = PCAPS / "haproxy-ipv6.pcap"
    r = show(cap, 3)
    assert r.returncode == 0, r.stderr
    line = next(ln for ln in r.stdout.splitlines() if ln.startswith("Wireshark display filter: "))
    f = line.split(": ", 1)[1]
    assert f.startswith("ipv6.addr==") and " && tcp.port==" in f
    assert len(tshark_frames(cap, f)) == rows(cap)[2]["packets"]
