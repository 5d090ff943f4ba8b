"""``pcapip extract``: the chosen flows' packets, byte for byte, checked with real tshark."""

from __future__ import annotations

import csv
import io
import os
import shutil
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import dpkt
import pytest

ROOT = Path(__file__).resolve().parents[1]
PCAPS = ROOT / "tests" / "pcaps"
TROUBLE = str(PCAPS / "troubleshooting.pcap")
TRUSTED = "10.77.2.0/29"

pytestmark = pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed")


def run(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "pcapip", *args], capture_output=True, cwd=ROOT, timeout=120,
        env=dict(os.environ, COLUMNS="200"),
    )


def flows(capture: str, *extra: str) -> list[dict[str, str]]:
    r = run("analyze", capture, "--format", "csv", *extra)
    assert r.returncode == 0, r.stderr
    return list(csv.DictReader(io.StringIO(r.stdout.decode())))


def tshark_count(path: Path) -> int:
    r = subprocess.run(["tshark", "-r", str(path)], capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return len(r.stdout.decode().splitlines())


def frames(path: Path) -> list[tuple[int, bytes]]:
    """(timestamp in ns, bytes) of every frame, read with dpkt (independent of pcapip)."""
    with open(path, "rb") as fh:  # dpkt: Decimal seconds for nanosecond files, else float
        return [
            (int(ts * 10**9) if isinstance(ts, Decimal) else round(ts * 1e6) * 1000, bytes(buf))
            for ts, buf in dpkt.pcap.Reader(fh)
        ]


def _same(a: dict[str, str], b: dict[str, str]) -> bool:
    return {k: v for k, v in a.items() if k != "flow"} == {k: v for k, v in b.items() if k != "flow"}


def test_extract_by_filter_equals_tsharks_own_selection(tmp_path: Path) -> None:
    out = tmp_path / "rejected.pcap"
    r = run("extract", TROUBLE, "--trusted", TRUSTED, "--filter", "finding:origin.rejected",
            "-w", str(out))
    assert r.returncode == 0, r.stderr
    chosen = flows(TROUBLE, "--trusted", TRUSTED, "--filter", "finding:origin.rejected")
    assert len(chosen) == 2
    assert tshark_count(out) == sum(int(f["packets"]) for f in chosen)
    # tshark selects the same conversations from the original capture
    conv = " or ".join(
        f"(ip.addr=={f['egress_ip']} and tcp.port=={f['egress_port']} and "
        f"ip.addr=={f['origin_ip']} and tcp.port=={f['origin_port']})"
        for f in chosen
    )
    ref = tmp_path / "tshark.pcap"
    subprocess.run(["tshark", "-r", TROUBLE, "-Y", conv, "-F", "pcap", "-w", str(ref)],
                   check=True, capture_output=True, timeout=60)
    ours = frames(out)
    theirs = frames(ref)
    assert [b for _, b in ours] == [b for _, b in theirs]
    assert [t // 1000 for t, _ in ours] == [t // 1000 for t, _ in theirs]
    # and the original (microsecond) timestamps survive exactly
    assert [t for t, _ in ours] == [t for t, b in frames(Path(TROUBLE)) if b in {x for _, x in ours}]
    # analyze on the extract gives the same rows (flows renumbered)
    again = flows(str(out), "--trusted", TRUSTED)
    assert len(again) == 2 and all(_same(a, b) for a, b in zip(again, chosen, strict=True))


def test_extract_by_flow_numbers(tmp_path: Path) -> None:
    out = tmp_path / "three.pcap"
    r = run("extract", TROUBLE, "--flow", "3", "--flow", "28", "--flow", "39", "-w", str(out))
    assert r.returncode == 0, r.stderr
    full = {f["flow"]: f for f in flows(TROUBLE)}
    chosen = [full["3"], full["28"], full["39"]]
    assert tshark_count(out) == sum(int(f["packets"]) for f in chosen)
    again = flows(str(out))
    assert [(a["egress_ip"], a["egress_port"], a["client_ip"], a["packets"], a["bytes"])
            for a in again] == [(b["egress_ip"], b["egress_port"], b["client_ip"], b["packets"],
                                 b["bytes"]) for b in chosen]


def test_several_link_types_need_pcapng(tmp_path: Path) -> None:
    cap = str(PCAPS / "all-links-be.pcapng")
    r = run("extract", cap, "--filter", "flow>0", "-w", str(tmp_path / "x.pcap"))
    assert r.returncode == 2 and not (tmp_path / "x.pcap").exists()
    err = r.stderr.decode()
    assert err.count("\n") == 1 and "pcapng" in err and "link types" in err
    out = tmp_path / "x.pcapng"
    r = run("extract", cap, "--filter", "flow>0", "-w", str(out))
    assert r.returncode == 0, r.stderr
    before = flows(cap)
    assert tshark_count(out) == sum(int(f["packets"]) for f in before)
    assert all(_same(a, b) for a, b in zip(flows(str(out)), before, strict=True))


@pytest.mark.parametrize(
    "args, words",
    [
        ((), "choose flows"),
        (("--flow", "999"), "has no flow 999"),
        (("--filter", "method=="), "column 1"),
    ],
)
def test_usage_errors_are_one_line_and_exit_2(tmp_path: Path, args: tuple, words: str) -> None:
    out = tmp_path / "o.pcap"
    r = run("extract", TROUBLE, *args, "-w", str(out))
    assert r.returncode == 2 and words in r.stderr.decode()
    assert r.stderr.decode().count("\n") == 1 and not out.exists()


@pytest.mark.parametrize("name", ["flow-proxy-misc.pcap", "flow-udp.pcap"])
def test_a_reused_port_pair_gives_each_flow_its_own_packets(tmp_path: Path, name: str) -> None:
    """Two flows on one address/port pair (port reuse, a UDP flow timed out and restarted):
    extracting one must not pick up the other's packets."""
    cap = str(PCAPS / name)
    rows = flows(cap)
    seen: dict[tuple, list[dict[str, str]]] = {}
    for f in rows:
        key = (f["transport"], f["egress_ip"], f["egress_port"], f["origin_ip"], f["origin_port"])
        seen.setdefault(key, []).append(f)
    pair = next(v for v in seen.values() if len(v) > 1)
    for f in pair:
        out = tmp_path / f"{f['flow']}.pcap"
        r = run("extract", cap, "--flow", f["flow"], "-w", str(out))
        assert r.returncode == 0, r.stderr
        assert tshark_count(out) == int(f["packets"])
        (again,) = flows(str(out))
        assert (again["start"], again["end"], again["bytes"]) == (f["start"], f["end"], f["bytes"])


def test_every_bundled_capture_extracts_every_packet_analyze_counts(tmp_path: Path) -> None:
    """The flow stage and extract's packet walk take the same packets (one rule,
    ``decode.in_flows``): extracting all flows writes what the packets column sums to,
    including a SYN whose TCP options the snap length cut (eth-snap80-ns-be.pcap's TOA
    flow, which extract used to leave out: the flow its operator wants to open)."""
    from pcapip import analyze
    from pcapip.cli.extract import write_flows

    short = {}
    for cap in sorted(PCAPS.glob("*.pcap*")):
        table = analyze([str(cap)]).flows
        if len(table):
            n = write_flows(str(cap), table, str(tmp_path / "all.pcapng"), pcapng=True)
            if n != int(table["packets"].sum()):
                short[cap.name] = (n, int(table["packets"].sum()))
    assert not short
    out = tmp_path / "cut.pcap"
    cut = str(PCAPS / "eth-snap80-ns-be.pcap")
    cut_toa = "method==toa and status==incomplete"  # (the TOA the snap length cut)
    r = run("extract", cut, "--filter", cut_toa, "-w", str(out))
    assert r.returncode == 0 and b"warning" not in r.stderr, r.stderr
    chosen = flows(cut, "--filter", cut_toa)
    assert tshark_count(out) == sum(int(f["packets"]) for f in chosen) == 2


def _v4_compatible_capture(path: Path) -> None:
    """A TCP connection between two IPv4-compatible IPv6 addresses (``::a.b.c.d``)."""
    import socket

    c = socket.inet_pton(socket.AF_INET6, "::10.1.2.3")
    s = socket.inet_pton(socket.AF_INET6, "::10.9.9.9")
    with open(path, "wb") as fh:
        w = dpkt.pcap.Writer(fh, linktype=dpkt.pcap.DLT_RAW)
        for k, (src, dst, sp, dp, flags, data) in enumerate([
            (c, s, 40000, 80, 0x02, b""), (s, c, 80, 40000, 0x12, b""), (c, s, 40000, 80, 0x10, b""),
            (c, s, 40000, 80, 0x18, b"GET / HTTP/1.0\r\n\r\n"), (c, s, 40000, 80, 0x11, b""),
        ]):
            tcp = dpkt.tcp.TCP(sport=sp, dport=dp, flags=flags, seq=100 + k, off=5, data=data)
            ip = dpkt.ip6.IP6(src=src, dst=dst, nxt=6, hlim=64, plen=len(bytes(tcp)))
            ip.data = tcp
            w.writepkt(bytes(ip), 1.0 + k / 100)


def test_an_ipv4_compatible_ipv6_flow_reads_as_tshark_prints_it_and_extracts_whole(
    tmp_path: Path,
) -> None:
    """``::10.1.2.3`` is what tshark (and inet_ntop) print; Python's ipaddress prints
    ``::a01:203``. The flow rows and the packet walk that extract and show match them with
    once printed it differently, so extract wrote no packet and show said none was seen."""
    cap = tmp_path / "v4compat.pcap"
    _v4_compatible_capture(cap)
    r = subprocess.run(["tshark", "-r", str(cap), "-T", "fields", "-e", "ipv6.src",
                        "-e", "ipv6.dst", "-c", "1"], capture_output=True, timeout=60, check=True)
    theirs = r.stdout.decode().split()
    (row,) = flows(str(cap))
    assert [row["egress_ip"], row["origin_ip"]] == theirs == ["::10.1.2.3", "::10.9.9.9"]
    out = tmp_path / "out.pcap"
    r = run("extract", str(cap), "--flow", "1", "-w", str(out))
    assert r.returncode == 0 and b"warning" not in r.stderr, r.stderr
    assert [b for _, b in frames(out)] == [b for _, b in frames(cap)]
    shown = run("show", str(cap), "--flow", "1").stdout.decode()
    assert "Not in the capture: data from origin." in shown  # SYN, SYN-ACK, ACK were found
    filt = next(x.split(": ", 1)[1] for x in shown.splitlines() if x.startswith("Wireshark"))
    r = subprocess.run(["tshark", "-r", str(cap), "-Y", filt], capture_output=True, timeout=60)
    assert len(r.stdout.decode().splitlines()) == 5
