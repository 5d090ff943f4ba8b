"""The per-frame decode loop: link layer, IPv4/IPv6, TCP/UDP into columns.

One loop, written as plain Python over an indexable byte buffer and output
sequences, so that it runs unchanged in CPython (the fallback, and the fast
choice for small captures) and compiles under numba for large ones (see
``pcapip.sources.accel``). Each layer is a ``@kernel_helper`` that numba
inlines into the loop. Bytes are combined with multiplications rather than
shifts (numba types ``uint8 << int`` as uint64, which mixed with int64 turns
into float64).

Integer care: everything is computed in (at most 64-bit) non-negative ints;
the one place that can exceed 2**63 (an IPv6 address half) wraps to the same
bit pattern in numba as the Python int has, and both land in uint64 columns.
"""

from __future__ import annotations

from pcapip.sources.accel import kernel, kernel_helper

from .columns import (
    OPT_AFTER_EOL,
    OPT_MSS,
    OPT_SACK,
    OPT_TIMESTAMP,
    OPT_TOA_CANDIDATE,
    OPT_WALK_BROKEN,
    ST_BAD_HEADER,
    ST_FRAGMENT,
    ST_NOT_IP,
    ST_NOT_TCP_UDP,
    ST_PAYLOAD_CUT,
    ST_TRUNCATED,
    ST_TUNNEL_DEEP,
    ST_UNKNOWN_LINK,
)
from .tunnels import (
    GRE_KEY_PRESENT,
    MAX_MPLS_LABELS,
    MAX_TUNNEL_DEPTH,
    MPLS_LABELS_KEPT,
    TUN_4IN4,
    TUN_4IN6,
    TUN_6IN4,
    TUN_6IN6,
    TUN_ERSPAN2,
    TUN_ERSPAN3,
    TUN_GRE,
    TUN_MPLS,
    TUN_PPPOE,
    TUN_VXLAN,
)

ETH_IPV4 = 0x0800
ETH_IPV6 = 0x86DD
ETH_MPLS = 0x8847
ETH_PPPOE = 0x8864
ETH_BRIDGED = 0x6558  # transparent Ethernet bridging: an Ethernet frame follows
IPV4_MAPPED = 0xFFFF00000000
MAX_VLAN_TAGS = 8
MAX_EXT_HEADERS = 16
MAX_WIRE = 1 << 30


# the columns decode_frames fills, in the order of its ``cols`` tuple: (name, element type)
COLUMNS: tuple[tuple[str, str], ...] = (
    ("status", "u2"),
    ("ipver", "u1"),
    ("proto", "u1"),
    ("ttl", "u1"),
    ("src_hi", "u8"),
    ("src_lo", "u8"),
    ("dst_hi", "u8"),
    ("dst_lo", "u8"),
    ("ip_off", "i4"),
    ("l4_off", "i4"),
    ("sport", "u2"),
    ("dport", "u2"),
    ("tcp_flags", "u2"),
    ("seq", "u4"),
    ("ack", "u4"),
    ("win", "u2"),
    ("tcp_hlen", "u1"),
    ("opt_off", "i4"),
    ("opt_len", "i4"),
    ("opt_flags", "u1"),
    ("pay_off", "i4"),
    ("pay_len", "i4"),
    ("pay_cap", "i4"),
    ("ethertype", "u2"),
    ("tun_kind", "u1"),
    ("tun_id", "u8"),
    ("tun_seen", "u2"),
)
# frames: (offset in data, captured length, length on the wire, link type) per frame
_FRAMES = "Tuple((i8[::1], i8[::1], i8[::1], i4[::1]))"
_COLS = "Tuple((" + ", ".join(f"{t}[::1]" for _, t in COLUMNS) + "))"


@kernel_helper
def be16(data, q):
    """The big-endian 16-bit number at ``data[q]``."""
    return (data[q] * 256) | data[q + 1]


@kernel_helper
def be32(data, q):
    """The big-endian 32-bit number at ``data[q]``."""
    return (data[q] * 16777216) | (data[q + 1] * 65536) | (data[q + 2] * 256) | data[q + 3]


@kernel_helper
def link_header(data, b, cap, lt):
    """The link-layer header of link type ``lt`` of the frame at ``b``:
    (status, ethertype of what follows, offset of what follows)."""
    st = 0
    et = 0
    p = 0
    if lt == 1:  # Ethernet
        if cap < 14:
            st = ST_TRUNCATED
        else:
            et = be16(data, b + 12)
            p = 14
    elif lt == 113:  # Linux SLL: protocol type at 14
        if cap < 16:
            st = ST_TRUNCATED
        else:
            et = be16(data, b + 14)
            p = 16
    elif lt == 276:  # Linux SLL2: protocol type at 0, 20-byte header
        if cap < 20:
            st = ST_TRUNCATED
        else:
            et = be16(data, b)
            p = 20
    elif lt == 101 or lt == 12 or lt == 14 or lt == 228 or lt == 229:  # raw IP
        if cap < 1:
            st = ST_TRUNCATED
        else:
            v = data[b] // 16
            if v == 4 and lt != 229:
                et = ETH_IPV4
            elif v == 6 and lt != 228:
                et = ETH_IPV6
            else:
                st = ST_BAD_HEADER
    elif lt == 0 or lt == 108:  # BSD null / OpenBSD loop: address family, either byte order
        if cap < 4:
            st = ST_TRUNCATED
        else:
            fam = (data[b + 3] * 16777216) | (data[b + 2] * 65536) | (data[b + 1] * 256) | data[b]
            if fam > 0xFFFF:
                fam = be32(data, b)
            p = 4
            if fam == 2:
                et = ETH_IPV4
            elif fam == 24 or fam == 28 or fam == 30:
                et = ETH_IPV6
            else:
                st = ST_NOT_IP
    else:
        st = ST_UNKNOWN_LINK
    return st, et, p


@kernel_helper
def vlan_tags(data, b, cap, st, et, p):
    """Skip 802.1Q / 802.1ad / legacy QinQ tags: (status, inner ethertype, its offset)."""
    tags = 0
    while st == 0 and (et == 0x8100 or et == 0x88A8 or et == 0x9100 or et == 0x9200):
        if cap < p + 4 or tags >= MAX_VLAN_TAGS:
            st = ST_TRUNCATED if cap < p + 4 else ST_BAD_HEADER
            break
        et = be16(data, b + p + 2)
        p += 4
        tags += 1
    return st, et, p


@kernel_helper
def ipv4_header(data, b, p, cap, wire):
    """The IPv4 header at ``p``: (status, protocol, TTL, source, destination (both
    IPv4-mapped), offset of the transport header, end of the IP packet)."""
    st = 0
    pr = 0
    hop = 0
    slo = 0
    dlo = 0
    l4 = 0
    ipend = 0
    q = b + p
    if cap - p < 20:
        st = ST_TRUNCATED
    else:
        vihl = data[q]
        ihl = (vihl & 15) * 4
        tot = be16(data, q + 2)
        frag = be16(data, q + 6) & 0x3FFF
        hop = data[q + 8]
        pr = data[q + 9]
        slo = IPV4_MAPPED | be32(data, q + 12)
        dlo = IPV4_MAPPED | be32(data, q + 16)
        if tot == 0:  # segmentation offload: the length was never filled in
            tot = wire - p
        if (vihl // 16) != 4 or ihl < 20 or tot < ihl:
            st = ST_BAD_HEADER
        elif frag != 0:
            st = ST_FRAGMENT
        elif cap - p < ihl:
            st = ST_TRUNCATED
        else:
            l4 = p + ihl
            ipend = p + tot
    return st, pr, hop, slo, dlo, l4, ipend


@kernel_helper
def ipv6_header(data, b, p, cap, wire):
    """The IPv6 header at ``p``: (status, next header, hop limit, source and destination
    as high and low halves, offset of what follows, end of the IP packet)."""
    st = 0
    pr = 0
    hop = 0
    shi = 0
    slo = 0
    dhi = 0
    dlo = 0
    l4 = 0
    ipend = 0
    q = b + p
    if cap - p < 40:
        st = ST_TRUNCATED
    else:
        plen = be16(data, q + 4)
        pr = data[q + 6]
        hop = data[q + 7]
        shi = (be32(data, q + 8) << 32) | be32(data, q + 12)
        slo = (be32(data, q + 16) << 32) | be32(data, q + 20)
        dhi = (be32(data, q + 24) << 32) | be32(data, q + 28)
        dlo = (be32(data, q + 32) << 32) | be32(data, q + 36)
        if (data[q] // 16) != 6:
            st = ST_BAD_HEADER
        else:
            l4 = p + 40
            # plen 0: jumbogram or segmentation offload, the frame length decides
            ipend = l4 + plen if plen else max(wire, l4)
    return st, pr, hop, shi, slo, dhi, dlo, l4, ipend


@kernel_helper
def ext_headers(data, b, cap, ver, pr, l4, ipend):
    """Skip IPv6 extension headers and AH (both families): (status, protocol of the
    transport header, its offset)."""
    st = 0
    nhdr = 0
    while True:
        if pr == 0 or pr == 43 or pr == 60:  # hop-by-hop, routing, destination options
            if ver != 6:
                break
            if cap < l4 + 2:
                st = ST_TRUNCATED
                break
            nxt = data[b + l4]
            l4 += (data[b + l4 + 1] + 1) * 8
            pr = nxt
        elif pr == 51:  # authentication header
            if cap < l4 + 2:
                st = ST_TRUNCATED
                break
            nxt = data[b + l4]
            l4 += (data[b + l4 + 1] + 2) * 4
            pr = nxt
        elif pr == 44 and ver == 6:  # fragment header
            if cap < l4 + 8:
                st = ST_TRUNCATED
                break
            nxt = data[b + l4]
            fo = be16(data, b + l4 + 2)
            l4 += 8
            pr = nxt
            if (fo & 0xFFF9) != 0:  # offset or more-fragments: a real fragment
                st = ST_FRAGMENT
        else:
            break
        nhdr += 1
        if st == 0 and (nhdr > MAX_EXT_HEADERS or l4 > ipend):
            st = ST_BAD_HEADER
        if st != 0:
            break
    return st, pr, l4


@kernel_helper
def option_walk(data, b, oo, oend, po, toa_mask):
    """Walk the TCP options from ``oo`` to ``oend`` (captured) of a header ending at
    ``po``, as a receiving kernel does: the OPT_* bits of what it finds."""
    of = 0
    j = oo
    while j < oend:
        k = data[b + j]
        if k == 0:  # EOL: the walk ends; anything non-zero after it is hidden
            of |= behind_eol(data, b, j + 1, oend, toa_mask)
            break
        if k == 1:
            j += 1
            continue
        if toa_mask[k]:
            of |= OPT_TOA_CANDIDATE
        if k == 2:
            of |= OPT_MSS
        elif k == 4 or k == 5:
            of |= OPT_SACK
        elif k == 8:
            of |= OPT_TIMESTAMP
        if j + 1 >= oend:
            if oend == po:  # kind in the last header byte, no room for a length
                of |= OPT_WALK_BROKEN
            break
        ln = data[b + j + 1]
        if ln < 2 or j + ln > po:
            of |= OPT_WALK_BROKEN
            break
        j += ln
    return of


@kernel_helper
def behind_eol(data, b, m0, oend, toa_mask):
    """The option bytes after an EOL (from ``m0``): OPT_AFTER_EOL if any is non-zero,
    OPT_TOA_CANDIDATE if a lenient walk finds a TOA kind there."""
    of = 0
    m = m0
    while m < oend:
        if data[b + m] != 0:
            of |= OPT_AFTER_EOL
            break
        m += 1
    m = m0
    while m < oend:
        k2 = data[b + m]
        if k2 == 0 or k2 == 1:
            m += 1
            continue
        if toa_mask[k2]:
            of |= OPT_TOA_CANDIDATE
        if m + 1 >= oend:
            break
        l2 = data[b + m + 1]
        if l2 < 2:
            break
        m += l2
    return of


@kernel_helper
def tcp_header(data, b, l4, cap, ipend, toa_mask):
    """The TCP header at ``l4``: (status, ports, flags, seq, ack, window, header length,
    options offset, length and OPT_* bits, payload offset, length and captured bytes)."""
    st = 0
    sp = 0
    dp = 0
    fl = 0
    sq = 0
    ak = 0
    wn = 0
    thl = 0
    oo = 0
    ol = 0
    of = 0
    po = 0
    pl = 0
    pc = 0
    q = b + l4
    if cap - l4 >= 4:
        sp = be16(data, q)
        dp = be16(data, q + 2)
    if cap - l4 < 20:
        st = ST_TRUNCATED
    else:
        sq = be32(data, q + 4)
        ak = be32(data, q + 8)
        doff = data[q + 12] // 16
        fl = ((data[q + 12] & 1) * 256) | data[q + 13]
        wn = be16(data, q + 14)
        thl = doff * 4
        if doff < 5 or l4 + thl > ipend:
            st = ST_BAD_HEADER
        else:
            oo = l4 + 20
            ol = thl - 20
            po = l4 + thl
            pl = ipend - po
            of = option_walk(data, b, oo, min(po, cap), po, toa_mask)
            if cap < po:
                st = ST_TRUNCATED
            else:
                pc = min(cap - po, pl)
                if pc < pl:
                    st = ST_PAYLOAD_CUT
    return st, sp, dp, fl, sq, ak, wn, thl, oo, ol, of, po, pl, pc


@kernel_helper
def udp_header(data, b, l4, cap, ipend):
    """The UDP header at ``l4``: (status, ports, payload offset, length, captured bytes)."""
    st = 0
    sp = 0
    dp = 0
    po = 0
    pl = 0
    pc = 0
    q = b + l4
    if cap - l4 >= 4:
        sp = be16(data, q)
        dp = be16(data, q + 2)
    if cap - l4 < 8:
        st = ST_TRUNCATED
    else:
        ulen = be16(data, q + 4)
        po = l4 + 8
        room = ipend - po
        if room < 0:
            st = ST_BAD_HEADER
            room = 0
        if ulen == 0:  # jumbogram: the IP length decides
            pl = room
        elif ulen < 8 or ulen - 8 > room:
            st = ST_BAD_HEADER
            pl = room
        else:
            pl = ulen - 8
        pc = max(min(cap - po, pl), 0)
        if pc < pl and st == 0:
            st = ST_PAYLOAD_CUT
    return st, sp, dp, po, pl, pc


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


@kernel(f"i8(u1[::1], {_FRAMES}, b1[::1], u1[::1], i8, {_COLS})")
def decode_frames(data, frames, toa_mask, udp_tunnels, n, cols):
    """Decode frames 0..n-1 into the columns ``cols`` (the order of ``COLUMNS``; all
    offsets relative to the frame), opening encapsulations (``udp_tunnels``: the TUN_*
    kind opened at each UDP destination port, 0 for none)."""
    foff, caplen, origlen, linktype = frames
    (status, ipver, proto, ttl, src_hi, src_lo, dst_hi, dst_lo, ip_off, l4_off, sport, dport,
     tcp_flags, seq, ack, win, tcp_hlen, opt_off, opt_len, opt_flags, pay_off, pay_len,
     pay_cap, ethertype, tun_kind, tun_id, tun_seen) = cols  # fmt: skip
    for i in range(n):
        b = foff[i]
        cap = caplen[i]
        wire = min(origlen[i], MAX_WIRE)  # an absurd record length: keep lengths in int32
        st, et, p = link_header(data, b, cap, linktype[i])
        ver = pr = hop = shi = slo = dhi = dlo = l4 = ipend = 0
        ipo = -1
        tk = tid = named = seen = depth = 0
        lim = wire  # end of what the current layer's carrier holds
        while st == 0:
            st, et, p = vlan_tags(data, b, cap, st, et, p)
            if st != 0:
                break
            if et in (ETH_MPLS, ETH_PPPOE):
                if depth >= MAX_TUNNEL_DEPTH:
                    st = ST_TUNNEL_DEEP
                    break
                if et == ETH_MPLS:
                    k = TUN_MPLS
                    st, et, p, ident = mpls_stack(data, b, p, cap)
                else:
                    k = TUN_PPPOE
                    st, et, p, ident = pppoe_session(data, b, p, cap)
                tk, tid, named = k, ident, 1
                seen |= 1 << k
                depth += 1
                continue
            if et != ETH_IPV4 and et != ETH_IPV6:
                st = ST_NOT_IP
                break
            ipo = p
            if et == ETH_IPV4:
                ver = 4
                shi = dhi = 0
                st, pr, hop, slo, dlo, l4, ipend = ipv4_header(data, b, p, cap, lim)
            else:
                ver = 6
                st, pr, hop, shi, slo, dhi, dlo, l4, ipend = ipv6_header(data, b, p, cap, lim)
            if st == 0:
                st, pr, l4 = ext_headers(data, b, cap, ver, pr, l4, ipend)
            if st == 0 and depth > 0 and ipend > lim:
                st = ST_BAD_HEADER  # the inner packet claims more than its carrier holds
            if st != 0:
                break
            k = ident = opened = q = 0
            inner_end = ipend
            if pr == 4 or pr == 41:
                k, et = ip_in_ip(ver, pr)
                opened = 1
                q = l4
            elif pr == 47:
                st, opened, et, q, k, ident = gre_header(data, b, l4, cap)
            elif pr == 17 and cap - l4 >= 4 and udp_tunnels[be16(data, b + l4 + 2)] != 0:
                ust, _, _, upo, upl, _ = udp_header(data, b, l4, cap, ipend)
                if ust == 0 or ust == ST_PAYLOAD_CUT:
                    st, opened, et, q, ident = udp_tunnel(
                        data, b, udp_tunnels[be16(data, b + l4 + 2)], upo, upl, cap
                    )
                    k = udp_tunnels[be16(data, b + l4 + 2)]
                    inner_end = upo + upl
            if opened == 0:
                break
            if depth >= MAX_TUNNEL_DEPTH:
                st = ST_TUNNEL_DEEP
                break
            # the tenant: the innermost layer with an identity, else the innermost layer
            if (k != TUN_GRE or ident != 0) and k < TUN_4IN4:
                tk, tid, named = k, ident, 1
            elif named == 0:
                tk, tid = k, ident
            seen |= 1 << k
            depth += 1
            lim = inner_end
            p = q
        l4o = -1
        sp = dp = fl = sq = ak = wn = thl = oo = ol = of = po = pl = pc = 0
        if st == 0:
            if pr == 6:
                l4o = l4
                st, sp, dp, fl, sq, ak, wn, thl, oo, ol, of, po, pl, pc = tcp_header(
                    data, b, l4, cap, ipend, toa_mask
                )
            elif pr == 17:
                l4o = l4
                st, sp, dp, po, pl, pc = udp_header(data, b, l4, cap, ipend)
            else:
                st = ST_NOT_TCP_UDP
        status[i] = st
        ipver[i] = ver
        proto[i] = pr
        ttl[i] = hop
        src_hi[i] = shi
        src_lo[i] = slo
        dst_hi[i] = dhi
        dst_lo[i] = dlo
        ip_off[i] = ipo
        l4_off[i] = l4o
        sport[i] = sp
        dport[i] = dp
        tcp_flags[i] = fl
        seq[i] = sq
        ack[i] = ak
        win[i] = wn
        tcp_hlen[i] = thl
        opt_off[i] = oo
        opt_len[i] = ol
        opt_flags[i] = of
        pay_off[i] = po
        pay_len[i] = pl
        pay_cap[i] = pc
        ethertype[i] = et
        tun_kind[i] = tk
        tun_id[i] = tid
        tun_seen[i] = seen
    return n
