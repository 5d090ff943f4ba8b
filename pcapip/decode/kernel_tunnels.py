"""Encapsulation headers for the decode loop: what each tunnel header says follows it.

The loop (``decode/kernel.py``) opens layer after layer; each function here reads one
kind of header and returns where the packet inside starts, what it is (an ethertype) and
the tunnel's identity (``pcapip.decode.tunnels`` packs it). Every read is bounds-checked
against the captured length: a cut or lying header ends the walk with a status, never
reads past the frame.
"""

from __future__ import annotations

from pcapip.sources.accel import kernel_helper
from pcapip.sources.kernel_bytes import be16, be32

from .columns import ST_BAD_HEADER, ST_NOT_IP, ST_TRUNCATED
from .tunnels import (
    GRE_KEY_PRESENT,
    MAX_MPLS_LABELS,
    MPLS_LABELS_KEPT,
    TUN_4IN4,
    TUN_4IN6,
    TUN_6IN4,
    TUN_6IN6,
    TUN_ERSPAN2,
    TUN_ERSPAN3,
    TUN_GRE,
    TUN_VXLAN,
)

ETH_IPV4 = 0x0800
ETH_IPV6 = 0x86DD
ETH_MPLS = 0x8847
ETH_PPPOE = 0x8864
ETH_BRIDGED = 0x6558  # transparent Ethernet bridging: an Ethernet frame follows


@kernel_helper
def inner_ethernet(data, b, p, cap):
    """The Ethernet header a tunnel carries at ``p``: (status, its ethertype, offset after it)."""
    if cap - p < 14:
        return ST_TRUNCATED, 0, p
    return 0, be16(data, b + p + 12), p + 14


@kernel_helper
def by_version(data, b, p, cap):
    """An IP packet whose version nibble says which (MPLS, ERSPAN III): (status, ethertype)."""
    if cap - p < 1:
        return ST_TRUNCATED, 0
    v = data[b + p] // 16
    if v == 4:
        return 0, ETH_IPV4
    if v == 6:
        return 0, ETH_IPV6
    return ST_BAD_HEADER, 0


@kernel_helper
def mpls_stack(data, b, p, cap):
    """The MPLS label stack at ``p`` and what its bottom carries: (status, ethertype,
    offset, identity: the first MPLS_LABELS_KEPT labels and the label count)."""
    n = 0
    ident = 0
    while True:
        if cap - p < 4:
            return ST_TRUNCATED, 0, p, 0
        w = be32(data, b + p)
        if n < MPLS_LABELS_KEPT:
            ident |= (w // 4096) << (40 - 20 * n)
        n += 1
        p += 4
        if w & 0x100:  # bottom of stack
            break
        if n >= MAX_MPLS_LABELS:
            return ST_BAD_HEADER, 0, p, 0
    ident |= min(n, 7) << 60
    if cap - p < 1:
        return ST_TRUNCATED, 0, p, ident
    v = data[b + p] // 16
    if v == 4:
        return 0, ETH_IPV4, p, ident
    if v == 6:
        return 0, ETH_IPV6, p, ident
    if v == 0:  # pseudowire control word, then the Ethernet frame
        p += 4
    st, et, p = inner_ethernet(data, b, p, cap)
    return st, et, p, ident


@kernel_helper
def pppoe_session(data, b, p, cap):
    """The PPPoE session header and PPP protocol at ``p``: (status, ethertype, offset,
    session ID); a PPP protocol other than IPv4/IPv6 (LCP, IPCP) is not IP."""
    if cap - p < 8:
        return ST_TRUNCATED, ETH_PPPOE, p, 0
    if data[b + p] != 0x11:
        return ST_BAD_HEADER, ETH_PPPOE, p, 0
    sid = be16(data, b + p + 2)
    ppp = be16(data, b + p + 6)
    if ppp == 0x21:
        return 0, ETH_IPV4, p + 8, sid
    if ppp == 0x57:
        return 0, ETH_IPV6, p + 8, sid
    return ST_NOT_IP, ETH_PPPOE, p + 8, sid


@kernel_helper
def erspan(data, b, q, cap, proto):
    """The ERSPAN type II (0x88BE) or III (0x22EB) header at ``q``: (status, opened,
    ethertype, offset, kind, session ID)."""
    if proto == 0x88BE:
        if cap - q < 8:
            return ST_TRUNCATED, 1, 0, q, TUN_ERSPAN2, 0
        sid = be16(data, b + q + 2) & 0x3FF
        st, et, p = inner_ethernet(data, b, q + 8, cap)
        return st, 1, et, p, TUN_ERSPAN2, sid
    if cap - q < 12:
        return ST_TRUNCATED, 1, 0, q, TUN_ERSPAN3, 0
    sid = be16(data, b + q + 2) & 0x3FF
    word = be16(data, b + q + 10)
    p = q + 12 + (word & 1) * 8  # O bit: the platform-specific sub-header follows
    ft = (word // 1024) & 0x1F
    if ft == 0:
        st, et, p = inner_ethernet(data, b, p, cap)
    elif ft == 2:
        st, et = by_version(data, b, p, cap)
    else:
        return 0, 0, 0, q, 0, 0  # another frame type: not opened
    return st, 1, et, p, TUN_ERSPAN3, sid


@kernel_helper
def gre_header(data, b, p, cap):
    """The GRE header at ``p`` and the ERSPAN header it may carry: (status, opened,
    ethertype, offset, kind, identity). Version 1 (PPTP) and source routing are not opened."""
    if cap - p < 4:
        return ST_TRUNCATED, 1, 0, p, TUN_GRE, 0
    fv = be16(data, b + p)
    proto = be16(data, b + p + 2)
    if (fv & 7) != 0 or (fv & 0x4000) != 0:
        return 0, 0, 0, p, 0, 0
    q = p + 4 + ((fv // 32768) & 1) * 4
    key = 0
    if fv & 0x2000:
        if cap - q < 4:
            return ST_TRUNCATED, 1, 0, p, TUN_GRE, 0
        key = GRE_KEY_PRESENT | be32(data, b + q)
        q += 4
    q += ((fv // 4096) & 1) * 4
    if cap < q:
        return ST_TRUNCATED, 1, 0, p, TUN_GRE, key
    if proto in (ETH_IPV4, ETH_IPV6, ETH_MPLS):
        return 0, 1, proto, q, TUN_GRE, key
    if proto == ETH_BRIDGED:
        st, et, q = inner_ethernet(data, b, q, cap)
        return st, 1, et, q, TUN_GRE, key
    if (proto == 0x88BE and (fv & 0x1000) != 0) or proto == 0x22EB:
        return erspan(data, b, q, cap, proto)
    return 0, 0, 0, p, 0, 0


@kernel_helper
def udp_tunnel(data, b, kind, po, pl, cap):
    """The VXLAN or GENEVE header at ``po`` (payload of ``pl`` bytes): (status, opened,
    ethertype, offset, identity: the VNI)."""
    if cap - po < 8:
        return ST_TRUNCATED, 1, 0, po, 0
    vni = be32(data, b + po + 4) // 256
    if kind == TUN_VXLAN:
        st, et, p = inner_ethernet(data, b, po + 8, cap)
        return st, 1, et, p, vni
    if data[b + po] // 64 != 0:  # a GENEVE version pcapip does not know
        return 0, 0, 0, po, 0
    q = po + 8 + (data[b + po] & 0x3F) * 4
    proto = be16(data, b + po + 2)
    if q > po + pl:
        return ST_BAD_HEADER, 1, 0, po, vni
    if proto == ETH_BRIDGED:
        st, et, p = inner_ethernet(data, b, q, cap)
        return st, 1, et, p, vni
    if proto in (ETH_IPV4, ETH_IPV6):
        return 0, 1, proto, q, vni
    return ST_NOT_IP, 1, proto, q, vni


@kernel_helper
def ip_in_ip(ver, pr):
    """The encapsulation of IP protocol 4 or 41 inside an IP packet of version ``ver``:
    (kind, ethertype of the inner packet)."""
    if ver == 4:
        return (TUN_4IN4, ETH_IPV4) if pr == 4 else (TUN_6IN4, ETH_IPV6)
    return (TUN_4IN6, ETH_IPV4) if pr == 4 else (TUN_6IN6, ETH_IPV6)
