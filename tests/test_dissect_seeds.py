"""Seed 002 (Tencent EdgeOne docs): the two captures it shows decode to exactly its values.

The expected values and bytes are read from the seed document itself, so the
test follows the document, not a transcription of it.
"""

from __future__ import annotations

import re
import struct

import pytest
from gen.dissect_compare import PCAPS, SHARED_ROOT, flatten, read_frames_lt
from gen.proxy_pcaps import SEED002_V2_HEX, inet_checksum

from pcapip.dissect import ParseState, dissect_frame, parse_proxy

SEED = next((SHARED_ROOT / "seeds").glob("002_*.txt")).read_text()


def seed_hexdumps() -> list[bytes]:
    """The hex dumps printed in the seed, in order (lines 'OOOO  xx xx ...')."""
    dumps: list[bytes] = []
    cur = bytearray()
    for line in SEED.splitlines():
        m = re.match(r"^([0-9a-f]{4})(?:\t| {2})(.*)$", line)
        if not m:
            continue
        # columns: hex groups ..., ascii (always last; it may itself look like hex)
        cols = re.split(r"\t| {2,}", m.group(2).strip())
        if len(cols) < 2 or not all(re.fullmatch(r"[0-9a-f]{2}( [0-9a-f]{2})*", c)
                                    for c in cols[:-1]):
            continue
        if m.group(1) == "0000" and cur:
            dumps.append(bytes(cur))
            cur = bytearray()
        cur += bytes.fromhex(" ".join(cols[:-1]))
    dumps.append(bytes(cur))
    return dumps


def seed_view(after: str, count: int) -> dict[str, str]:
    """'Label: value' lines of a Wireshark view printed in the seed after ``after``."""
    start = SEED.index(after)
    out: dict[str, str] = {}
    for line in SEED[start:].splitlines()[1:]:
        line = line.strip().lstrip("> ")
        m = re.match(r"^(?:[.01 ]+= )?\[?([A-Za-z ]+)\]?: (\S+)", line)
        if m:
            out.setdefault(m.group(1).strip(), m.group(2))
        if len(out) >= count:
            break
    return out


def test_seed_hexdumps_are_what_we_think():
    v2_dump, v1_dump = seed_hexdumps()
    assert len(v2_dump) == 73 and len(v1_dump) == 60
    assert v1_dump.startswith(b"PROXY TCP4 119.29.135.205 43.159.115.63 53859 10000\r\n")


def test_v2_frame_is_the_seed_dump_with_its_checksum_proven_typo_fixed():
    printed = seed_hexdumps()[0]
    (lt, frame), = read_frames_lt(PCAPS / "seed002-proxy-v2-udp-sll.pcap")
    assert lt == 113 and frame == bytes.fromhex(SEED002_V2_HEX)
    diff = [i for i in range(73) if printed[i] != frame[i]]
    assert diff == [0x23] and (printed[0x23], frame[0x23]) == (0x0A, 0x0E)
    # the printed byte fails both checksums, the corrected one passes both
    for f, good in ((printed, False), (frame, True)):
        ip = f[16:36]
        assert (inet_checksum(ip) == 0) is good
        udp = f[36:]
        pseudo = ip[12:20] + struct.pack("!BBH", 0, 17, len(udp))
        assert (inet_checksum(pseudo + udp) == 0) is good
    # and the seed's packet list names 10.4.0.14 as the destination of frame 1
    assert re.search(r"^1\s+0\.000000\s+43\.175\.17\.39\s+10\.4\.0\.14\s+PROXYv2\s+73", SEED, re.M)


def test_v2_frame_decodes_to_the_seed_view():
    (lt, frame), = read_frames_lt(PCAPS / "seed002-proxy-v2-udp-sll.pcap")
    layers = dissect_frame(frame, lt)
    assert [x.name for x in layers] == ["frame", "sll", "ip", "udp", "proxy", "data"]
    assert layers[0].label.startswith("Frame: 73 bytes")
    assert layers[1].label == "Linux cooked capture v1"
    f = flatten(layers)

    def one(name):
        (v,) = [x[2] for x in f[name]]
        return v

    assert (str(one("ip.src")), str(one("ip.dst"))) == ("43.175.17.39", "10.4.0.14")
    assert (one("udp.srcport"), one("udp.dstport")) == (11834, 38888)
    view = seed_view("PROXY Protocol\nMagic", 10)
    assert one("proxy.v2.magic").hex() == view["Magic"]
    assert one("proxy.v2.version") == int(view["Version"]) == 2
    assert one("proxy.v2.cmd") == int(view["Command"]) == 1
    assert one("proxy.version") == 2
    assert one("proxy.v2.addr_family_protocol") == 0x12
    assert "UDP over IPv4 (0x12)" in SEED
    assert one("proxy.v2.length") == int(view["Length"]) == 12
    assert str(one("proxy.src.ipv4")) == view["Source Address"] == "119.29.135.205"
    assert str(one("proxy.dst.ipv4")) == view["Destination Address"] == "43.159.115.63"
    assert one("proxy.srcport") == int(view["Source Port"]) == 48748
    assert one("proxy.dstport") == int(view["Destination Port"]) == 38888
    assert one("data.data") == b"0"
    # each field's offset points at its bytes in the frame
    for name in ("proxy.src.ipv4", "proxy.dst.ipv4"):
        (off, ln, v), = f[name]
        assert frame[off : off + ln] == v.packed
    assert frame[f["proxy.v2.magic"][0][0] :][:12] == b"\r\n\r\n\x00\r\nQUIT\n"


def test_v1_connection_decodes_to_the_seed_view():
    frames = read_frames_lt(PCAPS / "seed002-proxy-v1-sll.pcap")
    dissected = [dissect_frame(f, lt) for lt, f in frames]

    def fields(i):
        return flatten(dissected[i])

    syn, synack = fields(0), fields(1)
    isn_c, isn_s = syn["tcp.seq_raw"][0][2], synack["tcp.seq_raw"][0][2]
    # the seed's frame 18: 60 bytes, SLL, 43.132.85.50 -> 10.4.0.14, 7502 -> 10000,
    # Seq: 57, Ack: 4, Len: 4 -- here the last frame
    last = fields(-1)
    assert len(frames[-1][1]) == 60 and dissected[-1][1].label == "Linux cooked capture v1"
    assert (str(last["ip.src"][0][2]), str(last["ip.dst"][0][2])) == ("43.132.85.50",
                                                                      "10.4.0.14")
    assert (last["tcp.srcport"][0][2], last["tcp.dstport"][0][2]) == (7502, 10000)
    assert last["tcp.seq_raw"][0][2] - isn_c == 57 and last["tcp.ack_raw"][0][2] - isn_s == 4
    assert last["tcp.payload"][0][1] == 4
    # "[2 Reassembled TCP Segments (60 bytes): #7(56), #18(4)]": the client's stream
    client = [x for x in dissected if str(flatten(x)["ip.src"][0][2]) == "43.132.85.50"]
    parts = [flatten(x)["tcp.payload"][0][2] for x in client if "tcp.payload" in flatten(x)]
    assert [len(p) for p in parts] == [56, 4]
    stream = b"".join(parts)
    assert stream == seed_hexdumps()[1]
    p = parse_proxy(stream)
    assert p.state is ParseState.OK
    view = seed_view("PROXY Protocol\n\nPROXY v1 magic", 5)
    h = p.header
    assert h.family == view["Protocol"] == "TCP4"
    assert h.src_addr == view["Source Address"] == "119.29.135.205"
    assert h.dst_addr == view["Destination Address"] == "43.159.115.63"
    assert h.src_port == int(view["Source Port"]) == 53859
    assert h.dst_port == int(view["Destination Port"]) == 10000
    assert len(stream) - p.length == 7  # "Data (7 bytes)"
    # the first segment alone already holds the whole header (the reassembly was for the data)
    first = parse_proxy(parts[0])
    assert first.state is ParseState.OK and first.header == h


@pytest.mark.parametrize("cut", [1, 5, 6, 11, 20, 52])
def test_v1_header_split_anywhere_waits_for_the_rest(cut):
    stream = seed_hexdumps()[1]
    assert parse_proxy(stream[:cut]).state is ParseState.NEED_MORE
    assert parse_proxy(stream).header.src_port == 53859
