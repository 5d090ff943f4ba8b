"""``pcapip show`` trees of tunnelled frames (tests/pcaps/tunnel-*.pcap, issue 13).

The captures are checked against their generator, and the trees against what the
generator put in (``tunnel-X.expect.json``): every expected client is found by the
TOA or PROXY dissection of the inner TCP, under the tunnel identity read back from
the encapsulation layers. Field by field agreement with tshark is
tests/test_dissect_tshark.py's; here: the depth limit, cut and lying headers, and
random damage never raising.
"""

from __future__ import annotations

import json
import os
import random

import pytest
from gen import tunnel_pcaps as gen
from gen.dissect_compare import PCAPS, read_frames_lt
from hypothesis import given, settings
from hypothesis import strategies as st

from pcapip.decode import tunnels as T
from pcapip.dissect import Field, dissect_frame

CAPS = {c.name: c for c in gen.all_captures()}
WITH_CLIENTS = [n for n, c in CAPS.items() if c.expect]


def _codes(layers: list[Field]) -> list[str]:
    return [e.code for x in layers for e in x.all_experts()]


def _one(layer: Field, name: str):
    f = layer.find(name)
    return None if f is None else f.value


def tunnel_of(layers: list[Field]) -> str:
    """The tenant's encapsulation and its identity (the innermost one that has an identity,
    else the innermost), read from the tree, as the ``tunnel`` column writes it (an
    independent reading of what the decode packs)."""
    kind, ident, labels, prev = T.TUN_NONE, 0, [], ""
    last, named = (T.TUN_NONE, 0), None
    for x in layers:
        if x.name == "vxlan":
            kind, ident = T.TUN_VXLAN, _one(x, "vxlan.vni")
        elif x.name == "geneve":
            kind, ident = T.TUN_GENEVE, _one(x, "geneve.vni")
        elif x.name == "gre":
            key = _one(x, "gre.key")
            kind, ident = T.TUN_GRE, 0 if key is None else T.GRE_KEY_PRESENT | key
        elif x.name == "erspan":
            version = _one(x, "erspan.version")
            kind = T.TUN_ERSPAN2 if version == 1 else T.TUN_ERSPAN3
            ident = _one(x, "erspan.spanid")
        elif x.name == "mpls":
            labels = [*labels, _one(x, "mpls.label")] if prev == "mpls" else [_one(x, "mpls.label")]
            kind, ident = T.TUN_MPLS, gen.mpls_ident(labels)
        elif x.name == "pppoes":
            kind, ident = T.TUN_PPPOE, _one(x, "pppoe.session_id")
        elif x.name in ("ip", "ipv6") and prev in ("ip", "ipv6"):
            kind, ident = {("ip", "ip"): T.TUN_4IN4, ("ip", "ipv6"): T.TUN_6IN4,
                           ("ipv6", "ip"): T.TUN_4IN6, ("ipv6", "ipv6"): T.TUN_6IN6}[
                               (prev, x.name)], 0
        prev = x.name
        # the tenant: the innermost layer with an identity, else the innermost layer
        if kind != T.TUN_NONE and (kind, ident) != last:
            last = (kind, ident)
            if kind < T.TUN_4IN4 and (kind != T.TUN_GRE or ident):
                named = last
    return T.tunnel_label(*(named or last))


def _hp(addr, port) -> str:
    return f"[{addr}]:{port}" if addr.version == 6 else f"{addr}:{port}"


def clients_in(layers: list[Field]) -> set[tuple[str, str, str, str]]:
    """(tunnel, egress, client, method) of each TOA or PROXY header this frame carries."""
    nets = [x for x in layers if x.name in ("ip", "ipv6")]
    tcp = next((x for x in layers if x.name == "tcp"), None)
    if not nets or tcp is None:
        return set()
    src = _one(nets[-1], "ip.src" if nets[-1].name == "ip" else "ipv6.src")
    egress = _hp(src, _one(tcp, "tcp.srcport"))
    out = set()
    toa = tcp.find("toa")
    if toa is not None and toa.find("toa.addr") is not None:
        client = _hp(_one(toa, "toa.addr"), _one(toa, "toa.port"))
        out.add((tunnel_of(layers), egress, client, "toa"))
    for p in (x for x in layers if x.name == "proxy"):
        addr = _one(p, "proxy.src.ipv4") or _one(p, "proxy.src.ipv6")
        method = "ppv2" if p.find("proxy.v2.version") is not None else "ppv1"
        out.add((tunnel_of(layers), egress, _hp(addr, _one(p, "proxy.srcport")), method))
    return out


def _frames(name: str) -> list[tuple[int, bytes]]:
    return read_frames_lt(PCAPS / name)


# --- the captures are what the generator builds ------------------------------------------------


def test_committed_captures_match_the_generator(tmp_path):
    paths = gen.write_all(tmp_path)
    assert {p.name for p in paths} == set(CAPS) == {p.name for p in PCAPS.glob("tunnel-*.pcap")}
    for p in paths:
        assert (PCAPS / p.name).read_bytes() == p.read_bytes(), p.name
        exp = gen.expect_path(p)
        assert (PCAPS / exp.name).read_text() == exp.read_text(), exp.name
    readme = (PCAPS / "README.md").read_text()
    assert all(f"`{name}`" in readme for name in CAPS)


def test_every_encapsulation_and_two_tenants_each_are_built():
    labels = {row["tunnel"] for c in CAPS.values() for row in c.expect}
    kinds = {label.split(":")[0] for label in labels}
    assert kinds == {e.name for e in T.ENCAPSULATIONS}
    for c in CAPS.values():
        by_pair: dict[tuple[str, str], set[str]] = {}
        for row in c.expect:
            by_pair.setdefault((row["egress"], row["origin"]), set()).add(row["tunnel"])
        shared = [t for t in by_pair.values() if len(t) > 1]
        tenancy = any(row["tunnel"].startswith(("vxlan", "geneve", "gre:key", "erspan", "mpls",
                                                 "pppoe")) for row in c.expect)
        assert shared or not tenancy or c.name in ("tunnel-vxlan-8472.pcap",
                                                   "tunnel-nested.pcap", "tunnel-hostile.pcap")


# --- inner TOA and PROXY, under the right tunnel --------------------------------------------


@pytest.mark.parametrize("name", WITH_CLIENTS)
def test_show_finds_every_expected_client_under_its_tunnel(name):
    ports = T.udp_tunnel_ports((8472,)) if "8472" in name else None
    found = set()
    for lt, frame in _frames(name):
        layers = dissect_frame(frame, lt, udp_ports=ports)
        assert "dissect.internal_error" not in _codes(layers)
        found |= clients_in(layers)
    want = {(r["tunnel"], r["egress"], r["client"], r["method"]) for r in CAPS[name].expect}
    assert found == want


def test_vxlan_on_another_port_opens_only_when_asked():
    lt, frame = _frames("tunnel-vxlan-8472.pcap")[0]
    plain = dissect_frame(frame, lt)
    assert [x.name for x in plain][-1] == "udp" and not clients_in(plain)
    opened = dissect_frame(frame, lt, udp_ports=T.udp_tunnel_ports((8472,)))
    assert [x.name for x in opened][4:] == ["vxlan", "eth", "ip", "tcp"]
    assert tunnel_of(opened) == "vxlan:42"


def test_layers_in_order_with_vlan_inside_and_outside():
    names = [[x.name for x in dissect_frame(f, lt)] for lt, f in _frames("tunnel-vlan.pcap")]
    assert names[0] == ["frame", "eth", "vlan", "ip", "udp", "vxlan", "eth", "ip", "tcp"]
    assert names[8] == ["frame", "eth", "ip", "udp", "vxlan", "eth", "vlan", "ip", "tcp"]
    assert names[-1] == ["frame", "eth", "ip", "udp", "geneve", "eth", "ieee8021ad", "vlan", "ip",
                         "tcp"]


# --- hostile frames ------------------------------------------------------------------------


def _opened(layers: list[Field]) -> int:
    """Encapsulations opened: tunnel layers, plus IP headers that are not a tunnel's underlay
    (IP in IP) beyond the outermost."""
    tunnels = ("vxlan", "geneve", "gre", "mpls", "pppoes")
    nets = [x.name for x in layers if x.name in ("ip", "ipv6")]
    return sum(x.name in tunnels for x in layers) + max(0, len(nets) - 1 - sum(
        x.name in ("vxlan", "geneve", "gre") for x in layers))


def test_loops_deeper_than_the_limit_stop_there():
    frames = _frames("tunnel-hostile.pcap")
    for k in range(4):  # IPIP 10 and MAX+1 deep, VXLAN 8 deep, GRE 6 deep
        layers = dissect_frame(frames[k][1], frames[k][0])
        assert "frame.tunnel_depth" in _codes(layers), k
        assert "tcp" not in [x.name for x in layers], k
        assert _opened(layers) == T.MAX_TUNNEL_DEPTH, (k, [x.name for x in layers])
    lt, frame = _frames("tunnel-nested.pcap")[-5]  # the last connection's request
    deep = dissect_frame(frame, lt)
    assert "frame.tunnel_depth" not in _codes(deep)
    assert [x.name for x in deep if x.name in ("vxlan", "gre", "geneve")] == \
        ["vxlan", "gre", "geneve"] and "proxy" in [x.name for x in deep]


def test_cut_and_lying_headers_are_experts_on_their_layer():
    frames = [dissect_frame(f, lt) for lt, f in _frames("tunnel-hostile.pcap")]
    cut = {"vxlan": 4, "geneve": 5, "gre": 6, "erspan": 7, "mpls": 9, "pppoes": 10}
    for name, k in cut.items():
        node = [x for x in frames[k] if x.name == name][-1]
        assert "frame.truncated" in [e.code for e in node.all_experts()], name
        assert frames[k][-1] is node or name == "erspan", (name, [x.name for x in frames[k]])
    # ERSPAN III: the header is whole, the platform sub-header is cut
    e3 = [x for x in frames[8] if x.name == "erspan"][0]
    assert _one(e3, "erspan.o") == 1 and "frame.truncated" in [e.code for e in e3.experts]
    # GENEVE option length 252 in a 24-byte payload: stops there
    g = [x for x in frames[11] if x.name == "geneve"][0]
    assert "frame.truncated" in [e.code for e in g.experts] and frames[11][-1] is g
    # an option lying about its own length: no option drawn, the payload still opened
    g = [x for x in frames[12] if x.name == "geneve"][0]
    assert g.find("geneve.option") is None and "tcp" in [x.name for x in frames[12]]
    # 12 labels and no bottom of stack
    labels = [x for x in frames[13] if x.name == "mpls"]
    assert len(labels) == 12 and {_one(x, "mpls.bottom") for x in labels} == {0}
    assert "frame.truncated" in [e.code for e in labels[-1].experts]
    # a PPPoE payload length past the frame: said, and the captured bytes still dissected
    p = [x for x in frames[14] if x.name == "pppoes"][0]
    assert "frame.truncated" in [e.code for e in p.experts] and frames[14][-1].name == "tcp"


def test_every_cut_of_every_tunnel_frame_is_dissected_as_far_as_it_goes():
    for name in CAPS:
        lt, full = _frames(name)[0]
        for cut in range(len(full) + 1):
            layers = dissect_frame(full[:cut], lt, udp_ports=T.udp_tunnel_ports((8472,)))
            codes = _codes(layers)
            assert "dissect.internal_error" not in codes, (name, cut)
            if 14 <= cut < len(full):
                assert "frame.truncated" in codes, (name, cut)


def test_random_damage_never_raises():
    rnd = random.Random(13)
    frames = [f for name in CAPS for f in _frames(name)]
    for _ in range(3000):
        lt, frame = rnd.choice(frames)
        b = bytearray(frame)
        for _ in range(rnd.randint(1, 6)):
            b[rnd.randrange(len(b))] = rnd.randrange(256)
        layers = dissect_frame(bytes(b[: rnd.randint(0, len(b))]), lt)
        assert "dissect.internal_error" not in _codes(layers)


def test_expect_files_are_json_lists_of_rows():
    for name in CAPS:
        rows = json.loads((PCAPS / name.replace(".pcap", ".expect.json")).read_text())
        assert all(set(r) == {"tunnel", "egress", "origin", "client", "method"} for r in rows)


# --- random layer stacks (hypothesis) --------------------------------------------------------

#: (name, builder(identity) -> Wrap, tunnel label of that identity) of the wrappers a random
#: stack draws from; each opens one encapsulation
WRAPPERS = [
    ("vxlan", lambda i: gen.vxlan(i), lambda i: T.tunnel_label(T.TUN_VXLAN, i)),
    ("geneve-l2", lambda i: gen.geneve(i, l2=True), lambda i: T.tunnel_label(T.TUN_GENEVE, i)),
    ("geneve-l3", lambda i: gen.geneve(i, [(0x0108, 1, bytes(4 * (i % 3)))]),
     lambda i: T.tunnel_label(T.TUN_GENEVE, i)),
    ("gre-key", lambda i: gen.gre(i, csum=bool(i & 1), seq=i),
     lambda i: T.tunnel_label(T.TUN_GRE, T.GRE_KEY_PRESENT | i)),
    ("gre-eth", lambda i: gen.gre(l2=True), lambda i: T.tunnel_label(T.TUN_GRE, 0)),
    ("erspan2", lambda i: gen.erspan2(i & 0x3FF), lambda i: T.tunnel_label(T.TUN_ERSPAN2,
                                                                            i & 0x3FF)),
    ("erspan3", lambda i: gen.erspan3(i & 0x3FF, platform=(0, 3, 5)[i % 3]),
     lambda i: T.tunnel_label(T.TUN_ERSPAN3, i & 0x3FF)),
    ("ipip4", lambda i: gen.ipin(), None),  # label by the inner packet's family
    ("ipip6", lambda i: gen.ipin(six=True), None),
]
STACKS = st.lists(st.tuples(st.integers(0, len(WRAPPERS) - 1), st.integers(1, 1 << 20)),
                  min_size=1, max_size=T.MAX_TUNNEL_DEPTH + 2)


def _stacked(stack, six: bool):
    """One TOA SYN-ACK-ACK frame wrapped by ``stack`` (innermost first) and the tunnel label
    the column gives it (the tenant rule of ``pcapip.decode.tunnels``)."""
    conn = gen.Conn((gen.EGRESS6 if six else gen.EGRESS4, 40001),
                    (gen.ORIGIN6 if six else gen.ORIGIN4, 80), "toa", ("203.0.113.9", 50009))
    _, pkt = conn.packets(ident=0x100)[2]
    wrap = None
    for k, ident in stack:
        w = WRAPPERS[k][1](ident)
        wrap = w if wrap is None else gen.nest(w, wrap)
    kinds = {(False, False): T.TUN_4IN4, (False, True): T.TUN_6IN4,
             (True, False): T.TUN_4IN6, (True, True): T.TUN_6IN6}
    labels, inner_six = [], six  # innermost first
    for k, ident in stack:
        name, _, lab = WRAPPERS[k]
        if lab is None:
            labels.append(T.tunnel_label(kinds[(name == "ipip6", inner_six)], 0))
            inner_six = name == "ipip6"
        else:
            labels.append(lab(ident))
            inner_six = False
    # the tenant: the innermost layer with an identity ("kind:identity"), else the innermost
    label = next((x for x in labels if ":" in x), labels[0])
    return bytes(wrap(pkt, True)), label


@settings(max_examples=int(os.environ.get("PCAPIP_FUZZ_EXAMPLES", "300")), deadline=None)
@given(stack=STACKS, six=st.booleans(), cut=st.floats(0, 1))
def test_random_stacks_open_to_the_limit_and_never_raise(stack, six, cut):
    frame, label = _stacked(stack, six)
    layers = dissect_frame(frame, 1)
    codes = _codes(layers)
    assert "dissect.internal_error" not in codes
    if len(stack) <= T.MAX_TUNNEL_DEPTH:
        assert "frame.tunnel_depth" not in codes
        assert {(t, c) for t, _, c, _ in clients_in(layers)} == {(label, "203.0.113.9:50009")}
    else:
        assert "frame.tunnel_depth" in codes and "tcp" not in [x.name for x in layers]
    short = dissect_frame(frame[: int(len(frame) * cut)], 1)
    assert "dissect.internal_error" not in _codes(short)
