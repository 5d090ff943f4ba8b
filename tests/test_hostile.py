"""Hostile inputs under bounded resources: each runs ``pcapip`` in a subprocess with an address
space limit (``resource.setrlimit``) and a time limit, and must either complete or stop with
one clear line and exit status 2: never a traceback, a hang, or memory without bound.

The inputs are made here, at run time: a gzip bomb, a pcapng block claiming 4 GB, a pcap
record claiming 2^31 bytes, 100,000 pcapng interfaces, a SYN flood, 64 KB PROXY v2 headers on
every connection, 100,000-deep VLAN and MPLS stacks, TCP options of every length, filter
expressions built to hurt, 10 MB log lines for ``pcapip resolve``.
"""

from __future__ import annotations

import csv
import gzip
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
from gen.engine_pcaps import ng_epb, ng_idb, ng_shb, pcap_bytes

ROOT = Path(__file__).resolve().parent.parent
PCAPS = ROOT / "tests" / "pcaps"
MEMORY = 1536 * 2**20  # address space for the pcapip process (numpy and numba map a lot)

_LIMITED = """
import resource, runpy, sys
resource.setrlimit(resource.RLIMIT_AS, ({mem}, {mem}))
sys.argv = ["pcapip", *sys.argv[1:]]
runpy.run_module("pcapip", run_name="__main__")
"""


def limited(*args: str, seconds: float = 120, mem: int = MEMORY) -> subprocess.CompletedProcess:
    """pcapip ``args`` with at most ``mem`` bytes of address space and ``seconds`` of time;
    its result must be a completion or one clear line with exit status 2."""
    r = subprocess.run([sys.executable, "-c", _LIMITED.format(mem=mem), *args],
                       capture_output=True, text=True, timeout=seconds)
    assert "Traceback" not in r.stderr, r.stderr[-3000:]
    assert r.returncode in (0, 1, 2), (r.returncode, r.stderr[-2000:])
    if r.returncode == 2:
        lines = [ln for ln in r.stderr.splitlines() if ln.startswith("pcapip: error")]
        assert len(lines) == 1, r.stderr[-2000:]
    return r


def eth_ip4_tcp(sport: int, dport: int, flags: int, seq: int, payload: bytes = b"",
                opts: bytes = b"", src: bytes = b"\x0a\x00\x00\x01") -> bytes:
    hl = 20 + len(opts)
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq, 0, (hl // 4) << 4, flags, 65535, 0, 0)
    tcp += opts + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 0, 0, 64, 6, 0, src,
                     b"\x0a\x00\x00\x02")
    return b"\x00\x11\x22\x33\x44\x55\x66\x77\x88\x99\xaa\xbb\x08\x00" + ip + tcp


def test_gzip_bomb(tmp_path: Path) -> None:
    """Gzip members that inflate to 2 GB of zeros (empty records after a pcap header):
    bounded memory, and an answer within the time limit. (The same at 10 GB from ~10 MB,
    run by hand: exit 0 after 77 s, within 1.5 GB.)"""
    member = zlib.compressobj(9, zlib.DEFLATED, 31)
    zeros = member.compress(bytes(10_000_000)) + member.flush()
    head = gzip.compress(pcap_bytes([(0, eth_ip4_tcp(1, 2, 2, 0))], linktype=1))
    bomb = tmp_path / "bomb.pcap.gz"
    bomb.write_bytes(head + zeros * 200)
    assert bomb.stat().st_size < 3_000_000
    r = limited("analyze", str(bomb), "--format", "csv", seconds=600)
    if r.returncode == 0:
        assert r.stdout.count("\n") == 2  # the one real packet's flow


def test_pcapng_block_claiming_4_gb(tmp_path: Path) -> None:
    e = "<"
    data = ng_shb(e) + ng_idb(e, 1) + ng_epb(e, 0, 0, eth_ip4_tcp(1, 2, 2, 0))
    data += struct.pack(e + "II", 6, 0xFFFFFFF0) + bytes(64)
    path = tmp_path / "huge-block.pcapng"
    path.write_bytes(data)
    r = limited("analyze", str(path), "--format", "csv")
    assert r.returncode == 2 and "huge-block.pcapng" in r.stderr and "offset" in r.stderr


def test_pcap_record_claiming_2_31_bytes(tmp_path: Path) -> None:
    data = pcap_bytes([(0, eth_ip4_tcp(1, 2, 2, 0))], linktype=1)
    data += struct.pack("<IIII", 1, 0, 2**31, 2**31) + bytes(100)
    path = tmp_path / "huge-record.pcap"
    path.write_bytes(data)
    r = limited("analyze", str(path), "--format", "csv")
    offset = 24 + 16 + len(eth_ip4_tcp(1, 2, 2, 0))
    assert r.returncode == 2 and "packet 2" in r.stderr and f"offset {offset}" in r.stderr


def test_100000_interfaces(tmp_path: Path) -> None:
    e = "<"
    idbs = ng_idb(e, 1) * 100_000
    epbs = b"".join(ng_epb(e, k * 997 % 100_000, k, eth_ip4_tcp(1000 + k, 80, 2, k))
                    for k in range(2000))
    path = tmp_path / "many-interfaces.pcapng"
    path.write_bytes(ng_shb(e) + idbs + epbs)
    r = limited("analyze", str(path), "--format", "csv")
    assert r.returncode == 0
    assert r.stdout.count("\n") == 2001


def test_syn_flood_of_a_million_flows(tmp_path: Path) -> None:
    path = tmp_path / "flood.pcap"
    made = subprocess.run([sys.executable, str(ROOT / "bench" / "gen_flood.py"), str(path),
                           "1000000"], check=True, capture_output=True, text=True)
    flows = int(made.stdout.split("'flows': ")[1].split(",")[0])
    r = limited("analyze", str(path), "--format", "csv", "-o", str(tmp_path / "f.csv"),
                mem=1200 * 2**20, seconds=300)
    assert r.returncode == 0
    with open(tmp_path / "f.csv") as fh:
        assert sum(1 for _ in fh) == flows + 1


def test_64_kb_proxy_headers_on_every_connection(tmp_path: Path) -> None:
    """PROXY v2 headers of 65,535 bytes of TLVs (NOOP), in MSS-sized segments, on 300
    connections: read, kept bounded, each client found."""
    sig = b"\r\n\r\n\x00\r\nQUIT\n"
    frames = []
    t = 0
    for c in range(300):
        sport = 20000 + c
        addr = struct.pack("!4s4sHH", bytes([192, 0, 2, c % 250 + 1]), b"\xc6\x33\x64\x02",
                           40000 + c, 80)
        tlvs = b""
        while len(addr) + len(tlvs) + 3 <= 65535 - 3:
            room = 65535 - len(addr) - len(tlvs) - 3
            n = min(room, 60000)
            tlvs += struct.pack("!BH", 0x04, n) + bytes(n)  # PP2_TYPE_NOOP
        body = addr + tlvs
        hdr = sig + struct.pack("!BBH", 0x21, 0x11, len(body)) + body
        seq = 1000
        frames.append((t, eth_ip4_tcp(sport, 80, 0x02, seq - 1)))
        for off in range(0, len(hdr), 1448):
            t += 1000
            frames.append((t, eth_ip4_tcp(sport, 80, 0x18, seq + off, hdr[off:off + 1448])))
    path = tmp_path / "pp64k.pcap"
    path.write_bytes(pcap_bytes(frames, linktype=1))
    r = limited("analyze", str(path), "--format", "csv", seconds=300)
    assert r.returncode == 0
    rows = r.stdout.splitlines()[1:]
    assert len(rows) == 300 and all(",ppv2,192.0.2." in row for row in rows), rows[:2]


@pytest.mark.parametrize("tag", ["vlan", "mpls"])
def test_100000_deep_stacks(tag: str, tmp_path: Path) -> None:
    ip = eth_ip4_tcp(1, 80, 2, 0)[14:]
    if tag == "vlan":
        stack = b"\x81\x00\x00\x01" * 100_000 + b"\x08\x00"
    else:
        stack = b"\x88\x47" + b"\x00\x01\x00\x40" * 99_999 + b"\x00\x01\x01\x40"
    frame = b"\x00\x11\x22\x33\x44\x55\x66\x77\x88\x99\xaa\xbb" + stack + ip
    path = tmp_path / f"{tag}.pcap"
    path.write_bytes(pcap_bytes([(0, frame), (1, eth_ip4_tcp(1, 80, 2, 0))], linktype=1))
    r = limited("analyze", str(path), "--format", "csv")
    assert r.returncode in (0, 2)
    r = limited("show", str(path), "--packet", "1")
    assert r.returncode in (0, 2)


def test_tcp_options_of_every_length(tmp_path: Path) -> None:
    frames = []
    for n in range(0, 41):
        for fill in (0x01, 0xC8, 0xFE, 0x00, 0x02):
            opts = bytes([fill]) * n
            opts += b"\x00" * (-len(opts) % 4)
            frames.append((len(frames), eth_ip4_tcp(2000 + len(frames), 80, 2, 0, opts=opts)))
    path = tmp_path / "options.pcap"
    path.write_bytes(pcap_bytes(frames, linktype=1))
    r = limited("analyze", str(path), "--format", "csv")
    assert r.returncode in (0, 1)
    r = limited("show", str(path), "--packet", "7")
    assert r.returncode in (0, 1)


@pytest.mark.parametrize("expr", [  # (one argument holds at most 128 KiB on Linux)
    "(" * 30_000 + "method==ppv2" + ")" * 30_000,
    "not " * 25_000 + "has:client_ip",
    " or ".join(["method==ppv1"] * 6_000),
    "client_ip in " + "1" * 100_000,
    "tlvs~" + "(a+)+" * 1000,
    "\x01\xff" * 10_000,
])
def test_pathological_filters(expr: str) -> None:
    r = limited("analyze", str(PCAPS / "flow-proxy-misc.pcap"), "--format", "csv",
                "--filter", expr, seconds=120)
    assert r.returncode in (0, 2)


def test_ten_megabyte_log_lines(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    line = '203.0.113.9 - - [14/Nov/2023:22:13:20 +0000] "GET /' + "a" * 10_000_000 + '" 200 0 "-" "-"\n'
    log.write_text(line * 3 + "x" * 10_000_000 + "\n")
    r = limited("resolve", str(PCAPS / "flow-proxy-misc.pcap"), "--log", str(log),
                "--format", "csv", seconds=300)
    assert r.returncode in (0, 2)
    if r.returncode == 0:
        assert "1 " in r.stderr or "unparseable" in r.stderr.lower() or "line 4" in r.stderr


def test_a_port_scan_against_2000_wide_rules(tmp_path: Path) -> None:
    """A SYN to each of 60,000 origin ports, judged against 2,000 rules whose ranges cover
    26,000 ports: every flow judged (a port scan asks the rules once per port)."""
    rules = tmp_path / "wide.rules"
    rules.write_text("tcp:10000-35999 og:a 10000-35999 off ppv2\n"
                     + "".join(f"tcp:{60000 + i} og:b {i} off toa\n" for i in range(1, 2000)))
    frames = [(port * 1000, eth_ip4_tcp(40000, port, 0x02, port)) for port in range(1, 60001)]
    path = tmp_path / "scan.pcap"
    path.write_bytes(pcap_bytes(frames, linktype=1))
    r = limited("analyze", str(path), "--rules", str(rules), "--format", "csv", "-o",
                str(tmp_path / "scan.csv"), seconds=300)
    assert r.returncode == 0
    with open(tmp_path / "scan.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 60000
    covered = sum(1 for row in rows if row["rule"])
    assert covered == 26000 + 1999  # the range, and ports 1..1999 of the other rules


@pytest.mark.parametrize("content", [b"tcp:80 " + b"a" * 10_000_000 + b" 80 off off\n",
                                     bytes(range(256)) * 40_000, b"\n" * 5_000_000])
def test_hostile_rules_files(content: bytes, tmp_path: Path) -> None:
    """A 10 MB rule line, 10 MB of binary, five million empty lines: one clear answer."""
    rules = tmp_path / "hostile.rules"
    rules.write_bytes(content)
    r = limited("analyze", str(PCAPS / "haproxy-v1.pcap"), "--rules", str(rules), "--format",
                "csv", seconds=120)
    if content.startswith(b"\n"):
        assert r.returncode == 0  # no rule at all: every flow unmatched
        assert r.stdout.count("rule.unmatched") == 4
    else:
        assert r.returncode == 2 and r.stdout == ""
