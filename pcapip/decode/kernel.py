"""The per-frame decode loop: link layer, IPv4/IPv6, TCP/UDP into columns.

One loop, written as plain Python over an indexable byte buffer and output
sequences, so that it runs unchanged in CPython (the fallback, and the fast
choice for small captures) and compiles under numba for large ones (see
``pcapip.sources.accel``). Each layer is a ``@kernel_helper`` that numba
inlines into the loop. Bytes are read with ``pcapip.sources.kernel_bytes``
(multiplications rather than shifts: numba types ``uint8 << int`` as uint64,
which mixed with int64 turns into float64).

Integer care: everything is computed in (at most 64-bit) non-negative ints;
the one place that can exceed 2**63 (an IPv6 address half) wraps to the same
bit pattern in numba as the Python int has, and both land in uint64 columns.
"""

from __future__ import annotations

from pcapip.sources.accel import kernel, kernel_helper
from pcapip.sources.kernel_bytes import be16, be32, le32

from .columns import (
    ST_BAD_HEADER,
    ST_FRAGMENT,
    ST_NOT_IP,
    ST_NOT_TCP_UDP,
    ST_PAYLOAD_CUT,
    ST_TRUNCATED,
    ST_TUNNEL_DEEP,
    ST_UNKNOWN_LINK,
)
from .kernel_l4 import tcp_header, udp_header
from .kernel_tunnels import (
    ETH_IPV4,
    ETH_IPV6,
    ETH_MPLS,
    ETH_PPPOE,
    gre_header,
    ip_in_ip,
    mpls_stack,
    pppoe_session,
    udp_tunnel,
)
from .tunnels import MAX_TUNNEL_DEPTH, TUN_4IN4, TUN_GRE, TUN_MPLS, TUN_PPPOE

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
            fam = le32(data, b)
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
def tunnel_layer(data, b, cap, ver, pr, l4, ipend, udp_tunnels):
    """The encapsulation an IP packet with transport ``pr`` at ``l4`` carries, if pcapip
    opens it: (status, opened, ethertype inside, its offset, kind, identity, end of what
    the layer holds)."""
    if pr == 4 or pr == 41:
        k, et = ip_in_ip(ver, pr)
        return 0, 1, et, l4, k, 0, ipend
    if pr == 47:
        st, opened, et, q, k, ident = gre_header(data, b, l4, cap)
        return st, opened, et, q, k, ident, ipend
    if pr == 17 and cap - l4 >= 4:
        k = udp_tunnels[be16(data, b + l4 + 2)]
        if k != 0:
            ust, _, _, upo, upl, _ = udp_header(data, b, l4, cap, ipend)
            if ust == 0 or ust == ST_PAYLOAD_CUT:
                st, opened, et, q, ident = udp_tunnel(data, b, k, upo, upl, cap)
                return st, opened, et, q, k, ident, upo + upl
    return 0, 0, 0, 0, 0, 0, ipend


@kernel_helper
def network_layers(data, b, cap, wire, st, et, p, udp_tunnels):
    """From the link layer's payload to the innermost IP packet, opening VLAN tags and
    encapsulations (at most MAX_TUNNEL_DEPTH): (status, ethertype, IP version, protocol,
    hop limit, addresses as halves, IP offset, transport offset, end of the IP packet,
    the tenant's tunnel kind and identity, every kind opened as bits)."""
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
        st, opened, inner_et, q, k, ident, inner_end = tunnel_layer(
            data, b, cap, ver, pr, l4, ipend, udp_tunnels
        )
        if opened == 0:
            break  # the row describes this IP packet: ``et`` stays its ethertype
        et = inner_et
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
    return st, et, ver, pr, hop, shi, slo, dhi, dlo, ipo, l4, ipend, tk, tid, seen


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
        st, et, ver, pr, hop, shi, slo, dhi, dlo, ipo, l4, ipend, tk, tid, seen = network_layers(
            data, b, cap, wire, st, et, p, udp_tunnels
        )
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
