"""Differential tests against tshark on every capture we have.

For each frame, every field that both tshark and pcapip produce under the same
display-filter name must sit at the same offset, have the same length and
the same value; TCP option kinds and lengths must match tshark's walk; PROXY
fields must match wherever tshark decodes a header (with heuristics first, as
the PROXY heuristic needs). Known Wireshark limitations are asserted as such:
it nests TLVs that follow an SSL TLV inside it, so its TLV list is only a
prefix of ours, and it knows no TOA. Tunnels (tests/pcaps/tunnel-*.pcap) are compared
layer by layer: a name that repeats (the outer and the inner ``ip.src``) is matched by
position, every encapsulation layer must start where tshark's does, and Wireshark's
different views of tunnels are asserted as such (it opens encapsulations at any depth,
its ERSPAN layer covers the mirrored frame, it draws no layer for a header the capture
cut before its first field).
"""

from __future__ import annotations

import pytest
from gen.dissect_compare import (
    aligned,
    all_captures,
    flatten,
    option_walk,
    pdml_packets,
    read_frames,
    read_frames_lt,
    run_tshark,
    same_value,
    tshark_raw_frames,
)
from tools import require_tool

from pcapip.decode.tunnels import MAX_TUNNEL_DEPTH, udp_tunnel_ports
from pcapip.dissect import ParseState, dissect_frame, parse_proxy

pytestmark = pytest.mark.system

# Fields compared by position, length and value whenever both sides have them.
SAME_NAMES = [
    "eth.dst", "eth.src", "eth.type", "vlan.priority", "vlan.id", "vlan.etype",
    "sll.pkttype", "sll.hatype", "sll.halen", "sll.src.eth", "sll.etype", "sll.ifindex",
    "null.family",
    "ip.version", "ip.hdr_len", "ip.dsfield", "ip.len", "ip.id", "ip.flags", "ip.frag_offset",
    "ip.ttl", "ip.proto", "ip.checksum", "ip.src", "ip.dst",
    "ipv6.version", "ipv6.tclass", "ipv6.flow", "ipv6.plen", "ipv6.nxt", "ipv6.hlim",
    "ipv6.src", "ipv6.dst",
    "tcp.srcport", "tcp.dstport", "tcp.seq_raw", "tcp.ack_raw", "tcp.hdr_len", "tcp.flags",
    "tcp.flags.syn", "tcp.flags.ack", "tcp.flags.fin", "tcp.flags.reset", "tcp.flags.push",
    "tcp.window_size_value", "tcp.checksum", "tcp.urgent_pointer",
    "tcp.options.mss_val", "tcp.options.wscale.shift", "tcp.options.timestamp.tsval",
    "tcp.options.timestamp.tsecr",
    "udp.srcport", "udp.dstport", "udp.length", "udp.checksum",
    "ieee8021ad.priority", "ieee8021ad.dei", "ieee8021ad.id", "vlan.dei",
]
# The encapsulations' fields (pcapip.dissect.hf_layers.TUNNEL_FIELDS), compared the same way.
# Not here: geneve.reserved and geneve.option.type.critical, which Wireshark hides.
TUNNEL_NAMES = [
    "vxlan.flags", "vxlan.flag_g", "vxlan.flag_i", "vxlan.flag_d", "vxlan.flag_a",
    "vxlan.flags_reserved", "vxlan.gbp", "vxlan.vni", "vxlan.reserved8",
    "geneve.version", "geneve.option.length", "geneve.flags", "geneve.flags.oam",
    "geneve.flags.critical", "geneve.proto_type", "geneve.vni", "geneve.options",
    "geneve.option", "geneve.option.class", "geneve.option.type", "geneve.option.unknown.data",
    "gre.flags_and_version", "gre.flags.checksum", "gre.flags.routing", "gre.flags.key",
    "gre.flags.sequence_number", "gre.flags.strict_source_route", "gre.flags.recursion_control",
    "gre.flags.reserved", "gre.flags.version", "gre.proto", "gre.checksum", "gre.offset",
    "gre.key", "gre.sequence_number",
    "erspan.version", "erspan.vlan", "erspan.cos", "erspan.encap", "erspan.bso",
    "erspan.truncated", "erspan.spanid", "erspan.reserved", "erspan.index", "erspan.timestamp",
    "erspan.sgt", "erspan.p", "erspan.ft", "erspan.hw", "erspan.direction", "erspan.gra",
    "erspan.o", "erspan.platid", "erspan.pid3.rsvd1", "erspan.pid3.port_index",
    "erspan.pid3.timestamp", "erspan.pid5.switchid", "erspan.pid5.port_index",
    "erspan.pid5.timestamp",
    "mpls.label", "mpls.exp", "mpls.bottom", "mpls.ttl", "pweth.cw.sequence_number",
    "pppoe.version", "pppoe.type", "pppoe.code", "pppoe.session_id", "pppoe.payload_length",
    "ppp.protocol",
]
# Encapsulation layers: each must start (and, but for ERSPAN, end) where tshark's does.
TUNNEL_LAYERS = ["vxlan", "geneve", "gre", "mpls", "pwethcw", "pppoes", "ppp", "erspan"]
# Compared by position and length only: Wireshark shows SACK edges relative to the ISN.
POSITION_ONLY = ["tcp.options.sack_le", "tcp.options.sack_re"]
PROXY_NAMES = [
    "proxy.v1.magic", "proxy.v1.proto", "proxy.src.ipv4", "proxy.dst.ipv4", "proxy.src.ipv6",
    "proxy.dst.ipv6", "proxy.srcport", "proxy.dstport", "proxy.v2.version", "proxy.v2.cmd",
    "proxy.v2.addr_family_protocol", "proxy.v2.length", "proxy.v2.tlv.ssl.version",
    "proxy.v2.tlv.ssl.cn", "proxy.v2.tlv.ssl.client", "proxy.v2.tlv.ssl.verify",
]

CAPTURES = [p for p in all_captures() if read_frames(p)[1]]
TUNNEL_CAPTURES = [p for p in CAPTURES if p.name.startswith("tunnel-")]


@pytest.fixture(scope="module", autouse=True)
def _tshark():
    require_tool("tshark")


def _compare(name, mine, theirs, where):
    got = sorted((o, ln, v) for o, ln, v in mine)
    want = sorted((int(t["pos"]), int(t["size"]), t.get("show", "")) for t in theirs)
    assert [(o, ln) for o, ln, _ in got] == [(o, ln) for o, ln, _ in want], (where, name, got,
                                                                             want)
    for (_, _, v), (_, _, show) in zip(got, want, strict=True):
        assert same_value(v, show), (where, name, v, show)


@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: p.name)
def test_layers_and_options_match_tshark(path):
    packets = pdml_packets(path)
    pairs = aligned(path)
    if not pairs:
        # a damaged file that dpkt and tshark split into different frames: nothing to compare
        ours = [f for _, f in read_frames_lt(path)]
        assert ours and ours != tshark_raw_frames(path), path
        return
    compared = 0
    for i, linktype, frame in pairs:
        where = f"{path.name} frame {i + 1}"
        layers = dissect_frame(frame, linktype)
        mine = flatten(layers)
        theirs = _within_depth(layers, packets[i])
        # fields tshark found in IP-reassembled data carry offsets into that data, not the frame
        ip_reassembled = "ip.fragments" in theirs or "ipv6.fragments" in theirs
        _compare_tunnel_layers(layers, theirs, where)
        for name in SAME_NAMES + TUNNEL_NAMES:
            if ip_reassembled and name.startswith(("tcp.", "udp.")):
                continue
            if name in theirs:
                _compare(name, mine.get(name, []), theirs[name], where)
                compared += 1
        for name in POSITION_ONLY:
            if name in theirs:
                got = sorted((o, ln) for o, ln, _ in mine.get(name, []))
                assert got == sorted((int(t["pos"]), int(t["size"])) for t in theirs[name]), \
                    (where, name, got)
        # TCP options: kinds and lengths in walk order
        tcp = next((layer for layer in layers if layer.name == "tcp"), None)
        opts = tcp.find("tcp.options") if tcp is not None else None
        walk = option_walk(opts) if opts is not None else []
        want_kinds = [(int(t["pos"]), int(t["show"])) for t in theirs.get("tcp.option_kind", [])]
        assert [(o, k) for o, k, _ in walk] == want_kinds, (where, walk, want_kinds)
        want_lens = [int(t["show"]) for t in theirs.get("tcp.option_len", [])]
        assert [ln for _, k, ln in walk if ln is not None] == want_lens, (where, walk)
        # PROXY header fields, where tshark decoded one within this frame
        if any(k.startswith("proxy.") for k in theirs):
            if "tcp.segments" in theirs or "_ws.malformed" in theirs:
                # reassembled across frames (checked by test_proxy_values_match_tshark), or a
                # partial header that tshark decodes as far as it goes and we call NEED_MORE
                continue
            for name in PROXY_NAMES:
                if name in theirs:
                    _compare(name, mine.get(name, []), theirs[name], where)
            compared += 1
    assert compared > 0 or linktype not in (0, 1, 101, 108, 113, 228, 229, 276)


def _within_depth(layers, theirs):
    """tshark's fields of a frame, less those past where pcapip stopped opening encapsulations:
    Wireshark opens them at any depth, pcapip stops after MAX_TUNNEL_DEPTH (a crafted loop)."""
    stops = [e.offset for layer in layers for e in layer.all_experts()
             if e.code == "frame.tunnel_depth"]
    if not stops:
        return theirs
    return {k: [t for t in v if int(t.get("pos", 0)) < stops[0]] for k, v in theirs.items()}


def _compare_tunnel_layers(layers, theirs, where):
    for name in TUNNEL_LAYERS:
        # a header the capture cut before its first field: pcapip keeps its layer with the
        # truncation expert, Wireshark draws none (only "[Packet size limited ...]")
        ours = [x for x in layers if x.name == name
                and (x.children or not any(e.code == "frame.truncated" for e in x.experts))]
        got = sorted((x.offset, x.length) for x in ours)
        want = sorted((int(t["pos"]), int(t["size"])) for t in theirs.get(name, []))
        if name == "erspan":  # Wireshark's ERSPAN layer runs on over the mirrored frame
            got, want = [o for o, _ in got], [o for o, _ in want]
        assert got == want, (where, name, got, want)


def test_every_tunnel_field_is_compared_somewhere():
    """Each name of TUNNEL_NAMES and TUNNEL_LAYERS occurs in tshark's reading of some tunnel
    capture (else its comparison above would be vacuous)."""
    seen = {name for p in TUNNEL_CAPTURES for pkt in pdml_packets(p) for name in pkt}
    assert set(TUNNEL_NAMES + TUNNEL_LAYERS) - seen == set()
    assert {p.name for p in TUNNEL_CAPTURES} >= {"tunnel-vxlan.pcap", "tunnel-geneve.pcap",
                                                 "tunnel-gre.pcap", "tunnel-erspan.pcap",
                                                 "tunnel-mpls.pcap", "tunnel-pppoe.pcap",
                                                 "tunnel-ipip.pcap", "tunnel-hostile.pcap"}


def test_vxlan_on_another_port_matches_tshark_decode_as():
    """--vxlan-port's port map (udp_tunnel_ports) against tshark's ``-d udp.port==8472,vxlan``."""
    from gen.dissect_compare import PCAPS

    path = PCAPS / "tunnel-vxlan-8472.pcap"
    packets = pdml_packets(path, ("-d", "udp.port==8472,vxlan"))
    ports = udp_tunnel_ports((8472,))
    pairs = aligned(path)
    assert pairs and all("vxlan.vni" in pkt for pkt in packets)
    for i, lt, frame in pairs:
        layers = dissect_frame(frame, lt, udp_ports=ports)
        mine, theirs = flatten(layers), packets[i]
        _compare_tunnel_layers(layers, theirs, f"frame {i + 1}")
        for name in SAME_NAMES + TUNNEL_NAMES:
            if name in theirs:
                _compare(name, mine.get(name, []), theirs[name], f"frame {i + 1}")


def test_wireshark_opens_a_loop_past_our_depth_limit():
    """A known different view: Wireshark opens all 10 IPv4-in-IPv4 layers of the crafted loop,
    pcapip stops after MAX_TUNNEL_DEPTH encapsulations, with an expert, and agrees before."""
    from gen.dissect_compare import PCAPS

    path = PCAPS / "tunnel-hostile.pcap"
    theirs = pdml_packets(path)[0]
    layers = dissect_frame(aligned(path)[0][2], 1)
    assert len(theirs["ip"]) == 11 and "tcp" in theirs
    assert [x.name for x in layers].count("ip") == MAX_TUNNEL_DEPTH + 1
    assert "tcp" not in [x.name for x in layers]
    depth = [e for x in layers for e in x.experts if e.code == "frame.tunnel_depth"]
    assert len(depth) == 1 and depth[0].offset == 14 + 20 * (MAX_TUNNEL_DEPTH + 1)


def test_wireshark_merges_two_tenants_into_one_tcp_stream():
    """Why the tunnel identity belongs to the flow key: tshark's TCP conversations ignore the
    VNI, so the two tenants' connections (same inner 4-tuple) are one stream to it."""
    from gen.dissect_compare import PCAPS

    out = run_tshark(["-r", str(PCAPS / "tunnel-vxlan.pcap"), "-Y", "tcp.flags.syn==1 && "
                      "tcp.flags.ack==0", "-T", "fields", "-e", "vxlan.vni", "-e", "tcp.stream"])
    rows = [line.split("\t") for line in out.splitlines()]
    by_stream: dict[str, set[str]] = {}
    for vni, stream in rows:
        by_stream.setdefault(stream, set()).add(vni)
    assert by_stream["0"] == {"5001", "5002"}


PROXY_FIELDS = ["frame.number", "_ws.malformed", "proxy.v1.proto", "proxy.v2.cmd",
                "proxy.v2.addr_family_protocol", "proxy.v2.length", "proxy.src.ipv4",
                "proxy.src.ipv6", "proxy.dst.ipv4", "proxy.dst.ipv6", "proxy.srcport",
                "proxy.dstport", "proxy.v2.tlv.type", "proxy.v2.tlv.length",
                "tcp.reassembled.data"]
VALUE_NAMES = ["proxy.v1.proto", "proxy.v2.cmd", "proxy.v2.addr_family_protocol",
               "proxy.v2.length", "proxy.src.ipv4", "proxy.src.ipv6", "proxy.dst.ipv4",
               "proxy.dst.ipv6", "proxy.srcport", "proxy.dstport"]


def _proxy_rows(path):
    args = ["-r", str(path), "-o", "tcp.try_heuristic_first:TRUE", "-Y", "proxy", "-T", "fields",
            "-E", "occurrence=a", "-E", "aggregator=|", "-E", "separator=\t"]
    for f in PROXY_FIELDS:
        args += ["-e", f]
    out = run_tshark(args)
    for line in out.splitlines():
        cols = line.split("\t")
        if len(cols) == len(PROXY_FIELDS):
            yield dict(zip(PROXY_FIELDS, cols, strict=True))


def _stream_trees(data):
    """PROXY trees of every header at the start of a (reassembled) stream, back to back."""
    trees, off = [], 0
    while off < len(data):
        p = parse_proxy(data[off:], base_offset=off)
        if p.state is ParseState.NOT_PROXY or p.tree is None:
            break
        trees.append(p)
        if p.state is not ParseState.OK:
            break
        off += p.length
    return trees


def _preorder_tlvs(tree):
    return [(t.find("proxy.v2.tlv.type").value, t.find("proxy.v2.tlv.length").value)
            for t in tree.walk() if t.name == "proxy.v2.tlv"]


@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: p.name)
def test_proxy_values_match_tshark(path):
    frames = {i: (lt, f) for i, lt, f in aligned(path)}
    for row in _proxy_rows(path):
        num = int(row["frame.number"])
        if num - 1 not in frames:
            continue  # a frame the two readers of a damaged file disagree on
        where = f"{path.name} frame {num}"
        if row["tcp.reassembled.data"]:
            parses = _stream_trees(bytes.fromhex(row["tcp.reassembled.data"].replace(":", "")))
            trees = [p.tree for p in parses]
        else:
            lt, frame = frames[num - 1]
            trees = [layer for layer in dissect_frame(frame, lt) if layer.name == "proxy"]
        assert trees, where
        if row["_ws.malformed"]:
            continue  # tshark decoded a partial or broken header as far as it goes; so did we
        mine: dict[str, list] = {}
        for t in trees:
            for f in t.walk():
                mine.setdefault(f.name, []).append(f.value)
        for name in VALUE_NAMES:
            if not row[name]:
                continue
            theirs = row[name].split("|")
            got = mine.get(name, [])
            assert len(got) == len(theirs), (where, name, got, theirs)
            for v, show in zip(got, theirs, strict=True):
                assert same_value(v, show), (where, name, v, show)
        if row["proxy.v2.tlv.type"]:
            theirs = list(zip([int(x, 16) for x in row["proxy.v2.tlv.type"].split("|")],
                              [int(x) for x in row["proxy.v2.tlv.length"].split("|")],
                              strict=True))
            ours = [x for t in trees for x in _preorder_tlvs(t)]
            # Wireshark 4.0 swallows the TLVs that follow an SSL TLV (and stops early on
            # some vendor TLVs), so what it lists is a prefix of what is there.
            assert ours[: len(theirs)] == theirs, (where, ours, theirs)


def test_wireshark_nests_tlvs_after_ssl_but_we_do_not():
    require_tool("tshark")
    from gen.dissect_compare import PCAPS

    path = PCAPS / "dissect-proxy-v2.pcap"
    out = run_tshark(["-r", str(path), "-o", "tcp.try_heuristic_first:TRUE", "-Y",
                      "frame.number==8", "-O", "proxy", "-V"])
    # In tshark's tree the AUTHORITY TLV is indented under the SSL TLV ...
    ssl_line = next(x for x in out.splitlines() if "SSL" in x and "TLV" in x)
    auth_line = next(x for x in out.splitlines() if "AUTHORITY" in x and "TLV" in x)
    indent = len(ssl_line) - len(ssl_line.lstrip())
    assert len(auth_line) - len(auth_line.lstrip()) > indent
    # ... and the ALPN after it is missing; pcapip keeps all three as siblings.
    _, frames = read_frames(path)
    layers = dissect_frame(frames[7], 1)
    proxy = next(layer for layer in layers if layer.name == "proxy")
    top = [c for c in proxy.children if c.name == "proxy.v2.tlv"]
    assert [c.find("proxy.v2.tlv.type").value for c in top] == [0x20, 0x02, 0x01]


def test_tshark_sees_the_seed_v1_header_reassembled_like_the_seed():
    from gen.dissect_compare import PCAPS

    path = PCAPS / "seed002-proxy-v1-sll.pcap"
    out = run_tshark(["-r", str(path), "-o", "tcp.try_heuristic_first:TRUE", "-Y", "proxy",
                      "-T", "fields", "-e", "frame.number", "-e", "frame.len", "-e",
                      "tcp.seq", "-e", "tcp.ack", "-e", "tcp.len", "-e", "tcp.segment"])
    # the seed: "Frame 18: 60 bytes ... Seq: 57, Ack: 4, Len: 4 [2 Reassembled TCP Segments
    # (60 bytes): #7(56), #18(4)]" -- here frames #4 and #6.
    assert out.splitlines()[-1].split() == ["6", "60", "57", "4", "4", "4,6"]
