"""Decapsulation in the columnar decode, on random stacks of encapsulations built by scapy.

scapy writes every layer (an encoder independent of pcapip's decoder); the test knows what
it put inside, so the decoded inner connection, the tunnel that names the tenant and the
depth limit are checked against the construction, and the pure-Python and compiled loops
must agree column by column, on valid stacks and on the same stacks cut short or with
bytes flipped (never an exception, never a hang).
"""

from __future__ import annotations

import random

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytest.importorskip("scapy")
from scapy.all import IP, TCP, UDP, IPv6, raw  # noqa: E402
from scapy.contrib.erspan import ERSPAN_II, ERSPAN_III, ERSPAN_PlatformSpecific  # noqa: E402
from scapy.contrib.geneve import GENEVE  # noqa: E402
from scapy.contrib.mpls import MPLS  # noqa: E402
from scapy.layers.l2 import GRE, Dot1Q, Ether  # noqa: E402
from scapy.layers.ppp import PPP, PPPoE  # noqa: E402
from scapy.layers.vxlan import VXLAN  # noqa: E402

from pcapip.decode import ST_NO_L4, ST_TUNNEL_DEEP, decode, ips_to_str  # noqa: E402
from pcapip.decode.tunnels import (  # noqa: E402
    MAX_TUNNEL_DEPTH,
    TUN_4IN4,
    TUN_4IN6,
    TUN_6IN4,
    TUN_6IN6,
    TUN_ERSPAN2,
    TUN_ERSPAN3,
    TUN_GENEVE,
    TUN_GRE,
    TUN_MPLS,
    TUN_PPPOE,
    TUN_VXLAN,
    tunnel_label,
)
from pcapip.sources.batch import FrameBatch  # noqa: E402

L2, L3 = "l2", "l3"
OUTER4 = dict(src="192.0.2.1", dst="192.0.2.2")
OUTER6 = dict(src="2001:db8::1", dst="2001:db8::2")
# Ethernet addresses given, never left to scapy: it would ARP on the host's network for them
MACS = dict(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")


def _l3_of(inner):
    return inner if not isinstance(inner, Ether) else None


# Each wrapper: (name, input kind, output kind, build(inner, rng) -> (packet, kind, identity));
# identity None: the layer names no tenant (IP-in-IP, GRE without key).
def _ipip(inner, rng):
    v6_outer = rng.random() < 0.5
    v6_inner = isinstance(inner, IPv6)
    outer = IPv6(**OUTER6, nh=41 if v6_inner else 4) if v6_outer else IP(
        **OUTER4, proto=41 if v6_inner else 4
    )
    kind = {(False, False): TUN_4IN4, (False, True): TUN_6IN4, (True, False): TUN_4IN6,
            (True, True): TUN_6IN6}[(v6_outer, v6_inner)]  # fmt: skip
    return outer / inner, kind, None


def _gre(inner, rng):
    key = rng.randrange(1 << 32) if rng.random() < 0.6 else None
    gre = GRE(
        chksum_present=int(rng.random() < 0.5),
        seqnum_present=int(rng.random() < 0.5),
        key_present=int(key is not None),
        key=key or 0,
        sequence_number=rng.randrange(1 << 32),
    )
    if isinstance(inner, Ether):
        gre.proto = 0x6558
    ident = None if key is None else (1 << 32) | key
    return IP(**OUTER4) / gre / inner, TUN_GRE, ident


def _erspan(inner, rng):
    sid = rng.randrange(1024)
    if rng.random() < 0.5:
        hdr = GRE(seqnum_present=1, proto=0x88BE) / ERSPAN_II(session_id=sid, vlan=rng.randrange(4096))
        return IP(**OUTER4) / hdr / inner, TUN_ERSPAN2, sid
    o = int(rng.random() < 0.5)
    e3 = ERSPAN_III(session_id=sid, o=o, timestamp=rng.randrange(1 << 32), hw=rng.randrange(64))
    hdr = GRE(proto=0x22EB) / e3
    if o:
        hdr = hdr / ERSPAN_PlatformSpecific(platf_id=3)
    return IP(**OUTER4) / hdr / inner, TUN_ERSPAN3, sid


def _vxlan(inner, rng):
    vni = rng.randrange(1 << 24)
    return IP(**OUTER4) / UDP(sport=49152, dport=4789) / VXLAN(vni=vni, flags=8) / inner, TUN_VXLAN, vni


def _geneve(inner, rng):
    vni = rng.randrange(1 << 24)
    proto = 0x6558 if isinstance(inner, Ether) else (0x86DD if isinstance(inner, IPv6) else 0x0800)
    optlen = rng.randrange(4)  # options skipped by length: any bytes will do
    gen = GENEVE(vni=vni, proto=proto, optionlen=optlen) / bytes(rng.randrange(256) for _ in range(4 * optlen))
    outer = IP(**OUTER4) / UDP(sport=49152, dport=6081)
    return outer / raw(gen) / inner if optlen else outer / gen / inner, TUN_GENEVE, vni


def _mpls(inner, rng):
    labels = [rng.randrange(16, 1 << 20) for _ in range(rng.randrange(1, 5))]
    stack = None
    for k, lab in enumerate(labels):
        m = MPLS(label=lab, s=int(k == len(labels) - 1), ttl=64)
        stack = m if stack is None else stack / m
    if isinstance(inner, Ether):  # Ethernet pseudowire with a control word
        packet = Ether(**MACS, type=0x8847) / stack / b"\x00\x00\x00\x00" / inner
    else:
        packet = Ether(**MACS, type=0x8847) / stack / inner
    ident = min(len(labels), 7) << 60
    for k, lab in enumerate(labels[:3]):
        ident |= lab << (40 - 20 * k)
    return packet, TUN_MPLS, ident


def _pppoe(inner, rng):
    sid = rng.randrange(1 << 16)
    proto = 0x0057 if isinstance(inner, IPv6) else 0x0021
    return Ether(**MACS) / PPPoE(sessionid=sid) / PPP(proto=proto) / inner, TUN_PPPOE, sid


WRAPPERS = {  # name: (takes, gives, build)
    "ipip": (L3, L3, _ipip),
    "gre": (None, L3, _gre),
    "erspan": (L2, L3, _erspan),
    "vxlan": (L2, L3, _vxlan),
    "geneve": (None, L3, _geneve),
    "mpls": (None, L2, _mpls),
    "pppoe": (L3, L2, _pppoe),
}


def build(names: list[str], rng: random.Random, v6_inner: bool):
    """The frame (Ethernet) of a TCP segment wrapped in ``names`` (innermost first), and the
    tunnels as (kind, identity) innermost first."""
    inner = (IPv6(src="2001:db8:77::5", dst="2001:db8:77::6") if v6_inner
             else IP(src="10.77.0.5", dst="10.77.0.6"))  # fmt: skip
    packet = inner / TCP(sport=40001, dport=443, flags="S", seq=rng.randrange(1 << 32))
    kind = L3
    layers = []
    for name in names:
        takes, gives, make = WRAPPERS[name]
        if takes == L2 and kind == L3:
            packet = _eth(packet, rng)
        elif takes == L3 and kind == L2:
            continue  # cannot carry a frame: skip this layer
        packet, tk, ident = make(packet, rng)
        layers.append((tk, ident))
        kind = gives
    if kind == L3:
        packet = _eth(packet, rng)
    return packet, layers


def _eth(packet, rng):
    """An Ethernet frame around an IP packet, with 0-2 VLAN tags."""
    frame = Ether(**MACS)
    for _ in range(rng.randrange(3)):
        frame = frame / Dot1Q(vlan=rng.randrange(4096))
    return frame / packet


def expected_tunnel(layers: list[tuple[int, int | None]]) -> str:
    """The innermost layer that names a tenant, else the innermost layer (as opened: only
    the outermost MAX_TUNNEL_DEPTH)."""
    opened = layers[-MAX_TUNNEL_DEPTH:]  # innermost first: the outer ones are opened first
    named = [(k, i) for k, i in opened if i is not None]
    if named:
        return tunnel_label(*named[0])
    k, _ = opened[0]
    return tunnel_label(k, 0)


def batch_of(frames: list[bytes]) -> FrameBatch:
    return FrameBatch.of_frames(frames, ts_ns=range(len(frames)))


def both(frames: list[bytes]):
    """Decoded by the pure and the compiled loop, which must agree on every column."""
    b = batch_of(frames)
    pure = decode(b, backend="pure")
    comp = decode(b, backend="compiled")
    for f in pure.__dataclass_fields__:
        if f != "data":
            assert np.array_equal(getattr(pure, f), getattr(comp, f)), f
    return pure


STACKS = st.lists(st.sampled_from(sorted(WRAPPERS)), min_size=1, max_size=7)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(names=STACKS, seed=st.integers(0, 2**32 - 1), v6=st.booleans())
def test_the_inner_connection_and_its_tenant_are_found(names, seed, v6):
    rng = random.Random(seed)
    frame, layers = build(names, rng, v6)
    p = both([raw(frame)])
    st_ = int(p.status[0])
    if len(layers) > MAX_TUNNEL_DEPTH:
        assert st_ & ST_TUNNEL_DEEP, names
        return
    assert st_ & ST_NO_L4 == 0, (names, hex(st_))
    src = ips_to_str(p.src_hi, p.src_lo)[0]
    assert src == ("2001:db8:77::5" if v6 else "10.77.0.5"), names
    assert (p.sport[0], p.dport[0], p.proto[0]) == (40001, 443, 6)
    assert tunnel_label(int(p.tun_kind[0]), int(p.tun_id[0])) == expected_tunnel(layers), names
    assert bin(int(p.tun_seen[0])).count("1") == len({k for k, _ in layers})


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(names=STACKS, seed=st.integers(0, 2**32 - 1), cut=st.integers(0, 200),
       flips=st.lists(st.tuples(st.integers(0, 300), st.integers(0, 255)), max_size=6))
def test_damaged_stacks_never_raise_and_both_loops_agree(names, seed, cut, flips):
    rng = random.Random(seed)
    frame = bytearray(raw(build(names, rng, rng.random() < 0.5)[0]))
    for pos, val in flips:
        if pos < len(frame):
            frame[pos] = val
    frames = [bytes(frame), bytes(frame[: max(0, len(frame) - cut)])]
    p = both(frames)
    assert all(int(k) <= TUN_6IN6 for k in p.tun_kind)


def test_a_loop_of_encapsulations_ends_at_the_depth_limit():
    """IP-in-IP 64 deep (the decoder would follow it forever without the limit)."""
    packet = IP(src="10.0.0.1", dst="10.0.0.2") / TCP()
    for _ in range(64):
        packet = IP(src="192.0.2.1", dst="192.0.2.2", proto=4) / packet
    p = both([raw(Ether(**MACS) / packet)])
    assert p.status[0] & ST_TUNNEL_DEEP
    assert p.tun_kind[0] == TUN_4IN4
