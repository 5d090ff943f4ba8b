"""Seed 002 (Tencent EdgeOne docs): the two captures it shows decode to exactly its values.

The document's hex dumps are stored byte for byte as captures of our own
(tests/pcaps/seeds/, built by tests/gen/seed_pcaps.py) and its Wireshark view
is transcribed line for line there; tshark, which made that view, must print
the same lines for our frames, so the transcription is checked, not trusted.
"""

from __future__ import annotations

import re
import struct
import subprocess

import pytest
from gen.dissect_compare import PCAPS, flatten, read_frames_lt
from gen.proxy_pcaps import SEED002_V2_HEX, inet_checksum
from gen.seed_pcaps import (
    CAPTURES,
    SEED002_V1_VIEW,
    SEED002_V2_LIST_ROW,
    SEED002_V2_VIEW,
    build_all,
    readme_lines,
)
from tools import require_tool

from pcapip.dissect import ParseState, dissect_frame, parse_proxy

SEEDS = PCAPS / "seeds"


def seed_hexdumps() -> list[bytes]:
    """The hex dumps printed in the seed, in order: the v2 frame, then the v1 stream."""
    out = []
    for name in ("seed002-v2-frame-as-printed.pcap", "seed002-v1-stream-as-printed.pcap"):
        ((_lt, data),) = read_frames_lt(SEEDS / name)
        out.append(data)
    return out


def seed_view(lines: tuple[str, ...]) -> dict[str, str]:
    """'Label: value' pairs of a transcribed Wireshark view (bit-field prefixes dropped)."""
    out: dict[str, str] = {}
    for line in lines:
        m = re.match(r"^(?:[.01 ]+= )?\[?([A-Za-z ]+)\]?: (.+)$", line.strip())
        if m:
            out.setdefault(m.group(1).strip(), m.group(2))
    return out


def test_committed_seed_captures_match_the_generator(tmp_path):
    build_all(tmp_path)
    for cap in CAPTURES:
        assert (tmp_path / cap.name).read_bytes() == (SEEDS / cap.name).read_bytes(), cap.name
    assert sorted(p.name for p in SEEDS.iterdir()) == sorted(c.name for c in CAPTURES)


def test_every_seed_capture_has_its_readme_line():
    readme = (PCAPS / "README.md").read_text()
    for line in readme_lines():
        assert line in readme


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
    no, time, src, dst, proto, length = SEED002_V2_LIST_ROW
    assert (no, time, src, proto) == ("1", "0.000000", "43.175.17.39", "PROXYv2")
    assert dst == "10.4.0.14" and int(length) == len(frame) == 73


def test_v2_frame_decodes_to_the_seed_view():
    (lt, frame), = read_frames_lt(PCAPS / "seed002-proxy-v2-udp-sll.pcap")
    layers = dissect_frame(frame, lt)
    assert [x.name for x in layers] == ["frame", "sll", "ip", "udp", "proxy", "data"]
    assert layers[0].label.startswith("Frame: 73 bytes")
    assert layers[1].label == "Linux cooked capture v1" == SEED002_V2_VIEW[1]
    f = flatten(layers)

    def one(name):
        (v,) = [x[2] for x in f[name]]
        return v

    assert (str(one("ip.src")), str(one("ip.dst"))) == ("43.175.17.39", "10.4.0.14")
    assert f"Src: {one('ip.src')}, Dst: {one('ip.dst')}" in SEED002_V2_VIEW[2]
    assert (one("udp.srcport"), one("udp.dstport")) == (11834, 38888)
    assert f"Src Port: {one('udp.srcport')}, Dst Port: {one('udp.dstport')}" in SEED002_V2_VIEW[3]
    view = seed_view(SEED002_V2_VIEW)
    assert one("proxy.v2.magic").hex() == view["Magic"]
    assert one("proxy.v2.version") == int(view["Version"]) == 2
    assert one("proxy.v2.cmd") == int(view["Command"]) == 1
    assert one("proxy.version") == 2
    assert one("proxy.v2.addr_family_protocol") == 0x12
    assert view["Address Family Protocol"] == "UDP over IPv4 (0x12)"
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
    frame_line, sll_line, ip_line, tcp_line, reassembled = SEED002_V1_VIEW[:5]
    wire = re.match(r"Frame 18: (\d+) bytes on wire", frame_line)
    tcp = re.search(r"Src Port: (\d+), Dst Port: (\d+), Seq: (\d+), Ack: (\d+), Len: (\d+)$",
                    tcp_line)
    assert tcp.groups() == ("7502", "10000", "57", "4", "4")
    last = fields(-1)
    assert len(frames[-1][1]) == int(wire.group(1)) == 60
    assert dissected[-1][1].label == "Linux cooked capture v1" == sll_line
    assert (str(last["ip.src"][0][2]), str(last["ip.dst"][0][2])) == ("43.132.85.50",
                                                                      "10.4.0.14")
    assert ip_line.endswith("Src: 43.132.85.50, Dst: 10.4.0.14")
    assert (last["tcp.srcport"][0][2], last["tcp.dstport"][0][2]) == (7502, 10000)
    assert last["tcp.seq_raw"][0][2] - isn_c == 57 and last["tcp.ack_raw"][0][2] - isn_s == 4
    assert last["tcp.payload"][0][1] == 4
    # "[2 Reassembled TCP Segments (60 bytes): #7(56), #18(4)]": the client's stream
    client = [x for x in dissected if str(flatten(x)["ip.src"][0][2]) == "43.132.85.50"]
    parts = [flatten(x)["tcp.payload"][0][2] for x in client if "tcp.payload" in flatten(x)]
    assert [len(p) for p in parts] == [int(n) for n in re.findall(r"#\d+\((\d+)\)", reassembled)]
    assert [len(p) for p in parts] == [56, 4]
    stream = b"".join(parts)
    assert stream == seed_hexdumps()[1]
    p = parse_proxy(stream)
    assert p.state is ParseState.OK
    view = seed_view(SEED002_V1_VIEW[5:])
    h = p.header
    assert h.family == view["Protocol"] == "TCP4"
    assert h.src_addr == view["Source Address"] == "119.29.135.205"
    assert h.dst_addr == view["Destination Address"] == "43.159.115.63"
    assert h.src_port == int(view["Source Port"]) == 53859
    assert h.dst_port == int(view["Destination Port"]) == 10000
    assert SEED002_V1_VIEW[-1] == "Data (7 bytes)"
    assert len(stream) - p.length == 7  # "Data (7 bytes)"
    # the first segment alone already holds the whole header (the reassembly was for the data)
    first = parse_proxy(parts[0])
    assert first.state is ParseState.OK and first.header == h


@pytest.mark.parametrize("cut", [1, 5, 6, 11, 20, 52])
def test_v1_header_split_anywhere_waits_for_the_rest(cut):
    stream = seed_hexdumps()[1]
    assert parse_proxy(stream[:cut]).state is ParseState.NEED_MORE
    assert parse_proxy(stream).header.src_port == 53859


# --- tshark made the document's view: it must print the transcribed lines for our frames ----


def _normal(line: str) -> str:
    """A view line without indentation, bit-field prefix or frame numbers."""
    line = re.sub(r"^(?:[.01 ]+= )", "", line.strip())
    return re.sub(r"#\d+\(", "#N(", re.sub(r"^Frame \d+:", "Frame N:", line))


def tshark_view(path, frame_no: int) -> list[str]:
    """tshark's verbose view of one frame: the layer lines and the PROXY layer's own lines."""
    text = subprocess.run(
        [require_tool("tshark"), "-r", str(path), "-o", "tcp.try_heuristic_first:TRUE", "-V"],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout
    frames = re.split(r"\n(?=Frame \d+:)", text)
    lines, in_proxy = [], False
    for line in frames[frame_no - 1].splitlines():
        if not line.strip() or re.match(r"^[0-9a-f]{4}  ", line):
            continue
        if not line.startswith(" "):
            in_proxy = line == "PROXY Protocol"
            lines.append(line)
        elif in_proxy and re.match(r"^ {4}\S", line):
            lines.append(line)
    return [_normal(x) for x in lines]


def test_tshark_prints_the_seed_v2_view_for_our_frame():
    got = tshark_view(PCAPS / "seed002-proxy-v2-udp-sll.pcap", 1)
    assert got == [_normal(x) for x in SEED002_V2_VIEW]


def test_tshark_prints_the_seed_v1_view_for_our_connection():
    """The document's frame 18 is the connection's last frame here (numbers aside)."""
    frames = read_frames_lt(PCAPS / "seed002-proxy-v1-sll.pcap")
    got = tshark_view(PCAPS / "seed002-proxy-v1-sll.pcap", len(frames))
    assert got == [_normal(x) for x in SEED002_V1_VIEW]
